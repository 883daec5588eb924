"""A virtual item list: renders only the visible rows (Line API), so a million rows scroll smoothly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from engine.safe_text import inert
from tui.render import cut_middle

# (header, sort key, width): -1 takes the rest; 0 is as wide as the longest run label (`label_width`), up
# to a third of the table. Every column is at least as wide as its header with the sort arrow.
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("run", "run", 0),
    ("lang", "language", 5),
    ("item", "item", 22),
    ("{reference}→run", "transition", 10),
    ("gold", "gold", 18),
    ("run's answer", "answer", -1),
    ("⚑", "flag", 2),
)
SHRINKABLE = (0, 2, 4)  # run, item, gold: narrowed (widest first) to keep the answer readable
CellsFn = Callable[[int], list[str]]
ARROW = " ▲"  # after the header of the sort column (" ▼" reversed)


class ItemTable(ScrollView, can_focus=True):
    """Rows are indices into the study's pairs; `cells(i)` gives a row's column strings (raw data)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j,down", "cursor(1)", "down", show=False, id="items.down"),
        Binding("k,up", "cursor(-1)", "up", show=False, id="items.up"),
        Binding("g,home", "jump(0)", "top", show=False, id="items.top"),
        Binding("G,end", "jump(-1)", "bottom", show=False, id="items.bottom"),
        Binding("pagedown,ctrl+d", "page(1)", "page down", show=False, id="items.page_down"),
        Binding("pageup,ctrl+u", "page(-1)", "page up", show=False, id="items.page_up"),
        Binding("enter", "open", "open item", id="items.open"),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {"item-table--header", "item-table--cursor", "item-table--discordant"}
    DEFAULT_CSS = """
    ItemTable { height: 1fr; }
    ItemTable > .item-table--header { text-style: bold reverse; }
    ItemTable > .item-table--cursor { text-style: reverse; }
    ItemTable > .item-table--discordant { text-style: bold; }
    """

    cursor: reactive[int] = reactive(0)

    class Opened(Message):
        """Enter on a row: `index` is the pair index."""

        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    class CursorMoved(Message):
        """The cursor moved: `index` is the pair index under it (None for an empty list)."""

        def __init__(self, index: int | None) -> None:
            super().__init__()
            self.index = index

    def __init__(self, cells: CellsFn, is_discordant: Callable[[int], bool], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cells = cells
        self._is_discordant = is_discordant
        self.rows: np.ndarray = np.zeros(0, dtype=np.int64)
        self.sort_key = ""
        self.sort_reverse = False
        self.fresh = True  # the cursor sits where set_rows put it: nobody moved it yet
        self.reference = "dense"  # what each run is paired with: 'dense', or 'base' under --baseline
        self.label_width = 16  # cells of the longest run label
        self.cut_middle = False  # run labels cut in the middle, their ends kept longer: they name models
        self._widths_at: dict[tuple[int, int, str], list[int]] = {}

    def set_rows(self, rows: np.ndarray, cursor: int = 0, fresh: bool = True) -> None:
        self.rows, self.fresh = rows, fresh
        self.virtual_size = Size(0, len(rows) + 1)  # rows fit the width: no sideways scrolling
        self.cursor = max(0, min(cursor, len(rows) - 1))
        self._follow_cursor()
        self.refresh()
        self.post_message(self.CursorMoved(self.current))

    @property
    def current(self) -> int | None:
        """Pair index under the cursor."""
        return int(self.rows[self.cursor]) if len(self.rows) else None

    def _widths(self, width: int) -> list[int]:
        """Each column's cells at `width`: the answer column gets at least a quarter of the width (12 cells
        at least), taken from the widest of run, item and gold (not below their headers) on a narrow terminal."""
        key = (width, self.label_width, self.reference)
        if key not in self._widths_at:
            heads = [cell_len(h.format(reference=self.reference) + ARROW) for h, _, _ in COLUMNS]
            widths = [
                max(min(self.label_width, max(16, width // 3)) if w == 0 else w, h)
                for (_, _, w), h in zip(COLUMNS, heads)
            ]
            rest = COLUMNS.index(next(c for c in COLUMNS if c[2] < 0))
            over = sum(w + 1 for i, w in enumerate(widths) if i != rest) + max(12, width // 4) + 1 - width
            while over > 0:
                i = max(SHRINKABLE, key=lambda i: widths[i] - heads[i])
                if widths[i] <= heads[i]:
                    break
                widths[i] -= 1
                over -= 1
            widths[rest] = max(8, width - sum(w + 1 for i, w in enumerate(widths) if i != rest) - 1)
            self._widths_at = {key: widths}
        return self._widths_at[key]

    def _line(self, texts: list[str], width: int, style: Style) -> Strip:
        segs = []
        for k, (text, w) in enumerate(zip(texts, self._widths(width))):
            if k == 0 and self.cut_middle:  # the run label: its start and its end, '…' between
                segs.append(Segment(cut_middle(inert(text, max_len=None), w, head=1 / 3) + " ", style))
                continue
            head = text[: 3 * w + 3]  # enough code points for w cells but for combining marks
            cell = inert(head, max_len=None)
            if cell_len(cell) > w or len(head) < len(text):  # a cut cell ends in '…'
                segs.append(Segment(set_cell_size(cell, w - 1) + "… ", style))
            else:
                segs.append(Segment(set_cell_size(cell, w) + " ", style))
        return Strip(segs).adjust_cell_length(width, style)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_size.width  # less the scrollbar, which would hide the last column
        base = self.rich_style
        if y == 0:
            arrow = " ▼" if self.sort_reverse else ARROW
            heads = [
                h.format(reference=self.reference) + (arrow if key == self.sort_key else "") for h, key, _ in COLUMNS
            ]
            return self._line(heads, width, base + self.get_component_rich_style("item-table--header"))
        n = int(self.scroll_offset.y) + y - 1
        if n >= len(self.rows):
            return Strip.blank(width, base)
        i = int(self.rows[n])
        try:
            texts = self._cells(i)
        except IndexError:  # the study grew under a live run; the list is re-selected right after
            return Strip.blank(width, base)
        style = base
        if self._is_discordant(i):
            style = style + self.get_component_rich_style("item-table--discordant")
        if n == self.cursor:
            style = style + self.get_component_rich_style("item-table--cursor")
        return self._line(texts, width, style)

    def on_resize(self) -> None:
        self.virtual_size = Size(0, len(self.rows) + 1)

    def watch_cursor(self) -> None:
        self._follow_cursor()
        self.refresh()
        self.post_message(self.CursorMoved(self.current))

    def _follow_cursor(self) -> None:
        visible = max(1, self.size.height - 1)
        top = int(self.scroll_offset.y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + visible:
            self.scroll_to(y=self.cursor - visible + 1, animate=False, immediate=True)

    def move_to(self, n: int) -> None:
        self.fresh = False
        if len(self.rows):
            self.cursor = max(0, min(n, len(self.rows) - 1))

    def action_cursor(self, delta: int) -> None:
        self.move_to(self.cursor + delta)

    def action_jump(self, where: int) -> None:
        self.move_to(0 if where == 0 else len(self.rows) - 1)

    def action_page(self, direction: int) -> None:
        self.move_to(self.cursor + direction * max(1, self.size.height - 2))

    def action_open(self) -> None:
        if self.current is not None:
            self.post_message(self.Opened(self.current))
