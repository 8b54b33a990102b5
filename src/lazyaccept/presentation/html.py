"""A self-contained HTML page: sections, tables, inline SVG figures; no network, no external file.

Every report (``sweep`` results, one ``boot``, one ``compare``) is built with :class:`Page`.  The
page reads fully without script; a few lines of inline script make tables of class
``sortable`` sort by a click (or Enter) on a column header.  A cell sorts by its ``data-sort``
value when it has one (sizes sort by bytes, not by their text), else by its text; empty cells
sort last either way.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .. import __version__

_CSS = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #d8dce3; --bg: #ffffff; --band: #f4f6f9; --accent: #2a5db0; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
       color: var(--fg); background: var(--bg); }
header { padding: 20px 28px 12px; border-bottom: 1px solid var(--line); background: var(--band); }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 2px 0; color: var(--muted); }
nav { padding: 8px 28px; border-bottom: 1px solid var(--line); font-size: 14px;
      display: flex; flex-wrap: wrap; gap: 4px 16px; }
nav a { color: var(--accent); text-decoration: none; white-space: nowrap; }
main { padding: 4px 28px 28px; max-width: 1400px; }
section { margin-top: 22px; }
h2 { font-size: 18px; margin: 0 0 8px; padding-bottom: 3px; border-bottom: 2px solid var(--line); }
h3 { font-size: 15px; margin: 14px 0 6px; }
p.note { color: var(--muted); margin: 4px 0 8px; }
figure { margin: 8px 0 16px; }
figure svg { display: block; width: 100%; max-width: 860px; height: auto; }
figcaption { color: var(--muted); font-size: 13px; max-width: 860px; }
.figures { display: flex; flex-wrap: wrap; gap: 8px 28px; }
.figures figure { flex: 1 1 560px; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 2px 18px; margin: 6px 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; font-variant-numeric: tabular-nums; }
.wide { overflow-x: auto; }
.scroll { max-height: 72vh; overflow: auto; border: 1px solid var(--line); }
table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 8px; border-bottom: 1px solid var(--line); vertical-align: top; text-align: left; }
th { background: var(--band); position: sticky; top: 0; z-index: 1; }
table.sortable th { cursor: pointer; user-select: none; }
th[aria-sort="ascending"]::after { content: " \\25B2"; }
th[aria-sort="descending"]::after { content: " \\25BC"; }
td.fail { color: #a52a2a; }
code { font-size: 12px; }
footer { padding: 12px 28px 24px; color: var(--muted); font-size: 13px; border-top: 1px solid var(--line); }
"""

# Click (or Enter on) a header to sort by that column; again to reverse.  Sort keys are read
# once per click, so a table of 10,000 rows sorts in a blink.
_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.tabIndex = 0;
    function sort() {
      var up = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", up ? "ascending" : "descending");
      var body = table.tBodies[0];
      var keyed = Array.prototype.map.call(body.rows, function (row) {
        var cell = row.cells[col], raw = cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim();
        var num = raw === "" ? NaN : Number(raw);
        return { row: row, num: num, text: raw, empty: raw === "" || raw === "-" };
      });
      var numeric = keyed.every(function (k) { return k.empty || !isNaN(k.num); });
      keyed.sort(function (a, b) {
        if (a.empty !== b.empty) { return a.empty ? 1 : -1; }
        var c = numeric ? a.num - b.num : a.text.localeCompare(b.text, undefined, { numeric: true });
        return up ? c : -c;
      });
      var frag = document.createDocumentFragment();
      keyed.forEach(function (k) { frag.appendChild(k.row); });
      body.appendChild(frag);
    }
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sort(); } });
  });
});
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


@dataclass(frozen=True)
class Cell:
    """A table cell: its text, and the value it sorts by when the text would sort wrongly."""

    text: str
    sort: float | int | str | None = None
    fail: bool = False

    def render(self) -> str:
        attrs = "" if self.sort is None else f' data-sort="{esc(self.sort)}"'
        attrs += ' class="fail"' if self.fail else ""
        return f"<td{attrs}>{esc(self.text)}</td>"


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Cell | str]],
    *,
    ident: str,
    numeric: Iterable[int] = (),
    sortable: bool = False,
    scroll: bool = False,
) -> str:
    """A table; columns ``numeric`` (indices) right-aligned, ``sortable`` sorted by header clicks.

    Its id is ``t-<ident>`` (sections own the plain names, as link targets)."""
    ident = f"t-{ident}"
    right = ", ".join(f"#{ident} td:nth-child({i + 1}), #{ident} th:nth-child({i + 1})" for i in numeric)
    style = f"<style>{right} {{ text-align: right; }}</style>" if right else ""
    head = "".join(f"<th scope=\"col\">{esc(h)}</th>" for h in headers)
    body = "\n".join(
        "<tr>" + "".join((c if isinstance(c, Cell) else Cell(c)).render() for c in row) + "</tr>" for row in rows
    )
    cls = ' class="sortable"' if sortable else ""
    out = f'{style}<table id="{esc(ident)}"{cls}><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>'
    return f'<div class="{"scroll" if scroll else "wide"}">{out}</div>'


def facts(pairs: Iterable[tuple[str, str]]) -> str:
    """Label-value pairs as a compact list."""
    return '<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in pairs) + "</dl>"


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def figure(svg: str, caption: str) -> str:
    """An inline SVG (from :func:`lazyaccept.presentation.svg.figure_svg`) with its caption."""
    return f"<figure>{svg}<figcaption>{esc(caption)}</figcaption></figure>"


def figures(parts: Iterable[str]) -> str:
    """Figures side by side where the window is wide enough."""
    return '<div class="figures">' + "".join(parts) + "</div>"


class Page:
    """A page: a header, a table of contents, sections, a footer with the lazyaccept version."""

    def __init__(self, title: str, subtitle: Sequence[str] = ()) -> None:
        self.title = title
        self.subtitle = list(subtitle)
        self._sections: list[tuple[str, str, str]] = []

    def section(self, anchor: str, title: str, *parts: str) -> None:
        self._sections.append((anchor, title, "".join(parts)))

    def render(self) -> str:
        nav = "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t, _ in self._sections)
        body = "\n".join(
            f'<section id="{esc(a)}"><h2>{esc(t)}</h2>\n{content}\n</section>' for a, t, content in self._sections
        )
        sub = "".join(f"<p>{esc(s)}</p>" for s in self.subtitle)
        return (
            "<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            # No request leaves the page, not even for a favicon.
            '<link rel="icon" href="data:,">'
            f"<title>{esc(self.title)}</title><style>{_CSS}</style></head>\n"
            f"<body><header><h1>{esc(self.title)}</h1>{sub}</header>\n"
            f"<nav>{nav}</nav>\n<main>\n{body}\n</main>\n"
            f"<footer>Made by lazyaccept {esc(__version__)}. Simulated figures: see the profiles' sources for "
            "what each cost assumes.</footer>\n"
            f"<script>{_SCRIPT}</script></body></html>\n"
        )
