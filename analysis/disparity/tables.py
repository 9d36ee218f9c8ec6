"""The Disparity page's tables as display frames: tidy headers as column names, every figure that can be
undefined written as text with "–" (a table cell never shows None or nan), numbers left as numbers where they
are always defined, so they still sort. Pure pandas: the page adds only Streamlit's column formats.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.disparity import cohorts as co

DASH = "–"

# Display columns that hold percentages (0 to 100 and over, so one format gives every row the same decimals);
# always defined where shown.
PERCENT_COLUMNS = ("Pooled WER", "WER low", "WER high", "Speaker-mean WER (secondary)")
HELP = {
    "Pooled WER": co.POOLED_WER_DEFINITION,
    "WER low": "Lower end of the 95% speaker-bootstrap interval of the pooled WER.",
    "WER high": "Upper end of the 95% speaker-bootstrap interval of the pooled WER.",
    "Finding": "The WER interval excludes the overall WER; a group whose interval spans the overall WER is not "
               "a finding.",
    "vs the rest [95% CI]": "Pooled WER of the group minus that of all other speakers, in percentage points, with "
                            "its speaker-bootstrap interval (positive: served worse than the rest).",
    "Speaker-mean WER (secondary)": "Secondary: the mean of the speakers' own WERs (a speaker with 3 words counts "
                                    "as much as one with 3,000).",
    "Share of errors": "The group's share of all word errors.",
    "Substitutions": "Share of the group's word errors that are substitutions.",
    "Deletions": "Share of the group's word errors that are deletions.",
    "Insertions": "Share of the group's word errors that are insertions.",
    "Stability": "Share of pairs of the region's speakers still in one region when the tree is refitted on "
                 "bootstrap resamples of the speakers (1 = fully reproducible).",
    "Support": co.THIN_SUPPORT_DEFINITION.format(min_speakers=co.THIN_MIN_SPEAKERS, min_share=co.THIN_MIN_SHARE),
}


def percent(x: object) -> str:
    """12.3%; "–" for an undefined figure (None, NaN), "∞" for an unbounded one."""
    if x is None:
        return DASH
    x = float(x)
    if math.isnan(x):
        return DASH
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    return f"{x:.1%}"


def interval(low: object, high: object) -> str:
    """[12.1%, 13.0%], or "–" when either end is undefined."""
    if percent(low) == DASH or percent(high) == DASH:
        return DASH
    return f"[{percent(low)}, {percent(high)}]"


def points(x: object, low: object, high: object) -> str:
    """A difference of rates in percentage points with its interval: +5.2 pp [+3.1, +7.4]; "–" if undefined."""
    if x is None or not np.isfinite(float(x)):
        return DASH
    inner = ("" if low is None or high is None or not (np.isfinite(float(low)) and np.isfinite(float(high)))
             else f" [{100 * float(low):+.1f}, {100 * float(high):+.1f}]")
    return f"{100 * float(x):+.1f} pp{inner}"


def group_label(group: object, none_label: str) -> str:
    """A group's label as text: -1 (speakers without a place or a voice) reads ``none_label``."""
    if isinstance(group, (int, np.integer)) and group < 0:
        return none_label
    return str(group)


def stability_text(share: object, pairs: object) -> str:
    """A region's stability, or why there is none, in words."""
    if share is None or not np.isfinite(float(share)):
        return "not computed (fewer than two speakers)" if pairs == 0 else "not computed"
    return f"{float(share):.0%} of {int(pairs):,} pairs"


def group_display(summary: pd.DataFrame, label: str, *, none_label: str = "(none)",
                  stability: pd.DataFrame | None = None, no_stability: str | None = None) -> pd.DataFrame:
    """One row per shown group (``Report.summaries`` rows, in their order), tidy headers; the first column is
    named ``label`` (e.g. "Region"). ``stability`` (region, stability_pairs, stability) adds a Stability column;
    a group without a row in it (speakers without a place) reads "–". Without it, ``no_stability`` (why there
    is none) fills that column for every group but those speakers."""
    out = pd.DataFrame({label: [group_label(g, none_label) for g in summary["group"]]})
    out["Pooled WER"] = 100 * summary["wer"].to_numpy(float)
    out["WER low"] = 100 * summary["wer_low"].to_numpy(float)
    out["WER high"] = 100 * summary["wer_high"].to_numpy(float)
    out["Finding"] = summary["excludes_overall"].to_numpy(bool)
    out["vs the rest [95% CI]"] = [points(*r) for r in summary[["diff_rest", "diff_low", "diff_high"]]
                                   .itertuples(index=False)]
    if stability is not None:
        by = stability.set_index("region")
        out["Stability"] = [stability_text(by.at[g, "stability"], by.at[g, "stability_pairs"]) if g in by.index
                            else DASH for g in summary["group"]]
    elif no_stability is not None:
        out["Stability"] = [no_stability if group_label(g, "") else DASH for g in summary["group"]]
    out["Speakers"] = summary["speakers"].to_numpy(np.int64)
    out["Utterances"] = summary["utterances"].to_numpy(np.int64)
    out["Reference words"] = summary["words"].to_numpy(np.int64)
    out["Errors"] = summary["errors"].to_numpy(np.int64)
    out["Share of errors"] = [percent(x) for x in summary["error_share"]]
    out["Speaker-mean WER (secondary)"] = 100 * summary["speaker_mean_wer"].to_numpy(float)
    for column, name in (("sub_share", "Substitutions"), ("del_share", "Deletions"), ("ins_share", "Insertions")):
        out[name] = [percent(x) for x in summary[column]]
    return out


def support_text(row: pd.Series, total_speakers: int) -> str:
    """The support of one comparison row's gap in words, flagged when thin."""
    worst, best = int(row["worst_speakers"]), int(row["best_speakers"])
    if not worst or not best:
        return DASH
    smaller, which = (worst, "worst") if worst <= best else (best, "best")
    share = smaller / total_speakers if total_speakers else math.nan
    # under 1%, two decimals: 0.17% is not 0.2%, and the threshold is 1%
    shown = f"{share:.2%}" if np.isfinite(share) and share < 0.01 else percent(share)
    text = f"{which} cohort {smaller:,} speakers ({shown})"
    return f"⚠ thin: {text}" if bool(row["thin_support"]) else text


def comparison_display(comparison: pd.DataFrame, total_speakers: int) -> pd.DataFrame:
    """Our comparison rows (``Snapshot.comparison``), then the published figures (METHODS.md section 5), all as
    text: a published row has no interval, support or cohorts of ours, and says so with "–"."""
    rows = []
    for _, r in comparison.iterrows():
        rows.append({"Cohorting": str(r["cohorting"]), "Cohorts compared": f"{int(r['n_cohorts']):,}",
                     "WER gap": percent(r["wer_gap"]), "WER gap 95% CI": interval(r["wer_gap_low"], r["wer_gap_high"]),
                     "Support": support_text(r, total_speakers),
                     "Bottom-cohort share (speakers)": percent(r["bottom_share_speakers"]),
                     "Bottom-cohort share (utterances)": percent(r["bottom_share_utterances"]),
                     "Worst cohort": str(r["worst_cohort"]) or DASH, "Worst WER": percent(r["worst_wer"]),
                     "Best cohort": str(r["best_cohort"]) or DASH, "Best WER": percent(r["best_wer"])})
    for name, (gap, share) in co.PUBLISHED_FIGURES.items():
        rows.append({"Cohorting": f"published: {name}", "Cohorts compared": DASH, "WER gap": percent(gap),
                     "WER gap 95% CI": DASH, "Support": "their data, not ours",
                     "Bottom-cohort share (speakers)": percent(share), "Bottom-cohort share (utterances)": DASH,
                     "Worst cohort": DASH, "Worst WER": DASH, "Best cohort": DASH, "Best WER": DASH})
    return pd.DataFrame(rows)


def thin_gaps(comparison: pd.DataFrame, total_speakers: int) -> list[str]:
    """One sentence per gap on thin support, to print beside the published figures."""
    out = []
    for _, r in comparison.iterrows():
        if bool(r["thin_support"]):
            out.append(f"The {r['cohorting']} gap of {percent(r['wer_gap'])} rests on thin support: "
                       f"{support_text(r, total_speakers).removeprefix('⚠ thin: ')}, under "
                       f"{co.THIN_MIN_SPEAKERS} speakers or {co.THIN_MIN_SHARE:.0%} of all {total_speakers:,}. "
                       "It is not comparable with the published figures.")
    return out


UTTERANCE_LABELS = {"speaker_id": "Speaker", "reference_text": "Reference", "asr_text": "ASR",
                    "wer_sub": "Substitutions", "wer_del": "Deletions", "wer_ins": "Insertions",
                    "wer_ref_words": "Reference words", "wer": "WER", "dialogue_id": "Dialogue",
                    "turn_index": "Turn", "timestamp": "Time", "utterances": "Utterances", "words": "Reference words",
                    "cohort": "Automatic cohort"}


def utterances_display(frame: pd.DataFrame) -> pd.DataFrame:
    """Utterance rows as the page lists them: no reference reads "(no reference)" and an undefined WER "–"
    (as text); the stored column names are kept (the page labels them with ``UTTERANCE_LABELS``)."""
    out = frame.copy()
    if "reference_text" in out.columns:
        out["reference_text"] = [x if isinstance(x, str) else "(no reference)" for x in out["reference_text"]]
    if "wer" in out.columns:
        out["wer"] = [percent(x) for x in out["wer"]]
    return out


def missing_values(frame: pd.DataFrame) -> list[str]:
    """Columns of a display frame holding a value a table would show as None (None, NaN, NaT, pd.NA)."""
    return [str(c) for c in frame.columns if frame[c].isna().any()]

