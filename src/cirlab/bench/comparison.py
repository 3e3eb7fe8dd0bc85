"""A comparison's runs trained concurrently (``compare --jobs``) against the same runs one after another.

A multi-seed comparison is many small, independent training runs. On a CPU one such run does not keep every
core busy (its combiner is small), so :mod:`cirlab.compare.parallel` trains several at once, each in a spawned
worker with an equal share of the cores. This benchmark runs the same comparison twice, with ``jobs=1`` and
with one job per core (2 to :data:`~cirlab.compare.parallel.AUTO_JOBS_LIMIT`), on a synthetic benchmark encoded
by the tiny encoder, and reports the wall-time ratio, the whole comparison included (starting the workers,
evaluating every epoch, the report). It also checks that every run's per-query ranks are the same both ways.

A whole comparison is measured once (it takes seconds to minutes), so the ratio has no spread; on a machine
with one core, concurrency cannot pay and the ratio shows its cost.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from cirlab.bench.context import TINY_MODEL, BenchContext
from cirlab.bench.report import BenchResult, Figure

NAME = "compare"
TITLE = "a comparison's runs trained concurrently (compare --jobs) vs one after another"

STRATEGIES = ("random", "semi-hard")


def _ranks(out: Path) -> dict[tuple[str, str], np.ndarray]:
    """Every run's per-query rank arrays, by run folder and key."""
    found: dict[tuple[str, str], np.ndarray] = {}
    for path in sorted((out / "runs").glob("*/seed-*/ranks.npz")):
        with np.load(path) as ranks:
            found.update({(path.parent.relative_to(out).as_posix(), key): ranks[key] for key in ranks.files})
    return found


def run(ctx: BenchContext) -> BenchResult:
    from cirlab.compare import compare
    from cirlab.compare.parallel import AUTO_JOBS_LIMIT, available_cpus, threads_per_job
    from cirlab.encoders import EncoderSpec
    from cirlab.features.extract import extract_features
    from cirlab.synth import SynthConfig, generate

    result = BenchResult(NAME, TITLE)
    images, epochs = ctx.pick((1200, 6), (40, 1))
    jobs = max(2, min(available_cpus(), AUTO_JOBS_LIMIT))
    seeds = jobs  # every worker gets runs to train: 2 strategies x jobs seeds
    data = ctx.workdir / "compare-data"
    if not data.exists():
        generate(data, SynthConfig.preset("tiny").with_overrides(images_per_category=images, seed=ctx.seed))
    features = extract_features(data, EncoderSpec(model=TINY_MODEL, pretrained=None, seed=ctx.seed),
                                ctx.workdir / "compare-features", batch_size=64, num_workers=0,
                                device=str(ctx.device)).root
    overrides = {"batch_size": 64, "tensorboard": False, "device": str(ctx.device),
                 "negatives_options.near_duplicate_threshold": None}
    seconds: dict[int, float] = {}
    log = logging.getLogger("cirlab")
    level = log.level
    log.setLevel(logging.WARNING)  # the runs' progress lines would bury the benchmark's own
    try:
        for count in (1, jobs):
            started = time.perf_counter()
            compare("synthetic", list(STRATEGIES), ctx.workdir / f"compare-jobs-{count}", seeds=seeds, epochs=epochs,
                    features=features, overrides=overrides, queries=0, draws=100, jobs=count)
            seconds[count] = time.perf_counter() - started
    finally:
        log.setLevel(level)
    serial, concurrent = _ranks(ctx.workdir / "compare-jobs-1"), _ranks(ctx.workdir / f"compare-jobs-{jobs}")
    runs = {run for run, _ in serial}
    same = {run for run in runs if all(np.array_equal(serial[key], concurrent.get(key, np.empty(0)))
                                       for key in serial if key[0] == run)}
    result.settings.update({"strategies": list(STRATEGIES), "seeds": seeds, "runs": len(runs), "epochs": epochs,
                            "images_per_category": images, "jobs": jobs, "threads_per_job": threads_per_job(jobs),
                            "model": TINY_MODEL})
    result.add(Figure("concurrent_speedup", seconds[1] / seconds[jobs], "x", "ratio",
                      f"wall time of {len(runs)} runs one after another over the same runs in {jobs} workers",
                      baseline="the same comparison with --jobs 1"))
    result.add(Figure("serial_s", seconds[1], "s", "absolute", "the comparison with --jobs 1"))
    result.add(Figure("concurrent_s", seconds[jobs], "s", "absolute", f"the comparison with --jobs {jobs}"))
    result.add(Figure("runs_with_equal_ranks", float(len(same)), "count", "exact",
                      f"runs (of {len(runs)}) whose per-query ranks are the same both ways"))
    if available_cpus() < 2:
        result.notes.append("one CPU core: concurrent runs share it, so the ratio shows what concurrency costs")
    return result
