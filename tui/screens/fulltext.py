"""Full texts: the outputs of the item on the Item screen (open, candidates shown, probes), uncut.

The Item screen cuts a generation at `render.OUTPUT_CHARS` characters and a probe at
`render.PROBE_CHARS`; `t` there opens this dialog. Each text is shown whole, its newlines as line
breaks, every line made inert (`inert`) and folded to the dialog's width in a worker, a batch at a
time (the first lines show at once), and drawn through the Line API: a million-character output is
some ten thousand lines, of which only the visible ones are drawn.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from rich.cells import chop_cells
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.strip import Strip
from textual.widgets import Static
from textual.worker import get_current_worker

from engine.safe_text import inert
from tui.screens.base import key_hints
from tui.widgets.lines import LinesView

HEADING = Style(bold=True, reverse=True)
EMPTY = Style(italic=True)
CHUNK = 1 << 14  # characters made inert and folded at a time, and in the first batch of lines
Line = str | Strip  # a line of a text, or a styled line (a heading)


def full_texts(records: Sequence[tuple[str, float, dict[str, Any]]]) -> list[tuple[str, str]]:
    """(heading, text) of each run's outputs: open, candidates shown, every beam, sample and the one-shot answer."""
    texts: list[tuple[str, str]] = []
    for name, _, rec in records:
        probes = rec.get("probes") or {}
        found = [
            ("open generation", (rec.get("open") or {}).get("text")),
            ("candidates shown", (rec.get("shown") or {}).get("text")),
        ]
        found += [(f"beam {k + 1}", b.get("text")) for k, b in enumerate((probes.get("beam") or {}).get("beams") or [])]
        samples = (probes.get("sampling") or {}).get("samples") or []
        found += [(f"sample {k + 1}", s.get("text")) for k, s in enumerate(samples)]
        found.append(("one-shot", (probes.get("one_shot") or {}).get("text")))
        texts += [(f"{inert(name, 200)} · {what}", str(text)) for what, text in found if text is not None]
    return texts


def text_lines(
    texts: Sequence[tuple[str, str]], width: int, chunk: int = CHUNK
) -> Iterator[tuple[list[Line], list[int]]]:
    """`texts` as lines of at most `width` cells, each under its heading, in batches: (lines, the line
    numbers of the headings among them), the first after `chunk` characters (shown at once), each next
    one after twice as many. A text is made inert `chunk` characters at a time (`inert`, newlines kept
    as line breaks, a tab shown as on the Item screen) and folded."""
    lines: list[Line] = []
    starts: list[int] = []
    done = size = 0  # lines in the batches given; characters read for this batch
    batch = chunk  # characters of this batch
    for heading, text in texts:
        starts.append(done + len(lines))
        head = f"{heading} · {len(text):,} characters"
        lines += [Strip([Segment(part, HEADING)]) for part in chop_cells(head, width)]
        if not text:
            lines.append(Strip([Segment("(empty)", EMPTY)]))
        text = text.replace("\r\n", "\n")  # as `inert` does: the same wherever the pieces are cut
        rest = ""  # the last line so far, which the next piece may go on
        for i in range(0, len(text), chunk):
            piece = text[i : i + chunk]
            *whole, tail = (rest + inert(piece, None, newlines=True).replace("\t", "\\t")).split("\n")
            for paragraph in whole:
                lines += _fold(paragraph, width)
            *folded, rest = _fold(tail, width)
            lines += folded
            size += len(piece)
            if size >= batch:
                yield lines, starts
                done, lines, starts, size, batch = done + len(lines), [], [], 0, 2 * batch
        lines += [rest] if text else []
        lines.append("")
    yield lines, starts


def _fold(line: str, width: int) -> list[str]:
    """An inert line in lines of at most `width` cells (at least one)."""
    if line.isascii() and len(line) <= width:  # inert: printable, one cell each
        return [line]
    return chop_cells(line, width) or [""]


def as_strip(line: Line) -> Strip:
    """A line to draw (made when it is shown: a text's lines are kept as strings)."""
    return line if isinstance(line, Strip) else Strip([Segment(line)])


class FullTextScreen(ModalScreen[None]):
    """`t` on the Item screen: every output of item `uid` whole, scrollable; `]` / `[` jump between texts."""

    BINDINGS = [
        Binding("question_mark", "app.help", "help", key_display="?", id="app.help"),
        Binding("escape,t,q", "dismiss", "close", id="fulltext.close"),
        Binding("right_square_bracket", "jump(1)", "next text", key_display="]", id="fulltext.next"),
        Binding("left_square_bracket", "jump(-1)", "prev text", key_display="[", id="fulltext.prev"),
    ]

    def __init__(self, uid: str, texts: list[tuple[str, str]]) -> None:
        super().__init__()
        self.uid, self.texts = uid, texts
        self._lines: list[Line] = []
        self.starts: list[int] = []  # the line of each text's heading
        self._wrap_width = 0  # the width the lines are (being) made for

    def compose(self) -> ComposeResult:
        with Vertical(id="fulltext", classes="dialog"):
            yield Static(id="fulltext-title")
            yield LinesView(id="fulltext-lines")
            yield Static(id="fulltext-keys", classes="keys")

    def on_mount(self) -> None:
        count = f"   {len(self.texts)} texts, {sum(len(text) for _, text in self.texts):,} characters"
        self.query_one("#fulltext-title", Static).update(
            Text.assemble(("Full texts of ", "bold"), inert(self.uid, 200), count)
        )
        view = self.query_one(LinesView)
        view.set_lines([Strip([Segment("making the lines …", EMPTY)])])
        view.focus()
        self._lay_out()

    def on_resize(self) -> None:
        self._lay_out()

    def _lay_out(self) -> None:
        """Wrap to the dialog's width: 90% of the screen (.dialog), less its border, padding and scroll bar."""
        width = max(20, int(self.app.size.width * 0.9) - 6)
        self.query_one("#fulltext-keys", Static).update(key_hints(self, width + 2))
        if width != self._wrap_width:
            self._wrap_width = width
            self._wrap(width)

    @work(thread=True, exclusive=True, group="fulltext", description="fulltext")
    def _wrap(self, width: int) -> None:
        worker = get_current_worker()
        for k, (lines, starts) in enumerate(text_lines(self.texts, width)):
            if worker.is_cancelled:
                return
            self.app.call_from_thread(self._add, width, k == 0, lines, starts)

    def _add(self, width: int, first: bool, lines: list[Line], starts: list[int]) -> None:
        """A batch of lines made for `width`, the first of them or the next."""
        if width != self._wrap_width or not self.is_attached:  # overtaken by a resize, or closed
            return
        if first:
            self._lines, self.starts = [], []
        self._lines += lines
        self.starts += starts
        self.query_one(LinesView).set_source(lambda n: as_strip(self._lines[n]), len(self._lines), width)

    def action_jump(self, step: int) -> None:
        view = self.query_one(LinesView)
        y = round(view.scroll_offset.y)
        ahead = [s for s in self.starts if s > y] if step > 0 else [s for s in self.starts if s < y]
        if ahead:
            view.scroll_to(y=ahead[0] if step > 0 else ahead[-1], animate=False)
