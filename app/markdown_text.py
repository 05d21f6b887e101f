"""User-controlled text (model names, paths, tokens, labels, error messages) shown through Streamlit's Markdown.

st.error, st.info, st.caption and st.markdown render Markdown, so a model name `[Log in again](http://…)` would be a
live link and a token `![t](http://…)` would make the browser fetch an image. Every character Markdown (and GFM's
autolinks, tables and strikethrough) gives a meaning is backslash-escaped, so the text shows as typed.
"""
from __future__ import annotations

import re

# CommonMark's escapable ASCII punctuation, which covers links, images, emphasis, code, HTML, tables, headings
# and lists; ':' and '.' too, so GFM does not autolink "http://…" or "www.…" written in the text
_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~:$&\"'=^])")


def escape_markdown(text: object) -> str:
    """`text` as plain characters in Markdown: each special character backslash-escaped, newlines kept."""
    return _SPECIAL.sub(r"\\\1", str(text))
