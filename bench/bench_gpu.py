"""The GPU benchmark, in one go: protocol throughput against lm-evaluation-harness at several batch
sizes, and Wanda / SparseGPT pruning of the demo model, written to one JSON.

`bench/gpu.sh` sets up an environment and runs this. Each part is its own process (so one part's
memory does not weigh on the next): `bench/bench_protocol.py --device D --batch-sizes ...` and
`prunescope prune demo --method M --device D` (the pruned-weights cache off) followed by
`prunescope perplexity` of the result. On a machine without a GPU, `--device cpu` with small sizes
tests the whole path.

    .venv/bin/python bench/bench_gpu.py --device cuda --out bench/results/gpu.json
    .venv/bin/python bench/bench_gpu.py --device cpu --batch-sizes 4 --n-items 8 --nsamples 4 --seqlen 64 --out /tmp/gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    print("+", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return proc


def _system(device: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "device": device,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1)
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch-sizes", default="16,64,256")
    ap.add_argument("--n-items", type=int, default=96)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--methods", default="wanda,sparsegpt")
    ap.add_argument("--nsamples", type=int, default=128, help="pruning calibration samples (the references' 128)")
    ap.add_argument("--seqlen", type=int, default=2048, help="pruning calibration length (the references' 2048)")
    ap.add_argument("--skip-lm-eval", action="store_true")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)

    py = sys.executable
    result: dict[str, Any] = {
        "command": "bench/bench_gpu.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "system": _system(args.device),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "load_average_start": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        proto = work / "protocol.json"
        cmd = [py, "bench/bench_protocol.py", "--device", args.device, "--batch-sizes", args.batch_sizes]
        cmd += ["--n-items", str(args.n_items), "--max-new-tokens", str(args.max_new_tokens), "--out", str(proto)]
        if args.skip_lm_eval:
            cmd.append("--skip-lm-eval")
        print(_run(cmd).stdout, flush=True)
        result["protocol"] = json.loads(proto.read_text(encoding="utf-8"))
        result["pruning"] = []
        for method in args.methods.split(","):
            out = work / f"pruned-{method}"
            t = time.perf_counter()
            _run(
                [py, "-m", "engine.cli", "prune", "demo", "--method", method, "--device", args.device, "--no-cache"]
                + ["--nsamples", str(args.nsamples), "--seqlen", str(args.seqlen), "--out", str(out)]
            )
            wall = time.perf_counter() - t
            report = json.loads((out / "pruning_report.json").read_text(encoding="utf-8"))
            ppl = json.loads(
                _run([py, "-m", "engine.cli", "perplexity", str(out), "--device", args.device]).stdout.strip()
            )
            result["pruning"].append(
                {
                    "method": method,
                    "pattern": "unstructured",
                    "sparsity": report["sparsity"],
                    "decoder_linear_sparsity": report["decoder_linear_sparsity"],
                    "command_s": round(wall, 2),
                    "timings": report["timings"],
                    "threads": report["threads"],
                    "calibration": {"nsamples": args.nsamples, "seqlen": args.seqlen},
                    "heldout_ppl": ppl["ppl"],
                }
            )
            print(
                f"{method}: pruned in {report['timings']['total_s']:.1f} s ({wall:.1f} s with loading), "
                f"held-out perplexity {ppl['ppl']:.2f}",
                flush=True,
            )
    result["load_average_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
