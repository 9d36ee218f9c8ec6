"""Disparity: who the recogniser serves worst. Pooled WER with speaker-bootstrap intervals, learned regions on an
offline map, automatic (voice) and geographic cohorts, the published comparison table on our data, a UMAP of
speaker voices with linked selection, and the worst utterances behind every figure. No group, region or map
cell of fewer than k speakers is shown (speaker locations are personal data)."""

import hashlib
import html
import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from analysis.disparity import cohorts as co
from analysis.disparity import report as dr
from analysis.wer import align
from app import resources, store
from app.jobs import registry
from app.page import start
from app.store import evaluations as store_evaluations
from components import job_panel
from components.dialogue_view import alignment_text, render_dialogue
from components.exports import csv_safe
from components.maps import PLOTLY_CONFIG, regions_map

DEFAULTS = dr.Options()
SHARE = ("error_share", "sub_share", "del_share", "ins_share")
GROUP_COLUMNS = ["group", "wer", "wer_low", "wer_high", "excludes_overall", "diff_rest", "diff_low", "diff_high",
                 "speakers", "utterances", "words", "errors", "error_share", "speaker_mean_wer", "sub_share",
                 "del_share", "ins_share"]


def percent(x: float) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.1%}"


def interval(low: float, high: float) -> str:
    return f"[{percent(low)}, {percent(high)}]"


def group_columns(label: str) -> dict:
    return ({"group": st.column_config.TextColumn(label),
             "wer": st.column_config.NumberColumn("pooled WER", format="percent"),
             "wer_low": st.column_config.NumberColumn("WER low", format="percent"),
             "wer_high": st.column_config.NumberColumn("WER high", format="percent"),
             "excludes_overall": st.column_config.CheckboxColumn(
                 "finding", help="The WER interval excludes the overall WER; a group whose interval spans the "
                                 "overall WER is not a finding."),
             "diff_rest": st.column_config.NumberColumn("vs rest", format="percent",
                                                        help="WER of the group minus WER of all other speakers"),
             "diff_low": st.column_config.NumberColumn("vs rest low", format="percent"),
             "diff_high": st.column_config.NumberColumn("vs rest high", format="percent"),
             "speaker_mean_wer": st.column_config.NumberColumn("speaker-mean WER", format="percent",
                                                               help="Secondary: mean of the speakers' own WERs")}
            | {c: st.column_config.NumberColumn(c.replace("_", " "), format="percent") for c in SHARE})


def settings_form() -> dr.Options:
    """The analysis settings (applied together); invalid combinations are refused with the reason."""
    with st.expander("Settings", expanded=False), st.form("dp_settings"):
        c1, c2, c3 = st.columns(3)
        k = c1.number_input("Privacy minimum k (speakers)", 2, 1000, DEFAULTS.k, key="dp_k",
                            help="No region, cohort or map cell with fewer speakers is shown; smaller states and "
                                 "city-size bands are merged into (other).")
        min_words = c1.number_input("Min reference words per side of a cut", 1, 10_000_000, DEFAULTS.min_words,
                                    key="dp_min_words")
        min_speakers = c1.number_input("Min speakers per side of a cut", 1, 1_000_000, DEFAULTS.min_speakers,
                                       key="dp_min_speakers", help="Raised to k if lower.")
        max_regions = c2.number_input("Max regions", 1, 512, DEFAULTS.max_regions, key="dp_max_regions")
        alpha = c2.number_input("Split test level α", 0.001, 1.0, DEFAULTS.alpha, step=0.01, format="%.3f",
                                key="dp_alpha", help="A split is kept only if its permutation p-value is at most "
                                                     "α (1 = no test).")
        cell = c2.number_input("Map cell size (degrees)", 0.25, 10.0, DEFAULTS.cell_deg, step=0.25, key="dp_cell")
        cohorts = c3.selectbox("Automatic cohorts k", ["auto (silhouette)", *range(2, 13)], key="dp_cohorts",
                               help="auto: the k from 2 to 8 with the highest mean silhouette.")
        n_boot = c3.number_input("Bootstrap replicates", 100, 10_000, DEFAULTS.n_boot, step=100, key="dp_n_boot")
        refits = c3.number_input("Stability refits", 1, 200, DEFAULTS.stability_refits, key="dp_refits")
        st.form_submit_button("Apply")
    return dr.Options(k=int(k), min_words=int(min_words), min_speakers=int(min_speakers),
                      max_regions=int(max_regions), alpha=float(alpha), n_boot=int(n_boot),
                      cohorts=None if isinstance(cohorts, str) else int(cohorts), stability_refits=int(refits),
                      cell_deg=float(cell))


def worst_utterances(speakers: np.ndarray, key: str) -> None:
    """The group's utterances with the most word errors; a row shows its alignment and dialogue."""
    worst = store.list_worst_utterances(conn, dataset, [str(s) for s in speakers], limit=50)
    st.caption(f"The {len(worst)} utterances of its {len(speakers):,} speakers with the most word errors. Click one "
               "for its reference/ASR alignment and dialogue.")
    rows = st.dataframe(worst[["speaker_id", "reference_text", "asr_text", "wer_sub", "wer_del", "wer_ins",
                               "wer_ref_words", "wer", "dialogue_id", "turn_index"]],
                        hide_index=True, width="stretch", key=key, on_select="rerun", selection_mode="single-row",
                        column_config={"wer": st.column_config.NumberColumn("WER", format="percent")}
                        ).selection.rows
    if rows and rows[0] < len(worst):
        show_utterance(worst.iloc[rows[0]])


def show_utterance(row: pd.Series) -> None:
    dialogue_id, turn_index = str(row["dialogue_id"]), int(row["turn_index"])
    if isinstance(row.get("reference_text"), str):
        st.code(alignment_text(align(row["reference_text"], row.get("asr_text") or "")), language=None)
    with st.expander("The dialogue of this utterance", expanded=True):
        st.text(f"Dialogue {dialogue_id}, turn {turn_index}")  # ids come from logs: as text
        render_dialogue(store.get_dialogue_turns(conn, dialogue_id, dataset), highlight_turn=turn_index)


def group_section(name: str, label: str, key: str) -> None:
    summary = report.summaries[name]
    shown = summary[GROUP_COLUMNS].copy()
    # -1: speakers without a place (regions) or a voice embedding (automatic cohorts); never compared
    none = {dr.REGION: "(no location)", dr.AUTOMATIC: "(no voice)"}.get(name, "(none)")
    shown["group"] = [none if isinstance(g, (int, np.integer)) and g < 0 else str(g) for g in shown["group"]]
    picked = st.dataframe(shown, hide_index=True, width="stretch", key=key, on_select="rerun",
                          selection_mode="single-row", column_config=group_columns(label)).selection.rows
    if picked and picked[0] < len(summary):
        group = summary["group"].iloc[picked[0]]
        st.markdown(f"**Worst utterances of {label} {group}**" if isinstance(group, (int, np.integer))
                    else f"**Worst utterances of the selected {label}**")
        worst_utterances(report.speakers_of(name, group), key=f"{key}_worst_{group}")


page = start("Disparity")
conn, db, dataset = page.conn, page.db, page.dataset
options = settings_form()
job_panel.family_jobs(resources.job_runner(db), registry.get("disparity"), dataset, page.reviewer,
                      read_only=page.settings.read_only)
stored = store_evaluations.get_latest_analysis(conn, "disparity", dataset)
if stored is not None:
    st.caption(f"Latest stored analysis: #{stored['analysis_id']} of {stored['created_at']:%Y-%m-%d %H:%M} "
               f"(see the Models page). The figures below are computed with the settings in the sidebar.")
STEPS = {"waiting": "another session is computing this analysis, waiting for it",
         "reading the turns": "reading the turns", "overall": "bootstrapping the overall WER",
         "regions": "growing the region tree", "cohorts": "clustering voices and placing speakers",
         "groups": "bootstrapping every region and cohort", "stability": "refitting the regions on resamples",
         "map": "aggregating map cells", "done": "done"}
bar = st.empty()


def progress(step: str, share: float) -> None:
    """Shown only while the analysis is computed (a cached result returns at once)."""
    bar.progress(share, text=f"Analysing speakers: {STEPS.get(step, step)}…")


try:
    report = resources.disparity_analysis(conn, db, dataset, options, progress)
except ValueError as exc:
    st.info("No disparity analysis for this dataset:")
    st.text(str(exc))
    st.stop()
finally:
    bar.empty()

ov = report.overall
if ov["speakers"] < options.k:
    st.info(f"This dataset has {ov['speakers']} speaker(s) with a reference transcript, fewer than the privacy "
            f"minimum k = {options.k}: nothing about them is shown.")
    st.stop()
st.caption(f"{ov['speakers']:,} speakers ({ov['located_speakers']:,} with a location), {ov['utterances']:,} "
           f"utterances with a reference transcript, {ov['words']:,} reference words. Intervals: "
           f"{options.confidence:.0%} percentile intervals of a bootstrap resampling speakers "
           f"({options.n_boot:,} replicates).")
c1, c2, c3, c4, c5 = st.columns(5)
c1.metric("Pooled WER", percent(ov["wer"]), help=co.POOLED_WER_DEFINITION)
c1.caption(f"95% interval {interval(ov['wer_low'], ov['wer_high'])}")
c2.metric("Speaker-mean WER (secondary)", percent(ov["speaker_mean_wer"]),
          help="The unweighted mean of each speaker's own pooled WER: a speaker with 3 words counts as much as one "
               "with 3,000. Shown for comparison; every other figure is pooled.")
c3.metric("Substitutions", percent(ov["sub_share"]), help="Share of all word errors.")
c4.metric("Deletions", percent(ov["del_share"]), help="Share of all word errors.")
c5.metric("Insertions", percent(ov["ins_share"]), help="Share of all word errors.")

privacy = report.privacy
notes = [f"Privacy: nothing describing fewer than {privacy.k} speakers is shown."]
if privacy.hidden_cells:
    notes.append(f"{privacy.hidden_cells:,} map cells with fewer than {privacy.k} speakers "
                 f"({privacy.hidden_cell_speakers:,} speakers) are not drawn as points; their speakers still count in "
                 "the regions and every figure.")
for name, merged in privacy.merged.items():
    if merged:
        notes.append(f"{merged} {name} groups with fewer than {privacy.k} speakers are merged into {dr.OTHER}.")
for name, hidden in privacy.hidden_groups.items():
    if hidden:
        notes.append(f"{hidden} {name} group(s) with fewer than {privacy.k} speakers "
                     f"({privacy.hidden_speakers[name]:,} speakers) are hidden.")
st.info(" ".join(notes))

# --- learned regions ---------------------------------------------------------------------------------------
st.subheader("Learned regions")
regions = dr.region_frame(report)
if not report.regions:
    st.caption("No speaker has a location: there are no regions.")
elif regions.empty:
    st.caption(f"The data hold fewer than {privacy.k} located speakers: no region can be shown.")
else:
    st.caption(f"{len(regions)} region(s): recursive latitude/longitude splits, each chosen to maximise the pooled-WER "
               f"difference between its sides, with at least {options.tree_min_speakers} speakers and "
               f"{options.min_words:,} reference words per side, kept only when a permutation test finds the "
               f"difference significant at α = {options.alpha:g}. Ranked by WER (1 = worst served). Hover a region "
               "for its interval; points are map cells of "
               f"{options.cell_deg:g}° with at least {privacy.k} speakers (area = speakers).")
    st.plotly_chart(regions_map(regions, report.points, min_speakers=privacy.k), config=PLOTLY_CONFIG, key="dp_map")
    group_section(dr.REGION, "region", "dp_regions")
    if report.stability is not None:
        st.markdown("**Stability**")
        stab = report.stability.by_region.merge(regions[["region", "speakers"]], on="region")
        fig = go.Figure(go.Bar(x=stab["region"].astype(str), y=stab["together"], marker_color="rgb(90, 120, 170)",
                               hovertemplate="region %{x}: %{y:.0%} of pairs kept together<extra></extra>"))
        fig.add_hline(y=report.stability.mean, line_dash="dash",
                      annotation_text=f"all regions {report.stability.mean:.0%}")
        fig.update_layout(height=260, margin=dict(t=20, b=30, l=40, r=10), yaxis=dict(range=[0, 1], tickformat=".0%"),
                          xaxis_title="region", yaxis_title="pairs kept together")
        st.plotly_chart(fig, key="dp_stability")
        st.caption(f"Stability {report.stability.mean:.0%}: pairs of speakers sharing a region are drawn at "
                   f"random; the tree is refitted on {len(report.stability.per_refit)} bootstrap resamples of the "
                   "speakers, and a bar is the share of its pairs still in one region (1 = fully reproducible).")
    else:
        st.caption("Stability: not computed, there is a single region (no split was significant).")

# --- cohorts -----------------------------------------------------------------------------------------------
st.subheader("Cohorts")
present = [n for n in (dr.AUTOMATIC, dr.STATE, dr.CITY_SIZE) if n in report.summaries]
if report.cohort_note:
    st.caption("Automatic cohorts: " + report.cohort_note)
if not present:
    st.caption("No speaker has a voice embedding or a location: there are no cohorts.")
else:
    which = st.radio("Cohorts", present, horizontal=True, key="dp_cohorting")
    defs = co.definitions(min_speakers=privacy.k)
    st.caption({dr.AUTOMATIC: defs["automatic"], dr.STATE: defs["state"], dr.CITY_SIZE: defs["city size"]}[which])
    if which == dr.AUTOMATIC and report.cohort_fit is not None:
        fit = report.cohort_fit
        scan = ", ".join(f"k={k}: {s:.2f}" for k, s in sorted(fit.silhouette.items()))
        st.caption(f"k = {fit.k}" + (" (chosen by the silhouette scan)" if options.cohorts is None else " (set)")
                   + f"; mean silhouette {scan} (on {fit.sample_size:,} speakers).")
    group_section(which, {dr.AUTOMATIC: "cohort", dr.STATE: "state", dr.CITY_SIZE: "city size"}[which],
                  f"dp_cohort_{which.replace(' ', '_')}")

st.markdown("**Comparison with the published work**")
comparison = report.comparison.reset_index()
published = pd.DataFrame([{"cohorting": f"published: {name}", "wer_gap": gap, "bottom_share_speakers": share}
                          for name, (gap, share) in co.PUBLISHED_FIGURES.items()])
st.dataframe(pd.concat([comparison, published], ignore_index=True), hide_index=True, width="stretch", key="dp_compare",
             column_config={c: st.column_config.NumberColumn(c.replace("_", " "), format="percent")
                            for c in ("wer_gap", "wer_gap_low", "wer_gap_high", "bottom_share_speakers",
                                      "bottom_share_utterances", "worst_wer", "best_wer")})
with st.expander("Exact definitions"):
    defs = co.definitions(min_speakers=privacy.k)
    for name in ("pooled_wer", "wer_gap", "bottom_share_speakers", "n_cohorts"):
        st.markdown(f"- **{name.replace('_', ' ')}**: {defs[name]}")
    st.markdown(f"- **wer gap low / high**: the {options.confidence:.0%} percentile interval of the WER gap over the "
                "speaker-bootstrap replicates, the worst and best cohorts fixed as in the data.")
    st.markdown(f"- Merged groups ({dr.OTHER}) and speakers without a location are never the worst or best cohort. "
                "Published figures: METHODS.md section 5 (their data, not ours).")

# --- UMAP ----------------------------------------------------------------------------------------------------
st.subheader("Speaker voices (UMAP)")
table = report.table
voice_rows = report.voice_rows
jobs = resources.umap_jobs()
if len(voice_rows) < 3:
    st.caption("Fewer than 3 speakers have a voice embedding: there is no projection.")
else:
    voices_of = table.embedding[voice_rows]
    # The key is the content itself (speakers and vectors), so a changed dataset never reuses a stale layout.
    digest = hashlib.sha256(voices_of.tobytes() + "\x1f".join(map(str, table.speaker[voice_rows])).encode())
    job = jobs.projection((db, dataset, digest.hexdigest()), voices_of)
    if not job.done():
        st.session_state["dp_umap_waiting"] = True  # the fragment reruns the whole page once it is ready

    @st.fragment(run_every=2 if not job.done() else None)
    def voices() -> None:
        if not job.done():
            st.info("Computing the UMAP projection in the background"
                    + (" (the first fit in a server process compiles for about 45 s)" if jobs.warming else "")
                    + "; it appears here when ready. The rest of the page can be used meanwhile.")
            return
        if st.session_state.pop("dp_umap_waiting", False):
            # A full rerun redefines this fragment without run_every; polling would otherwise go on forever.
            st.rerun(scope="app")
        if job.exception() is not None:
            st.error("The UMAP projection failed:")
            st.text(str(job.exception()))
            return
        xy = job.result()
        colour = st.radio("Colour by", ["automatic cohort", "speaker WER"], horizontal=True, key="dp_umap_colour")
        fig = go.Figure()
        members: list[np.ndarray] = []  # per trace: rows of `table` in trace order
        ids = np.array([html.escape(str(x)) for x in table.speaker[voice_rows]], dtype=object)  # hover is HTML
        if colour == "automatic cohort" and report.cohort_fit is not None:
            labels = report.cohort_fit.labels
            shown = {int(g) for g in report.summaries[dr.AUTOMATIC]["group"] if g >= 0}
            hidden = np.flatnonzero(~np.isin(labels, list(shown)))
            for c in sorted(shown):
                idx = np.flatnonzero(labels == c)
                members.append(voice_rows[idx])
                fig.add_trace(go.Scattergl(x=xy[idx, 0], y=xy[idx, 1], mode="markers", name=f"cohort {c}",
                                           customdata=ids[idx], marker=dict(size=5),
                                           hovertemplate=f"cohort {c}<br>speaker %{{customdata}}<extra></extra>"))
            if len(hidden):  # cohorts of fewer than k speakers: drawn, but not as a cohort
                members.append(voice_rows[hidden])
                fig.add_trace(go.Scattergl(x=xy[hidden, 0], y=xy[hidden, 1], mode="markers",
                                           name=f"cohorts under {privacy.k} speakers", customdata=ids[hidden],
                                           marker=dict(size=5, color="rgb(170, 170, 170)"),
                                           hovertemplate="speaker %{customdata}<extra></extra>"))
        else:
            wer = table.wer[voice_rows]
            members.append(voice_rows)
            fig.add_trace(go.Scattergl(x=xy[:, 0], y=xy[:, 1], mode="markers", name="speakers",
                                       customdata=ids, text=[f"{w:.1%}" for w in wer],
                                       marker=dict(size=5, color=wer, colorscale="YlOrRd", cmin=0,
                                                   cmax=float(np.quantile(wer, 0.95)) or 1.0,
                                                   colorbar=dict(title="WER", tickformat=".0%")),
                                       hovertemplate="speaker %{customdata}<br>WER %{text}<extra></extra>"))
        fig.update_layout(height=480, dragmode="lasso", margin=dict(t=10, b=10, l=10, r=10),
                          xaxis=dict(showticklabels=False, title=None), yaxis=dict(showticklabels=False, title=None))
        event = st.plotly_chart(fig, key="dp_umap", on_select="rerun", selection_mode=("box", "lasso"))
        points = event["selection"]["points"] if event else []
        chosen = sorted({int(members[p["curve_number"]][p["point_index"]]) for p in points
                         if 0 <= p.get("curve_number", -1) < len(members)
                         and 0 <= p.get("point_index", -1) < len(members[p["curve_number"]])})
        st.caption("Each point is a speaker's mean voice embedding projected with UMAP (near = similar voices; "
                   "distances between far-apart groups mean little). Select with the box or lasso to list speakers."
                   + (f" {report.cohort_note}" if report.cohort_note else ""))
        if not chosen:
            return
        sel = pd.DataFrame({"speaker_id": table.speaker[chosen], "utterances": table.utterances[chosen],
                            "words": table.words[chosen], "wer": table.wer[chosen]})
        if dr.AUTOMATIC in report.labels:
            shown_groups = set(report.summaries[dr.AUTOMATIC]["group"])
            sel["cohort"] = [str(c) if c in shown_groups and c >= 0 else ""
                             for c in report.labels[dr.AUTOMATIC][chosen]]
        e, w = table.errors[chosen].sum(), table.words[chosen].sum()
        st.markdown(f"**{len(chosen):,} speakers selected** · pooled WER {percent(e / w if w else np.nan)}")
        st.dataframe(sel, hide_index=True, width="stretch", key="dp_umap_speakers",
                     column_config={"wer": st.column_config.NumberColumn("WER", format="percent")})
        utts = store.list_speaker_utterances(conn, dataset, [str(x) for x in sel["speaker_id"]], limit=500)
        st.caption(f"Their utterances (newest first, at most 500: {len(utts):,} shown). Click one for its dialogue.")
        rows = st.dataframe(utts, hide_index=True, width="stretch", key="dp_umap_utterances", on_select="rerun",
                            selection_mode="single-row",
                            column_config={"wer": st.column_config.NumberColumn("WER", format="percent")}
                            ).selection.rows
        if rows and rows[0] < len(utts):
            show_utterance(utts.iloc[rows[0]])

    voices()

# --- export --------------------------------------------------------------------------------------------------
st.subheader("Export")
d1, d2 = st.columns(2)
if report.regions:
    d1.download_button(f"Regions as GeoJSON ({int((report.summaries[dr.REGION]['group'] >= 0).sum())} regions)",
                       json.dumps(report.geojson(), indent=1), file_name=f"regions-{dataset}.geojson",
                       mime="application/geo+json", key="dp_geojson")
assignments = report.assignments()
d2.download_button(f"Cohort assignments as CSV ({len(assignments):,} speakers)",
                   csv_safe(assignments).to_csv(index=False), file_name=f"cohorts-{dataset}.csv", mime="text/csv",
                   key="dp_csv")
st.caption("The GeoJSON holds the shown regions with their WER intervals; the CSV one row per speaker with each "
           "cohorting's label (blank where the group is hidden) and the speaker's counts. Step times: "
           + ", ".join(f"{k} {v:.1f} s" for k, v in report.seconds.items()) + ".")
