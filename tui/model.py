"""The TUI's data layer: run folders → compact per-line indexes, dense → pruned pairs, cell counts.

Torch-free and Textual-free (tested on its own). Outcome files are indexed by byte offset: only the
fields the lists need are kept in memory; the item screen reads whole lines back by offset. Large
files are parsed with pyarrow's JSON reader; a file with a corrupt or blank line falls back to a
line-by-line read that reports each bad line. Runs in progress are followed from the last good byte.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.runfolder import (
    CATEGORIES,
    ITEMS,
    OUTCOMES,
    RunFolderError,
    discover_runs,
    read_items,
    read_manifest,
)

CAT_SHORT = {"both_correct": "BC", "recognition_only": "RO", "generation_only": "GO", "both_wrong": "BW"}
NO_REF = -1


def condition_label(method: str, sparsity: float, pattern: str) -> str:
    """Same labels as `stats.load.condition_label` ('dense', 'wanda-s50', 'wanda-2of4')."""
    if method == "dense":
        return "dense"
    if pattern != "unstructured":
        return f"{method}-{pattern.replace(':', 'of')}"
    return f"{method}-s{round(sparsity * 100):02d}"


@dataclass
class RunIndex:
    """One run folder: manifest, and one entry per complete outcome line (in file order)."""

    path: Path
    manifest: dict[str, Any] | None
    problems: list[str] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    uids: list[str] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    open_ok: list[bool] = field(default_factory=list)
    shown_ok: list[int] = field(default_factory=list)  # 1 right, 0 wrong, -1 no candidate-shown generation
    mc_ok: list[bool] = field(default_factory=list)
    categories: list[int] = field(default_factory=list)
    open_text: list[str] = field(default_factory=list)
    good_bytes: int = 0
    n_lines: int = 0  # complete lines read so far (blank and corrupt ones included)
    torn_tail: bool = False
    row_of: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str((self.manifest or {}).get("run_id") or self.path.name)

    @property
    def status(self) -> str:
        return str((self.manifest or {}).get("status", "unknown"))

    def _cond(self) -> dict[str, Any]:
        cond = (self.manifest or {}).get("condition")
        return cond if isinstance(cond, dict) else {}

    @property
    def model(self) -> str:
        model = (self.manifest or {}).get("model")
        return str(model.get("id")) if isinstance(model, dict) else "?"

    @property
    def method(self) -> str:
        return str(self._cond().get("method", "?"))

    @property
    def sparsity(self) -> float:
        try:
            return float(self._cond().get("sparsity", 0.0))
        except (TypeError, ValueError):
            return float("nan")

    @property
    def condition(self) -> str:
        if self.manifest is None:
            return f"{self.path.name} (no manifest)"
        return condition_label(self.method, self.sparsity, str(self._cond().get("pattern", "unstructured")))

    def __len__(self) -> int:
        return len(self.uids)

    def shown_correct(self, row: int) -> bool | None:
        """Whether line `row`'s candidate-shown generation was right (None: the line has none)."""
        code = self.shown_ok[row]
        return None if code < 0 else bool(code)

    def read_line(self, row: int) -> dict[str, Any]:
        """The full outcome record of line `row` (read back from disk by byte offset)."""
        with open(self.path / OUTCOMES, "rb") as f:
            f.seek(self.offsets[row])
            raw = f.readline()
        return json.loads(raw.decode("utf-8"))

    def _add(self, offset: int, rec: dict[str, Any]) -> None:
        uid = str(rec.get("item_uid"))
        if uid in self.row_of:
            self.problems.append(f"{self.path / OUTCOMES}: item {uid!r} has more than one outcome line; first kept")
            return
        opened, shown, mc = rec.get("open"), rec.get("shown"), rec.get("mc")
        opened = opened if isinstance(opened, dict) else {}
        mc = mc if isinstance(mc, dict) else {}
        self.row_of[uid] = len(self.uids)
        self.offsets.append(offset)
        self.uids.append(uid)
        self.hashes.append(str(rec.get("content_hash")))
        self.languages.append(str(rec.get("language")))
        o, m = bool(opened.get("correct")), bool(mc.get("correct"))
        self.open_ok.append(o)
        self.shown_ok.append(int(bool(shown.get("correct"))) if isinstance(shown, dict) else -1)
        self.mc_ok.append(m)
        self.categories.append(_cat_code(o, m))
        self.open_text.append(str(opened.get("text", "")))

    def follow(self) -> int:
        """Read complete lines appended since the last read; returns how many were added."""
        path = self.path / OUTCOMES
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return 0
        if size == self.good_bytes:
            return 0
        if size < self.good_bytes:  # cut under us (a writer repaired a torn tail): lines we kept stay
            self.good_bytes = size
            return 0
        before = len(self.uids)
        with open(path, "rb") as f:
            f.seek(self.good_bytes)
            data = f.read(size - self.good_bytes)
        self._scan_lines(data, self.good_bytes)
        return len(self.uids) - before

    def _scan_lines(self, data: bytes, base: int) -> None:
        """Line-by-line read of `data` (starting at byte `base` of the file), tolerant and reporting."""
        pos = 0
        lineno = self.n_lines
        self.torn_tail = False
        path = self.path / OUTCOMES
        while pos < len(data):
            nl = data.find(b"\n", pos)
            if nl < 0:
                self.torn_tail = True
                break
            raw, start = data[pos:nl], pos
            pos = nl + 1
            lineno += 1
            self.n_lines = lineno
            self.good_bytes = base + pos
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw.decode("utf-8"))
                if not isinstance(rec, dict):
                    raise ValueError("not a JSON object")
            except (UnicodeDecodeError, ValueError) as exc:
                self.problems.append(
                    f"{path}:{lineno}: corrupt line skipped ({exc.__class__.__name__}: {str(exc)[:80]})"
                )
                continue
            self._add(base + start, rec)


def _cat_code(open_ok: bool, mc_ok: bool) -> int:
    return 0 if open_ok and mc_ok else 1 if mc_ok else 2 if open_ok else 3


def _arrow_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("item_uid", pa.string()),
            ("content_hash", pa.string()),
            ("language", pa.string()),
            ("open", pa.struct([("correct", pa.bool_()), ("text", pa.string())])),
            ("shown", pa.struct([("correct", pa.bool_())])),
            ("mc", pa.struct([("correct", pa.bool_())])),
        ]
    )


def load_run(path: Path) -> RunIndex:
    """Index one run folder; every problem found is recorded, never raised."""
    path = Path(path)
    try:
        manifest = read_manifest(path)
    except RunFolderError as exc:
        manifest = None
        problem = [str(exc)]
    else:
        problem = []
    run = RunIndex(path=path, manifest=manifest, problems=problem)
    out = path / OUTCOMES
    if not out.exists():
        run.problems.append(f"{out}: missing")
        return run
    data = out.read_bytes()
    end = data.rfind(b"\n") + 1
    run.torn_tail = end < len(data)
    if run.torn_tail and run.status != "running":
        run.problems.append(f"{out}: torn last line (cut write) ignored")
    kept = list(run.problems)
    if end and not _fast_index(run, data, end):
        run = RunIndex(path=path, manifest=manifest, problems=kept, torn_tail=run.torn_tail)
        run._scan_lines(data[:end], 0)
        run.torn_tail = end < len(data)
    run.good_bytes = end
    return run


def _fast_index(run: RunIndex, data: bytes, end: int) -> bool:
    """pyarrow parse of the complete lines `data[:end]` (no copy); False when the file needs the tolerant
    line-by-line path (a blank, corrupt or duplicate line)."""
    import pyarrow as pa
    import pyarrow.json as pj

    arr = np.frombuffer(data, dtype=np.uint8, count=end)
    ends = np.flatnonzero(arr == 10)
    starts = np.concatenate(([0], ends[:-1] + 1))
    if np.any(ends - starts < 2):  # blank line somewhere
        return False
    longest = int((ends - starts).max()) + 2
    try:
        table = pj.read_json(
            pa.BufferReader(pa.py_buffer(data).slice(0, end)),
            read_options=pj.ReadOptions(block_size=max(1 << 22, 2 * longest)),
            parse_options=pj.ParseOptions(explicit_schema=_arrow_schema(), unexpected_field_behavior="ignore"),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return False
    if table.num_rows != len(starts):
        return False
    uids = table.column("item_uid").to_pylist()
    if any(u is None for u in uids):
        return False
    opened = table.column("open").combine_chunks()
    o = np.asarray(opened.field("correct").fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
    m = np.asarray(
        table.column("mc").combine_chunks().field("correct").fill_null(False).to_numpy(zero_copy_only=False), dtype=bool
    )
    shown = table.column("shown").combine_chunks()
    s = np.asarray(shown.field("correct").fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
    s_present = np.asarray(shown.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    run.offsets = starts.tolist()
    run.n_lines = len(starts)
    run.uids = uids
    run.hashes = [str(h) for h in table.column("content_hash").to_pylist()]
    run.languages = [str(x) for x in table.column("language").to_pylist()]
    run.open_ok = o.tolist()
    run.shown_ok = np.where(s_present, s, -1).tolist()
    run.mc_ok = m.tolist()
    run.categories = np.where(o & m, 0, np.where(m, 1, np.where(o, 2, 3))).tolist()
    run.open_text = [t if t is not None else "" for t in opened.field("text").to_pylist()]
    row_of: dict[str, int] = {}
    for i, u in enumerate(uids):
        if u in row_of:
            run.problems.append(f"{run.path / OUTCOMES}: item {u!r} has more than one outcome line; first kept")
            return False
        row_of[u] = i
    run.row_of = row_of
    return True


@dataclass
class Pairs:
    """Rows of the item list: one per (run, item); `ref` row of the reference run, or NO_REF."""

    run: np.ndarray  # int16 index into Study.runs
    row: np.ndarray  # int32 line index in that run
    ref: np.ndarray  # int32 line index in the run's reference run, or NO_REF
    transition: np.ndarray  # int8: 4 * ref category + category (ref category 4 = none)
    lang: np.ndarray  # int16 index into Study.languages

    @classmethod
    def empty(cls) -> Pairs:
        z = np.zeros(0, dtype=np.int32)
        return cls(z.astype(np.int16), z, z, z.astype(np.int8), z.astype(np.int16))

    def __len__(self) -> int:
        return len(self.run)


def transition_label(code: int) -> str:
    ref, cat = divmod(int(code), 4)
    return ("·" if ref >= 4 else CAT_SHORT[CATEGORIES[ref]]) + "→" + CAT_SHORT[CATEGORIES[cat]]


@dataclass
class Study:
    """Everything the app shows, built by `load_study` (in a worker thread)."""

    sources: list[Path]
    runs: list[RunIndex]
    items: dict[str, dict[str, Any]]
    reference: list[int]  # per run: index of its reference run, or NO_REF
    pairs: Pairs
    problems: list[str]  # found while loading (files, lines, manifests, items)
    languages: list[str]
    pair_problems: list[str] = field(default_factory=list)  # runs that do not pair (rebuilt with the pairs)
    counts: dict[tuple[int, str | None], dict[str, float]] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        """Folder for the sidecar (flags, exports): the study folder, or the runs' parent."""
        src = self.sources[0]
        return (
            src.parent
            if len(self.sources) > 1 or (src / OUTCOMES).exists() or (src / "manifest.json").exists()
            else src
        )

    @property
    def label(self) -> str:
        return " + ".join(s.name for s in self.sources)

    @property
    def all_problems(self) -> list[str]:
        return self.problems + [p for r in self.runs for p in r.problems if p not in self.problems] + self.pair_problems

    def rebuild(self) -> None:
        """Recompute pairs and languages after runs grew (live following)."""
        self.pair_problems = []
        self.languages = sorted({lang for run in self.runs for lang in set(run.languages)})
        self.pairs = build_pairs(self.runs, self.reference, self.pair_problems, self.languages)
        self.counts = self._count()

    def cell_counts(self) -> dict[tuple[int, str | None], dict[str, float]]:
        """Per (run, language) and per (run, None) for all languages: n, open, candidate-shown and MC
        accuracy, recognition-only rate (computed by `rebuild`, in the loading thread). Shown accuracy is
        over the items that have a candidate-shown generation (NaN when none has)."""
        return self.counts

    def _count(self) -> dict[tuple[int, str | None], dict[str, float]]:
        out: dict[tuple[int, str | None], dict[str, float]] = {}
        code = {lang: i for i, lang in enumerate(self.languages)}
        k = len(self.languages)
        for r, run in enumerate(self.runs):
            if not len(run):
                continue
            langs = np.fromiter((code[x] for x in run.languages), dtype=np.int64, count=len(run))
            o, m = np.asarray(run.open_ok, dtype=bool), np.asarray(run.mc_ok, dtype=bool)
            s = np.asarray(run.shown_ok, dtype=np.int8)
            n = np.bincount(langs, minlength=k)
            sums = {
                "open": np.bincount(langs, o, k),
                "shown": np.bincount(langs, s == 1, k),
                "mc": np.bincount(langs, m, k),
                "recog": np.bincount(langs, m & ~o, k),
            }
            over = dict.fromkeys(sums, n) | {"shown": np.bincount(langs, s >= 0, k)}
            for i, lang in enumerate(self.languages):
                if n[i]:
                    out[(r, lang)] = {"n": int(n[i]), **{key: _rate(v[i], over[key][i]) for key, v in sums.items()}}
            out[(r, None)] = {"n": len(run), **{key: _rate(v.sum(), over[key].sum()) for key, v in sums.items()}}
        return out


def _rate(count: float, n: float) -> float:
    return float(count / n) if n else float("nan")


def choose_references(runs: Sequence[RunIndex], direct_pair: bool, problems: list[str]) -> list[int]:
    """Reference run per run: the first run when two runs are paired directly, else the model's dense run."""
    if direct_pair and len(runs) == 2:
        return [NO_REF, 0]
    dense: dict[str, int] = {}
    for i, run in enumerate(runs):
        if run.method == "dense":
            if run.model in dense:
                problems.append(
                    f"model {run.model!r} has more than one dense run ({runs[dense[run.model]].name}, "
                    f"{run.name}); the first is the reference"
                )
            else:
                dense[run.model] = i
    refs = []
    for i, run in enumerate(runs):
        ref = dense.get(run.model, NO_REF)
        refs.append(NO_REF if ref == i or run.manifest is None else ref)
    return refs


def build_pairs(
    runs: Sequence[RunIndex], reference: Sequence[int], problems: list[str], languages: Sequence[str]
) -> Pairs:
    """Item-list rows: every line of every non-reference run, paired with its reference line by item_uid.

    Items whose content hash differs from the reference are left out and reported: those runs do not pair.
    """
    parts_run, parts_row, parts_ref, parts_tr, parts_lang = [], [], [], [], []
    code = {lang: i for i, lang in enumerate(languages)}
    is_ref = set(reference)
    for r, run in enumerate(runs):
        if not len(run) or (r in is_ref and reference[r] == NO_REF):
            continue
        ref_i = reference[r]
        cats = np.asarray(run.categories, dtype=np.int8)
        rows = np.arange(len(run), dtype=np.int32)
        if ref_i == NO_REF:
            refrows = np.full(len(run), NO_REF, dtype=np.int32)
            tr = (16 + cats).astype(np.int8)
        else:
            ref = runs[ref_i]
            refrows = np.fromiter((ref.row_of.get(u, NO_REF) for u in run.uids), dtype=np.int32, count=len(run))
            have = refrows != NO_REF
            hashes_ok = np.fromiter(
                (h == ref.hashes[j] if j != NO_REF else False for h, j in zip(run.hashes, refrows.tolist())),
                dtype=bool,
                count=len(run),
            )
            mismatch = int((have & ~hashes_ok).sum())
            if mismatch:
                problems.append(
                    f"runs {run.name} and {ref.name} do not pair: {mismatch} item(s) have different "
                    "content (content hash); left out"
                )
            if not have.any():
                problems.append(f"runs {run.name} and {ref.name} do not pair: they share no items")
            elif (~have).any() and run.status != "running" and ref.status != "running":
                problems.append(
                    f"runs {run.name} and {ref.name}: {int((~have).sum())} item(s) of {run.name} have no "
                    f"outcome in {ref.name}; left out"
                )
            keep = have & hashes_ok
            rows, refrows, cats = rows[keep], refrows[keep], cats[keep]
            ref_cats = np.asarray(ref.categories, dtype=np.int8)[refrows]
            tr = (4 * ref_cats + cats).astype(np.int8)
        parts_run.append(np.full(len(rows), r, dtype=np.int16))
        parts_row.append(rows)
        parts_ref.append(refrows)
        parts_tr.append(tr)
        langs = np.fromiter((code.get(x, -1) for x in run.languages), dtype=np.int16, count=len(run))
        parts_lang.append(langs[rows])
    if not parts_run:
        return Pairs.empty()
    return Pairs(
        np.concatenate(parts_run),
        np.concatenate(parts_row),
        np.concatenate(parts_ref),
        np.concatenate(parts_tr),
        np.concatenate(parts_lang),
    )


def load_items(runs: Sequence[RunIndex], problems: list[str]) -> dict[str, dict[str, Any]]:
    """Items by uid, from each distinct items.jsonl of the runs (read once per item-set hash)."""
    items: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for run in runs:
        key = str(((run.manifest or {}).get("items") or {}).get("hash") or run.path)
        if key in seen:
            continue
        seen.add(key)
        if not (run.path / ITEMS).exists():
            problems.append(f"{run.path / ITEMS}: missing (questions and gold answers unknown)")
            continue
        try:
            for it in read_items(run.path):
                items.setdefault(str(it.get("item_uid")), it)
        except RunFolderError as exc:
            problems.append(str(exc))
    return items


def load_study(sources: Sequence[Path | str], progress: Callable[[str], None] | None = None) -> Study:
    """Open a study folder (or run folders); never raises for bad data: problems are collected.

    `progress(message)` is called before each step (the app shows it while loading)."""
    srcs = [Path(s) for s in sources]
    problems: list[str] = []
    paths: list[Path] = []
    for src in srcs:
        if not src.exists():
            problems.append(f"{src}: no such study or run folder")
            continue
        found = discover_runs(src)
        if not found:
            problems.append(f"{src}: no run folders here (a run folder holds manifest.json and outcomes.jsonl)")
        paths += found
    runs = []
    for k, path in enumerate(paths, 1):
        if progress:
            progress(f"indexing run {k} of {len(paths)}: {path.name}")
        runs.append(load_run(path))
    if progress:
        progress("reading items and pairing runs")
    items = load_items(runs, problems)
    refs = choose_references(runs, direct_pair=len(srcs) == 2 and len(runs) == 2, problems=problems)
    if runs and all(r == NO_REF for r in refs) and len(runs) > 1:
        problems.append("no dense reference run: items are listed per run, without transitions")
    study = Study(srcs, runs, items, refs, Pairs.empty(), problems, [])
    study.rebuild()
    return study


# ---------------------------------------------------------------- filtering and sorting

SORT_KEYS = ("run", "language", "item", "transition", "gold", "answer", "flag")


@dataclass
class Filter:
    """Parsed `/` query: `lang:de cat:recognition_only trans:BC→RO run:wanda flag` and a regex on text."""

    languages: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    transitions: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    flagged: bool = False
    discordant: bool = False
    regex: re.Pattern[str] | None = None
    text: str = ""

    @classmethod
    def parse(cls, text: str) -> Filter:
        """Raises ValueError with a readable message for an unknown key or a bad regex."""
        f = cls(text=text.strip())
        words = []
        for tok in text.split():
            key, sep, val = tok.partition(":")
            if sep and key in ("lang", "language"):
                f.languages += [v for v in val.split(",") if v]
            elif sep and key in ("cat", "category"):
                for v in val.split(","):
                    full = {s.lower(): c for c, s in CAT_SHORT.items()}.get(v.lower(), v)
                    if full not in CATEGORIES:
                        raise ValueError(f"cat:{v}: unknown category; one of {', '.join(CATEGORIES)} or BC/RO/GO/BW")
                    f.categories.append(full)
            elif sep and key in ("trans", "transition"):
                f.transitions.append(val.replace(">", "→").upper())
            elif sep and key in ("run", "cond", "condition"):
                f.runs.append(val)
            elif tok in ("flag", "flagged"):
                f.flagged = True
            elif tok in ("disc", "discordant"):
                f.discordant = True
            else:
                words.append(tok)
        if words:
            try:
                f.regex = re.compile(" ".join(words), re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"bad regex {' '.join(words)!r}: {exc}") from None
        return f


def select(study: Study, flt: Filter, flagged: set[str]) -> np.ndarray:
    """Indices into study.pairs that pass the filter."""
    p = study.pairs
    mask = np.ones(len(p), dtype=bool)
    if not len(p):
        return np.zeros(0, dtype=np.int64)
    if flt.runs:
        ok_runs = [i for i, r in enumerate(study.runs) if any(s in r.name or s == r.condition for s in flt.runs)]
        mask &= np.isin(p.run, ok_runs)
    if flt.categories:
        codes = [CATEGORIES.index(c) for c in flt.categories]
        mask &= np.isin(p.transition % 4, codes)
    if flt.transitions:
        labels = np.array([transition_label(c) for c in range(20)], dtype=object)
        ok = [c for c in range(20) if any(t in labels[c] for t in flt.transitions)]
        mask &= np.isin(p.transition, ok)
    if flt.discordant:
        mask &= discordant(p)
    if flt.languages:
        mask &= np.isin(p.lang, [i for i, lang in enumerate(study.languages) if lang in flt.languages])
    if flt.flagged:
        keys = [
            r * 2**32 + row
            for r, run in enumerate(study.runs)
            for uid in flagged
            if (row := run.row_of.get(uid)) is not None
        ]
        mask &= np.isin(p.run.astype(np.int64) * 2**32 + p.row, keys)
    idx = np.flatnonzero(mask)
    if flt.regex is not None:
        regex = flt.regex
        idx = np.asarray([i for i in idx.tolist() if regex.search(row_text(study, i))], dtype=np.int64)
    return idx


def discordant(p: Pairs) -> np.ndarray:
    """Rows whose category changed from the reference run (no reference: never discordant)."""
    ref = p.transition // 4
    return (ref < 4) & (ref != p.transition % 4)


def row_text(study: Study, i: int) -> str:
    """The text a regex filter searches: uid, question, gold answer and aliases, the run's answer."""
    p = study.pairs
    run = study.runs[p.run[i]]
    uid = run.uids[p.row[i]]
    item = study.items.get(uid, {})
    return "\n".join(
        [
            uid,
            str(item.get("question", "")),
            str(item.get("answer", "")),
            *map(str, item.get("aliases", []) or []),
            run.open_text[p.row[i]],
        ]
    )


def sort_order(study: Study, idx: np.ndarray, key: str, reverse: bool, flagged: set[str]) -> np.ndarray:
    """`idx` sorted stably by column `key`."""
    p = study.pairs
    if key == "run":
        vals: Any = p.run[idx]
    elif key == "transition":
        vals = p.transition[idx]
    else:

        def val(i: int) -> str:
            run = study.runs[p.run[i]]
            uid = run.uids[p.row[i]]
            if key == "language":
                return run.languages[p.row[i]]
            if key == "item":
                return uid
            if key == "gold":
                return str(study.items.get(uid, {}).get("answer", ""))
            if key == "answer":
                return run.open_text[p.row[i]]
            return "0" if uid in flagged else "1"

        vals = np.array([val(i) for i in idx.tolist()], dtype=object)
    order = np.argsort(vals, kind="stable")
    if reverse:
        order = order[::-1]
    return idx[order]
