"""Train a comparison's independent runs in several worker processes at once (``cirlab compare --jobs N``).

A comparison's runs share nothing but the feature cache, which each one only reads, so they can train side by
side. On a CPU this pays where one run cannot keep every core busy: the demo's 64-d combiner spends most of
each step in small operations that one thread runs about as fast as two, so two runs on two cores finish in
little more than the time of one. Each worker gets an equal share of the cores (``torch.set_num_threads``),
and a run's results do not depend on which worker trained it or when: every run is seeded by its own config.
Where the thread count changes which matrix kernels run (large feature dimensions), a run's numbers can
differ from a one-thread-pool run by float rounding; on the demo's features they are identical.

Workers are spawned, not forked (a forked process inherits torch's thread pools in an unusable state).
They log warnings only, each line prefixed with its run's name, and show no progress bars; the parent logs
one line as each run starts and ends. When a run fails, the runs not yet started are cancelled, the ones
training finish (their work is kept: a rerun reuses or resumes every run), and the first failure is raised.
Where worker processes cannot be created at all (a sandbox without process semaphores), the runs train one
after another in this process, with a warning.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from cirlab.errors import CirlabError, ConfigError
from cirlab.training.config import TrainConfig

LOGGER = logging.getLogger(__name__)

#: The most concurrent runs ``jobs="auto"`` starts (each worker holds its own torch and feature cache).
AUTO_JOBS_LIMIT = 4


def available_cpus() -> int:
    """The CPU cores this process may run on (its affinity where the platform tells, else every core)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def resolve_jobs(jobs: int | str, runs: int, device: str = "cpu") -> int:
    """The number of worker processes for ``runs`` runs: ``jobs`` itself (at most ``runs``), or for ``"auto"``
    one per available core up to :data:`AUTO_JOBS_LIMIT` on a CPU, and one (the runs in this process) on a GPU,
    where one run at a time already keeps the device busy."""
    if jobs == "auto":
        from cirlab.runtime import resolve_device

        if resolve_device(device).type != "cpu":
            return 1
        jobs = min(available_cpus(), AUTO_JOBS_LIMIT)
    if isinstance(jobs, int) and not isinstance(jobs, bool):
        count = jobs
    elif isinstance(jobs, str) and jobs.strip().isdigit():
        count = int(jobs)
    else:
        raise ConfigError(f"jobs must be a whole number or 'auto', got {jobs!r}")
    if count < 1:
        raise ConfigError(f"jobs must be at least 1, got {count}")
    if count > 1 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("concurrent runs (--jobs above 1) cannot be combined with torchrun; each run already uses "
                          "every process")
    return max(1, min(count, runs))


def threads_per_job(jobs: int) -> int:
    """An equal share of the available cores for each of ``jobs`` workers (at least one)."""
    return max(1, available_cpus() // jobs)


def _start_worker(threads: int) -> None:
    """Worker set-up: its share of the cores, no progress bars, warnings only, on stderr."""
    import torch

    from cirlab.progress import NO_PROGRESS_ENV

    torch.set_num_threads(threads)
    os.environ[NO_PROGRESS_ENV] = "1"
    logger = logging.getLogger("cirlab")
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger.handlers[:] = [handler]


def _train_in_worker(name: str, config: TrainConfig) -> Any:
    """Train one run (in a worker: its warnings name the run)."""
    from cirlab.training import train

    if multiprocessing.parent_process() is not None:
        for handler in logging.getLogger("cirlab").handlers:
            handler.setFormatter(logging.Formatter(f"%(levelname)s: {name}: %(message)s"))
    return train(config)


def train_concurrently(runs: Sequence[tuple[str, TrainConfig]], jobs: int,
                       on_start: Callable[[str], None], on_done: Callable[[str, Any], None]) -> None:
    """Train every ``(name, config)`` of ``runs`` in ``jobs`` spawned workers, in the order given.

    ``on_start(name)`` is called as a run is handed to a worker and ``on_done(name, result)`` as it finishes
    (in the parent, in the order runs finish). The first failure is raised after the runs already training
    have finished and the others were cancelled; a worker that dies (killed, out of memory) is reported as a
    :class:`CirlabError` naming the run.
    """
    threads = threads_per_job(jobs)
    try:
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_worker, initargs=(threads,))
    except (OSError, ImportError, NotImplementedError) as error:  # no process semaphores (some sandboxes)
        LOGGER.warning("cannot start worker processes (%s); training the runs one after another", error)
        for name, config in runs:
            on_start(name)
            on_done(name, _train_in_worker(name, config))
        return
    LOGGER.info("compare: %d runs in %d worker processes, %d thread%s each", len(runs), jobs, threads,
                "" if threads == 1 else "s")
    pending = list(runs)
    running: dict[Future[Any], str] = {}
    failure: BaseException | None = None
    with pool:
        while pending or running:
            while pending and len(running) < jobs and failure is None:
                name, config = pending.pop(0)
                on_start(name)
                try:
                    running[pool.submit(_train_in_worker, name, config)] = name
                except OSError as error:  # the process could not be started (a process or memory limit)
                    failure = CirlabError(f"{name}: cannot start a worker process to train it ({error}); "
                                          f"use --jobs 1")
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    failure = failure or CirlabError(
                        f"{name}: the worker process training it stopped unexpectedly (killed or out of memory); "
                        f"rerun the comparison to resume it, or use --jobs 1")
                except BaseException as error:  # re-raised below, once the running runs have ended
                    failure = failure or error
                else:
                    on_done(name, result)
            if failure is not None:
                pending.clear()
    if failure is not None:
        raise failure
