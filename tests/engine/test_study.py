"""Study spec parsing: the grid expands as documented and every mistake is one clear error."""

from pathlib import Path

import pytest

from engine.errors import UserError
from engine.study import parse_study, plan_runs

GOOD = """
name = "s"
[items]
source = "bundled"
languages = ["en", "de"]
n_per_language = 5
[[models]]
id = "demo"
[pruning]
methods = ["wanda", "magnitude"]
sparsities = [0.5, 0.7]
patterns = ["2:4"]
[calibration]
nsamples = 8
seqlen = 64
[[conditions]]
method = "sparsegpt"
sparsity = 0.6
"""


def _spec(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "study.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_grid_expansion_and_run_ids(tmp_path):
    study = parse_study(_spec(tmp_path, GOOD))
    ids = [p.run_id for p in plan_runs(study)]
    assert ids == [
        "demo__dense",
        "demo__wanda-s50",
        "demo__wanda-s70",
        "demo__wanda-2of4",
        "demo__magnitude-s50",
        "demo__magnitude-s70",
        "demo__magnitude-2of4",
        "demo__sparsegpt-s60",
    ]
    nm = next(p.condition for p in plan_runs(study) if p.condition.pattern == "2:4")
    assert nm.sparsity == 0.5 and nm.nm == (2, 4)
    assert nm.calibration.nsamples == 8 and nm.calibration.seqlen == 64


def test_overrides_replace_keys(tmp_path):
    study = parse_study(_spec(tmp_path, GOOD), {"items.n_per_language": 2, "items.languages": ["en"]})
    assert study.items.n_per_language == 2 and study.items.languages == ("en",)


@pytest.mark.parametrize(
    "text, message",
    [
        ("[[models]]\nid='demo'\n[items]\nn_per_languag = 3\n", r"unknown key\(s\) n_per_languag in \[items\]"),
        ("[items]\nn_per_language = 3\n", "needs at least one \\[\\[models\\]\\]"),
        (
            "[[models]]\nid='demo'\n[pruning]\nmethods=['wandaa']\nsparsities=[0.5]\n",
            r"\[pruning\]\.methods: unknown method 'wandaa'",
        ),
        (
            "[[models]]\nid='demo'\n[pruning]\nmethods=['wanda']\nsparsities=[1.5]\n",
            "sparsity must be a number in \\(0, 1\\)",
        ),
        ("[[models]]\nid='demo'\n[pruning]\nmethods=['wanda']\npatterns=['4:2']\n", "0 < N < M"),
        ("[[models]]\nid='demo'\n[protocol]\nbatch_size = 'big'\n", "batch_size must be an integer"),
        ("[[models]]\nid='demo'\n[protocol]\ntemperature = inf\n", "temperature .*> 0 and finite"),
        (  # found before the dense run, not when the first pruned run samples its calibration
            "[[models]]\nid='demo'\n[pruning]\nmethods=['wanda']\nsparsities=[0.5]\n",
            r"\[calibration\]\.seqlen: the bundled calibration text is short",
        ),
        ("[[models]]\nid='demo'\n[protocol]\nprobes = 'some'\n", "probes must be one of 'failed', 'all', 'none'"),
        ("[[models]]\nid='demo'\n[protocol]\nguards = ['hedge', 'loops']\n", r"\[protocol\]\.guards: unknown 'loops'"),
        ("[[models]]\nid='demo'\n[protocol]\nguards = 3\n", r"\[protocol\]\.guards: expected a list"),
        ("bogus = 1\n[[models]]\nid='demo'\n", "unknown key\\(s\\) bogus in the top level"),
        ("[[models]]\nid='demo'\nbogus = 1\n", "unknown key\\(s\\) bogus in \\[\\[models\\]\\] #1"),
        ("[[models]\nid='demo'\n", "invalid TOML"),
        (  # a typo for [0.5, 0.6] is not merged into one run without a word
            "[[models]]\nid='demo'\n[pruning]\nmethods=['magnitude']\nsparsities=[0.5, 0.50]\n",
            r"\[pruning\]\.sparsities lists 0\.5 twice",
        ),
        ("[[models]]\nid='demo'\n[pruning]\nmethods=['magnitude', 'magnitude']\nsparsities=[0.5]\n", "methods lists"),
        ("[[models]]\nid='demo'\n[pruning]\nmethods=['magnitude']\npatterns=['2:4', '2:4']\n", "patterns lists '2:4'"),
        (
            "[[models]]\nid='demo'\n[pruning]\nmethods=['magnitude']\nsparsities=[0.5]\n"
            "[[conditions]]\nmethod='magnitude'\nsparsity=0.5\n",
            r"\[\[conditions\]\] #1: condition 'magnitude-s50' is already in the study \(from \[pruning\]\)",
        ),
        (
            "[[models]]\nid='demo'\n[[conditions]]\nmethod='dense'\n",
            r"#1: condition 'dense' is already in the study \(from \[pruning\]\.include_dense, true by default\)",
        ),
        (  # several datasets: one study each, pooled by `prunescope stats A B`
            "[[items]]\nsource='hf:xquad'\n[[items]]\nsource='hf:tydiqa'\n[[models]]\nid='demo'\n",
            r"\[\[items\]\]: a study has one item source .* `prunescope stats STUDY_A STUDY_B`",
        ),
    ],
)
def test_bad_specs_name_the_key(tmp_path, text, message):
    path = _spec(tmp_path, text)
    with pytest.raises(UserError, match=message) as info:
        parse_study(path)
    assert str(path) in str(info.value)


def test_two_models_with_one_run_folder_are_named(tmp_path):
    study = parse_study(_spec(tmp_path, "[[models]]\nid='demo'\n[[models]]\nid='demo'\ndtype='bfloat16'\n"))
    with pytest.raises(UserError, match=r"\[\[models\]\] #1 \(id 'demo'\) and #2 \(id 'demo'\) would both write"):
        plan_runs(study)


def test_guards_default_to_all_and_are_read_in_canonical_order(tmp_path):
    assert parse_study(_spec(tmp_path, GOOD)).protocol.guards == ("hedge", "loop", "short")
    study = parse_study(_spec(tmp_path, GOOD + "[protocol]\nguards = ['short', 'hedge']\n"))
    assert study.protocol.guards == ("hedge", "short")
    assert parse_study(_spec(tmp_path, GOOD + "[protocol]\nguards = []\n")).protocol.guards == ()
    assert study.protocol.to_dict()["guards"] == ["hedge", "short"]  # JSON-equal in a resumed run's identity


def test_missing_spec_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        parse_study(tmp_path / "nope.toml")


def test_bundled_demo_spec_parses():
    from engine.commands import DEMO_SPEC

    study = parse_study(DEMO_SPEC)
    assert next(p.condition.method for p in plan_runs(study)) == "dense"


def test_cli_stops_quietly_when_the_reader_goes_away():
    """`prunescope run … --dry-run | head -1`: no traceback or 'internal error' when stdout's reader is gone."""
    import subprocess
    import sys

    from engine.commands import DEMO_SPEC

    code = "import sys; from engine.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "run", str(DEMO_SPEC), "--out", "unused", "--dry-run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader is gone before the child has imported anything, let alone printed
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and "internal error" not in err and "Traceback" not in err, err


def test_dry_run_shows_calibration_only_where_the_method_reads_it(tmp_path, capsys):
    from engine.cli import main

    assert main(["run", str(_spec(tmp_path, GOOD)), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    plan = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    assert len(plan) == 8
    for run_id, line in plan.items():
        calibrated = run_id.split("__")[1].startswith(("wanda", "sparsegpt"))
        assert ("calibration=bundled n=8×64" in line) == calibrated, line


def test_dry_run_checks_the_items_as_a_run_would(tmp_path, capsys):
    from engine.cli import main

    spec = _spec(tmp_path, "[items]\nlanguages = ['xx', 'en']\n[[models]]\nid = 'demo'\n")
    assert main(["run", str(spec), "--out", str(tmp_path / "out"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert f"{spec}: [items]: " in err and "xx" in err and not (tmp_path / "out").exists()


def test_next_steps_call_prunescope_the_way_it_was_called(tmp_path, capsys, monkeypatch):
    from engine.commands import print_next_steps

    prog = tmp_path / "venv" / "bin" / "prunescope"
    monkeypatch.setattr("sys.argv", [str(prog)])
    monkeypatch.setenv("PATH", str(tmp_path / "elsewhere"))
    print_next_steps(Path("runs/my study"))
    err = capsys.readouterr().err
    assert f"{prog} stats 'runs/my study'" in err and f"{prog} tui 'runs/my study'" in err
    assert f". {prog.parent / 'activate'}" in err
