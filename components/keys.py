"""The review card in the browser, with its keys: the card on screen and the next ones, prefetched, drawn by one
component (st.components.v2) whose script (app/static/review_keys.js) takes the keys a, x, space, c and
backspace. A key acts on the card on screen at the moment it is pressed: the script shows the next card at once,
without waiting for the page to run again, and sends the event with that card's id and decision id; events not
yet acknowledged by the server are sent again with the next one, so none is lost when Streamlit merges reruns.
While the server catches up, the buttons and the context below the card are dimmed (the busy state).
The key p plays or pauses the audio of the card on screen (app/static/review_audio.js, part of the same script):
in the browser only, so it never waits for the server, and a card that leaves the screen stops playing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import streamlit as st

_STATIC = Path(__file__).resolve().parents[1] / "app" / "static"
_SCRIPT = _STATIC / "review_keys.js"
_AUDIO_SCRIPT = _STATIC / "review_audio.js"  # the p key; top-level code, run once when the module is loaded
KEY = "review_keys"  # the component's widget key: one card component per page
BUTTONS_KEY = "review_buttons"  # containers the busy state dims (st.container keys; see _CSS)
CONTEXT_KEY = "review_context"

_CSS = f"""
.tl-card {{ border: 1px solid rgba(49, 51, 63, 0.2); border-radius: 0.5rem; padding: 0.6rem 1rem 0.8rem; }}
.tl-head {{ display: flex; flex-wrap: wrap; gap: 0.35rem 1rem; font-size: 0.8rem; color: rgba(49, 51, 63, 0.65); }}
.tl-task {{ font-weight: 600; color: rgb(49, 51, 63); }}
.tl-utt {{ font-size: 1.3rem; line-height: 2.3rem; margin: 0.3rem 0; overflow-wrap: anywhere; }}
.tl-line {{ display: flex; gap: 0.6rem; align-items: baseline; }}
.tl-line .tl-utt {{ font-size: 1.05rem; line-height: 1.9rem; margin: 0; }}
.tl-turn, .tl-pair {{ font-size: 0.75rem; color: rgba(49, 51, 63, 0.6); }}
.tl-span {{ border-radius: 0.35rem; padding: 0.1rem 0.35rem; color: inherit; }}
.tl-span-label {{ font-size: 0.6rem; font-weight: 700; letter-spacing: 0.03em; text-transform: uppercase;
                 margin-left: 0.35rem; vertical-align: middle; opacity: 0.75; }}
.tl-c0 {{ background: #ffe8a3; }} .tl-c1 {{ background: #c7e9ff; }} .tl-c2 {{ background: #d4f5c9; }}
.tl-c3 {{ background: #ffd3e0; }} .tl-c4 {{ background: #e5d9ff; }} .tl-c5 {{ background: #ffdcc2; }}
.tl-missing, .tl-gold {{ font-size: 0.8rem; color: rgba(49, 51, 63, 0.7); overflow-wrap: anywhere; }}
.tl-gold {{ border-left: 3px solid #f0a000; padding-left: 0.5rem; margin-top: 0.3rem; }}
.tl-proposal {{ display: flex; flex-wrap: wrap; gap: 0.6rem; align-items: baseline; margin: 0.4rem 0; }}
.tl-key {{ font-size: 0.8rem; color: rgba(49, 51, 63, 0.65); }}
.tl-value {{ font-family: "Source Code Pro", monospace; font-size: 1.1rem; font-weight: 600;
             overflow-wrap: anywhere; }}
.tl-outputs {{ display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 0.1rem 0.8rem;
               margin: 0.3rem 0 0; font-size: 0.85rem; }}
.tl-outputs dt {{ color: rgba(49, 51, 63, 0.65); }}
.tl-outputs dd {{ margin: 0; white-space: normal; overflow-wrap: anywhere; }}
.tl-detail {{ color: rgba(49, 51, 63, 0.65); }}
.tl-bar {{ display: flex; justify-content: space-between; gap: 1rem; font-size: 0.8rem; min-height: 1.4rem;
           color: rgba(49, 51, 63, 0.65); }}
.tl-busy {{ visibility: hidden; font-weight: 600; color: #b26b00; }}
html[data-tl-busy] .tl-busy {{ visibility: visible; }}
.tl-wait {{ padding: 1.5rem 1rem; border: 1px dashed rgba(49, 51, 63, 0.3); border-radius: 0.5rem;
            color: rgba(49, 51, 63, 0.7); }}
html[data-tl-busy] .st-key-{BUTTONS_KEY}, html[data-tl-busy] .st-key-{CONTEXT_KEY} {{
  opacity: 0.35; pointer-events: none; transition: opacity 60ms; }}
.tl-low {{ text-decoration: underline dotted #c62828; text-decoration-thickness: 2px; text-underline-offset: 0.25em; }}
.tl-legend {{ font-size: 0.75rem; color: rgba(49, 51, 63, 0.6); margin-top: -0.2rem; }}
.tl-audio {{ display: flex; flex-wrap: wrap; align-items: center; gap: 0.3rem 0.8rem; margin: 0.4rem 0 0.1rem;
             font-size: 0.8rem; color: rgba(49, 51, 63, 0.7); }}
.tl-player {{ height: 2.2rem; max-width: 100%; }}
.tl-audio-label {{ font-weight: 600; color: #8a4b00; }}
.tl-audio-note {{ font-style: italic; }}
"""

# Registered once, at import (code, not data); each runtime gets it when first mounted (AppTest's included).
# isolate_styles=False: the card lives in the page's DOM, so the CSS above can dim the page's own containers.
_COMPONENT = st.components.v2.component("turnlens_review_card", css=_CSS,
                                        js=_SCRIPT.read_text(encoding="utf-8") + "\n"
                                        + _AUDIO_SCRIPT.read_text(encoding="utf-8"),
                                        isolate_styles=False)


def review_card(cards: list[dict], *, acked: dict, undo: str, read_only: bool,
                on_keys: Callable[[dict], None]) -> None:
    """Draw the card on screen and the prefetched ones after it, and take the review keys.

    cards: [{"id": candidate id, "token": decision id, "html": card HTML}], the card to show first; the HTML
    must be escaped already (components.review_card.card_html). acked: {"client", "seq", "run"}: the last key
    event the server handled, and a counter that changes every run (so the script hears of every run). undo: the
    decision the Undo key takes back ("" if none). on_keys(payload) is called, before the page's next run, with
    {"client": id of the browser page, "events": [{"seq", "verdict", "card", "token", "undo_of"}, ...]}: every
    event not yet acknowledged, oldest first."""
    data = {"cards": cards, "client": acked.get("client", ""), "acked": acked.get("seq", 0),
            "run": acked.get("run", 0), "undo": undo, "read_only": read_only}
    _COMPONENT(key=KEY, data=data, on_keys_change=lambda: on_keys(_payload()))


def _payload() -> dict:
    value = st.session_state[KEY].get("keys")
    return value if isinstance(value, dict) else {}
