"""Plain text of a Textual SVG screenshot (one string per screen row), for assertions on what is shown.

Rich's SVG export leaves out runs of blank cells, so each text run is placed at its column
(x / cell width) and the gaps are filled with spaces.
"""

from __future__ import annotations

import html
import re

_TEXT = re.compile(r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)" textLength="([\d.]+)"[^>]*>(.*?)</text>', re.S)
CELL_WIDTH = 12.2  # Rich's SVG export: 0.61 × font size 20


def svg_rows(svg: str) -> list[str]:
    rows: dict[float, list[tuple[int, str]]] = {}
    for x, y, _, body in _TEXT.findall(svg):
        text = html.unescape(re.sub(r"<[^>]+>", "", body)).replace("\xa0", " ")
        rows.setdefault(float(y), []).append((round(float(x) / CELL_WIDTH), text))
    out = []
    for _, parts in sorted(rows.items()):
        line = ""
        for col, text in sorted(parts):
            line = line.ljust(col) + text if col >= len(line) else line + text
        out.append(line.rstrip())
    return out


def svg_text(svg: str) -> str:
    return "\n".join(svg_rows(svg))
