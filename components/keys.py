"""Keyboard shortcuts Streamlit's buttons cannot take: 'c' is reserved by Streamlit, so a tiny script
clicks the button whose label starts with the given text. Keys typed into inputs are left alone."""

from __future__ import annotations

import json

import streamlit.components.v1 as components


def bind_key(key: str, button_label: str) -> None:
    """Pressing key (no modifiers, focus not in a text field) clicks the first button labelled button_label."""
    components.html(f"""<script>
    (function() {{
      const doc = window.parent.document, key = {json.dumps(key)}, label = {json.dumps(button_label)};
      const flag = "__turnlens_key_" + key;
      if (doc[flag]) return;
      doc[flag] = true;
      doc.addEventListener("keydown", function(e) {{
        if (e.key !== key || e.ctrlKey || e.metaKey || e.altKey) return;
        const t = e.target;
        if (t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))) return;
        const button = Array.from(doc.querySelectorAll("button")).find(
          b => b.innerText.trim().startsWith(label) && !b.disabled);
        if (button) {{ e.preventDefault(); e.stopImmediatePropagation(); button.click(); }}
      }}, true);
    }})();
    </script>""", height=0)
