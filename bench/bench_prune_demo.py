"""Pruning the demo model (SmolLM2-135M-Instruct): perplexity, time and peak memory per method.

For each method (magnitude, Wanda, SparseGPT) and pattern (50% unstructured, 2:4) it prunes the
demo model with the engine's batched layer-wise driver and, for Wanda and SparseGPT, with a batch-1
loop in the references' order of operations (tests/engine/pruning/prune_fixtures.py:oracle_prune)
on the same calibration ids (mask agreement with the engine is reported), then measures the
engine-pruned model's perplexity on the bundled held-out text. Each run is a separate process, so
its peak resident memory (model load included, measured before perplexity) is its own.

    .venv/bin/python bench/bench_prune_demo.py [--nsamples 32 --seqlen 256 --batch-size 8]
        [--reference-patterns unstructured,2:4] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("magnitude", "wanda", "sparsegpt")
PATTERNS = ("unstructured", "2:4")


class RssPeak:
    """Peak resident memory above the level at start, sampled from /proc every 5 ms."""

    def __init__(self) -> None:
        import threading

        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def extra_mib(self) -> float:
        return round((self.peak - self.base) / 2**20, 1)


def worker(args: argparse.Namespace) -> None:
    """One run: load, prune (engine or reference loop), perplexity; prints one JSON line."""
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import torch

    from engine.config import CalibrationSpec, Condition, ModelSpec
    from engine.models import load_model
    from engine.pruning.apply import settings_for
    from engine.pruning.calibration import load_calibration
    from engine.pruning.driver import find_decoder_layers, prunable_modules, prune_layers
    from engine.pruning.perplexity import heldout_text, perplexity

    loaded = load_model(ModelSpec(id="demo", dtype="float32", device="cpu"))
    model, tok = loaded.model, loaded.tokenizer
    out: dict = {"method": args.method, "pattern": args.pattern, "mode": args.mode}
    if args.method != "dense":
        cond = Condition(
            method=args.method,
            sparsity=0.5 if args.pattern == "unstructured" else 0.0,
            pattern=args.pattern,
            calibration=CalibrationSpec(source="bundled", nsamples=args.nsamples, seqlen=args.seqlen),
        )
        settings = settings_for(cond, batch_size=args.batch_size)
        calib = load_calibration(cond.calibration, tok) if args.method != "magnitude" else None
        out["calibration_sha256"] = calib.sha256 if calib else None
        t = time.perf_counter()
        rss = RssPeak().__enter__()
        if args.mode == "engine":
            res = prune_layers(model, settings, calib.ids if calib else None, device="cpu")
            out["phases_s"] = {k: round(v, 2) for k, v in res.timings.items()}
            if args.method == "sparsegpt":
                out["sparsegpt_loss"] = sum(r.loss for r in res.modules.values())
        else:
            from tests.engine.pruning.prune_fixtures import oracle_prune

            losses = oracle_prune(
                model, calib.ids, args.method, settings.sparsity, nm=settings.nm, per_layer_kwargs=False
            )
            if args.method == "sparsegpt":
                out["sparsegpt_loss"] = sum(losses.values())
        out["prune_s"] = round(time.perf_counter() - t, 2)
        rss.__exit__()
        out["prune_extra_rss_mib"] = rss.extra_mib
        _path, layers = find_decoder_layers(model)
        masks = [(m.weight == 0).numpy().ravel() for layer in layers for m in prunable_modules(layer).values()]
        allm = np.concatenate(masks)
        out["decoder_linear_sparsity"] = round(float(allm.mean()), 5)
        np.save(args.mask_out, np.packbits(allm))
    out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # load + pruning
    if args.mode == "engine":  # the reference run's model is compared by its masks instead
        out["ppl"] = perplexity(model, tok, heldout_text(), seqlen=args.eval_seqlen)["ppl"]
    out["peak_rss_with_eval_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out["threads"] = torch.get_num_threads()
    line = json.dumps(out)
    with open(args.mask_out.parent / "results.jsonl", "a", encoding="utf-8") as fh:  # survives an interrupted run
        fh.write(line + "\n")
    print(line)


def run_one(args: argparse.Namespace, method: str, pattern: str, mode: str, mask_out: Path) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        "--method",
        method,
        "--pattern",
        pattern,
        "--mode",
        mode,
        "--nsamples",
        str(args.nsamples),
        "--seqlen",
        str(args.seqlen),
        "--batch-size",
        str(args.batch_size),
        "--eval-seqlen",
        str(args.eval_seqlen),
        "--mask-out",
        str(mask_out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if proc.returncode != 0:
        raise SystemExit(f"{method} {pattern} {mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nsamples", type=int, default=32)
    ap.add_argument("--seqlen", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--eval-seqlen", type=int, default=256)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--patterns", default=",".join(PATTERNS))
    ap.add_argument(
        "--reference-patterns",
        default="unstructured",
        help="patterns also run with the batch-1 reference-order loop ('' for none)",
    )
    ap.add_argument("--json", type=Path, default=None, help="also write all results to this file")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--method", default="dense", help=argparse.SUPPRESS)
    ap.add_argument("--pattern", default="unstructured", help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="engine", help=argparse.SUPPRESS)
    ap.add_argument("--mask-out", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    import numpy as np

    print(
        f"demo model, calibration: bundled text, {args.nsamples} x {args.seqlen} tokens, seed 0; "
        f"engine batch {args.batch_size}; perplexity: bundled held-out text, windows of {args.eval_seqlen}",
        flush=True,
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench_prune_"))
    results = [run_one(args, "dense", "unstructured", "engine", tmp / "dense.npy")]
    print(f"dense: ppl {results[0]['ppl']:.2f}, peak RSS {results[0]['peak_rss_mib']:.0f} MiB", flush=True)
    rows = []
    for pattern in args.patterns.split(","):
        for method in args.methods.split(","):
            eng = run_one(args, method, pattern, "engine", tmp / "engine.npy")
            results.append(eng)
            ref = None
            if method != "magnitude" and pattern in args.reference_patterns.split(","):
                ref = run_one(args, method, pattern, "reference", tmp / "ref.npy")
                a, b = np.load(tmp / "engine.npy"), np.load(tmp / "ref.npy")
                ref["mask_agreement_with_engine"] = float(1 - np.unpackbits(a ^ b).mean())
                results.append(ref)
            rows.append((method, pattern, eng, ref))
            print(f"  done {method} {pattern}", flush=True)
    head = (
        f"{'method':<10} {'pattern':<12} {'ppl':>8} {'sparsity':>9} {'prune s':>8} {'+MiB':>6} {'peak MiB':>9} | "
        f"{'ref s':>7} {'ref +MiB':>8} {'ref peak':>8} {'mask agree':>10}"
    )
    print(
        "prune s: pruning wall time; +MiB: peak resident memory above the loaded model during pruning; "
        "peak MiB: process peak (load included); ref: batch-1 loop in the references' order"
    )
    print(head)
    print("-" * len(head))
    print(
        f"{'dense':<10} {'-':<12} {results[0]['ppl']:>8.2f} {'-':>9} {'-':>8} {'-':>6} "
        f"{results[0]['peak_rss_mib']:>9.0f} |"
    )
    for method, pattern, eng, _ref in rows:
        line = (
            f"{method:<10} {pattern:<12} {eng['ppl']:>8.2f} {eng['decoder_linear_sparsity']:>9.4f} "
            f"{eng['prune_s']:>8.1f} {eng['prune_extra_rss_mib']:>6.0f} {eng['peak_rss_mib']:>9.0f} |"
        )
        if ref:
            line += (
                f" {ref['prune_s']:>7.1f} {ref['prune_extra_rss_mib']:>8.0f} {ref['peak_rss_mib']:>8.0f} "
                f"{ref['mask_agreement_with_engine']:>10.6f}"
            )
        print(line)
    for method, pattern, eng, _ref in rows:
        if "phases_s" in eng:
            print(f"engine phases {method} {pattern}: {eng['phases_s']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
