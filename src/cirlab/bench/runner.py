"""Running the benchmarks: choosing them by name, setting up, recording the machine, timing each one.

``run_benchmarks()`` is the Python form of ``cirlab bench``; it returns a :class:`BenchReport` whose
``format_table()`` is what the command prints and whose ``write_json()`` is what it writes.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cirlab.bench import comparison, evaluation, extraction, mining, naive, pml, reencode, search, training
from cirlab.bench.context import BenchContext
from cirlab.bench.report import BenchReport, BenchResult
from cirlab.errors import ConfigError
from cirlab.progress import progress
from cirlab.registry import Registry
from cirlab.runtime import resolve_device


@dataclass(frozen=True)
class Benchmark:
    """A named measurement: ``run(context) -> BenchResult``."""

    name: str
    title: str
    run: Callable[[BenchContext], BenchResult]


#: Every benchmark, in the order a full run takes them (cheap and central first).
MODULES = (training, mining, pml, naive, extraction, reencode, evaluation, search, comparison)


def benchmark_registry() -> Registry[Benchmark]:
    """The benchmarks by name (a registry refuses duplicate names)."""
    registry: Registry[Benchmark] = Registry("benchmark")
    for module in MODULES:
        registry.register(module.NAME)(Benchmark(module.NAME, module.TITLE, module.run))
    return registry


def benchmark_names() -> list[str]:
    """Names of the benchmarks, in run order."""
    return [module.NAME for module in MODULES]


def select(names: Sequence[str] | None) -> list[Benchmark]:
    """The benchmarks called ``names`` (all when None), in run order; an unknown name is a ConfigError."""
    registry = benchmark_registry()
    if names is None:
        return [registry.get(name) for name in benchmark_names()]
    wanted = [name.strip() for name in names if name.strip()]
    if not wanted:
        raise ConfigError(f"--only names no benchmark; known: {', '.join(benchmark_names())}")
    chosen = {registry.get(name).name for name in wanted}
    return [registry.get(name) for name in benchmark_names() if name in chosen]


def run_benchmarks(names: Sequence[str] | None = None, quick: bool = False, device: str = "auto",
                   threads: int | None = None, seed: int = 0, show_progress: bool = True) -> BenchReport:
    """Run the benchmarks ``names`` (all by default) and return their report.

    Args:
        names: benchmark names (see :func:`benchmark_names`); None runs every one.
        quick: smaller sizes and fewer repeats (well under a minute on two cores); figures are rougher.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda``...; faiss always searches on the CPU.
        threads: torch intra-op threads during the run (None: torch's default); restored afterwards.
        seed: seeds every random input, so runs measure the same work.
        show_progress: a progress bar over benchmarks on stderr.
    """
    chosen = select(names)
    target = resolve_device(device)
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {threads}")
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    started = time.perf_counter()
    try:
        report = BenchReport(quick=quick, device=str(target), machine=machine_info(target))
        with tempfile.TemporaryDirectory(prefix="cirlab-bench-") as folder:
            ctx = BenchContext(device=target, quick=quick, workdir=Path(folder), seed=seed)
            with progress(chosen, desc="bench", unit="benchmark", enabled=show_progress) as bar:
                for benchmark in bar:
                    bar.set_postfix_str(benchmark.name)
                    begun = time.perf_counter()
                    result = benchmark.run(ctx)
                    result.seconds = time.perf_counter() - begun
                    report.results.append(result)
        report.machine["load_average_end"] = _load_average()
        report.seconds = time.perf_counter() - started
        return report
    finally:
        torch.set_num_threads(previous_threads)


def machine_info(device: torch.device) -> dict[str, Any]:
    """What the absolute figures depend on: CPU, threads, libraries, accelerator, load."""
    import faiss

    from cirlab.bench.training import cpu_flags

    flags = cpu_flags()
    info: dict[str, Any] = {
        "cpu_model": _cpu_model(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_flags": sorted(flags & {"avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile"}),
        "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
        "faiss": getattr(faiss, "__version__", "unknown"), "load_average_start": _load_average(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _load_average() -> float | None:
    """The one-minute load average (None where the platform has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None
