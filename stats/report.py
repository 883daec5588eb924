"""Report tables and their renderings: Rich terminal table, Markdown, LaTeX (booktabs), CSV, JSON.

A `ReportTable` keeps raw values (records) and renders display strings with fixed formatting, so the
same input always gives byte-identical Markdown/LaTeX (no timestamps, hosts or iteration counts).
CSV and JSON carry each number at the precision the tables print it (`printed`): a number a column
shows is rounded as that column shows it, any other float to 6 significant digits. Numbers that an
optimiser locates (GLMM estimates) agree across CPUs and BLAS kernels only to about 1e-6, so their
full binary expansion would make the files machine-dependent; the printed digits do not.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

FORMATS = ("table", "markdown", "latex", "csv", "json")


@dataclass(frozen=True)
class Column:
    """A displayed column: header, record key and kind.

    Kinds: text, int, rate (3 decimals), num (3 decimals), p (exact p), ci (key, key_low, key_high),
    rank_ci (as ci, for ranks: 1 decimal, none when whole).

    `level` (ci kinds): the confidence level the header names; a row whose `key_level` (the level its CI
    achieves) differs shows it after the interval, e.g. '1.375 [−0.200, 2.700] (75% CI)'.
    """

    header: str
    key: str
    kind: str = "text"
    align: str = "right"
    level: float | None = None


@dataclass
class ReportTable:
    """One table of the report: title, the notes that say test, n, correction and family, and rows."""

    key: str
    title: str
    columns: list[Column]
    records: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    detail: list[dict[str, Any]] = field(default_factory=list)  # CSV/JSON only (e.g. per-language rows)

    def all_records(self) -> list[dict[str, Any]]:
        return [*self.records, *self.detail]

    def cell(self, record: dict[str, Any], col: Column) -> str:
        return format_value(record, col)

    def display_rows(self) -> list[list[str]]:
        return [[self.cell(r, c) for c in self.columns] for r in self.records]

    def printed_records(self) -> list[dict[str, Any]]:
        """The records and detail rows with every float at its printed precision (`printed`), for CSV and JSON."""
        kinds: dict[str, str] = {}
        for c in self.columns:
            kinds[c.key] = c.kind
            if c.kind in ("ci", "rank_ci"):
                kinds[c.key + "_low"] = kinds[c.key + "_high"] = c.kind
        return [{k: _printed_tree(v, kinds.get(k, "")) for k, v in r.items()} for r in self.all_records()]

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "notes": list(self.notes),
            "columns": [c.header for c in self.columns],
            "records": [_json_safe(r) for r in self.printed_records()],
        }


# How tables written for dense → pruned pairs read when every run is paired with a baseline run
# (`prunescope stats --baseline`): longest phrases first.
_BASELINE_WORDS = (
    ("pruned vs the dense run of the same model", "each run vs the baseline run"),
    ("the dense run of the same model", "the baseline run"),
    ("the dense run (the baseline)", "the baseline run"),
    ("pruned vs dense", "each run vs the baseline"),
    ("dense vs pruned", "baseline vs each run"),
    ("dense → pruned", "baseline → run"),
    ("RO dense", "RO baseline"),
    ("the dense model", "the baseline"),
    ("after pruning", "in the run"),
    ("pruned run", "run"),
    ("dense run", "baseline run"),
    ("pruned", "run"),
    ("dense", "baseline"),
)


def baseline_wording(text: str, phrases_only: bool = False) -> str:
    """`text` with dense/pruned worded as baseline/run, where they stand as words (not inside a name
    such as `org/dense-7b` or `demo__dense`). `phrases_only`: not the single words `dense` and
    `pruned`, which notes also use as labels (the condition `dense` of a model that is not the baseline)."""
    for old, new in _BASELINE_WORDS:
        if phrases_only and " " not in old:
            continue
        text = re.sub(rf"(?<![\w/.-]){re.escape(old)}(?![\w/-]|\.\w)", new, text)  # a full stop may follow
    return text


def for_baseline(table: ReportTable) -> ReportTable:
    """The table's title, notes and headers worded for a baseline comparison (records unchanged)."""
    return replace(
        table,
        title=baseline_wording(table.title),
        notes=[baseline_wording(n, phrases_only=True) for n in table.notes],
        columns=[replace(c, header=baseline_wording(c.header)) for c in table.columns],
    )


def _num(x: Any, digits: int) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float) and math.isinf(x):
        return "∞" if x > 0 else "−∞"
    text = f"{float(x):.{digits}f}"
    if float(text) == 0:  # no "−0.000": the sign of a value that rounds to zero is noise
        text = text.lstrip("-")
    return text.replace("-", "−")


SIGNIFICANT = 6  # digits of a float that no column shows


def printed(x: float, kind: str = "") -> float:
    """`x` rounded to the digits a column of this kind prints (see `format_value`).

    rate, num, ci: 3 decimals; rank_ci: 1 decimal; p: 3 decimals from 0.001 up, 2 significant digits below; any other
    kind (a number no column shows): `SIGNIFICANT` significant digits. NaN and ±inf stay as they are.
    """
    if not math.isfinite(x):
        return x
    if kind in ("rate", "num", "ci"):
        text = f"{x:.3f}"
    elif kind == "rank_ci":
        text = f"{x:.1f}"
    elif kind == "p":
        text = f"{x:.3f}" if x >= 0.001 else f"{x:.1e}"
    else:
        text = f"{x:.{SIGNIFICANT - 1}e}"
    return float(text) + 0.0  # + 0.0 turns −0.0 into 0.0


def _printed_tree(v: Any, kind: str) -> Any:
    """`printed` applied to every float in a value (nested dicts and lists: `SIGNIFICANT` digits)."""
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, float):
        return printed(v, kind)
    if isinstance(v, dict):
        return {k: _printed_tree(x, "") for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_printed_tree(x, "") for x in v]
    return v


P_FLOOR = 1e-300  # p-values below it print as "< 1e−300": 0 there is an underflow, not a probability of 0


def format_p(p: Any) -> str:
    """A p-value as every table, sentence and summary prints it: 0.042, 7.3e−05; '–' when there is none.

    Below `P_FLOOR` (a p that underflowed to 0, e.g. an exact McNemar p of 1e−493, or a subnormal one with
    few digits left) it prints '< 1e−300', as R prints '< 2.2e-16'; CSV and JSON keep the number."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    p = float(p)
    if p >= 0.001:
        return f"{p:.3f}"
    if p < P_FLOOR:
        return "< 1e−300"
    return f"{p:.1e}".replace("-", "−")


def p_clause(p: Any, name: str = "p") -> str:
    """'p = 0.042' for a sentence; 'p < 1e−300' below `P_FLOOR` (no 'p = < …')."""
    text = format_p(p)
    return f"{name} {text}" if text.startswith("<") else f"{name} = {text}"


def format_value(record: dict[str, Any], col: Column) -> str:
    v = record.get(col.key)
    if col.kind == "text":
        return "" if v is None else str(v)
    if col.kind == "int":
        return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else str(int(v))
    if col.kind in ("rate", "num"):
        return _num(v, 3)
    if col.kind == "p":
        return format_p(v)
    if col.kind == "ci":
        lo, hi = record.get(col.key + "_low"), record.get(col.key + "_high")
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "–"
        return f"{_num(v, 3)} [{_num(lo, 3)}, {_num(hi, 3)}]" + _level_shown(record, col, lo, hi)
    if col.kind == "rank_ci":
        lo, hi = record.get(col.key + "_low"), record.get(col.key + "_high")
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "–"
        return f"{_rank(v)} [{_rank(lo)}, {_rank(hi)}]" + _level_shown(record, col, lo, hi)
    raise ValueError(f"unknown column kind {col.kind!r}")


def _level_shown(record: dict[str, Any], col: Column, lo: Any, hi: Any) -> str:
    """' (75% CI)' where an interval reaches another level than the one the header names ('' otherwise)."""
    achieved = record.get(col.key + "_level")
    if col.level is None or achieved is None or achieved == col.level:
        return ""
    if not all(isinstance(x, (int, float)) and math.isfinite(x) for x in (achieved, lo, hi)):
        return ""
    return f" ({100 * achieved:.4g}% CI)"


def _rank(x: Any) -> str:
    """A rank or a statistic of ranks: 1 decimal, none when it is whole."""
    text = _num(x, 1)
    return text[:-2] if text.endswith(".0") else text


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        return _json_safe(obj.item())
    return obj


# ---------------------------------------------------------------- renderers


def render_markdown(tables: Sequence[ReportTable], title: str = "", summary: Sequence[str] = ()) -> str:
    """GitHub Markdown; deterministic for the same input. `summary`: plain-language findings, first."""
    out = [f"# {md_escape(title)}", ""] if title else []
    if summary:
        out += ["## Summary", "", *(f"- {md_escape(line)}" for line in summary), ""]
    for t in tables:
        out += [f"## {md_escape(t.title)}", ""]
        for note in t.notes:
            out.append(f"- {md_escape(note)}")
        if t.notes:
            out.append("")
        if t.records:
            out.append("| " + " | ".join(md_escape(c.header) for c in t.columns) + " |")
            out.append("|" + "|".join("---:" if c.align == "right" else ":---" for c in t.columns) + "|")
            for row in t.display_rows():
                out.append("| " + " | ".join(md_escape(v) for v in row) + " |")
        else:
            out.append("(no rows)")
        out.append("")
    return "\n".join(out)


def md_escape(text: str) -> str:
    from engine.safe_text import inert

    s = inert(text, max_len=500)
    for ch in ("\\", "|", "*", "_", "`", "<", ">"):
        s = s.replace(ch, "\\" + ch)
    return s.replace("](", "]\\(")


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
_LATEX_UNICODE = {
    "Δ": r"$\Delta$",
    "χ²": r"$\chi^2$",
    "χ": r"$\chi$",
    "²": r"$^2$",
    "−": r"$-$",
    "∞": r"$\infty$",
    "→": r"$\to$",
    "–": "--",
    "—": "---",
    "×": r"$\times$",
    "ψ": r"$\psi$",
    "θ": r"$\theta$",
    "≥": r"$\geq$",
    "≤": r"$\leq$",
    "…": r"\ldots{}",
    "±": r"$\pm$",
    "α": r"$\alpha$",
    "β": r"$\beta$",
    "σ": r"$\sigma$",
    "’": "'",
    "“": "``",
    "”": "''",
    "·": r"$\cdot$",
    "Σ": r"$\Sigma$",
    "Π": r"$\Pi$",
    "π": r"$\pi$",
    "φ": r"$\phi$",
    "Φ": r"$\Phi$",
    "γ": r"$\gamma$",
    "δ": r"$\delta$",
    "≈": r"$\approx$",
    "≠": r"$\neq$",
    "∓": r"$\mp$",
    "√": r"$\surd$",
    "✓": r"$\surd$",
    "½": "1/2",
    "§": r"\S{}",
    "³": r"$^3$",
    "⁵": r"$^5$",
    "⁻": r"$^{-}$",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX specials and map the symbols used in tables to math mode (pdflatex stops at a Greek
    or other symbol it has no definition for); data stays inert."""
    from engine.safe_text import inert

    s = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in inert(text, max_len=500))
    s = s.replace("--", "-{}-")  # a flag's `--` is not an en dash
    for k in sorted(_LATEX_UNICODE, key=len, reverse=True):
        s = s.replace(k, _LATEX_UNICODE[k])
    return s


_SCI = re.compile(r"(−?\d(?:\.\d+)?)e([−+-]?)(\d+)")


def _latex_cell(text: str) -> str:
    """A display string for LaTeX; numbers like 7.3e−07 become $7.3\\times10^{-7}$, '< 1e−300' $<10^{-300}$."""
    if text == format_p(0.0):
        return "$<10^{-300}$"
    m = _SCI.fullmatch(text)
    if m:
        sign = "-" if m.group(2) in ("−", "-") else ""
        return f"${m.group(1).replace('−', '-')}\\times10^{{{sign}{int(m.group(3))}}}$"
    return latex_escape(text)


LATEX_LATIN_END = 0x24F  # the end of Latin Extended-B: what pdflatex's UTF-8 input sets by default, roughly


def render_latex(tables: Sequence[ReportTable]) -> str:
    """booktabs tables, ready to paste (needs \\usepackage{booktabs})."""
    out = ["% prunescope stats tables; requires \\usepackage{booktabs}", ""]
    for t in tables:
        spec = "".join("r" if c.align == "right" else "l" for c in t.columns)
        out += [
            "\\begin{table}[ht]",
            "\\centering",
            "\\small",
            f"\\caption{{{latex_escape(t.title)}}}",
            f"\\label{{tab:prunescope-{t.key}}}",
            f"\\begin{{tabular}}{{{spec}}}",
            "\\toprule",
            " & ".join(latex_escape(c.header) for c in t.columns) + " \\\\",
            "\\midrule",
        ]
        for row in t.display_rows():
            out.append(" & ".join(_latex_cell(v) for v in row) + " \\\\")
        out.append("\\bottomrule")
        out.append("\\end{tabular}")
        if t.notes:
            out.append("\\par\\smallskip\\footnotesize")
            out.append(" \\\\\n".join(latex_escape(n) for n in t.notes))
        out += ["\\end{table}", ""]
    beyond = sorted({ch for line in out for ch in line if ord(ch) > LATEX_LATIN_END})
    if beyond:  # data in another script (a model id, a language name): pdflatex stops at its first character
        out[0] += (
            f"; holds {len(beyond)} character(s) outside the Latin scripts (e.g. {beyond[0]!r}, "
            f"U+{ord(beyond[0]):04X}), which pdflatex does not set: compile with xelatex or lualatex"
        )
    return "\n".join(out)


def render_csv(table: ReportTable) -> str:
    """The values of one table, detail rows included (all record keys, in first-seen order), at their
    printed precision."""
    keys: list[str] = []
    for r in table.all_records():
        for k in r:
            if k not in keys:
                keys.append(k)
    if not keys:  # no rows: the header of the columns all the same (an empty file is no CSV to a reader)
        keys = [c.key for c in table.columns]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(keys)
    for r in table.printed_records():
        w.writerow(["" if r.get(k) is None else _csv_value(r.get(k)) for k in keys])
    return buf.getvalue()


def _csv_value(v: Any) -> Any:
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(_json_safe(v), ensure_ascii=False, sort_keys=True)
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)
    return v


def render_json(tables: Sequence[ReportTable], meta: dict[str, Any] | None = None) -> str:
    doc = {"meta": _json_safe(meta or {}), "tables": [t.to_dict() for t in tables]}
    return json.dumps(doc, ensure_ascii=False, indent=2, allow_nan=False, sort_keys=False) + "\n"


def render_rich(tables: Sequence[ReportTable], console: Any) -> None:
    """Rich tables; every string goes through `rich_text` (data is never parsed as markup)."""
    from rich.table import Table
    from rich.text import Text

    from engine.safe_text import rich_text

    for t in tables:
        table = Table(title=rich_text(t.title, style="bold"), title_justify="left", show_lines=False)
        for c in t.columns:
            table.add_column(rich_text(c.header), justify="right" if c.align == "right" else "left")
        for row in t.display_rows():
            table.add_row(*[rich_text(v) for v in row])
        console.print(table)
        for note in t.notes:
            console.print(Text("  ") + rich_text(note, style="dim"))
        if not t.records:
            console.print(rich_text("  (no rows)"))
        console.print()
