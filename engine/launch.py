"""Dispatch a study's runs: here (local: in this process, or in `--workers N` processes), as Ray
tasks, or as a SLURM job array (submitit).

Runs are independent; every worker writes its own run folder into the study folder (a shared file
system for Ray clusters and SLURM), so the result is the same study a local run makes. Local worker
processes take the cores between them (`engine.threads`); a run that fails there is reported and the
others go on (run the command again to resume it). A worker that dies on Ray or SLURM is retried by
the engine (Ray task retries, submitit requeue); the retry resumes the run folder where the dead
worker stopped. Runs already complete are never dispatched again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tomllib
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from engine.contract.reader import MANIFEST, RunFolderError, read_manifest
from engine.errors import UserError


@dataclass(frozen=True)
class LaunchOptions:
    """How to dispatch; from the spec's [launcher] table, overridden by command-line flags."""

    kind: Literal["local", "ray", "slurm"] = "local"
    address: str | None = None  # ray: existing cluster ('auto' or 'ray://host:port'); None = local instance
    num_workers: int | None = None  # runs at once; local: processes here (default 1: this process), ray: tasks
    max_retries: int = 2  # retries of a run whose worker died or failed
    partition: str | None = None  # slurm
    time_min: int = 240
    gpus_per_task: int | None = None  # default: 1 when GPUs are present (ray) / 1 (slurm)
    cpus_per_task: int = 4
    mem_gb: int | None = None
    array_parallelism: int = 8
    slurm_extra: Mapping[str, Any] = field(default_factory=dict)
    cache_dir: str | None = None  # pruned-weights cache; default <study>/.prunescope/cache (shared)


LAUNCH_FLAGS = {
    "kind": "--launcher",
    "cache_dir": "--cache-dir",
    "address": "--address",
    "num_workers": "--workers",
    "max_retries": "--max-retries",
    "partition": "--partition",
    "time_min": "--time-min",
    "gpus_per_task": "--gpus",
    "array_parallelism": "--array-parallelism",
}
"""The [launcher] keys `prunescope run` flags set, with the flag that does."""


def launch_options(spec_raw: Mapping[str, Any], spec_path: Path, **flags: Any) -> LaunchOptions:
    """The spec's [launcher] table with the command-line flags laid over it, checked key by key (a bad
    value from a flag is named by the flag)."""
    from engine.study import build_table

    given = {k: v for k, v in flags.items() if v is not None}
    table = spec_raw.get("launcher", {})
    table = {**table, **given} if isinstance(table, dict) else table
    opts = build_table(LaunchOptions, table, "[launcher]", spec_path, {k: LAUNCH_FLAGS[k] for k in given})
    if opts.kind == "slurm" and "cluster" not in opts.slurm_extra and shutil.which("srun") is None:
        raise UserError(
            "--launcher slurm: no SLURM on this machine (no srun on PATH), so submitit would run the jobs here "
            'instead; use --launcher local, or [launcher] slurm_extra = { cluster = "local" } to try the job '
            "array on this machine"
        )
    return opts


def pending_runs(out: Path, run_ids: Sequence[str]) -> list[str]:
    """The run ids whose folder is not complete (what a re-run must still do)."""
    todo = []
    for run_id in run_ids:
        try:
            done = (Path(out) / run_id / MANIFEST).exists() and read_manifest(Path(out) / run_id).get(
                "status"
            ) == "complete"
        except RunFolderError:
            done = False
        if not done:
            todo.append(run_id)
    return todo


def log_path(out: Path, run_id: str) -> Path:
    return Path(out) / ".prunescope" / "logs" / f"{run_id}.log"


def run_job(
    spec_text: str,
    spec_name: str,
    out: str,
    run_id: str,
    overrides: Mapping[str, Any],
    cache_dir: str | None,
    threads: int | None = None,
    processes: int = 1,
) -> dict[str, Any]:
    """One run on a worker: re-parse the spec, run (resuming), log to <study>/.prunescope/logs/<run_id>.log."""
    from engine.threads import reproducible_blas

    reproducible_blas()  # a fresh worker process: before torch loads
    from engine.runner import load_study_items, run_one
    from engine.study import plan_runs, study_from_dict

    log = log_path(Path(out), run_id)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        print(f"=== {run_id}: start", flush=True)
        try:
            study = study_from_dict(tomllib.loads(spec_text), Path(spec_name), overrides)
            plan = next(p for p in plan_runs(study) if p.run_id == run_id)
            items = load_study_items(study)
            res = run_one(
                Path(out),
                plan,
                items,
                study.protocol,
                None,
                Path(cache_dir) if cache_dir else None,
                threads=threads,
                processes=processes,
            )
        except BaseException:
            traceback.print_exc(file=f)
            f.flush()
            raise
        print(f"=== {run_id}: {res.status}, {res.n_new} new items in {res.seconds:.1f}s", flush=True)
    return {"run_id": run_id, "status": res.status, "n_new": res.n_new, "seconds": res.seconds}


# run_job's arguments: the spec's text and path, the study folder, the run id, overrides, the cache folder
Job = tuple[str, str, str, str, dict[str, Any], str]


@dataclass
class LaunchReport:
    finished: list[str]
    failed: dict[str, str]  # run_id -> error line (see the run's log)


def launch(
    spec_text: str,
    spec_path: Path,
    out: Path,
    run_ids: Sequence[str],
    overrides: Mapping[str, Any],
    opts: LaunchOptions,
    threads: int | None = None,
    show_progress: bool = True,
) -> LaunchReport:
    """Run `run_ids` (those not yet complete) with the chosen launcher; never raises for one failed run."""
    todo = pending_runs(out, run_ids)
    cache_dir = opts.cache_dir or str(Path(out) / ".prunescope" / "cache")
    args: list[Job] = [(spec_text, str(spec_path), str(out), r, dict(overrides), cache_dir) for r in todo]
    if not todo:
        return LaunchReport([], {})
    if opts.kind == "ray":
        return _launch_ray(args, opts)
    if opts.kind == "slurm":
        return _launch_slurm(args, opts, out)
    return _launch_processes(args, opts.num_workers or 1, threads, Path(out), show_progress)


def _launch_processes(
    args: list[Job],
    workers: int,
    threads: int | None,
    out: Path,
    show_progress: bool,
) -> LaunchReport:
    """Each run in a process of its own on this machine, `workers` at a time (threads shared out by the
    policy). A run that fails, or whose process dies (killed, out of memory), is reported and the others
    go on; the result and error come back as text over a pipe, so an exception that does not pickle
    cannot take the other runs down."""
    import multiprocessing
    from multiprocessing.connection import wait

    from engine.safe_text import inert
    from engine.terminal import progress_bars

    ctx = multiprocessing.get_context("spawn")
    processes = min(workers, len(args))  # the cores are shared among the processes that will run
    queue = list(args)
    running: dict[Any, tuple[Any, Any, str]] = {}  # sentinel -> (process, result pipe, run id)
    report = LaunchReport([], {})
    try:
        with contextlib.ExitStack() as stack:
            bars = stack.enter_context(progress_bars()) if show_progress else None
            tasks: dict[str, Any] = {}
            while queue or running:
                while queue and len(running) < processes:
                    job = queue.pop(0)
                    receive, send = ctx.Pipe(duplex=False)
                    proc = ctx.Process(target=_worker, args=(send, os.getpid(), job, threads, processes))
                    proc.start()
                    send.close()
                    running[proc.sentinel] = (proc, receive, job[3])
                for sentinel in wait(list(running), timeout=1.0):
                    proc, receive, run_id = running.pop(sentinel)
                    try:  # nothing sent: the process died (a closed pipe reads as ready, then EOF)
                        result = receive.recv() if receive.poll() else None
                    except EOFError:
                        result = None
                    receive.close()
                    proc.join()
                    if result == "ok":
                        report.finished.append(run_id)
                    else:
                        report.failed[run_id] = result or _died(proc.exitcode)
                if bars is not None:
                    for job in args:
                        counts = _counts(out, job[3])
                        if counts is not None:
                            if job[3] not in tasks:
                                tasks[job[3]] = bars.add_task(inert(job[3]), total=counts[1], unit="items")
                            bars.update(tasks[job[3]], completed=counts[0], total=counts[1])
    except BaseException:  # interrupted: stop the workers too (each run resumes from its folder)
        for proc, _, _ in running.values():
            proc.terminate()
        for proc, _, _ in running.values():
            proc.join()
        if report.finished:
            print(f"prunescope run: finished before the interruption: {', '.join(report.finished)}", file=sys.stderr)
        print("prunescope run: run the same command again to resume the other runs", file=sys.stderr)
        raise
    return report


def _worker(conn: Any, parent: int, job: Job, threads: int | None, processes: int) -> None:
    """A worker process: one run; sends 'ok' or the error line back (text: nothing to unpickle)."""
    die_with_parent(parent)
    try:
        run_job(*job, threads=threads, processes=processes)
        conn.send("ok")
    except BaseException as exc:
        conn.send(_error_line(exc))
    finally:
        conn.close()


def _died(exitcode: int | None) -> str:
    """Why a worker process gave no result: the signal that ended it, or its exit status."""
    import signal

    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name if -exitcode in signal.valid_signals() else str(-exitcode)
        why = " (out of memory?)" if -exitcode == signal.SIGKILL else ""
        return f"the worker process was ended by {name}{why} before the run finished"
    return f"the worker process exited with status {exitcode} before the run finished"


def die_with_parent(parent: int) -> None:
    """In a worker process: end (SIGTERM) when the launching process ends, however it ends, so that a
    killed `prunescope run --workers N` leaves no worker writing on, holding its run's lock and memory.
    Linux only (prctl); elsewhere workers end when they finish their current run."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent ended before the call above took effect
        os._exit(1)


def _counts(out: Path, run_id: str) -> tuple[int, int] | None:
    """(done, total) items of a run from its manifest, or None before it has one."""
    try:
        counts = read_manifest(Path(out) / run_id).get("counts") or {}
    except (RunFolderError, OSError):
        return None
    return (int(counts["done"]), int(counts["total"])) if "done" in counts and "total" in counts else None


def _error_line(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"[:300]


def _launch_ray(args: list[tuple], opts: LaunchOptions) -> LaunchReport:
    try:
        import ray
    except ImportError:
        raise UserError("--launcher ray needs Ray: pip install 'prunescope[scale]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        init_kw: dict[str, Any] = {"address": opts.address, "include_dashboard": False, "log_to_driver": False}
        if opts.address is None and opts.num_workers:
            init_kw["num_cpus"] = opts.num_workers
        ray.init(**init_kw)
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        per_task_gpu = opts.gpus_per_task if opts.gpus_per_task is not None else (1 if gpus else 0)
        remote = ray.remote(num_cpus=1, num_gpus=per_task_gpu, max_retries=opts.max_retries, retry_exceptions=True)(
            run_job
        )
        refs = {remote.remote(*a): a[3] for a in args}
        report = LaunchReport([], {})
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            run_id = refs[ready[0]]
            try:
                ray.get(ready[0])
                report.finished.append(run_id)
            except Exception as exc:  # a run that failed past its retries; the others go on
                report.failed[run_id] = _error_line(exc)
        return report
    finally:
        if started_here:
            ray.shutdown()


def _launch_slurm(args: list[tuple], opts: LaunchOptions, out: Path) -> LaunchReport:
    try:
        import submitit
    except ImportError:
        raise UserError("--launcher slurm needs submitit: pip install 'prunescope[scale]'") from None
    folder = Path(out) / ".prunescope" / "submitit" / "%j"
    executor = submitit.AutoExecutor(folder=folder, cluster=opts.slurm_extra.get("cluster"))
    params: dict[str, Any] = {
        "timeout_min": opts.time_min,
        "cpus_per_task": opts.cpus_per_task,
        "slurm_array_parallelism": opts.array_parallelism,
        "name": "prunescope",
    }
    if executor.cluster == "slurm":
        params["gpus_per_node"] = opts.gpus_per_task if opts.gpus_per_task is not None else 1
        if opts.partition:
            params["slurm_partition"] = opts.partition
        if opts.mem_gb:
            params["mem_gb"] = opts.mem_gb
        params.update({k: v for k, v in opts.slurm_extra.items() if k != "cluster"})
    executor.update_parameters(**params)
    report = LaunchReport([], {})
    remaining = args
    for _attempt in range(opts.max_retries + 1):
        if not remaining:
            break
        jobs = executor.map_array(run_job, *zip(*remaining))
        retry = []
        for a, job in zip(remaining, jobs):
            try:
                job.result()
                report.finished.append(a[3])
                report.failed.pop(a[3], None)
            except Exception as exc:
                report.failed[a[3]] = _error_line(exc)
                retry.append(a)
        remaining = retry
    return report


def print_launch_report(report: LaunchReport, out: Path) -> None:
    from engine.safe_text import inert

    for run_id in report.finished:
        print(f"{inert(run_id)}: done", file=sys.stderr)
    for run_id, err in report.failed.items():
        print(f"{inert(run_id)}: FAILED: {inert(err)} (log: {log_path(out, run_id)})", file=sys.stderr)
    if report.failed:
        print("prunescope run: run the same command again to resume the failed runs", file=sys.stderr)
