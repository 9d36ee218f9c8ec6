"""Names from data or people inside our own Markdown (captions, alerts, labels), shown as the text they are.

Prefer st.text or st.code for a name. Where a line must mix our Markdown with a name, pass the name through
escape_markdown: Streamlit renders Markdown (bold, links, ``:red[...]`` colours, ``:material/...:`` icons,
``$...$`` maths) in captions, alerts, titles, metric labels and values, widget labels, radio options and
expander labels, and a dataset named ``**x** [link](http://e)`` would otherwise show a live link.
"""

from __future__ import annotations

import re
import string

# CommonMark lets any ASCII punctuation be backslash-escaped, and an escaped character is always literal text;
# escaping all of it also covers Streamlit's additions (":" of colour and icon directives, "$" of maths).
_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")


def escape_markdown(text: object) -> str:
    """text (str() of any value) as literal inline Markdown: every ASCII punctuation character backslash-escaped,
    line breaks as spaces (a name inside a line must not start a heading, list or block)."""
    inline = " ".join(str(text).splitlines())
    return _PUNCTUATION.sub(r"\\\1", inline)
