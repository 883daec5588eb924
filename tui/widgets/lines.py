"""A scrollable view of prepared lines (Line API): only the visible lines are drawn, however many there are.

Content comes as `Strip`s (Rich renderables rendered once, off the event loop, by `render_strips`) or
as a `LineSource` that makes a line when it is shown (Run info's thousands of manifest fields).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import ClassVar

from rich.console import Console, RenderableType
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

LineSource = Callable[[int], Strip]  # line number -> the line
WIDE = 400  # cells a wide renderable (a table) may take; the view scrolls sideways
SCROLLBAR = 2  # cells of the vertical scroll bar (Textual's default size)


def text_width(screen_width: int) -> int:
    """Cells a `LinesView` (#body: one cell of padding each side) shows beside its vertical scroll bar."""
    return max(40, screen_width - 2 - SCROLLBAR)


_CONSOLES = threading.local()


def _console(width: int) -> Console:
    """A console of this thread for rendering into lines (made once per thread: creating one is slow)."""
    console = getattr(_CONSOLES, "console", None)
    if console is None:
        console = Console(width=width, color_system="truecolor", force_terminal=True, legacy_windows=False)
        _CONSOLES.console = console
    return console


def render_strips(renderables: Sequence[RenderableType], width: int, widths: Sequence[int | None] = ()) -> list[Strip]:
    """Render `renderables` one under the other into lines, `width` cells wide, or as wide as `widths`
    gives for that renderable (a table at its natural width; the view scrolls sideways). Thread-safe:
    one console per thread."""
    console = _console(width)
    lines: list[Strip] = []
    for k, r in enumerate(renderables):
        w = (widths[k] if k < len(widths) else None) or width
        options = console.options.update_width(max(width, min(int(w), WIDE)))
        lines += [Strip(segs) for segs in console.render_lines(r, options, pad=False)]
    return lines


class LinesView(ScrollView, can_focus=True):
    """`set_lines(strips)` or `set_source(make_line, count, width)`; scrolls both ways."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j,down", "scroll_by(0, 1)", "down", show=False, id="lines.down"),
        Binding("k,up", "scroll_by(0, -1)", "up", show=False, id="lines.up"),
        Binding("h,left", "scroll_by(-4, 0)", "left", show=False, id="lines.left"),
        Binding("l,right", "scroll_by(4, 0)", "right", show=False, id="lines.right"),
        Binding("g,home", "edge(0)", "top", show=False, id="lines.top"),
        Binding("G,end", "edge(1)", "bottom", show=False, id="lines.bottom"),
        Binding("pagedown,ctrl+d", "page(1)", "page down", show=False, id="lines.page_down"),
        Binding("pageup,ctrl+u", "page(-1)", "page up", show=False, id="lines.page_up"),
    ]
    DEFAULT_CSS = "LinesView { height: 1fr; }"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._source: LineSource = lambda y: Strip([])
        self.count = 0

    def set_lines(self, lines: list[Strip]) -> None:
        width = max((s.cell_length for s in lines), default=0)
        self.set_source(lines.__getitem__, len(lines), width)

    def set_source(self, source: LineSource, count: int, width: int) -> None:
        self._source, self.count = source, count
        self.virtual_size = Size(width, count)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        x0, top = int(self.scroll_offset.x), int(self.scroll_offset.y)
        width = self.size.width
        n = top + y
        base = self.rich_style
        if n >= self.count:
            return Strip.blank(width, base)
        line = self._source(n).crop(x0, x0 + width)
        return Strip(Segment.apply_style(line, base)).extend_cell_length(width, base)

    def action_scroll_by(self, dx: int, dy: int) -> None:
        self.scroll_relative(x=dx or None, y=dy or None, animate=False)

    def action_edge(self, end: int) -> None:
        self.scroll_end(animate=False) if end else self.scroll_home(animate=False)

    def action_page(self, direction: int) -> None:
        self.scroll_relative(y=direction * max(1, self.size.height - 1), animate=False)


def text_line(parts: Sequence[tuple[str, Style | None]]) -> Strip:
    """A line of plain (already inert) text pieces with their styles."""
    return Strip([Segment(text, style) for text, style in parts if text])
