"""Where a study's runs execute: this machine's cores, or a Ray cluster.

A run is a ``Task``: a resolved configuration, its number of seeds (vmapped inside the run), the
Atari games it covers, and its directory inside the study directory. ``run_task`` runs one
through ``engine.run`` (the one run loop, resuming from the directory's checkpoint) and returns
its summary; a diverged run returns status ``diverged``. Executors run many tasks and yield
``(task, summary)`` as each finishes:

- ``LocalExecutor(workers)``: independent runs in parallel processes (``spawn``: JAX does not
  survive ``fork``), one per core by default; with one worker, in this process. An error or
  Ctrl-C stops every process at once: their runs resume from their last checkpoints.
- ``RayExecutor(address)``: each run a Ray task with its CPU (and GPU) request. The run directory
  travels as bytes: the driver sends what the directory already holds (so an interrupted run
  continues from its checkpoint) and writes back what the task returns, so workers need no
  shared filesystem. Ray retries a task whose worker or node dies, from the files it was sent, so
  the results are those of an uninterrupted run.

Every executor runs the same ``run_task`` in a fresh process, so the same study gives the same
numbers on either.
"""

from __future__ import annotations

import os
import signal
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Protocol

from rtrl.files import atomic_path


class Task(NamedTuple):
    config: dict[str, Any]
    seeds: int
    directory: str  # relative to the study directory
    games: tuple[str, ...] = ()
    # A grouped run (rtrl.experiments.grouping): the runs it stands for, one per step size
    members: tuple["Task", ...] = ()
    log: tuple[str, ...] = ()  # loggers the run also writes its metrics to (run_logging)

    @property
    def stream_steps(self) -> int:
        """The steps all its seeds (and games, and members) take together: the unit of the
        progress bar."""
        return self.config["steps"] * self.seeds * max(1, len(self.games), len(self.members))


def run_task(task: Task, root: Path) -> dict[str, Any]:
    """Run (or resume) ``task`` into ``root / task.directory``; returns its summary, with the
    wall time it took in ``seconds``."""
    from rtrl.experiments import engine
    from rtrl.experiments.run_logging import logging_to
    from rtrl.experiments.run_loop import DivergedError

    started = time.perf_counter()
    try:
        with logging_to(task.log):
            summary = engine.run(task.config, task.seeds, root / task.directory,
                                 games=list(task.games) or None, progress=False)  # fmt: skip
        summary = {"status": "complete", **summary}
    except DivergedError as error:
        summary = {"status": "diverged", "message": str(error)}
    return {**summary, "seconds": time.perf_counter() - started}


class Executor(Protocol):
    parallel_runs: int  # runs it keeps going at once (grouped runs are split to keep them busy)

    def run(self, tasks: list[Task], root: Path) -> Iterator[tuple[Task, dict[str, Any]]]:
        """Run ``tasks`` into run directories under ``root``; yield each with its summary as
        it finishes."""

    def close(self) -> None:
        """Release the workers."""


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _prepare_worker() -> None:
    """A pool worker ignores Ctrl-C: the driver stops it (its run resumes from its checkpoint).
    Its progress bars, which are off, lock with a thread lock: tqdm's default, a process lock,
    would be reported leaked when the driver stops the worker."""
    import threading

    from tqdm import tqdm

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tqdm.set_lock(threading.RLock())


class LocalExecutor:
    """Runs on this machine, ``workers`` runs at a time (default: one per core)."""

    def __init__(self, workers: int | None = None):
        if workers is not None and workers < 1:
            raise ValueError(f"--workers must be at least 1, got {workers}")
        self.workers = workers or available_cores()
        self.parallel_runs = self.workers

    def run(self, tasks: list[Task], root: Path) -> Iterator[tuple[Task, dict[str, Any]]]:
        if self.workers == 1 or len(tasks) <= 1:
            for task in tasks:
                yield task, run_task(task, root)
            return
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        workers = min(self.workers, len(tasks))
        others = set(multiprocessing.active_children())
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_prepare_worker)  # fmt: skip
        waiting, running = list(tasks), {}
        try:
            while waiting or running:
                # One run per worker at a time, so nothing is queued to start after a Ctrl-C.
                while waiting and len(running) < workers:
                    task = waiting.pop(0)
                    running[pool.submit(run_task, task, root)] = task
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    yield running.pop(future), future.result()
            pool.shutdown()
        finally:  # on an error or Ctrl-C, stop every run now; each resumes from its checkpoint
            pool_processes = set(multiprocessing.active_children()) - others
            pool.shutdown(wait=False, cancel_futures=True)
            for process in pool_processes:
                process.terminate()

    def close(self) -> None:
        pass


def pack(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` as {relative path: contents}."""
    if not directory.is_dir():
        return {}
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}  # fmt: skip


def unpack(files: dict[str, bytes], directory: Path) -> None:
    """Write ``files`` under ``directory``, each atomically."""
    for name, contents in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as temporary:
            temporary.write_bytes(contents)


def run_shipped_task(
    task: Task, files: dict[str, bytes]
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """A Ray task's body: rebuild the run directory from ``files`` in a scratch directory, run
    the task there, return its summary and the directory's files."""
    with tempfile.TemporaryDirectory(prefix="rtrl-run-") as scratch:
        root = Path(scratch)
        unpack(files, root / task.directory)
        summary = run_task(task, root)
        return summary, pack(root / task.directory)


# Environment variables a run reads on the worker (where recorded Atari streams live).
FORWARDED_ENVIRONMENT = ("RTRL_DATA", "RTRL_CACHE")


def unreachable(address: str, timeout: float = 5.0) -> str | None:
    """Why nothing answers at a ``HOST:PORT`` or ``ray://HOST:PORT`` address (None when a
    connection opens, and for ``auto``). Ray itself retries an unreachable address for
    minutes before giving up."""
    if address == "auto":
        return None
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"--address {address!r}: give auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout).close()
    except OSError as error:
        return error.strerror or str(error) or type(error).__name__
    return None


class RayExecutor:
    """Runs each task as a Ray task on the cluster at ``address`` (``auto``: the one started on
    this machine with ``ray start``; ``HOST:PORT``; or ``ray://HOST:10001`` through Ray Client).
    Every node needs this library installed (``pip install 'rtrl[ray]'``) and, for Atari
    studies, the recorded streams at the driver's ``RTRL_DATA``."""

    def __init__(self, address: str, cpus_per_run: float = 1, gpus_per_run: float = 0,
                 max_retries: int = 3):  # fmt: skip
        try:
            import ray
        except ImportError:
            raise ImportError(
                "the ray backend needs Ray: pip install 'rtrl[ray]' (or use --backend local)"
            ) from None
        self.ray = ray
        self.cpus_per_run = cpus_per_run
        problem = unreachable(address)
        if problem:
            raise RuntimeError(
                f"cannot reach a Ray cluster at {address!r} ({problem}); start one with "
                "'ray start --head' and give its address with --address"
            )
        environment = {k: os.environ[k] for k in FORWARDED_ENVIRONMENT if k in os.environ}
        try:
            ray.init(address=address, logging_level="ERROR", log_to_driver=False,
                     runtime_env={"env_vars": environment} if environment else None)  # fmt: skip
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
            raise RuntimeError(
                f"cannot reach a Ray cluster at {address!r} ({reason}); start one with "
                "'ray start --head' and give its address with --address"
            ) from None
        self.remote = ray.remote(run_shipped_task).options(
            num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=max_retries,
            retry_exceptions=False,
        )  # fmt: skip

    @property
    def parallel_runs(self) -> int:
        """Runs the cluster keeps going at once now (nodes may join after the connection)."""
        cpus = self.ray.cluster_resources().get("CPU", 1)
        return max(1, int(cpus // self.cpus_per_run)) if self.cpus_per_run else max(1, int(cpus))

    def run(self, tasks: list[Task], root: Path) -> Iterator[tuple[Task, dict[str, Any]]]:
        ray = self.ray
        pending = {self.remote.remote(task, pack(root / task.directory)): task for task in tasks}
        try:
            while pending:
                (ready,), _ = ray.wait(list(pending), num_returns=1)
                task = pending.pop(ready)
                try:
                    summary, files = ray.get(ready)
                except ray.exceptions.RayError as error:  # retries spent, or the task raised
                    reason = [line for line in str(error).splitlines() if line.strip()] or [""]
                    raise RuntimeError(
                        f"run {task.directory} failed on the cluster: {reason[-1]}"
                    ) from None
                unpack(files, root / task.directory)
                yield task, summary
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        self.ray.shutdown()


def make_executor(backend: str, address: str | None = None, workers: int | None = None,
                  cpus_per_run: float = 1, gpus_per_run: float = 0) -> Executor:  # fmt: skip
    """The executor a command line asks for (``--backend local|ray``)."""
    if backend == "local":
        if address:
            raise ValueError("--address is for --backend ray")
        return LocalExecutor(workers)
    if backend == "ray":
        if workers is not None:
            raise ValueError("--workers is for --backend local; Ray runs a task per free CPU")
        return RayExecutor(address or "auto", cpus_per_run, gpus_per_run)
    raise ValueError(f"unknown backend {backend!r}; choose local or ray")
