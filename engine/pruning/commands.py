"""`prunescope prune` and `prunescope perplexity` (heavy imports only inside the commands)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from engine.errors import UserError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "prune",
        help="prune a model (Wanda, SparseGPT, magnitude) and save it as a normal checkpoint",
        description="Prune MODEL layer by layer and write a Hugging Face checkpoint (dense weights "
        "with zeros) plus pruning_report.json to --out.",
    )
    p.add_argument("model", metavar="MODEL", help="hub id, local folder, .gguf file, or 'demo'")
    p.add_argument("--method", required=True, choices=("wanda", "sparsegpt", "magnitude"))
    p.add_argument(
        "--sparsity", type=float, default=None, help="fraction pruned, in [0, 1) (default 0.5; N:M implies it)"
    )
    p.add_argument("--pattern", default="unstructured", help="'unstructured' or N:M (N kept of every M), e.g. 2:4")
    p.add_argument(
        "--calibration",
        default="bundled",
        help="'bundled', a .jsonl/.jsonl.gz/.txt/.npy/.pt/.safetensors file, hf:NAME[:CONFIG] or "
        "hf:NAME:DATA_FILE (e.g. hf:allenai/c4:en/c4-train.00000-of-01024.json.gz)",
    )
    p.add_argument("--nsamples", type=int, default=128)
    p.add_argument("--seqlen", type=int, default=2048)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--reference-compatible", action="store_true", help="reproduce the reference code's counting exactly"
    )
    p.add_argument("--batch-size", type=int, default=8, help="calibration sequences per forward pass")
    p.add_argument("--dtype", default="float32", help="model dtype for loading and forwards (statistics are fp32)")
    p.add_argument("--device", default="auto", help="where each layer is pruned: auto, cpu, cuda, cuda:1 …")
    p.add_argument("--cache-dir", type=Path, default=None, help="pruned-weights cache (default: the user cache)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the pruned-weights cache")
    p.add_argument("--out", type=Path, required=True, help="output checkpoint folder")
    _add_threads(p)
    p.set_defaults(func=prune_command)

    q = sub.add_parser("perplexity", help="perplexity of a model on the bundled held-out text or a local text file")
    q.add_argument("model", metavar="MODEL_OR_DIR")
    q.add_argument("--text", type=Path, default=None, help=".jsonl/.jsonl.gz/.txt (default: bundled held-out text)")
    q.add_argument("--seqlen", type=int, default=256)
    q.add_argument("--batch-size", type=int, default=4)
    q.add_argument("--dtype", default="float32")
    q.add_argument("--device", default="auto")
    _add_threads(q)
    q.set_defaults(func=perplexity_command)


def _add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: the physical cores; perplexity takes no more than are idle at the start)",
    )


def _threads(args: argparse.Namespace) -> dict[str, Any]:
    """Choose and set the torch thread count (engine.threads); returns the choice for the report."""
    from engine.threads import apply_threads, choose_threads

    choice = choose_threads(args.threads)
    apply_threads(choice)
    return choice.as_dict()


def prune_command(args: argparse.Namespace) -> int:
    from engine.threads import apply_threads, choose_threads

    threads = choose_threads(args.threads, bulk=True)  # before torch loads: it may set how threads wait
    from engine.config import CALIBRATED_METHODS, CalibrationSpec, Condition, ModelSpec
    from engine.models import check_model_source, load_model, resolve_device
    from engine.preflight import check_calibration_source, check_out_dir
    from engine.pruning.apply import prune_model
    from engine.pruning.cache import default_cache_dir
    from engine.terminal import layer_progress, library_bars

    if args.nsamples < 1 or args.seqlen < 2 or args.batch_size < 1:
        raise UserError(
            f"--nsamples and --batch-size must be >= 1 and --seqlen >= 2 "
            f"(got {args.nsamples}, {args.batch_size}, {args.seqlen})"
        )
    out: Path = args.out
    check_out_dir(out)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"--out {out}: folder exists and is not empty")
    if args.method in CALIBRATED_METHODS:
        check_calibration_source(args.calibration, "--calibration")
    sparsity = args.sparsity if args.sparsity is not None else (0.0 if args.pattern != "unstructured" else 0.5)
    condition = Condition(
        method=args.method,
        sparsity=sparsity,
        pattern=args.pattern,
        calibration=CalibrationSpec(
            source=args.calibration, nsamples=args.nsamples, seqlen=args.seqlen, seed=args.seed
        ),
        reference_compatible=args.reference_compatible,
    )
    from engine.pruning.apply import settings_for

    settings_for(condition, batch_size=args.batch_size)  # bad sparsity/pattern fails before loading the model
    device = resolve_device(args.device, "--device")
    check_model_source(ModelSpec(id=args.model), "MODEL")
    apply_threads(threads)
    library_bars(True)  # as the pruning's own bar: on a terminal only
    loaded = load_model(ModelSpec(id=args.model, dtype=args.dtype, device="cpu"))
    cache_dir = None if args.no_cache else (args.cache_dir or default_cache_dir())
    with layer_progress(f"pruning {args.method}") as progress:
        report = prune_model(
            loaded.model,
            loaded.tokenizer,
            condition,
            device=device,
            cache_dir=cache_dir,
            progress=progress,
            batch_size=args.batch_size,
            model_id=loaded.info.get("id"),
            revision=loaded.info.get("revision"),
        )
    report["model"] = loaded.info
    report["threads"] = threads.as_dict()
    _save_whole(out, loaded, report)
    print(
        f"{args.method} {args.pattern} sparsity {report['sparsity']:g}: decoder-linear sparsity "
        f"{report['decoder_linear_sparsity']:.4f}, all-parameter sparsity {report['all_params_sparsity']:.4f}"
        f"{' (from cache)' if report['cache']['hit'] else ''}; wrote {out}",
        file=sys.stdout,
    )
    for w in report.get("warnings", []):
        print(f"warning: {w}", file=sys.stderr)
    return 0


PARTIAL = ".partial-"  # `.<out name>.partial-XXXX`: a pruned model being saved beside --out


def _save_whole(out: Path, loaded: Any, report: dict[str, Any]) -> None:
    """Model, tokenizer and report saved into a folder beside `out`, renamed to `out` once whole: a
    stopped save leaves no half model at `out` (its partial folder is removed by the next prune there)."""
    from engine.staging import StagedFolder, sweep_stale

    prefix = f".{out.name}{PARTIAL}"
    for old in sweep_stale(out.parent, prefix):
        print(f"removed {old}, the partial output of a prune that was stopped", file=sys.stderr)
    with StagedFolder(out.parent, prefix) as staged:
        loaded.model.save_pretrained(staged.path)
        loaded.tokenizer.save_pretrained(staged.path)
        (staged.path / "pruning_report.json").write_text(json.dumps(report, indent=1, sort_keys=True), encoding="utf-8")
        staged.unlock()
        os.replace(staged.path, out)  # `out` is absent or an empty folder (checked at the start)


def perplexity_command(args: argparse.Namespace) -> int:
    from engine.config import ModelSpec
    from engine.models import load_model, resolve_device
    from engine.protocol.evaluate import position_limit
    from engine.pruning.perplexity import perplexity_of_file
    from engine.terminal import library_bars

    if args.seqlen < 2 or args.batch_size < 1:
        raise UserError(f"--seqlen must be >= 2 and --batch-size >= 1 (got {args.seqlen}, {args.batch_size})")
    if args.text is not None and not args.text.is_file():
        raise UserError(f"--text {args.text}: {'is a folder' if args.text.is_dir() else 'no such file'}")
    device = resolve_device(args.device, "--device")
    threads = _threads(args)
    library_bars(True)  # on a terminal only
    loaded = load_model(ModelSpec(id=str(args.model), dtype=args.dtype, device=device))
    limit = position_limit(loaded.model.config)
    if limit is not None and args.seqlen > limit[0]:
        what = f"--seqlen {args.seqlen}: more positions than the model's {limit[0]}"
        if limit[1]:
            raise UserError(f"{what}; give --seqlen {limit[0]} or less")
        print(f"prunescope: warning: {what} (rotary positions past it are outside its trained range)", file=sys.stderr)
    res = perplexity_of_file(loaded.model, loaded.tokenizer, args.text, seqlen=args.seqlen, batch_size=args.batch_size)
    print(
        json.dumps({"model": str(args.model), "text": str(args.text or "bundled held-out"), **res, "threads": threads})
    )
    return 0
