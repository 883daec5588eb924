"""`prunescope stats` end to end on synthetic studies (through engine.cli.main)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main
from engine.contract.reader import read_json
from engine.runfolder import dumps_line, write_json_atomic
from engine.staging import LOCK
from tests.lock_holder import hold_lock
from tests.synthetic import make_synthetic_study

CONDS = (
    ("dense", 0.0, "unstructured"),
    ("wanda", 0.5, "unstructured"),
    ("wanda", 0.7, "unstructured"),
    ("sparsegpt", 0.5, "unstructured"),
)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cmd") / "study"
    make_synthetic_study(root, n_per_language=25, languages=("en", "de", "sw"), conditions=CONDS, seed=1)
    return root


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["stats", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("fmt", ["table", "markdown", "latex", "csv", "json"])
def test_every_format(study: Path, capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    rc, out, err = _run(capsys, str(study), "--format", fmt, "--no-glmm")
    assert rc == 0, err
    if fmt == "table":
        assert "Recognition-only errors, pruned vs dense" in out and "Holm correction" in out
        assert "Cochran's Q" in out and "homogeneity" in out
    elif fmt == "markdown":
        assert "| model | method | sparsity | pattern | n |" in out and "McNemar mid-p test" in out
    elif fmt == "latex":
        assert out.count("\\begin{tabular}") == out.count("\\bottomrule") >= 4 and "\\toprule" in out
        assert "$\\Delta$" in out and "Δ" not in out and "\\times10^{-" in out
    elif fmt == "csv":
        blocks = [b for b in out.split("# ") if b.strip()]
        first = list(csv.DictReader(io.StringIO(blocks[0].split("\n", 1)[1])))
        assert len(first) == 3 and {"b", "c", "p", "p_adjusted", "delta_low", "recog_high"} <= set(first[0])
    else:
        doc = json.loads(out)
        keys = [t["key"] for t in doc["tables"]]
        assert keys[:2] == ["mcnemar-recognition", "mcnemar-within"] and "cochran-recognition_only" in keys
        rec = doc["tables"][0]["records"][0]
        assert 0 <= rec["p"] <= 1 and rec["n"] == 75 and any("m = 3" in n for n in doc["tables"][0]["notes"])


@pytest.mark.parametrize(
    ("tests", "extra", "keys"),
    [
        ("shown,open", [], ["mcnemar-shown", "mcnemar-open"]),
        ("within", ["--no-glmm"], ["mcnemar-within"]),
        (
            "recognition",
            ["--no-glmm"],
            [
                "mcnemar-recognition",
                "mcnemar-recognition-language",
                "languages-recognition",
                "cochran-recognition_only",
                "robustness-matching",
                # the paper's analyses come with recognition
                "transitions",
                "ro-denominators",
                "demotion",
                "recovery",
                "recovery-paired",
                "rank-shift",
                "ladder",
                "model-size",
                "datasets",
            ],
        ),
        ("open", ["--glmm-formula", "open_correct ~ condition + (1|item)"], ["mcnemar-open", "glmm"]),
    ],
)
def test_the_test_selection_decides_every_table(
    study: Path, capsys: pytest.CaptureFixture[str], tests: str, extra: list[str], keys: list[str]
) -> None:
    rc, out, err = _run(capsys, str(study), "--test", tests, "--format", "json", *extra)
    assert rc == 0, err
    assert [t["key"] for t in json.loads(out)["tables"]] == keys


def test_piped_tables_are_not_wrapped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "s"
    name = "HuggingFaceTB/SmolLM2-135M-Instruct-with-a-long-model-name"
    make_synthetic_study(
        root, n_per_language=6, languages=("en", "de"), conditions=CONDS, models=((name, 135_000_000),)
    )
    rc, out, err = _run(capsys, str(root), "--no-glmm")
    assert rc == 0 and "--format csv, markdown" in err
    rows = [line for line in out.splitlines() if line.startswith("│")]
    # Every table opens with the model column: a wrapped cell would leave a row without the whole name.
    assert len(rows) > 10 and all(f"│ {name} │" in row for row in rows)
    assert max(map(len, out.splitlines())) > 250


def test_out_dir_is_reproducible_with_figures(study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    rc, _, err = _run(capsys, str(study), "--out", str(out), "--format", "markdown", "--by", "language,method,sparsity")
    assert rc == 0, err
    for name in ("recognition_vs_sparsity", "first_token_rank", "glmm_forest"):
        assert (out / "figures" / f"{name}.pdf").stat().st_size > 1000
        assert (out / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    first = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    md = first[Path("REPORT.md")].decode()
    assert "Mixed-effects logistic regression" in md and "conditionwanda-s70" in md
    assert "## Reporting sentences" in md and "two-sided McNemar mid-p test" in md
    rc, _, _ = _run(capsys, str(study), "--out", str(out), "--format", "markdown", "--by", "language,method,sparsity")
    again = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert again[Path("REPORT.md")] == first[Path("REPORT.md")]
    for name in ("tables.tex", "figures/recognition_vs_sparsity.pdf", "figures/first_token_rank.png"):
        assert again[Path(name)] == first[Path(name)], name


def test_out_holds_one_report_whole(
    study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A report with fewer tables leaves no table of the earlier one in csv/ or tex/; a stopped
    `stats --out` leaves the earlier report as it was, and what a killed one left is cleared."""
    from stats import report

    out = tmp_path / "report"
    assert _run(capsys, str(study), "--no-glmm", "--out", str(out))[0] == 0
    assert (out / "csv" / "transitions.csv").exists() and (out / "tex" / "transitions.tex").exists()
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def stopped(*a: object, **k: object) -> str:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(report, "render_csv", stopped)  # the last files written: everything else is made by then
        assert _run(capsys, str(study), "--no-glmm", "--test", "open", "--out", str(out))[0] == 130  # interrupted
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    (out / ".stats-killed").mkdir()  # a SIGKILLed one's work folder: its lock file, held by nobody now
    (out / ".stats-killed" / LOCK).touch()
    (out / ".stats-running").mkdir()  # the work folder of a `stats --out` running in another process
    holder = hold_lock(out / ".stats-running" / LOCK)
    try:
        assert _run(capsys, str(study), "--no-glmm", "--test", "open", "--out", str(out))[0] == 0
        assert [p.name for p in out.glob(".stats-*")] == [".stats-running"]
    finally:
        holder.kill()
        holder.wait()
    assert not (out / "csv" / "transitions.csv").exists() and not (out / "tex" / "transitions.tex").exists()
    assert {p.stem for p in (out / "csv").iterdir()} == {p.stem for p in (out / "tex").iterdir()} == {"mcnemar-open"}


def test_empty_cell_is_flagged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "s"
    make_synthetic_study(root, n_per_language=8, languages=("en", "sw"), conditions=CONDS[:2])
    run = root / "tiny-llama__wanda-s50"
    manifest = read_json(run / "manifest.json")
    manifest["status"] = "running"
    write_json_atomic(run / "manifest.json", manifest)
    lines = (run / "outcomes.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (run / "outcomes.jsonl").write_text("".join(x for x in lines if '"language":"sw"' not in x), encoding="utf-8")
    rc, out, err = _run(capsys, str(root), "--by", "language,condition", "--format", "json", "--no-glmm")
    assert rc == 0, err
    recs = json.loads(out)["tables"][0]["records"]
    sw = next(r for r in recs if r["language"] == "sw")
    assert sw["n"] == 0 and sw["p"] is None and "empty cell" in sw["flag"]
    assert any("excluded" in n for n in json.loads(out)["tables"][0]["notes"])


def test_data_strings_stay_inert(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "s"
    make_synthetic_study(
        root,
        n_per_language=6,
        languages=("en",),
        conditions=CONDS[:2],
        models=(("evil[bold red]_&x\x1b[31m", 135_000_000),),
    )
    rc, out, err = _run(capsys, str(root), "--no-glmm")
    assert rc == 0, err
    assert "\x1b[31m" not in out and "\\x1b" in out and "[bold red]" in out
    rc, out, _ = _run(capsys, str(root), "--no-glmm", "--format", "latex")
    assert "evil[bold red]\\_\\&x\\textbackslash{}x1b[31m" in out


def test_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    rc, _, err = _run(capsys, str(tmp_path / "empty"))
    assert rc == 2 and "no run folders" in err
    root = tmp_path / "s"
    make_synthetic_study(root, n_per_language=4, languages=("en",), conditions=CONDS[:2])
    path = root / "tiny-llama__wanda-s50" / "outcomes.jsonl"
    recs = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    path.write_text("".join(dumps_line(r) for r in recs[:-1]), encoding="utf-8")
    rc, _, err = _run(capsys, str(root), "--no-glmm")
    assert rc == 2 and "complete but 1 of its 4 items has no outcome line" in err and recs[-1]["item_uid"] in err
    rc, _, err = _run(capsys, str(root), "--by", "colour")
    assert rc == 2 and "--by" in err
    path.write_text("".join(dumps_line(r) for r in recs), encoding="utf-8")
    rc, _, err = _run(capsys, str(root), "--glmm-formula", "recognition_only ~ colour + (1|item)")
    assert rc == 2 and "colour" in err


def test_bad_numbers_and_a_folder_for_a_file_are_one_line_naming_the_flag(
    study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--boot 0 used to run without bootstrap CIs, --boot 1e11 and --seed -1 to end in an internal
    error, a level past 1 − 1e-15 in a root finder's; `glmm --data DIR` said 'no such file'."""
    for flag, value, expected in (
        ("--boot", "0", "1 to 1,000,000"),
        ("--boot", "-5", "1 to 1,000,000"),
        ("--boot", "100000000000", "1 to 1,000,000"),
        ("--seed", "-1", "≥ 0"),
        ("--level", "0.9999999999999999", "from 0.5 to 0.999999"),
        ("--level", "1e-320", "from 0.5 to 0.999999"),
    ):
        rc, _, err = _run(capsys, str(study), "--no-glmm", flag, value)
        assert rc == 2 and err.startswith(f"prunescope stats: error: {flag} must be") and expected in err, err
        assert err.count("\n") == 1 and "internal" not in err
    with pytest.raises(SystemExit):
        _run(capsys, str(study), "--glmm-backend", "lme5")  # refused before the analysis, not after it
    assert "--glmm-backend: invalid choice: 'lme5'" in capsys.readouterr().err
    rc = main(["glmm", "--data", str(tmp_path), "--formula", "y ~ x + (1|g)"])
    err = capsys.readouterr().err
    assert (
        rc == 2
        and err
        == f"prunescope glmm: error: --data {tmp_path}: a folder; expected a table file (.csv, .csv.gz or .parquet)\n"
    )


def test_import_stats_is_torch_free() -> None:
    code = (
        "import sys, stats, stats.load, stats.analysis, stats.commands, stats.report, stats.figures, "
        "stats.mcnemar, stats.power, stats.bootstrap, stats.strata, stats.cochran\n"
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "import importlib; importlib.reload(stats)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
    cheap = (
        "import sys, stats.commands\n"
        "heavy = [m for m in ('torch', 'matplotlib', 'scipy', 'pandas', 'statsmodels') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", cheap], check=True, cwd=Path(__file__).resolve().parents[2])


def test_every_comparison_and_did(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _run(
        capsys,
        str(study),
        "--test",
        "recognition,open,mc,shown,within",
        "--format",
        "json",
        "--no-glmm",
        "--did",
        "sw,en",
        "--boot",
        "500",
        "--seed",
        "3",
        "--adjust",
        "bh",
        "--method",
        "exact",
    )
    assert rc == 0, err
    doc = json.loads(out)
    keys = [t["key"] for t in doc["tables"]]
    assert keys[:5] == ["mcnemar-recognition", "mcnemar-open", "mcnemar-mc", "mcnemar-shown", "mcnemar-within"]
    open_rec = doc["tables"][1]["records"][-1]  # wanda-s70: open accuracy drops under pruning
    assert open_rec["sparsity"] == 0.7 and open_rec["delta"] < 0 and open_rec["b"] < open_rec["c"]
    assert any("Benjamini–Hochberg" in n for n in doc["tables"][0]["notes"])
    assert any("exact conditional" in n for n in doc["tables"][0]["notes"])
    did = doc["tables"][keys.index("did")]
    assert len(did["records"]) == 3 and all(r["seed"] == 3 and r["n_boot"] == 500 for r in did["records"])
    rc, out2, _ = _run(
        capsys,
        str(study),
        "--test",
        "recognition",
        "--format",
        "json",
        "--no-glmm",
        "--did",
        "sw,en",
        "--boot",
        "500",
        "--seed",
        "3",
    )
    assert json.loads(out2)["tables"][-1]["records"] == did["records"]
    rc, _, err = _run(capsys, str(study), "--no-glmm", "--did", "sw,xx")
    assert rc == 2 and "xx" in err


def test_two_models_and_dense_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "two"
    make_synthetic_study(
        root,
        n_per_language=10,
        languages=("en", "de"),
        conditions=CONDS[:2],
        models=(("org/small", 135_000_000), ("org/large", 1_700_000_000)),
    )
    rc, out, err = _run(capsys, str(root), "--format", "json", "--by", "model,language,condition")
    assert rc == 0, err
    doc = json.loads(out)
    recs = doc["tables"][0]["records"]
    assert sorted({r["model"] for r in recs}) == ["org/large", "org/small"] and all(r["n"] == 10 for r in recs)
    glmm = next(t for t in doc["tables"] if t["key"] == "glmm")
    # two sizes: size is a numeric axis with its interaction with sparsity, not the model factor
    assert "recognition_only ~ condition + log_params + sparsity:log_params + language + (1|item)" in glmm["notes"][0]
    dense = tmp_path / "dense"
    make_synthetic_study(dense, n_per_language=10, languages=("en",), conditions=CONDS[:1])
    rc, out, err = _run(capsys, str(dense), "--format", "markdown", "--no-glmm")
    assert rc == 0, err
    assert "(no rows)" in out and "Multiple choice vs open generation" in out


def test_stats_and_glmm_commands_are_registered() -> None:
    from engine.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert {"stats", "glmm"} <= set(sub.choices)


def test_diff_ci_option(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, str(study), "--no-glmm", "--format", "json", "--diff-ci", "scas")
    assert rc == 0
    doc = json.loads(out)
    table = next(t for t in doc["tables"] if t["key"] == "mcnemar-recognition")
    assert any("skewness-corrected asymptotic score (SCAS) CI" in n for n in table["notes"])
    rc, _, err = _run(capsys, str(study), "--no-glmm", "--diff-ci", "exactish")
    assert rc == 2 and "--diff-ci" in err and "scas" in err


def test_markdown_starts_with_a_plain_summary(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from stats.load import load_study

    rc, out, _ = _run(capsys, str(study), "--no-glmm", "--format", "markdown")
    assert rc == 0
    summary = out.split("## Summary\n", 1)[1].split("\n## ", 1)[0]
    df = load_study(study)
    dense = df[df["method"] == "dense"]
    pruned = df[df["method"] != "dense"].groupby("run_id", observed=True)
    assert f"open generation {100 * dense['open_correct'].mean():.1f}%" in summary
    assert f"multiple choice {100 * dense['mc_correct'].mean():.1f}%" in summary
    assert "chance with 4 options: 25.0%" in summary
    lo, hi = pruned["open_correct"].mean().min(), pruned["open_correct"].mean().max()
    assert f"3 pruned runs: open generation {100 * lo:.1f}%–{100 * hi:.1f}%" in summary
    table = json.loads(_run(capsys, str(study), "--no-glmm", "--format", "json")[1])["tables"][0]
    n_sig = sum(r["p_adjusted"] < 0.05 for r in table["records"])
    assert (
        f"{n_sig} significant at α = 0.05 with Holm's correction" in summary
        if n_sig
        else "no cell is significant" in summary
    )


def test_a_run_left_unpaired_is_named_in_every_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "s"
    make_synthetic_study(root, n_per_language=4, languages=("en",), conditions=CONDS[:2])
    manifest = root / "tiny-llama__wanda-s50" / "manifest.json"
    m = read_json(manifest)
    write_json_atomic(manifest, {**m, "items": {**m["items"], "hash": "sha256:" + "0" * 64}})  # edited by hand
    rc, _, err = _run(capsys, str(root), "--no-glmm", "--format", "csv")
    assert rc == 0 and "left out of the paired tests: tiny-llama__wanda-s50: the dense run" in err
    assert "ran another item set" in err and "prunescope validate" in err


def test_out_is_checked_before_the_analysis(study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "report").write_text("in the way", encoding="utf-8")
    rc, out, err = _run(capsys, str(study), "--no-glmm", "--out", str(tmp_path / "report"))
    assert rc == 2 and "exists and is not a folder" in err and out == ""  # no tables computed and printed first


RACE = """
import sys
from pathlib import Path
import stats.commands as sc

def quick(out, result, title, level):
    written = []
    for d in ("figures", "csv", "tex"):
        (out / d).mkdir()
        (out / d / "a.txt").write_text(sys.argv[2])
        written.append(out / d / "a.txt")
    (out / "REPORT.md").write_text(sys.argv[2])
    return written + [out / "REPORT.md"]

sc._write_all = quick
errors = 0
for _ in range(150):
    try:
        sc.write_outputs(Path(sys.argv[1]), None, "t", 0.95)
    except Exception as exc:
        errors += 1
        print(type(exc).__name__, exc)
print("errors", errors)
"""


def test_two_stats_out_into_one_folder_do_not_break_each_other(tmp_path: Path) -> None:
    """Two `stats --out` moving their reports into one folder at once failed (Directory not empty,
    FileNotFoundError) or left one report's REPORT.md beside the other's csv/; the moves now take turns."""
    out = tmp_path / "report"
    out.mkdir()
    root = Path(__file__).resolve().parents[2]
    procs = [
        subprocess.Popen([sys.executable, "-c", RACE, str(out), tag], cwd=root, stdout=subprocess.PIPE, text=True)
        for tag in ("A", "B")
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(o.strip().endswith("errors 0") for o in outputs), outputs
    report = (out / "REPORT.md").read_text()
    assert all((out / d / "a.txt").read_text() == report for d in ("figures", "csv", "tex"))
    assert not list(out.glob(".stats-*"))
