"""prune_model's report, the pruned-weights cache, `prunescope prune` / `perplexity`, and bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from engine.config import CalibrationSpec, Condition
from engine.errors import UserError
from engine.pruning.apply import prune_model
from engine.pruning.calibration import bundled_texts
from engine.staging import LOCK
from tests.engine.pruning.conftest import CALIB
from tests.engine.pruning.prune_fixtures import tiny_model

pytestmark = pytest.mark.usefixtures("single_thread")


def test_report_contents(tokenizer: Any) -> None:
    model = tiny_model("llama")
    rep = prune_model(model, tokenizer, Condition("sparsegpt", 0.0, "2:4", CALIB))
    mods = rep["modules"]
    assert len(mods) == 14 and rep["n_layers"] == 2 and rep["architecture"] == "LlamaForCausalLM"
    q = mods["model.layers.0.self_attn.q_proj"]
    assert q["shape"] == [64, 64] and q["sparsity"] == 0.5 and q["nm_valid"] is True
    assert q["loss"] > 0 and q["retries"] == 0 and q["damping"] == pytest.approx(0.01)
    assert mods["model.layers.0.self_attn.k_proj"]["group"] == "model.layers.0.self_attn.q_proj"
    assert mods["model.layers.1.mlp.up_proj"]["group"] == "model.layers.1.mlp.gate_proj"
    assert rep["nm_valid"] is True and rep["decoder_linear_sparsity"] == 0.5
    assert 0 < rep["all_params_sparsity"] < rep["decoder_linear_sparsity"]
    assert rep["sparsegpt_total_loss"] == pytest.approx(sum(m["loss"] for m in mods.values()))
    cal = rep["calibration"]
    assert cal["nsamples"] == 4 and cal["seqlen"] == 32 and len(cal["ids_sha256"]) == 64
    assert set(rep["timings"]) >= {"capture_s", "statistics_s", "prune_s", "propagate_s", "total_s"}
    assert rep["cache"] == {"hit": False, "key": None} and rep["damping_retries"] == 0
    json.dumps(rep)  # JSON-serialisable for the manifest


def test_cache_hit_loads_identical_weights_without_pruning(
    tokenizer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cond = Condition("wanda", 0.5, "unstructured", CALIB)
    first = tiny_model("qwen2")
    rep1 = prune_model(first, tokenizer, cond, cache_dir=tmp_path)
    assert rep1["cache"]["hit"] is False and Path(rep1["cache"]["dir"], "weights.safetensors").is_file()
    import engine.pruning.apply as apply_mod

    def no_pruning(*a: Any, **k: Any) -> None:
        raise AssertionError("pruned again instead of loading the cache")

    monkeypatch.setattr(apply_mod, "prune_layers", no_pruning)
    second = tiny_model("qwen2")
    rep2 = prune_model(second, tokenizer, cond, cache_dir=tmp_path)
    assert rep2["cache"]["hit"] is True and rep2["cache"]["key"] == rep1["cache"]["key"]
    assert rep2["modules"] == rep1["modules"]
    for (n, a), (_, b) in zip(first.named_parameters(), second.named_parameters()):
        assert torch.equal(a, b), n
    assert second.lm_head.weight is second.model.embed_tokens.weight
    # a different condition or different weights is a different entry
    monkeypatch.undo()
    other = prune_model(
        tiny_model("qwen2"),
        tokenizer,
        Condition("wanda", 0.25, "unstructured", CALIB),
        cache_dir=tmp_path,
    )
    assert other["cache"]["hit"] is False and other["cache"]["key"] != rep1["cache"]["key"]
    reseeded = prune_model(tiny_model("qwen2", seed=9), tokenizer, cond, cache_dir=tmp_path)
    assert reseeded["cache"]["hit"] is False


@pytest.mark.parametrize("arch", ["qwen2", "gpt2"])
def test_prune_command_writes_checkpoint_that_reloads_with_identical_logits(
    arch: str, tokenizer: Any, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM

    from engine.cli import main

    src = tmp_path / "src"
    tiny_model(arch).save_pretrained(src)
    tokenizer.save_pretrained(src)
    out = tmp_path / "out"
    rc = main(
        [
            "prune",
            str(src),
            "--method",
            "wanda",
            "--sparsity",
            "0.5",
            "--nsamples",
            "4",
            "--seqlen",
            "32",
            "--device",
            "cpu",
            "--no-cache",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    report = json.loads((out / "pruning_report.json").read_text())
    assert report["decoder_linear_sparsity"] == 0.5 and report["calibration"]["ids_sha256"]
    in_memory = tiny_model(arch)
    prune_model(in_memory, tokenizer, Condition("wanda", 0.5, "unstructured", CALIB))
    reloaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    ids = torch.randint(0, 300, (2, 12))
    with torch.no_grad():
        assert torch.equal(reloaded(input_ids=ids).logits, in_memory(input_ids=ids).logits)
    assert reloaded.get_output_embeddings().weight is reloaded.get_input_embeddings().weight
    assert main(["prune", str(src), "--method", "wanda", "--out", str(out)]) == 2  # refuses a non-empty --out


def test_perplexity_command(tokenizer: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli import main

    src = tmp_path / "m"
    tiny_model("llama").save_pretrained(src)
    tokenizer.save_pretrained(src)
    text = tmp_path / "t.txt"
    text.write_text(" ".join(bundled_texts()[:2]), encoding="utf-8")
    assert main(["perplexity", str(src), "--text", str(text), "--seqlen", "64", "--device", "cpu"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["windows"] >= 2 and res["ppl"] > 1


@pytest.mark.parametrize(
    "condition, message",
    [
        (Condition("wanda", 1.0, "unstructured", CALIB), r"\[0, 1\)"),
        (Condition("wanda", -0.5, "unstructured", CALIB), r"\[0, 1\)"),
        (Condition("magnitude", 0.0, "5:4"), "cannot exceed"),
        (Condition("magnitude", 0.0, "3:5"), "divisible by 5"),
        (Condition("magnitude", 0.5, "1:4"), "conflicts with pattern"),
        (Condition("magnitude", 0.5, "two:four"), "expected 'unstructured' or N:M"),
        (Condition("dense"), "not a pruning method"),
        (
            Condition("wanda", 0.5, "unstructured", CalibrationSpec(source="bundled", nsamples=2, seqlen=100_000)),
            "no document longer than seqlen=100000",
        ),
    ],
)
def test_bad_input_is_a_user_error(condition: Condition, message: str, tokenizer: Any) -> None:
    with pytest.raises(UserError, match=message):
        prune_model(tiny_model("llama"), tokenizer, condition)


def test_a_model_spread_over_devices_is_refused(tokenizer: Any) -> None:
    """Layers of a device_map over several GPUs cannot be pruned one at a time on one device."""
    model = tiny_model("llama")
    model.hf_device_map = {"model.embed_tokens": 0, "model.layers.0": 0, "model.layers.1": 1, "lm_head": 1}
    with pytest.raises(UserError, match=r"spread over 2 devices by its device_map \(0, 1\)"):
        prune_model(model, tokenizer, Condition("magnitude", 0.5))


def _make_indefinite(real: Any, scale: float) -> Any:
    def factor(h: torch.Tensor, percdamp: float = 0.01, **kw: Any) -> Any:
        h = h.clone()
        a = scale * h.diagonal().mean()
        h[0, 1] = h[1, 0] = a  # indefinite until enough dampening is added
        return real(h, percdamp, **kw)

    return factor


def test_cholesky_retries_reported_and_failure_past_cap_is_a_user_error(
    tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.pruning.algorithms as alg

    real = alg.factor_hessian
    monkeypatch.setattr(alg, "factor_hessian", _make_indefinite(real, 3.0))
    rep = prune_model(tiny_model("llama"), tokenizer, Condition("sparsegpt", 0.5, "unstructured", CALIB))
    assert rep["damping_retries"] > 0
    retried = [m for m in rep["modules"].values() if m["retries"]]
    assert retried and all("Cholesky failed" in w for m in retried for w in m["warnings"])
    assert any("Cholesky failed" in w for w in rep["warnings"])
    monkeypatch.setattr(alg, "factor_hessian", _make_indefinite(real, 1e9))
    with pytest.raises(UserError, match=r"Cholesky.*model\.layers\.0\.self_attn\.q_proj"):
        prune_model(tiny_model("llama"), tokenizer, Condition("sparsegpt", 0.5, "unstructured", CALIB))


@pytest.mark.parametrize("terminal", [False, True], ids=["piped", "terminal"])
def test_prune_command_shows_one_bar_on_a_terminal_and_nothing_otherwise(
    terminal: bool, tokenizer: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from rich.console import Console

    import engine.terminal
    from engine.cli import main

    screen = io.StringIO()
    if terminal:
        monkeypatch.setattr(engine.terminal, "stderr_console", lambda: Console(file=screen, force_terminal=True))
    src = tmp_path / "src"
    tiny_model("llama").save_pretrained(src)
    tokenizer.save_pretrained(src)
    args = ["prune", str(src), "--method", "wanda", "--nsamples", "4", "--seqlen", "32", "--device", "cpu"]
    assert main([*args, "--no-cache", "--out", str(tmp_path / "out")]) == 0
    out, err = capsys.readouterr()
    assert "wanda unstructured sparsity 0.5" in out and "layer" not in err and "pruning" not in err
    shown = screen.getvalue()
    assert ("pruning wanda" in shown and "2/2" in shown and "layers" in shown) if terminal else shown == ""


def test_prune_layers_reports_each_layer_done() -> None:
    from engine.pruning.driver import PruneSettings, prune_layers

    calls: list[tuple[int, int]] = []
    prune_layers(tiny_model("llama"), PruneSettings("magnitude", 0.5), None, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(0, 2), (1, 2), (2, 2)]


def _prune_argv(src: Path, out: Path) -> list[str]:
    return ["prune", str(src), "--method", "magnitude", "--sparsity", "0.5", "--device", "cpu", "--out", str(out)]


def test_a_stopped_prune_leaves_no_half_model_at_out(
    tokenizer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The pruned model is saved beside --out and renamed once whole: stopped while saving, --out is
    not there (and the same command works next time); a partial folder left by a killed prune is removed
    by the next prune there; a model folder without its tokenizer is named before anything loads."""
    from engine.cli import main
    from engine.models import check_model_folder

    src = tmp_path / "src"
    tiny_model("llama").save_pretrained(src)
    tokenizer.save_pretrained(src)
    out = tmp_path / "out"
    tok_cls = type(tokenizer)

    def stopped(*a: Any, **k: Any) -> None:
        raise KeyboardInterrupt  # the save stopped after the weights were written

    with monkeypatch.context() as m:
        m.setattr(tok_cls, "save_pretrained", stopped)
        assert main(_prune_argv(src, out)) == 130  # "interrupted"
    assert not out.exists() and not list(tmp_path.glob(".out.partial-*"))
    killed = tmp_path / ".out.partial-x"  # what a SIGKILL leaves: its lock file, held by nobody now
    killed.mkdir()
    (killed / "config.json").write_text("{}")
    (killed / LOCK).touch()
    assert main(_prune_argv(src, out)) == 0
    assert "the partial output of a prune that was stopped" in capsys.readouterr().err
    assert not killed.exists() and (out / "pruning_report.json").is_file() and (out / "tokenizer.json").is_file()
    check_model_folder(out)
    (out / "tokenizer.json").unlink()
    (out / "tokenizer_config.json").unlink()
    with pytest.raises(UserError, match="no tokenizer"):
        check_model_folder(out)
