"""Find references in the repository's text files to paths that are not in it.

Checked, in every tracked text file: names of Markdown files (`docs/pruning.md`, `README.md`, a
bare `stats.md`), which must exist relative to the file or to the repository root, and section
references (`docs/statistics.md §4.2`, and a bare `§3` inside docs/, meaning the same file), whose
numbered heading must exist; paths known to lie outside (`../shared`, `/work/...`). In Markdown
files also: link targets and their `#anchors`, and backticked repository paths (`engine/cli.py`,
`engine/schema/{item,outcome}.schema.json`, `tests/x.py:function`).
"""

from __future__ import annotations

import functools
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

TEXT_SUFFIXES = {".py", ".md", ".toml", ".R", ".tcss", ".cfg", ".txt", ".sh", ".yml", ".yaml"}
TEXT_NAMES = {"Makefile", "run", ".gitignore"}
SKIP_DIRS = {".git", ".venv", "__pycache__", ".mypy_cache", ".pytest_cache", ".hypothesis", "runs", "out"}
TOP_DIRS = ("engine", "stats", "tui", "tests", "bench", "docs", "sample_runs", ".ci")
# Names of files the product writes (they are outputs, not references to files in the repository).
OUTPUT_NAMES = {"REPORT.md"}
# This checker and its test name the very references they look for.
SELF = {"tests/repo_refs.py", "tests/test_repository.py"}
OUTSIDE = re.compile(r"\.\./shared|/work/")

_MD_NAME = re.compile(r"(?<![\w./-])((?:\.{0,2}/)?[\w./-]*?[\w-]+\.md)\b")
_SECTION = re.compile(r"§(\d+(?:\.\d+)*)")
_SEPARATOR = re.compile(r"^[\s`,;–-]*(?:(?:and|or)\s*)?[\s`,;–-]*$")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_TICKED_PATH = re.compile(rf"`((?:{'|'.join(re.escape(d) for d in TOP_DIRS)})/[^`\s]*)`")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")


def repository_files(root: Path) -> list[Path]:
    """Text files of the repository: git's tracked and unignored files, or a walk without git."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        paths = [root / p for p in out]
    except (OSError, subprocess.CalledProcessError):
        paths = [p for p in root.rglob("*") if not SKIP_DIRS.intersection(p.relative_to(root).parts)]
    return sorted(p for p in paths if p.is_file() and (p.suffix in TEXT_SUFFIXES or p.name in TEXT_NAMES))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\s-]", "", heading.strip().lower())
    return re.sub(r"\s", "-", text)


@functools.cache
def headings(path: Path) -> tuple[set[str], set[str]]:
    """(anchors, section numbers) of a Markdown file; '## 4.2 Title' and '## 4. Title' give '4.2', '4'."""
    anchors, numbers = set(), set()
    in_code = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        m = None if in_code else _HEADING.match(line)
        if m:
            anchors.add(slug(m.group(2)))
            num = re.match(r"(\d+(?:\.\d+)*)\.?\s", m.group(2))
            if num:
                numbers.add(num.group(1))
    return anchors, numbers


def _resolve(name: str, base: Path, root: Path) -> Path | None:
    for candidate in (base / name, root / name):
        if candidate.exists():
            return candidate
    return None


def _expand_braces(path: str) -> list[str]:
    m = re.search(r"\{([^}]*)\}", path)
    if not m:
        return [path]
    return [p for part in m.group(1).split(",") for p in _expand_braces(path[: m.start()] + part + path[m.end() :])]


def problems(root: Path, files: list[Path] | None = None) -> Iterator[str]:
    """Every reference to something not in the repository, as 'file:line: what'."""
    for path in repository_files(root) if files is None else files:
        rel = path.relative_to(root)
        if rel.as_posix() in SELF:
            continue
        in_docs = rel.parts[0] == "docs" and path.suffix == ".md"
        for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            where = f"{rel}:{lineno}"
            if OUTSIDE.search(line):
                yield f"{where}: refers outside the repository ({OUTSIDE.search(line).group(0)})"
            yield from _line_refs(line, where, path, root, in_docs)
            if path.suffix == ".md":
                yield from _markdown_refs(line, where, path, root)


def _line_refs(line: str, where: str, path: Path, root: Path, in_docs: bool) -> Iterator[str]:
    """Markdown file names and the § sections that follow them (in docs/, a bare § is the file's own)."""
    tokens = sorted(
        [(m.start(), m.end(), "file", m.group(1)) for m in _MD_NAME.finditer(line)]
        + [(m.start(), m.end(), "section", m.group(1)) for m in _SECTION.finditer(line)]
    )
    own = path if in_docs else None
    target, last_end = own, 0
    for start, end, kind, value in tokens:
        if kind == "file":
            target = _resolve(value, path.parent, root)
            if target is None and Path(value).name not in OUTPUT_NAMES:
                yield f"{where}: {value} is not in the repository"
        else:
            if not _SEPARATOR.match(line[last_end:start]):
                target = own  # not part of a list like 'x.md §2, §3': a section of this file
            if target is not None and value not in headings(target)[1]:
                yield f"{where}: {target.relative_to(root)} has no section §{value}"
        last_end = end


def _markdown_refs(line: str, where: str, path: Path, root: Path) -> Iterator[str]:
    for m in _LINK.finditer(line):
        target = m.group(1)
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue  # http:, https:, mailto:
        file_part, _, anchor = target.partition("#")
        resolved = path if not file_part else path.parent / file_part
        if not resolved.exists():
            yield f"{where}: link target {target} is not in the repository"
        elif anchor and resolved.suffix == ".md" and anchor not in headings(resolved)[0]:
            yield f"{where}: link target {target}: no heading with anchor #{anchor}"
    for m in _TICKED_PATH.finditer(line):
        ref = m.group(1)
        if any(c in ref for c in "<>*"):
            continue  # a pattern or a placeholder, not a path
        for one in _expand_braces(ref):
            one = one.split(":")[0].rstrip(".,")
            if not (root / one).exists():
                yield f"{where}: {one} is not in the repository"
