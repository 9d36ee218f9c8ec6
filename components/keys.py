"""Keyboard shortcuts Streamlit's buttons cannot take: 'c' is reserved by Streamlit, so a tiny script
clicks the button whose label starts with the given text. Keys typed into inputs are left alone."""

from __future__ import annotations

import json

import streamlit.components.v1 as components


def bind_key(key: str, button_label: str) -> None:
    """Pressing key (no modifiers, focus not in a text field) clicks the first button labelled button_label."""
    # The listener lives in this component's iframe; Streamlit may replace the iframe on a rerun, which
    # kills its functions. So each instance swaps in its own listener instead of keeping the first one.
    components.html(f"""<script>
    (function() {{
      const doc = window.parent.document, key = {json.dumps(key)}, label = {json.dumps(button_label)};
      doc.__turnlensKeys = doc.__turnlensKeys || {{}};
      if (doc.__turnlensKeys[key]) doc.removeEventListener("keydown", doc.__turnlensKeys[key], true);
      const handler = function(e) {{
        if (e.key !== key || e.ctrlKey || e.metaKey || e.altKey) return;
        const t = e.target;
        if (t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))) return;
        const button = Array.from(doc.querySelectorAll("button")).find(
          b => b.innerText.trim().startsWith(label) && !b.disabled);
        if (button) {{ e.preventDefault(); e.stopImmediatePropagation(); button.click(); }}
      }};
      doc.__turnlensKeys[key] = handler;
      doc.addEventListener("keydown", handler, true);
    }})();
    </script>""", height=0)
