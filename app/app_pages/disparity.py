"""Disparity: who the recogniser serves worst. Pooled WER with speaker-bootstrap intervals, learned regions on an
offline map, automatic (voice) and geographic cohorts, the published comparison table on our data, a UMAP of
speaker voices with linked selection, the worst utterances behind every figure, and Mitigation: adapting a model
to a worse-served group and comparing every group before and after (components/mitigation_view.py). No group,
region or map cell of fewer than k speakers is shown (speaker locations are personal data).

The report is drawn from the store when one was computed for this data and these settings (by the analyse job,
`make run` or an earlier open); otherwise it is computed now and stored, and the page says which."""

import html
import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from analysis.disparity import cohorts as co
from analysis.disparity import report as dr
from analysis.disparity import tables
from analysis.disparity.tables import percent
from analysis.wer import align
from analysis.wer_normalise import label
from app import resources, store
from app.jobs import registry
from app.page import start
from app.store import evaluations as store_evaluations
from components import job_panel
from components.dialogue_view import alignment_text, render_dialogue
from components.exports import csv_download
from components.maps import PLOTLY_CONFIG, regions_map
from components.mitigation_view import METHODS as MITIGATIONS
from components.mitigation_view import mitigation_section
from components.wer_choice import wer_normaliser

DEFAULTS = dr.Options()
STEPS = {"waiting": "another session is computing this analysis, waiting for it",
         "reading the turns": "reading the turns", "overall": "bootstrapping the overall WER",
         "regions": "growing the region tree", "cohorts": "clustering voices and placing speakers",
         "groups": "bootstrapping every region and cohort", "stability": "refitting the regions on resamples",
         "map": "aggregating map cells", "done": "done"}


def column_config(frame: pd.DataFrame) -> dict:
    """Streamlit formats for a display frame of analysis/disparity/tables.py: percentages and help texts."""
    out = {}
    for c in frame.columns:
        if c in tables.PERCENT_COLUMNS:
            out[c] = st.column_config.NumberColumn(c, format="%.1f%%", help=tables.HELP.get(c))
        elif c == "Finding":
            out[c] = st.column_config.CheckboxColumn(c, help=tables.HELP[c])
        elif c in tables.HELP:
            out[c] = st.column_config.Column(c, help=tables.HELP[c])
    return out


def utterance_columns(frame: pd.DataFrame) -> dict:
    return {c: st.column_config.Column(tables.UTTERANCE_LABELS[c]) for c in frame.columns
            if c in tables.UTTERANCE_LABELS}


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
    worst = store.list_worst_utterances(conn, dataset, [str(s) for s in speakers], limit=50, normaliser=normaliser)
    st.caption(f"The {len(worst)} utterances of its {len(speakers):,} speakers with the most word errors. Click one "
               "for its reference/ASR alignment and dialogue.")
    shown = tables.utterances_display(worst[["speaker_id", "reference_text", "asr_text", "wer_sub", "wer_del",
                                             "wer_ins", "wer_ref_words", "wer", "dialogue_id", "turn_index"]])
    rows = st.dataframe(shown, hide_index=True, width="stretch", key=key, on_select="rerun",
                        selection_mode="single-row", column_config=utterance_columns(shown)).selection.rows
    if rows and rows[0] < len(worst):
        show_utterance(worst.iloc[rows[0]])


def show_utterance(row: pd.Series) -> None:
    dialogue_id, turn_index = str(row["dialogue_id"]), int(row["turn_index"])
    if isinstance(row.get("reference_text"), str):
        st.code(alignment_text(align(row["reference_text"], row.get("asr_text") or "")), language=None)
    with st.expander("The dialogue of this utterance", expanded=True):
        st.text(f"Dialogue {dialogue_id}, turn {turn_index}")  # ids come from logs: as text
        render_dialogue(store.get_dialogue_turns(conn, dialogue_id, dataset), highlight_turn=turn_index,
                        audio_root=page.settings.audio_root)


def group_section(name: str, label: str, key: str, stability: pd.DataFrame | str | None = None) -> None:
    """A grouping's table (with its regions' stability, or why there is none) and the drill-down of a row."""
    summary = report.summaries[name]
    # -1: speakers without a place (regions) or a voice embedding (automatic cohorts); never compared
    none = {dr.REGION: "(no location)", dr.AUTOMATIC: "(no voice)"}.get(name, "(none)")
    shown = tables.group_display(summary, label.capitalize(), none_label=none,
                                 stability=stability if isinstance(stability, pd.DataFrame) else None,
                                 no_stability=stability if isinstance(stability, str) else None)
    picked = st.dataframe(shown, hide_index=True, width="stretch", key=key, on_select="rerun",
                          selection_mode="single-row", column_config=column_config(shown)).selection.rows
    if picked and picked[0] < len(summary):
        group = summary["group"].iloc[picked[0]]
        st.markdown(f"**Worst utterances of {label} {group}**" if isinstance(group, (int, np.integer))
                    else f"**Worst utterances of the selected {label}**")
        worst_utterances(report.speakers_of(name, group), key=f"{key}_worst_{group}")


def origin(loaded: resources.DisparityReport) -> str:
    """Where the report on the page comes from, in one sentence."""
    took = f" in {loaded.seconds:,.0f} s" if loaded.seconds is not None else ""
    if loaded.source == "stored":
        by = "the analyse job" if loaded.computed_by == "job" else "this page"
        when = f" on {loaded.created_at:%Y-%m-%d %H:%M}" if loaded.created_at is not None else ""
        return (f"Drawn from stored report #{loaded.report_id}, computed by {by}{when}{took} for this data and "
                "these settings: nothing was recomputed.")
    text = (f"Computed now{took}: no stored report matched this data and these settings (the analyse job above "
            "stores one for the default settings).")
    if loaded.report_id is not None:
        return text + f" Stored as report #{loaded.report_id}: the next open draws from it."
    return text + f" Not stored ({loaded.not_stored})."


page = start("Disparity")
conn, db, dataset = page.conn, page.db, page.dataset
# The report is read and cached by app/resources.py under the dataset's default normaliser only.
normaliser = wer_normaliser(conn, dataset, key="dp_wer_normaliser",
                            fixed="The disparity report uses the dataset's default normaliser; the analyse job "
                                  "takes another as its option.")
wer_name = label(normaliser)
options = settings_form()
job_panel.family_jobs(resources.job_runner(db), registry.get("disparity"), dataset, page.reviewer,
                      read_only=page.settings.read_only)
bar = st.empty()


def progress(step: str, share: float) -> None:
    """Shown only while the analysis is computed (a stored or kept report returns at once)."""
    bar.progress(share, text=f"Analysing speakers: {STEPS.get(step, step)}…")


try:
    loaded = resources.disparity_analysis(conn, db, dataset, options, progress,
                                          store_result=not page.settings.read_only)
except ValueError as exc:
    st.info("No disparity analysis for this dataset:")
    st.text(str(exc))
    st.stop()
finally:
    bar.empty()
report = loaded.snapshot

ov = report.overall
if ov["speakers"] < options.k:
    st.info(f"This dataset has {ov['speakers']} speaker(s) with a reference transcript, fewer than the privacy "
            f"minimum k = {options.k}: nothing about them is shown.")
    st.stop()
st.caption(origin(loaded))
st.caption(f"{ov['speakers']:,} speakers ({ov['located_speakers']:,} with a location), {ov['utterances']:,} "
           f"utterances with a reference transcript, {ov['words']:,} reference words; every WER here is "
           f"{wer_name}: both transcripts normalised by {normaliser}. Intervals: "
           f"{options.confidence:.0%} percentile intervals of a bootstrap resampling speakers "
           f"({options.n_boot:,} replicates).")
c1, c2, c3, c4, c5 = st.columns(5)
c1.metric(f"Pooled {wer_name}", percent(ov["wer"]), help=co.POOLED_WER_DEFINITION)
c1.caption(f"95% interval {tables.interval(ov['wer_low'], ov['wer_high'])}")
c2.metric(f"Speaker-mean {wer_name} (secondary)", percent(ov["speaker_mean_wer"]),
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
regions = report.regions
if not report.n_regions:
    st.caption("No speaker has a location: there are no regions.")
elif regions.empty:
    st.caption(f"The data hold fewer than {privacy.k} located speakers: no region can be shown.")
else:
    st.caption(f"{len(regions)} region(s): recursive latitude/longitude splits, each chosen to maximise the pooled-WER "
               f"difference between its sides, with at least {options.tree_min_speakers} speakers and "
               f"{options.min_words:,} reference words per side, kept only when a permutation test finds the "
               f"difference significant at α = {options.alpha:g}. Numbered by WER (1 = worst served), on the map "
               "as in the tables. Hover a region for its interval; points are map cells of "
               f"{options.cell_deg:g}° with at least {privacy.k} speakers (area = speakers).")
    st.plotly_chart(regions_map(regions, report.points, min_speakers=privacy.k), config=PLOTLY_CONFIG, key="dp_map")
    single = "not computed (a single region)"
    group_section(dr.REGION, "region", "dp_regions",
                  regions[["region", "stability_pairs", "stability"]] if report.stability is not None else single)
    st.markdown("**Stability**")
    if report.stability is None:
        st.caption("Stability: not computed, there is a single region (no split was significant), so nothing to "
                   "keep together.")
    else:
        stab = regions.sort_values("region")
        known = stab["stability"].notna().to_numpy()
        fig = go.Figure(go.Bar(x=stab["region"].astype(str), y=stab["stability"].fillna(0.0),
                               marker_color=np.where(known, "rgb(90, 120, 170)", "rgb(200, 200, 200)").tolist(),
                               text=[f"{v:.0%}" if ok else "not computed" for v, ok in zip(stab["stability"], known,
                                                                                            strict=True)],
                               textposition="outside", customdata=stab["stability_pairs"],
                               hovertemplate="region %{x}: %{text} of %{customdata} pairs kept together"
                                             "<extra></extra>"))
        fig.add_hline(y=report.stability["mean"], line_dash="dash", annotation_position="top left",
                      annotation_text=f"all same-region pairs {report.stability['mean']:.0%}")
        fig.update_layout(height=280, margin=dict(t=20, b=30, l=40, r=10), yaxis=dict(range=[0, 1.1], tickformat=".0%"),
                          xaxis=dict(title="region (1 = worst served)", type="category"),
                          yaxis_title="pairs kept together")
        st.plotly_chart(fig, key="dp_stability")
        missing = stab.loc[~known, "region"].tolist()
        st.caption(f"Stability {report.stability['mean']:.0%} over all same-region pairs. The tree is refitted on "
                   f"{len(report.stability['per_refit'])} bootstrap resamples of the speakers; a bar is the share of "
                   "pairs of its region's speakers (drawn per region, so the smallest regions have one too) still "
                   "in one region (1 = fully reproducible)."
                   + (f" Not computed for region(s) {', '.join(map(str, missing))}: fewer than two speakers."
                      if missing else " Every region has one."))

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
        scan = ", ".join(f"k={k}: {s:.2f}" for k, s in sorted(fit["silhouette"].items()))
        st.caption(f"k = {fit['k']}" + (" (chosen by the silhouette scan)" if options.cohorts is None else " (set)")
                   + f"; mean silhouette {scan} (on {fit['sample_size']:,} speakers).")
    group_section(which, {dr.AUTOMATIC: "cohort", dr.STATE: "state", dr.CITY_SIZE: "city size"}[which],
                  f"dp_cohort_{which.replace(' ', '_')}")

st.markdown("**Comparison with the published work**")
compare = tables.comparison_display(report.comparison, ov["speakers"])
st.dataframe(compare, hide_index=True, width="stretch", key="dp_compare", column_config=column_config(compare))
for sentence in tables.thin_gaps(report.comparison, ov["speakers"]):
    st.warning(sentence, icon=":material/warning:")
with st.expander("Exact definitions"):
    defs = co.definitions(min_speakers=privacy.k)
    for name in ("pooled_wer", "wer_gap", "bottom_share_speakers", "n_cohorts", "thin_support"):
        st.markdown(f"- **{name.replace('_', ' ')}**: {defs[name]}")
    st.markdown(f"- **WER gap 95% CI**: the {options.confidence:.0%} percentile interval of the WER gap over the "
                "speaker-bootstrap replicates, the worst and best cohorts fixed as in the data.")
    st.markdown(f"- Merged groups ({dr.OTHER}) and speakers without a location are never the worst or best cohort. "
                "Published figures: METHODS.md section 5 (their data, not ours).")

# --- UMAP ----------------------------------------------------------------------------------------------------
st.subheader("Speaker voices (UMAP)")
voice_rows = report.voice_rows
try:
    layout = resources.disparity_layout(conn, db, dataset, report, store_result=not page.settings.read_only)
except ValueError as exc:
    layout = None
    st.caption(str(exc))
if layout is None:
    if not report.voices_key:
        st.caption("Fewer than 3 speakers have a voice embedding: there is no projection.")
else:
    if layout.source == "computing":
        st.session_state["dp_umap_waiting"] = True  # the fragment reruns the whole page once it is ready

    @st.fragment(run_every=2 if layout.source == "computing" else None)
    def voices() -> None:
        current = resources.disparity_layout(conn, db, dataset, report, store_result=not page.settings.read_only)
        if current.source == "computing":
            st.info("Computing the UMAP projection in the background"
                    + (" (the first fit in a server process compiles for about 30 s)"
                       if resources.umap_jobs().warming else "")
                    + "; it appears here when ready, and is stored for the next open. The rest of the page can be "
                      "used meanwhile.")
            return
        if st.session_state.pop("dp_umap_waiting", False):
            # A full rerun redefines this fragment without run_every; polling would otherwise go on forever.
            st.rerun(scope="app")
        if current.source == "failed":
            st.error("The UMAP projection failed:")
            st.text(str(current.error))
            return
        draw_voices(current.xy, current.source)

    def draw_voices(xy: np.ndarray, source: str) -> None:
        colour = st.radio("Colour by", ["automatic cohort", "speaker WER"], horizontal=True, key="dp_umap_colour")
        fig = go.Figure()
        members: list[np.ndarray] = []  # per trace: rows of the speakers in trace order
        speakers = report.speakers
        ids = np.array([html.escape(str(x)) for x in speakers["speaker_id"].to_numpy(object)[voice_rows]],
                       dtype=object)  # hover is HTML
        wer_all = report.wer
        if colour == "automatic cohort" and report.cohort_fit is not None:
            labels = report.labels[dr.AUTOMATIC][voice_rows]
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
            wer = wer_all[voice_rows]
            members.append(voice_rows)
            fig.add_trace(go.Scattergl(x=xy[:, 0], y=xy[:, 1], mode="markers", name="speakers",
                                       customdata=ids, text=[f"{w:.1%}" for w in wer],
                                       marker=dict(size=5, color=wer, colorscale="YlOrRd", cmin=0,
                                                   cmax=float(np.quantile(wer, 0.95)) or 1.0,
                                                   colorbar=dict(title=wer_name, tickformat=".0%")),
                                       hovertemplate=f"speaker %{{customdata}}<br>{wer_name} %{{text}}"
                                                     "<extra></extra>"))
        fig.update_layout(height=480, dragmode="lasso", margin=dict(t=10, b=10, l=10, r=10),
                          xaxis=dict(showticklabels=False, title=None), yaxis=dict(showticklabels=False, title=None))
        event = st.plotly_chart(fig, key="dp_umap", on_select="rerun", selection_mode=("box", "lasso"))
        points = event["selection"]["points"] if event else []
        chosen = sorted({int(members[p["curve_number"]][p["point_index"]]) for p in points
                         if 0 <= p.get("curve_number", -1) < len(members)
                         and 0 <= p.get("point_index", -1) < len(members[p["curve_number"]])})
        st.caption("Each point is a speaker's mean voice embedding projected with UMAP (near = similar voices; "
                   "distances between far-apart groups mean little). Select with the box or lasso to list speakers. "
                   + ("Layout read from the store." if source == "stored" else "Layout computed now and stored.")
                   + (f" {report.cohort_note}" if report.cohort_note else ""))
        if not chosen:
            return
        sel = pd.DataFrame({"speaker_id": speakers["speaker_id"].to_numpy(object)[chosen],
                            "utterances": speakers["utterances"].to_numpy()[chosen],
                            "words": speakers["words"].to_numpy()[chosen], "wer": wer_all[chosen]})
        if dr.AUTOMATIC in report.labels:
            shown_groups = set(report.summaries[dr.AUTOMATIC]["group"])
            sel["cohort"] = [str(c) if c in shown_groups and c >= 0 else ""
                             for c in report.labels[dr.AUTOMATIC][chosen]]
        e, w = speakers["errors"].to_numpy()[chosen].sum(), speakers["words"].to_numpy()[chosen].sum()
        st.markdown(f"**{len(chosen):,} speakers selected** · pooled {wer_name} {percent(e / w if w else np.nan)}")
        st.dataframe(sel, hide_index=True, width="stretch", key="dp_umap_speakers",
                     column_config={**utterance_columns(sel),
                                    "wer": st.column_config.NumberColumn(wer_name, format="percent")})
        utts = store.list_speaker_utterances(conn, dataset, [str(x) for x in sel["speaker_id"]], limit=500,
                                             normaliser=normaliser)
        st.caption(f"Their utterances (newest first, at most 500: {len(utts):,} shown). Click one for its dialogue.")
        shown_utts = tables.utterances_display(utts)
        rows = st.dataframe(shown_utts, hide_index=True, width="stretch", key="dp_umap_utterances", on_select="rerun",
                            selection_mode="single-row", column_config=utterance_columns(shown_utts)).selection.rows
        if rows and rows[0] < len(utts):
            show_utterance(utts.iloc[rows[0]])

    voices()

# --- mitigation ----------------------------------------------------------------------------------------------
mitigation_section(resources.job_runner(db), dataset, page.reviewer, read_only=page.settings.read_only,
                   summaries=report.summaries, report_id=loaded.report_id, open_utterance=show_utterance,
                   results={f: store_evaluations.get_latest_analysis(conn, f, dataset) for f in MITIGATIONS})

# --- export --------------------------------------------------------------------------------------------------
st.subheader("Export")
d1, d2 = st.columns(2)
# The files are made when a button is clicked (a callable), not on every run of the page: the CSV of 13k
# speakers takes about a second.
if report.n_regions:
    d1.download_button(f"Regions as GeoJSON ({int((report.summaries[dr.REGION]['group'] >= 0).sum())} regions)",
                       lambda: json.dumps(report.geojson, indent=1), file_name=f"regions-{dataset}.geojson",
                       mime="application/geo+json", key="dp_geojson")
d2.download_button(f"Cohort assignments as CSV ({len(report.speakers):,} speakers)",
                   lambda: csv_download(report.assignments()), file_name=f"cohorts-{dataset}.csv",
                   mime="text/csv", key="dp_csv")
st.caption("The GeoJSON holds the shown regions with their WER intervals; the CSV one row per speaker with each "
           "cohorting's label (blank where the group is hidden) and the speaker's counts. Step times of the "
           "computation: " + ", ".join(f"{k} {v:.1f} s" for k, v in report.seconds.items()) + ".")
