"""`prunescope prune` (Wanda, SparseGPT on the demo model) with the machine as it is and under a CPU load
this benchmark starts itself, with the default thread policy and with fixed thread counts.

For each method and policy it runs the command (a fresh process each time, the pruned-weights cache
off) twice: without and with the competing load (--load-procs processes spinning on the CPU, default
one per physical core). Policies: `default` (engine/threads.py: on busy cores, all of them with
threads that sleep when they wait), `fixed` (`--threads` = the physical cores: torch's own default,
what `prune` did before it had a policy) and `single` (`--threads 1`, what the policy chose on busy
cores before it slept). It reports the command's wall time, the pruning time from
pruning_report.json, the threads each run chose (and GOMP_SPINCOUNT where the policy set it), the
load average around each run, and the ratio loaded / unloaded. The runs inherit no OMP_NUM_THREADS,
MKL_NUM_THREADS, GOMP_SPINCOUNT or OMP_WAIT_POLICY.

    .venv/bin/python bench/bench_prune_threads.py --out bench/results/prune_threads.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WAIT_ENV = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")  # left to the policy, as thread counts are


class Spinners:
    """`n` processes spinning on the CPU until the block ends."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> Spinners:
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(self.n)]
        time.sleep(1.0)  # let them take the cores before the measured command starts
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()


def prune_once(method: str, args: argparse.Namespace, threads: int | None, work: Path) -> dict[str, Any]:
    out = work / f"{method}-{time.monotonic_ns()}"
    cmd = [sys.executable, "-m", "engine.cli", "prune", "demo", "--method", method, "--no-cache"]
    cmd += ["--nsamples", str(args.nsamples), "--seqlen", str(args.seqlen), "--out", str(out)]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", *WAIT_ENV)}
    load_before = os.getloadavg()
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    report = json.loads((out / "pruning_report.json").read_text(encoding="utf-8"))
    return {
        "wall_s": round(wall, 2),
        "prune_s": round(report["timings"]["total_s"], 2),
        "threads": report["threads"],
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }


def _threads(run: dict[str, Any]) -> str:
    t = run["threads"]
    return f"{t['threads']} thr" + (f", GOMP_SPINCOUNT={t['gomp_spincount']}" if t.get("gomp_spincount") else "")


def main(argv: list[str] | None = None) -> int:
    from engine.threads import physical_cores

    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--methods", default="wanda,sparsegpt")
    ap.add_argument("--nsamples", type=int, default=16)
    ap.add_argument("--seqlen", type=int, default=128)
    ap.add_argument("--load-procs", type=int, default=None, help="spinning processes (default: physical cores)")
    ap.add_argument(
        "--policies",
        default="default,fixed",
        help="default: the thread policy; fixed: --threads = physical cores; single: --threads 1",
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    cores = physical_cores()
    spin = args.load_procs if args.load_procs is not None else cores
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for method in args.methods.split(","):
            ways = {"default": ("default", None), "fixed": (f"--threads {cores}", cores), "single": ("--threads 1", 1)}
            for policy, threads in (ways[w] for w in args.policies.split(",")):
                unloaded = prune_once(method, args, threads, work)
                with Spinners(spin):
                    loaded = prune_once(method, args, threads, work)
                rows.append(
                    {
                        "method": method,
                        "policy": policy,
                        "unloaded": unloaded,
                        "loaded": loaded,
                        "ratio_wall": round(loaded["wall_s"] / unloaded["wall_s"], 2),
                        "ratio_prune": round(loaded["prune_s"] / unloaded["prune_s"], 2),
                    }
                )
                r = rows[-1]
                print(
                    f"{method:9} {policy:12} unloaded {unloaded['prune_s']:7.1f} s prune / {unloaded['wall_s']:6.1f} s "
                    f"command ({_threads(unloaded)}, load {unloaded['load_average_before'][0]:.1f}); "
                    f"+{spin} spinning: {loaded['prune_s']:7.1f} s / {loaded['wall_s']:6.1f} s "
                    f"({_threads(loaded)}, load {loaded['load_average_before'][0]:.1f}); "
                    f"ratio {r['ratio_prune']:.2f} (prune) {r['ratio_wall']:.2f} (command)",
                    flush=True,
                )
    result = {
        "command": "bench/bench_prune_threads.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "physical_cores": cores,
        "cpu_count": os.cpu_count(),
        "load_procs": spin,
        "calibration": {"nsamples": args.nsamples, "seqlen": args.seqlen},
        "runs": rows,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
