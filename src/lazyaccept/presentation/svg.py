"""Matplotlib figures as SVG to put inline in an HTML page.

Text stays text (``svg.fonttype = none``: smaller, selectable, no glyph definitions).  The XML
prolog, DOCTYPE and RDF metadata (which name external URIs) are dropped, and every ``id`` and
``#reference`` gets a prefix unique to the figure, because a page holding several matplotlib SVGs
would otherwise hold the same ids several times.
"""

from __future__ import annotations

import io
import re
from typing import Any

_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(url\(#|href="#)([^")]+)')


def figure_svg(fig: Any, ident: str, label: str) -> str:
    """``fig`` as an inline ``<svg>`` element with ids prefixed by ``ident``; closes the figure."""
    import matplotlib
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    text = _ID.sub(lambda m: f'id="{ident}-{m.group(1)}"', text)
    text = _REF.sub(lambda m: f"{m.group(1)}{ident}-{m.group(2)}", text)
    # The root: scale with the page (CSS sets the width; the viewBox keeps the aspect).
    text = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r"<svg\1", text, count=1)
    label = label.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return text.replace("<svg", f'<svg id="{ident}" role="img" aria-label="{label}"', 1).strip()
