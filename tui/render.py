"""Rich renderables for the item, significance and run-info screens.

Every string that comes from data goes through `engine.safe_text.inert` and becomes plain `Text`,
so Rich markup, escape sequences and bidi controls in model outputs or datasets stay inert.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from string import ascii_uppercase
from typing import Any, NamedTuple

from rich.cells import cell_len, set_cell_size
from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.strip import Strip

from engine.contract.labels import graded_by_task
from engine.safe_text import inert, rich_text

OK, BAD = "✓", "✗"
_MEASURE = Console(width=100_000, color_system=None)  # Rich's measuring and wrapping only; nothing is printed


# Characters of a generation shown on the item screen (the `e` export has every one): imported
# harness outputs run long.
OUTPUT_CHARS = 2000
PROBE_CHARS = 1000


def _t(value: Any, max_len: int = 300, style: str = "") -> Text:
    return rich_text(value, max_len=max_len, style=style)


def _tick(flag: Any) -> Text:
    if flag is None:
        return Text("–")
    return Text(OK, style="green") if flag else Text(BAD, style="red")


def bar(fraction: float, width: int = 10) -> str:
    """A text bar of `width` cells filled to `fraction` (0..1) in eighths."""
    if not isinstance(fraction, (int, float)) or math.isnan(fraction):
        return " " * width
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, rest = divmod(eighths, 8)
    return ("█" * full + (" ▏▎▍▌▋▊▉"[rest] if rest else "")).ljust(width)


def _num(x: Any, digits: int = 2) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "–"
    return "–" if math.isnan(v) else f"{v:.{digits}f}"


def item_block(uid: str, item: dict[str, Any] | None) -> RenderableType:
    """Question, context, gold answer and aliases."""
    if item is None:
        return Group(
            _t(uid, style="bold"),
            Text("This item is not in items.jsonl: question and gold answer unknown.", style="italic"),
        )
    src = item.get("source") or {}
    head = Text.assemble(
        _t(uid, style="bold"),
        "  ",
        _t(item.get("language"), 20),
        "  source: ",
        _t("/".join(str(src[k]) for k in ("dataset", "config", "split") if src.get(k) is not None), 200),
    )
    parts: list[RenderableType] = [head, Text("Question", style="bold underline"), _t(item.get("question"), 4000)]
    if item.get("context"):
        parts += [Text("Context", style="bold underline"), rich_text(item.get("context"), max_len=4000, newlines=True)]
    aliases = item.get("aliases") or []
    gold = Text.assemble(("Gold: ", "bold"), _t(item.get("answer"), 500, "bold green"))
    if aliases:
        gold.append("   aliases: ")
        gold.append_text(Text(" | ").join(_t(a, 200) for a in aliases[:20]))
    parts.append(gold)
    return Group(*parts)


def _softmax(scores: Sequence[float]) -> list[float]:
    finite = [s for s in scores if isinstance(s, (int, float)) and math.isfinite(s)]
    if not finite:
        return [math.nan] * len(scores)
    top = max(finite)
    ex = [math.exp(s - top) if isinstance(s, (int, float)) and math.isfinite(s) else 0.0 for s in scores]
    total = sum(ex)
    return [e / total for e in ex]


def options_table(item: dict[str, Any] | None, records: Sequence[tuple[str, dict[str, Any]]]) -> Table:
    """Options × runs: each run's score under its decision rule as a bar (softmax over options)."""
    table = Table(
        title="Options (bar: share of the run's decision-rule score; ▶ run's choice, ★ gold)",
        title_justify="left",
        expand=False,
        show_lines=False,
    )
    table.add_column("#", justify="right")
    table.add_column("option", max_width=30, overflow="ellipsis", no_wrap=True)
    per_run = []
    for name, rec in records:
        table.add_column(inert(name, 40), no_wrap=True)
        mc = rec.get("mc") or {}
        rule = str(mc.get("rule", "sum"))
        scores = (mc.get("scores") or {}).get(rule) or [o.get("loglik") for o in mc.get("options") or []]
        per_run.append((_softmax(scores), scores, mc.get("choice")))
    options = (
        (item or {}).get("options")
        or (records[0][1].get("mc", {}).get("options") and [o.get("text") for o in records[0][1]["mc"]["options"]])
        or []
    )
    gold = (item or {}).get("gold_index", records[0][1].get("mc", {}).get("gold_index") if records else None)
    for k, opt in enumerate(options):
        row: list[RenderableType] = [Text(("★" if k == gold else " ") + str(k)), _t(opt, 200)]
        for probs, scores, choice in per_run:
            p = probs[k] if k < len(probs) else math.nan
            s = scores[k] if k < len(scores) else math.nan
            row.append(
                Text(("▶" if k == choice else " ") + bar(p, 8) + " " + _num(s), style="bold" if k == choice else "")
            )
        table.add_row(*row)
    return table


# What an MC rule's option scores are, named where a run's scores are not the plain sum (imported runs).
SCORE_KINDS = {
    "per_char": "log-likelihood per character",
    "per_byte": "log-likelihood per UTF-8 byte",
    "per_token": "log-likelihood per token",
    "mutual_info": "mutual information (log-likelihood less the unconditional one)",
}


def _has_scores(mc: dict[str, Any]) -> bool:
    rule = str(mc.get("rule", "sum"))
    scores = (mc.get("scores") or {}).get(rule) or [o.get("loglik") for o in mc.get("options") or []]
    return any(isinstance(s, (int, float)) and math.isfinite(s) for s in scores)


def options_notes(
    records: Sequence[tuple[str, dict[str, Any]]], imported: Mapping[str, Mapping[str, Any]] | None = None
) -> RenderableType | None:
    """Lines under the options table: why a run's column is empty (an MC answer by a generated letter has
    no option scores: its choice instead) and, for imported runs (`imported`: run name -> the manifest's
    `imported` block), what the scores are when the MC rule is not the sum. None when there is nothing to say."""
    imported = imported or {}
    lines: list[Text] = []
    kinds: dict[str, list[str]] = {}
    for name, rec in records:
        mc = rec.get("mc") or {}
        if not mc:
            continue
        rule = str(mc.get("rule", "sum"))
        if not _has_scores(mc):
            choice = mc.get("choice")
            options = mc.get("options") or []
            if rule == "generated_letter":
                line = Text.assemble(_t(name, 60, "bold"), ": answered by a generated letter, no option scores; ")
                if isinstance(choice, int) and 0 <= choice < len(ascii_uppercase):
                    opt = options[choice] if choice < len(options) else None
                    text = opt.get("text") if isinstance(opt, dict) else None
                    line.append("its choice: ")
                    line.append_text(_t(mc.get("letter") or ascii_uppercase[choice], 10, "bold"))
                    if text is not None:
                        line.append_text(Text.assemble(" (", _t(text, 60), ")"))
                else:
                    line.append("no option letter found in its answer")
            else:
                line = Text.assemble(_t(name, 60, "bold"), ": no option scores recorded (MC rule ", _t(rule, 30), ")")
            lines.append(line)
        elif name in imported and rule != "sum":
            kinds.setdefault(rule, []).append(name)
    for rule, names in kinds.items():
        lines.append(
            Text.assemble(
                Text(", ").join(_t(n, 60, "bold") for n in names),
                ": scores are ",
                _t(SCORE_KINDS.get(rule, rule), 80),
                " (MC rule ",
                _t(rule, 30),
                ", not the sum)",
            )
        )
    return Group(*(note_text(line) for line in lines)) if lines else None


def task_decides(imported: Mapping[str, Any] | None) -> bool:
    """The run's open correctness is the harness task's own metric (`prunescope import --grade task`), as
    the manifest's `imported` block says (`engine.importers.records.ImportOptions.describe`)."""
    return graded_by_task((imported or {}).get("open_correct"))


def match_label(match: dict[str, Any]) -> str:
    """'contains: K' (credited), 'K, denied: loop' (found, a guard refused credit) or '–'."""
    if match.get("rule") not in (None, "none"):
        return f"{match.get('rule')}: {match.get('alias')}"
    if match.get("guards"):
        return f"{match.get('alias')}, denied: {', '.join(map(str, match['guards']))}"
    return "–"


def matcher_label(match: dict[str, Any]) -> str:
    """`match_label` where the matcher's result does not count (a task's metric decides): 'matcher:
    contains K', 'matcher: K, denied: loop' or 'matcher: no match'."""
    if match.get("rule") not in (None, "none"):
        return f"matcher: {match.get('rule')} {match.get('alias')}"
    label = match_label(match)
    return "matcher: no match" if label == "–" else f"matcher: {label}"


def outputs_table(
    records: Sequence[tuple[str, dict[str, Any]]], imported: Mapping[str, Mapping[str, Any]] | None = None
) -> Table:
    """Each run's open and candidate-shown outputs, what matched, the MC choice and the category.

    `imported`: run name -> the manifest's `imported` block; where it says the task's own metric decides
    open correctness (`--grade task`), that verdict comes first, marked, and the matcher's is labelled."""
    imported = imported or {}
    table = Table(title="Outputs of each run", title_justify="left")
    for name, kw in (
        ("run", {"no_wrap": True}),
        ("open generation", {"max_width": 40}),
        ("", {}),
        ("matched", {"max_width": 24}),
        ("candidates shown", {"max_width": 30}),
        ("", {}),
        ("MC", {}),
        ("category", {"no_wrap": True}),
    ):
        table.add_column(name, **kw)
    for name, rec in records:
        op = rec.get("open") or {}
        sh = rec.get("shown") or {}
        mc = rec.get("mc") or {}
        matched = match_label(op.get("match") or {})
        task = op.get("harness")
        if task:  # an imported generation: the harness task's own verdict beside prunescope's match
            verdict = f"{task.get('task')} {task.get('metric')} = {_num(task.get('value'), 2)}"
            if task_decides(imported.get(name)):  # the ✓/✗ is the task's: say so, before the matcher's
                matched = f"{verdict} (decides) · {matcher_label(op.get('match') or {})}"
            else:
                matched += f" · {verdict}"
        table.add_row(
            _t(name, 40),
            _t(op.get("text"), OUTPUT_CHARS),
            _tick(op.get("correct")),
            _t(matched, 200),
            _t(sh.get("text") if sh else "–", OUTPUT_CHARS),
            _tick(sh.get("correct") if sh else None),
            Text.assemble(_t(mc.get("choice"), 10), " ", _tick(mc.get("correct"))),
            _t(rec.get("category"), 40),
        )
    return table


def trace_block(records: Sequence[tuple[str, float, dict[str, Any]]]) -> RenderableType:
    """Gold trace per run, ordered by sparsity: first-token rank and sequence log-prob as bars. Runs without
    a trace (imported runs) say so instead of showing empty bars."""
    if not any(r.get("gold_trace") for _, _, r in records):
        return Text("No gold trace recorded for this item (imported runs are not traced).", style="italic")
    table = Table(
        title="Gold trace against sparsity (rank bar: log scale, 1 = empty; log-prob bar: 0 = empty)",
        title_justify="left",
    )
    for col in ("run", "sparsity", "rank 1st", "", "log p(gold)", "", "margin", "per-token ranks", "tokens"):
        table.add_column(col, no_wrap=col not in ("tokens",), max_width=40 if col == "tokens" else None)
    worst_lp = max(
        [abs(float(t.get("seq_logprob", 0.0) or 0.0)) for _, _, r in records for t in [r.get("gold_trace") or {}]]
        + [1.0]
    )
    for name, sparsity, rec in sorted(records, key=lambda x: (x[1], x[0])):
        tr = rec.get("gold_trace") or {}
        if not tr:
            table.add_row(_t(name, 40), _num(sparsity), Text("not recorded", style="italic"))
            continue
        rank = tr.get("first_token_rank")
        rank_frac = math.log10(rank) / 4 if isinstance(rank, int) and rank >= 1 else math.nan
        lp = tr.get("seq_logprob")
        lp_frac = abs(float(lp)) / worst_lp if isinstance(lp, (int, float)) else math.nan
        ranks = " ".join(str(r) for r in (tr.get("ranks") or [])[:24])
        tokens = Text(" ").join(_t(tok, 30) for tok in (tr.get("tokens") or [])[:24])
        table.add_row(
            _t(name, 40),
            _num(sparsity),
            _t(rank, 10),
            bar(rank_frac, 10),
            _num(lp),
            bar(lp_frac, 10),
            _num(tr.get("margin")),
            ranks,
            tokens,
        )
    return table


SPARK = "▁▂▃▄▅▆▇█"


def rank_sparkline(ranks: Sequence[int], worst: int) -> str:
    """One cell per rank, taller for a better (lower) rank on a log scale: rank 1 is a full cell,
    `worst` (or worse) the lowest."""
    top = math.log10(max(worst, 10))
    cells = []
    for r in ranks:
        good = 1 - math.log10(max(int(r), 1)) / top
        cells.append(SPARK[max(0, min(len(SPARK) - 1, round(good * (len(SPARK) - 1))))])
    return "".join(cells)


def layer_trace_block(records: Sequence[tuple[str, float, dict[str, Any]]]) -> RenderableType | None:
    """The logit-lens layer trace per run (None when no run has one): the gold first token's rank at
    every lens entry as a sparkline on one log scale for all runs, the best entry and the last."""
    traced = [(n, sp, r["layer_trace"]) for n, sp, r in records if isinstance(r.get("layer_trace"), dict)]
    if not traced:
        return None
    worst = max([int(x) for _, _, t in traced for x in t.get("ranks") or []] + [10])
    table = Table(
        title=f"Layer trace: gold first-token rank by lens entry (0 = embeddings; taller = better, log scale to {worst})",
        title_justify="left",
    )
    for col in ("run", "sparsity", "rank by entry", "best (entry)", "last"):
        table.add_column(col, no_wrap=True)
    for name, sparsity, t in sorted(traced, key=lambda x: (x[1], x[0])):
        ranks = [int(x) for x in t.get("ranks") or []]
        best = min(range(len(ranks)), key=lambda e: ranks[e]) if ranks else None
        table.add_row(
            _t(name, 40),
            _num(sparsity),
            Text(rank_sparkline(ranks, worst), style="cyan"),
            "–" if best is None else f"{ranks[best]} ({best})",
            str(ranks[-1]) if ranks else "–",
        )
    return table


def probes_block(records: Sequence[tuple[str, dict[str, Any]]]) -> RenderableType:
    """Recovery probes per run: beams (gold hit marked), samples with hits, the one-shot answer."""
    parts: list[RenderableType] = []
    for name, rec in records:
        probes = rec.get("probes")
        if not probes:
            continue
        head = Text.assemble((inert(name, 60), "bold"), "  demotion: ", _t(rec.get("demotion") or "–", 20))
        lines: list[RenderableType] = [head]
        beam = probes.get("beam")
        if beam:
            lines.append(
                Text(
                    f"  beam k={beam.get('k')}: hit top {OK if beam.get('hit_top') else BAD}, "
                    f"hit any {OK if beam.get('hit_any') else BAD}"
                )
            )
            for b in (beam.get("beams") or [])[:16]:
                lines.append(
                    Text.assemble(
                        "    ", _tick(b.get("correct")), f" {_num(b.get('score'))}  ", _t(b.get("text"), PROBE_CHARS)
                    )
                )
        samp = probes.get("sampling")
        if samp:
            lines.append(
                Text(
                    f"  sampling n={samp.get('n')} T={samp.get('temperature')} top_p={samp.get('top_p')} "
                    f"seed={samp.get('seed')}: {samp.get('hits')} hit(s)"
                )
            )
            for s in (samp.get("samples") or [])[:16]:
                lines.append(Text.assemble("    ", _tick(s.get("correct")), " ", _t(s.get("text"), PROBE_CHARS)))
        one = probes.get("one_shot")
        if one:
            lines.append(
                Text.assemble(
                    "  one-shot (example ",
                    _t(one.get("example_uid"), 120),
                    "): ",
                    _tick(one.get("correct")),
                    " ",
                    _t(one.get("text"), PROBE_CHARS),
                )
            )
        parts.append(Group(*lines))
    return Group(*parts) if parts else Text("No recovery probes recorded for this item.", style="italic")


def report_table(table: Any) -> list[tuple[RenderableType, int | None]]:
    """A `stats.report.ReportTable` as parts to draw one under the other: the Rich table with the width it
    needs to show every cell whole (the view scrolls sideways), then its notes (same strings `prunescope
    stats` prints) with None, to wrap to the window's width."""
    rt = Table(title=inert(table.title, 200), title_justify="left", show_lines=False)
    rows = [[inert(v, 120) for v in row] for row in table.display_rows()]
    for k, col in enumerate(table.columns):
        header = inert(col.header, 60)
        natural = max([cell_len(header)] + [cell_len(r[k]) for r in rows])
        rt.add_column(header, justify="left" if col.align == "left" else "right", no_wrap=True, min_width=natural)
    for row in rows:
        rt.add_row(*(Text(v) for v in row))
    width = _MEASURE.measure(rt).maximum
    notes: list[RenderableType] = [note_text(inert(n, 2000)) for n in table.notes]
    if not table.records:
        notes.insert(0, note_text("(no rows)", "italic"))
    return [(rt, width), (Group(*notes, Text("")), None)]


def note_text(text: str | Text, style: str = "dim") -> RenderableType:
    """A note under a table: wrapped to the width it is drawn at, indented by two cells."""
    return Padding(text if isinstance(text, Text) else Text(text, style=style), (0, 0, 0, 2), expand=False)


def flatten(obj: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    """Nested dicts/lists as (dotted.path, leaf value) pairs."""
    if isinstance(obj, dict):
        if not obj and prefix:
            yield prefix, "{}"
        for k in obj:
            yield from flatten(obj[k], f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, list) and obj and any(isinstance(v, (dict, list)) for v in obj):
        for i, v in enumerate(obj):
            yield from flatten(v, f"{prefix}[{i}]")
    else:
        yield prefix, obj


class RunInfo(NamedTuple):
    """Run info's lines, the widest line's cells, and the cells the lines were wrapped to (0: none)."""

    lines: list[Strip]
    width: int
    wrap: int


def wrap_cells(text: str, width: int) -> list[str]:
    """`text` in lines of at most `width` cells: Rich's word wrap, words longer than a line folded."""
    if cell_len(text) <= width:
        return [text]
    return [line.plain.rstrip(" ") for line in Text(text).wrap(_MEASURE, width, overflow="fold", justify="left")]


def cut_middle(text: str, width: int, head: float = 0.5) -> str:
    """`text` in exactly `width` cells: padded, or where longer, its start and end around a '…', the start
    taking about `head` of the cells (dotted keys and model names differ at their ends)."""
    if cell_len(text) <= width or width < 3:
        return set_cell_size(text, width)
    return _cut_at(text, width, max(1, int((width - 1) * head)))


def _cut_at(text: str, width: int, head_cells: int) -> str:
    """`text` cut to `width` cells: its first `head_cells`, '…', then as much of its end as fits."""
    tail: list[str] = []
    room = width - 1 - head_cells
    for ch in reversed(text):
        if cell_len(ch) > room:
            break
        tail.append(ch)
        room -= cell_len(ch)
    return set_cell_size(set_cell_size(text, head_cells + room) + "…" + "".join(reversed(tail)), width)


def _common(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def distinct_cuts(keys: Sequence[str], width: int) -> list[str]:
    """Each key in exactly `width` cells (`cut_middle`); keys whose cuts would look the same are cut
    again where they differ: all of them keep their start past the first difference among them (on to
    the end of that dotted part where room is left), or where that is too far in, their end back to the
    last ('imported.tasks.psqa_gen.…config.doc_to_text', 'imported.tasks.psqa_mc.…config.doc_to_text')."""
    out = [cut_middle(k, width) for k in keys]
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        if cell_len(key) > width:
            groups.setdefault(out[i], []).append(i)
    for same in groups.values():
        if len(same) < 2:
            continue
        pairs = [(keys[i], keys[j]) for i in same for j in same if i < j]
        head = max(_common(a, b) for a, b in pairs) + 1  # characters: the first difference shown
        tail = max(_common(a[::-1], b[::-1]) for a, b in pairs) + 1
        for i in same:
            key = keys[i]
            if cell_len(key[:head]) < width - 1 and head <= tail:
                end = min((k for k in (key.find(".", head - 1), key.find("[", head - 1)) if k >= 0), default=-1)
                cells = cell_len(key[: end + 1]) if end >= 0 else 0
                out[i] = _cut_at(key, width, cells if head <= end + 1 and cells <= width - 11 else cell_len(key[:head]))
            elif cell_len(key[len(key) - tail :]) < width - 1:
                out[i] = _cut_at(key, width, width - 1 - cell_len(key[len(key) - tail :]))
    return out


def run_info_lines(runs: Sequence[Any], root: Any, wrap: int = 0) -> RunInfo:
    """Each run's manifest as lines (field, value) under a title, with its problems; values wrapped so
    that a line takes at most `wrap` cells (0: not wrapped).

    `runs` are `engine.contract.runs.RunSource`s; made in a worker (manifests can be long)."""
    title, key_style, bad = Style(bold=True, underline=True), Style(bold=True), Style(bold=True, color="red")
    lines: list[Strip] = []
    for run in runs:
        try:
            where = str(run.path.relative_to(root))
        except ValueError:
            where = str(run.path)
        fields: list[tuple[str, str, Style | None]] = [("outcome lines read", str(len(run)), None)]
        fields += [("problem", inert(p, 600), bad) for p in run.problems]
        if run.manifest is None:
            fields.append(("manifest", "missing or unreadable", bad))
        else:
            for key, value in flatten(run.manifest):
                plain = isinstance(value, str) and value.strip() != ""  # "\n\n" (a delimiter) shown quoted, not blank
                shown = value if plain else json.dumps(value, ensure_ascii=False, default=str)
                fields.append((inert(key, 120), inert(shown, 1000, newlines=True), None))
        kw = min(40, max(cell_len(k) for k, _, _ in fields))
        labels = distinct_cuts([k for k, _, _ in fields], kw)  # long keys cut in the middle, told apart
        value_width = max(20, wrap - kw - 2) if wrap else 0
        heading = inert(f"{run.name}   ({where})", 400)
        lines += [Strip([Segment(part, title)]) for part in (wrap_cells(heading, wrap) if wrap else [heading])]
        for (_, value, style), key in zip(fields, labels):
            parts = value.split("\n") or [""]
            if value_width:
                parts = [line for part in parts for line in wrap_cells(part, value_width)]
            for k, part in enumerate(parts):
                label = key if k == 0 else " " * kw
                lines.append(Strip([Segment(label + "  ", style or key_style), Segment(part, style)]))
        lines.append(Strip([]))
    return RunInfo(lines, max((line.cell_length for line in lines), default=0), wrap)
