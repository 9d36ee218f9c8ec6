"""The turn-by-turn dialogue view: what every pipeline component produced, for each turn.

Log text is only ever passed to st.text, st.code and st.dataframe, which render it as text: never to
st.markdown or a widget label, where markdown or HTML in a log could take effect.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from analysis.wer import AlignedWord, align

_OP_MARK = {"equal": " ", "sub": "S", "del": "D", "ins": "I"}


def alignment_text(aligned: list[AlignedWord]) -> str:
    """Three aligned lines, as sclite prints them: REF, HYP, and S/D/I under each error.

    Deleted words show as *** in HYP, inserted ones as *** in REF.
    """
    ref, hyp, ops = ["REF:"], ["HYP:"], ["    "]
    for a in aligned:
        r, h = a.ref or "*" * 3, a.hyp or "*" * 3
        width = max(len(r), len(h))
        ref.append(r.ljust(width))
        hyp.append(h.ljust(width))
        ops.append(_OP_MARK[a.op].ljust(width))
    return "\n".join(" ".join(line).rstrip() for line in (ref, hyp, ops))


def _fmt(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, list):
        return ", ".join(f"{s['type']}={s['value']}" if isinstance(s, dict) else str(s) for s in value) or "—"
    return str(value)


def _status(ok: bool | None) -> str:
    return "—" if ok is None else ("ok" if ok else "FAILED")


def component_table(turn: dict) -> pd.DataFrame:
    """One row per pipeline component: what it produced and whether it visibly failed."""
    wer = turn.get("wer_ref_words")
    errors = None if wer is None or wer < 0 else turn["wer_sub"] + turn["wer_del"] + turn["wer_ins"]
    asr_detail = f"confidence {_fmt(turn.get('asr_confidence'))}"
    if errors is not None:
        asr_detail += f"; {errors} word errors / {wer} reference words"
    rows = [
        # Word errors are not a failure by themselves: NLU may still have understood the request.
        ("ASR", turn.get("asr_text"), asr_detail,
         "—" if errors is None else "exact" if errors == 0 else f"{errors} word error(s)"),
        ("NLU", f"{_fmt(turn.get('nlu_domain'))} / {_fmt(turn.get('nlu_intent'))}",
         f"confidence {_fmt(turn.get('nlu_confidence'))}; slots: {_fmt(turn.get('nlu_slots'))}; "
         f"alt intent: {_fmt(turn.get('nlu_alt_intent'))}", "—"),
        ("Entity resolution", _fmt(turn.get("er_status")), "",
         _status(None if turn.get("er_status") in (None, "not_applicable") else turn["er_status"] == "resolved")),
        ("Response", _fmt(turn.get("response_text")), f"skill {_fmt(turn.get('response_skill'))}; "
         f"status {_fmt(turn.get('response_status'))}",
         _status(None if turn.get("response_status") is None else turn["response_status"] == "success")),
        ("TTS", _fmt(turn.get("tts_status")), "",
         _status(None if turn.get("tts_status") is None else turn["tts_status"] == "ok")),
        # A barge-in is the user talking over the response: a signal worth a look, not a component failure.
        ("User", "barge-in" if turn.get("barge_in") else "no barge-in",
         f"feedback: {_fmt(turn.get('user_feedback'))}", "interrupted" if turn.get("barge_in") else "—"),
    ]
    return pd.DataFrame(rows, columns=["component", "output", "details", "status"])[
        ["component", "output", "status", "details"]]


def render_turn(turn: dict, *, highlight: bool = False, ground_truth: bool = True) -> None:
    """One turn inside a bordered box; highlight marks the turn under review; ground_truth: show the turn's gold_*
    fields (in an expander), which the Review page leaves out unless its evaluation view is on."""
    with st.container(border=True):
        head = f"Turn {turn['turn_index']}  ·  {turn['timestamp']:%Y-%m-%d %H:%M:%S} UTC"
        st.markdown(("**▶ " if highlight else "**") + head + "**")  # built from numbers and dates only
        st.text(f"user {_fmt(turn.get('user_id'))} · speaker {_fmt(turn.get('speaker_id'))} · "
                f"device {_fmt(turn.get('device_type'))}")
        st.dataframe(component_table(turn), hide_index=True, width="stretch")
        if turn.get("reference_text") is not None:
            st.code(alignment_text(align(turn["reference_text"], turn.get("asr_text") or "")), language=None)
        gold = {k: v for k, v in turn.items() if k.startswith("gold_") and v is not None} if ground_truth else {}
        if gold:
            with st.expander("Ground truth (evaluation only)"):
                st.dataframe(pd.DataFrame({"field": list(gold), "value": [_fmt(v) for v in gold.values()]}),
                             hide_index=True, width="stretch")


def render_dialogue(turns: list[dict], *, highlight_turn: int | None = None, ground_truth: bool = True) -> None:
    for turn in turns:
        render_turn(turn, highlight=turn["turn_index"] == highlight_turn, ground_truth=ground_truth)
