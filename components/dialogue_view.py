"""The turn-by-turn dialogue view: what every pipeline component produced, for each turn, with the request's audio,
its low-confidence words and its n-best hypotheses.

Log text is only ever passed to st.text, st.code and st.dataframe, which render it as text, or into HTML through
escape_html (every ASCII punctuation character as a character reference, so no tag, entity or Markdown survives):
never to st.markdown or a widget label, where markdown or HTML in a log could take effect.
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import streamlit as st

from analysis.nbest_diff import LOW_CONFIDENCE, DiffWord, nbest_view, word_confidences, word_diff
from analysis.wer import AlignedWord, align
from components.audio import render_audio

_OP_MARK = {"equal": " ", "sub": "S", "del": "D", "ins": "I"}
_HTML_SPECIAL = set(string.punctuation)


def escape_html(text: object) -> str:
    """text (str() of any value) as literal HTML text: every ASCII punctuation character as a numeric character
    reference (OWASP's rule for untrusted text), so no tag, attribute, entity or Markdown survives, and line
    breaks as spaces. Letters, digits and spaces are kept. Safe inside a quoted attribute value too."""
    return "".join(f"&#{ord(c)};" if c in _HTML_SPECIAL else " " if c in "\r\n\t" else c for c in str(text))


# Styles written on the elements themselves: st.html keeps style attributes (the review card has the same rules in
# its CSS, components/keys.py). The classes name the marks for tests and the card's CSS.
_LOW_STYLE = "text-decoration: underline dotted #c62828; text-decoration-thickness: 2px; text-underline-offset: 0.25em"
_DIFF_STYLE = {"changed": "background: #ffe08a; border-radius: 0.2rem; padding: 0 0.15rem",
               "added": "background: #c8f0c0; border-radius: 0.2rem; padding: 0 0.15rem",
               "missing": "color: #9a3b3b; text-decoration: line-through"}


def low_word_html(escaped: str, confidence: float) -> str:
    """An already escaped word of the 1-best, marked as low-confidence with its posterior as the tooltip."""
    return (f'<span class="tl-low" style="{_LOW_STYLE}" title="word confidence {confidence:.2f}">'
            f"{escaped}</span>")


def asr_html(text: str, confidences: Sequence[float] | None, *, threshold: float = LOW_CONFIDENCE) -> str:
    """The 1-best as escaped HTML with its words below ``threshold`` (asr_word_confidence) marked (tl-low)."""
    out, at = [], 0
    for w in word_confidences(text, confidences, threshold=threshold):
        if w.low:
            out.append(escape_html(text[at:w.start]))
            out.append(low_word_html(escape_html(text[w.start:w.end]), w.confidence))
            at = w.end
    out.append(escape_html(text[at:]))
    return "".join(out)


def turn_hypotheses(turn: dict) -> list[dict]:
    """The turn's n-best as stored hypotheses ({text, score, confidence}); from the texts alone for a turn read
    without them."""
    if turn.get("asr_hypotheses") is not None:
        return list(turn["asr_hypotheses"])
    return [{"text": t, "score": None, "confidence": None} for t in turn.get("asr_nbest") or []]


def _num(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def nbest_html(asr_text: str, hypotheses: Sequence[dict]) -> str:
    """The n-best as an escaped HTML table, in the recogniser's order: rank, the hypothesis with the words that
    differ from the 1-best (asr_text) marked (changed, added; a 1-best word it lacks struck through), its score,
    the gap to the best score and its confidence (columns only when some hypothesis has them). "" for none."""
    rows = nbest_view(asr_text, hypotheses)
    if not rows:
        return ""
    scores, confidences = any(h.score is not None for h in rows), any(h.confidence is not None for h in rows)
    head = ["#", "hypothesis"] + (["score", "gap to best"] if scores else []) + (["confidence"] if confidences else [])
    cell = 'style="padding: 0.15rem 0.6rem 0.15rem 0; text-align: left; vertical-align: top"'
    out = ['<table class="tl-nbest" style="border-collapse: collapse; font-size: 0.9rem"><tr>'
           + "".join(f"<th {cell}>{h}</th>" for h in head) + "</tr>"]
    for h in rows:
        same = ' <span class="tl-same" style="color: #777">(= 1-best)</span>' if h.same_as_best else ""
        out.append(f'<tr class="tl-hyp"><td {cell}>{h.rank}</td><td {cell}>{_diff_words_html(h.words)}{same}</td>'
                   + (f"<td {cell}>{_num(h.score, '.1f')}</td><td {cell}>{_num(h.gap, '.1f')}</td>" if scores else "")
                   + (f"<td {cell}>{_num(h.confidence, '.2f')}</td>" if confidences else "") + "</tr>")
    out.append("</table>")
    return "".join(out)


def _diff_words_html(words: Sequence[DiffWord]) -> str:
    """A hypothesis's words against the 1-best (analysis.nbest_diff) as escaped HTML: changed and added words marked,
    the 1-best's words it lacks struck through."""
    out = []
    for w in words:
        if w.kind == "same":
            out.append(escape_html(w.text))
        elif w.kind == "missing":
            out.append(f'<del class="tl-diff tl-missing" style="{_DIFF_STYLE["missing"]}" '
                       f'title="a word of the 1-best this hypothesis lacks">{escape_html(w.text)}</del>')
        else:
            out.append(f'<mark class="tl-diff tl-{w.kind}" style="{_DIFF_STYLE[w.kind]}">{escape_html(w.text)}</mark>')
    return " ".join(out) or "(empty)"


def rescored_html(logged: str, hypotheses: Sequence[dict], chosen: int) -> str:
    """A rescorer's view of an n-best list (a transcript candidate's value: each hypothesis {text, first_pass, lm,
    total}) as an escaped HTML table in the recogniser's order: the words that differ from the logged 1-best marked,
    the first-pass score, the LM's log-probability and the rescored total; the proposed hypothesis (chosen) and the
    one that says the logged words flagged. "" for none."""
    if not hypotheses:
        return ""
    cell = 'style="padding: 0.15rem 0.6rem 0.15rem 0; text-align: left; vertical-align: top"'
    head = ["#", "hypothesis", "first pass", "LM", "total", ""]
    out = ['<table class="tl-rescored" style="border-collapse: collapse; font-size: 0.9rem"><tr>'
           + "".join(f"<th {cell}>{h}</th>" for h in head) + "</tr>"]
    logged_words = " ".join(logged.lower().split())
    for i, h in enumerate(hypotheses):
        text = str(h.get("text") or "")
        flags = (["proposed"] if i == chosen else []) + (["logged"] if " ".join(text.lower().split()) == logged_words
                                                         else [])
        row_class = "tl-hyp tl-chosen" if i == chosen else "tl-hyp"
        weight = ' style="font-weight: 600"' if i == chosen else ""
        words = _diff_words_html(word_diff(logged, text))
        scores = "".join(f"<td {cell}>{_num(_finite(h.get(k)), '.2f')}</td>" for k in ("first_pass", "lm", "total"))
        out.append(f'<tr class="{row_class}"{weight}><td {cell}>{i + 1}</td><td {cell}>{words}</td>{scores}'
                   f"<td {cell}>{escape_html(', '.join(flags))}</td></tr>")
    out.append("</table>")
    return "".join(out)


def _finite(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


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


def render_turn(turn: dict, *, highlight: bool = False, ground_truth: bool = True,
                audio_root: str | Path | None = None) -> None:
    """One turn inside a bordered box; highlight marks the turn under review; ground_truth: show the turn's gold_*
    fields (in an expander), which the Review page leaves out unless its evaluation view is on. audio_root: where the
    turn's audio files are (app.settings); with it, the turn's audio plays here (None: no player). The 1-best's
    low-confidence words are marked, and the n-best is listed (open for the highlighted turn)."""
    with st.container(border=True):
        head = f"Turn {turn['turn_index']}  ·  {turn['timestamp']:%Y-%m-%d %H:%M:%S} UTC"
        st.markdown(("**▶ " if highlight else "**") + head + "**")  # built from numbers and dates only
        st.text(f"user {_fmt(turn.get('user_id'))} · speaker {_fmt(turn.get('speaker_id'))} · "
                f"device {_fmt(turn.get('device_type'))}")
        if audio_root is not None:
            render_audio(turn, root=audio_root)
        text = str(turn.get("asr_text") or "")
        if any(w.low for w in word_confidences(text, turn.get("asr_word_confidence"))):
            st.html(f'<div class="tl-asr">ASR, words below {LOW_CONFIDENCE:.1f} confidence underlined: '
                    f"{asr_html(text, turn.get('asr_word_confidence'))}</div>")
        hypotheses = turn_hypotheses(turn)
        if hypotheses:
            with st.expander(f"n-best: {len(hypotheses)} hypotheses", expanded=highlight):
                st.html(nbest_html(text, hypotheses))
                st.caption("Words that differ from the 1-best are highlighted (yellow: changed, green: added); a "
                           "1-best word a hypothesis lacks is struck through. Scores are the recogniser's log "
                           "scores: higher is better, comparable within a turn only.")
        st.dataframe(component_table(turn), hide_index=True, width="stretch")
        if turn.get("reference_text") is not None:
            st.code(alignment_text(align(turn["reference_text"], turn.get("asr_text") or "")), language=None)
        gold = {k: v for k, v in turn.items() if k.startswith("gold_") and v is not None} if ground_truth else {}
        if gold:
            with st.expander("Ground truth (evaluation only)"):
                st.dataframe(pd.DataFrame({"field": list(gold), "value": [_fmt(v) for v in gold.values()]}),
                             hide_index=True, width="stretch")


def render_dialogue(turns: list[dict], *, highlight_turn: int | None = None, ground_truth: bool = True,
                    audio_root: str | Path | None = None) -> None:
    for turn in turns:
        render_turn(turn, highlight=turn["turn_index"] == highlight_turn, ground_truth=ground_truth,
                    audio_root=audio_root)
