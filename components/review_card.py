"""The review card: the utterance with its slot spans and low-confidence words, the target turn's audio player, the
proposal and the target turn's component outputs (built as HTML for the card component, components/keys.py); the
other sources' proposals, the other reviewers' decisions and the correction editor. Values are JSON text. Text from
logs, models and people is shown as text: in Streamlit's text elements, or in the card's HTML with every ASCII
punctuation character escaped (escape_html)."""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import pandas as pd
import streamlit as st

from analysis.audio_clips import AudioClip
from analysis.candidates import canonical_json
from analysis.coordination.items import corrected_value as corrected_items
from analysis.log_format import FAILURE_POINTS
from analysis.nbest_diff import LOW_CONFIDENCE, word_confidences
from analysis.rescoring.transcripts import TranscriptError
from analysis.rescoring.transcripts import corrected_value as corrected_transcript
from components import audio
from components.dialogue_view import component_table, escape_html, low_word_html, rescored_html
from components.markdown import escape_markdown

__all__ = ["escape_html"]  # defined with the dialogue view (one escaping for every HTML from data), used here

BOOL_TASKS = ("goal_start", "goal_success")
CHOICE_TASKS = ("intent", "skill", "failure_point", "domain")


def link_warnings(warnings: list[str]) -> None:
    """Queue settings a link carried that could not be used. They quote the link, so: as text."""
    if warnings:
        st.warning("Some queue settings in the link were ignored:")
        st.text("\n".join(warnings))


def show_value(value_json: str) -> str:
    """A proposed value for display: strings bare, everything else as compact JSON."""
    value = json.loads(value_json)
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("hypotheses"), list) and "text" in value:  # a transcript
        return str(value["text"])
    if isinstance(value, dict) and isinstance(value.get("items"), list):  # a coordination split (task items)
        return " | ".join(str(i) for i in value["items"]) + (f" ({value['slot_type']})" if value.get("slot_type")
                                                                  else "")
    if isinstance(value, list) and all(isinstance(v, dict) and {"type", "value"} <= set(v) for v in value):
        return "; ".join(f"{v['type']} = {v['value']}" for v in value) or "(no slots)"
    return json.dumps(value, ensure_ascii=False)


def render_proposal(card: dict) -> None:
    """The proposal as stored (to copy), and the run that made it; the card above shows it too."""
    st.caption(f"Proposed {escape_markdown(card['task'])}, as stored")
    st.code(show_value(card["value"]), language=None)
    st.text(f"proposed by {card['model_name']} {card['model_version']}")  # model names come from files


def render_distribution(vector: dict[str, float] | None, *, top: int = 5) -> None:
    """The model's probability for its other choices (most likely first): where a correction most often lies."""
    if not vector or len(vector) < 2:
        return
    st.caption("The model's probabilities" + (f" (top {top} of {len(vector)})" if len(vector) > top else ""))
    shown = list(vector.items())[:top]
    st.dataframe(pd.DataFrame({"label": [k for k, _ in shown], "probability": [v for _, v in shown]}),
                 hide_index=True, width="stretch", column_config={"probability": st.column_config.ProgressColumn(
                     "probability", format="%.3f", min_value=0.0, max_value=1.0)})


def render_sources(proposals: pd.DataFrame, candidate_id: int) -> None:
    if len(proposals) < 2:
        return
    st.caption("All sources for this target")
    table = proposals.assign(value=proposals["value"].map(show_value),
                             shown=proposals["candidate_id"] == candidate_id)
    st.dataframe(table[["shown", "model", "version", "value", "score"]], hide_index=True, width="stretch")


def render_decisions(decisions: pd.DataFrame) -> None:
    if decisions.empty:
        return
    st.caption("Reviewers' current decisions")
    table = decisions.assign(corrected_value=decisions["corrected_value"].map(
        lambda v: show_value(v) if isinstance(v, str) else ""))
    st.dataframe(table, hide_index=True, width="stretch")


def correction_editor(card: dict, known_values: list[str], key: str, *, text: str = "") -> str | None:
    """Widgets for a corrected value of the card's task; returns its canonical JSON, or None if invalid.
    text: the target turn's recognised text (a corrected item list finds its items' spans in it)."""
    task, proposed = card["task"], json.loads(card["value"])
    if task == "items" and isinstance(proposed, dict):
        edited = st.text_area("Correct items, one per line", value="\n".join(map(str, proposed.get("items") or [])),
                              key=key, help="Each line one list item, as said (e.g. 'peanut butter' on one line).")
        fixed = [line for line in edited.splitlines() if line.strip()]
        if not fixed:
            st.error("A split needs at least one item (reject the card if the turn holds no list).")
            return None
        return canonical_json(corrected_items(text, fixed, proposed.get("slot_type"), proposed.get("logged") or []))
    if task == "transcript" and isinstance(proposed, dict):
        typed = st.text_input("Correct transcript", value=str(proposed.get("text") or ""), key=key,
                              help="The words said, as heard in the audio; lower case like the recogniser's.")
        try:
            return canonical_json(corrected_transcript(proposed, typed))
        except TranscriptError as e:
            st.error(str(e))
            return None
    if task in BOOL_TASKS:
        picked = st.radio("Correct value", [True, False], index=0 if proposed is False else 1, key=key,
                          horizontal=True)
        return canonical_json(picked)
    if task == "slots":
        rows = proposed if isinstance(proposed, list) else []
        edited = st.data_editor(pd.DataFrame(rows, columns=["type", "value"]), num_rows="dynamic", key=key,
                                hide_index=True, width="stretch")
        slots = [{"type": str(r["type"]).strip(), "value": str(r["value"]).strip()}
                 for r in edited.to_dict("records")
                 if isinstance(r["type"], str) and isinstance(r["value"], str) and r["type"].strip()]
        return canonical_json(slots)
    if task == "rewrite" and isinstance(proposed, dict) and "source" in proposed:
        # the source is what was mined; only the rewrite text is the reviewer's to change
        st.text(f"Source: {proposed['source']}")
        text = st.text_input("Correct rewrite", value=str(proposed.get("rewrite", "")), key=key)
        cleaned = " ".join(text.split())
        if not cleaned:
            st.error("The rewrite cannot be empty.")
            return None
        return canonical_json({"source": proposed["source"], "rewrite": cleaned})
    if task in CHOICE_TASKS or isinstance(proposed, str):
        options = sorted({json.loads(v) for v in known_values if isinstance(json.loads(v), str)}
                         | (set(FAILURE_POINTS) if task == "failure_point" else set()))
        options = [o for o in options if o != proposed]
        picked = st.selectbox("Correct value", options, index=None, key=key, accept_new_options=True,
                              placeholder="choose or type a value")
        return canonical_json(picked) if picked else None
    text = st.text_area("Correct value (JSON)", value=json.dumps(proposed), key=key)
    try:
        return canonical_json(json.loads(text))
    except json.JSONDecodeError:
        st.error("Not valid JSON.")
        return None


# ------------------------------------------------------------------------------------------- the card's HTML

SPAN_COLOURS = 6  # slot types are coloured by a stable hash into this many classes (tl-c0 .. tl-c5)


def slot_spans(text: str, slots: list[dict]) -> tuple[list[tuple[int, int, str]], list[dict]]:
    """Where each slot's value lies in text: ([(start, end, slot type), ...] in text order, slots not found).

    Slots come as {type, value} without offsets, so a value is looked for in the text, ignoring case: the first
    whole-word occurrence not already taken by an earlier slot, else the first such occurrence inside a word.
    A value the text does not hold (a normalised date, a value the recogniser misheard) is returned as missing."""
    folded = text.lower() if len(text.lower()) == len(text) else text  # offsets must stay those of text
    taken: list[tuple[int, int, str]] = []
    missing: list[dict] = []
    for slot in slots:
        value = str(slot.get("value") or "").strip()
        if not value:
            missing.append(slot)
            continue
        found = None
        for match in re.finditer(re.escape(value.lower() if folded is not text else value), folded):
            start, end = match.span()
            if any(start < e and s < end for s, e, _ in taken):
                continue
            whole = (start == 0 or not folded[start - 1].isalnum()) and (end == len(folded) or
                                                                         not folded[end].isalnum())
            if whole:
                found = (start, end)
                break
            found = found or (start, end)
        if found is None:
            missing.append(slot)
        else:
            taken.append((*found, str(slot.get("type") or "")))
    return sorted(taken), missing


def _colour(slot_type: str) -> int:
    return zlib.crc32(slot_type.encode("utf-8")) % SPAN_COLOURS  # stable across runs and processes


def utterance_html(text: str, slots: list[dict], confidences: Sequence[float] | None = None) -> str:
    """The utterance with its slot values marked as spans and labelled with their type (as Prodigy shows spans),
    and its words whose posterior (confidences: asr_word_confidence, one per word) is below LOW_CONFIDENCE marked
    (tl-low, inside a span where they are in one); slots whose value is not in the text are listed after it."""
    spans, missing = slot_spans(text, slots)
    low = [w for w in word_confidences(text, confidences) if w.low]
    # Cut the text wherever a span or a low word starts or ends: each piece lies wholly inside or outside of each,
    # so the marks nest properly even where a slot value starts inside a word.
    cuts = sorted({0, len(text)} | {i for s, e, _ in spans for i in (s, e)}
                  | {i for w in low for i in (w.start, w.end)})
    out = []
    for a, b in pairwise(cuts):
        span = next((sp for sp in spans if sp[0] <= a and b <= sp[1]), None)
        word = next((w for w in low if w.start <= a and b <= w.end), None)
        if span is not None and a == span[0]:
            out.append(f'<mark class="tl-span tl-c{_colour(span[2])}">')
        out.append(escape_html(text[a:b]) if word is None else low_word_html(escape_html(text[a:b]), word.confidence))
        if span is not None and b == span[1]:
            out.append(f'<span class="tl-span-label">{escape_html(span[2])}</span></mark>')
    html = f'<div class="tl-utt">{"".join(out)}</div>'
    if low:
        html += (f'<div class="tl-legend">underlined: the recogniser&#39;s word confidence is below '
                 f"{LOW_CONFIDENCE:.1f}</div>")
    if missing:
        listed = "; ".join(f"{escape_html(s.get('type'))} = {escape_html(s.get('value'))}" for s in missing)
        html += f'<div class="tl-missing">not in the text: {listed}</div>'
    return html


def item_slots(value: object) -> list[dict]:
    """A coordination split's items as spans to highlight, labelled item 1, item 2, ... in the order said."""
    items = value.get("items") if isinstance(value, dict) else None
    return [{"type": f"item {i}", "value": str(v)} for i, v in enumerate(items or [], start=1)]


def _slots(value: object) -> list[dict]:
    """A slot list ({type, value} dicts), or [] for anything else."""
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict) and {"type", "value"} <= set(v)]
    return []


def _outputs_html(turn: dict) -> str:
    """The turn's component outputs, one row each, wrapping (a dataframe cell would cut them off)."""
    rows = []
    for r in component_table(turn).itertuples(index=False):
        # a status only when it says something the output does not ("ok" after "resolved" says nothing)
        detail = " · ".join(escape_html(x) for x in (r.status, r.details) if x and x not in ("—", "ok"))
        rows.append(f'<dt>{escape_html(r.component)}</dt><dd><span class="tl-out">{escape_html(r.output)}</span>'
                    + (f' <span class="tl-detail">{detail}</span>' if detail else "") + "</dd>")
    return f'<dl class="tl-outputs">{"".join(rows)}</dl>'


def _gold_html(turn: dict) -> str:
    gold = {k: v for k, v in turn.items() if k.startswith("gold_") and v is not None}
    if not gold:
        return ""
    shown = "; ".join(f"{escape_html(k)} = {escape_html(show_value(json.dumps(v, default=str)))}"
                      for k, v in gold.items())
    return f'<div class="tl-gold">ground truth (evaluation view): {shown}</div>'


def target_turn(card: dict, turns: list[dict]) -> dict | None:
    """The turn a card is about (None for a dialogue target, or a turn not among ``turns``)."""
    if card["turn_index"] is None:
        return None
    return next((t for t in turns if t["turn_index"] == card["turn_index"]), None)


def audio_html(clip: AudioClip | None, src: str | None) -> str:
    """The target turn's player for the card: an <audio> element at ``src`` (the app's media URL or an http(s)
    URL; the `p` key plays and pauses the one of the card on screen, app/static/review_audio.js), after the label
    saying what the audio is (synthetic voice, recorded); or the notice saying why nothing plays. "" for a turn
    without audio. The src is escaped like any text (character references are decoded in attribute values)."""
    if clip is None:
        return ""
    label = f'<span class="tl-audio-label">{escape_html(clip.label)}</span>' if clip.label else ""
    if src is None:
        return f'<div class="tl-audio">{label}<span class="tl-audio-note">{escape_html(clip.notice)}</span></div>'
    return (f'<div class="tl-audio">{label}<audio class="tl-player" data-tl-audio controls preload="metadata" '
            f'src="{escape_html(src)}"></audio><span class="tl-audio-key">p play &#47; pause</span></div>')


def card_html(card: dict, turns: list[dict], other_turns: list[dict] | None = None, *,
              ground_truth: bool = False, audio: str = "") -> str:
    """The card as HTML: the run and score, the target turn's audio, the full utterance with slot spans highlighted
    and low-confidence words marked, the proposal, and the target turn's component outputs. turns: the card's
    dialogue (store.get_dialogue_turns); other_turns: the dialogue of a pair target's second utterance.
    ground_truth: add the target turn's gold_* fields (the evaluation view; a reviewer decides blind otherwise).
    audio: the target turn's player (audio_html), already escaped. Every string from data is escaped
    (escape_html)."""
    value = json.loads(card["value"])
    target = target_turn(card, turns)
    head = (f'<div class="tl-head"><span class="tl-task">{escape_html(card["task"])}</span>'
            f'<span>candidate #{int(card["candidate_id"])}</span><span>score {float(card["score"]):.2f}</span>'
            f'<span>{escape_html(card["model_name"])} {escape_html(card["model_version"])}</span>'
            f'<span>dialogue {escape_html(card["dialogue_id"])}'
            + (f' · turn {int(card["turn_index"])}' if card["turn_index"] is not None else " (whole dialogue)")
            + "</span></div>")
    body = []
    if target is not None:
        # a slot task's own proposal is what is under review: its spans, not the logged NLU's
        slots = (_slots(value) if card["task"] == "slots" else item_slots(value) if card["task"] == "items"
                 else _slots(target.get("nlu_slots")))
        body.append(audio + utterance_html(str(target.get("asr_text") or ""), slots,
                                           target.get("asr_word_confidence")))
        if card["task"] == "transcript" and isinstance(value, dict):  # the n-best as the rescorer saw it
            body.append(rescored_html(str(value.get("logged") or target.get("asr_text") or ""),
                                      value.get("hypotheses") or [], int(value.get("chosen", -1))))
    else:  # a dialogue target: every request of the dialogue, in order
        body.extend(f'<div class="tl-line"><span class="tl-turn">{int(t["turn_index"])}</span>'
                    + utterance_html(str(t.get("asr_text") or ""), _slots(t.get("nlu_slots")),
                                     t.get("asr_word_confidence")) + "</div>"
                    for t in turns)
    if card.get("other_dialogue_id") is not None:  # a pair target (e.g. a rewrite): its second utterance
        other = {t["turn_index"]: t for t in other_turns or []}.get(card.get("other_turn_index"))
        if other is not None:
            body.append('<div class="tl-pair">then</div>'
                        + utterance_html(str(other.get("asr_text") or ""), _slots(other.get("nlu_slots")),
                                         other.get("asr_word_confidence")))
    proposal = (f'<div class="tl-proposal"><span class="tl-key">proposed {escape_html(card["task"])}</span>'
                f'<span class="tl-value">{escape_html(show_value(card["value"]))}</span></div>')
    extra = (_outputs_html(target) + (_gold_html(target) if ground_truth else "")) if target is not None else ""
    return (f'<div class="tl-card" data-card-id="{int(card["candidate_id"])}">{head}{"".join(body)}{proposal}'
            f"{extra}</div>")


def card_entry(card: dict, turns: list[dict], other_turns: list[dict] | None, *, ground_truth: bool,
               audio_root: str | Path | None) -> dict:
    """One card for the card component (components/keys.review_card): its ids and its HTML, with the target turn's
    audio served to this session (components.audio) from under audio_root."""
    clip = audio.turn_clip(target, audio_root) if (target := target_turn(card, turns)) is not None else None
    src = audio.clip_src(clip, f"card-{int(card['candidate_id'])}") if clip is not None else None
    return {"id": card["candidate_id"], "token": card["decision_id"],
            "html": card_html(card, turns, other_turns, ground_truth=ground_truth, audio=audio_html(clip, src))}
