"""``cirlab bench``: how fast cirlab trains, mines, evaluates and searches, against limits and alternatives.

Each benchmark is one module that times cirlab's code and a baseline in the same interleaved rounds:

- :mod:`~cirlab.bench.training`: combiner training step, triplets/s and share of matmul peak (fp32, bf16);
- :mod:`~cirlab.bench.mining`: ``semi-hard`` and ``hard`` mining over galleries of 1k to 200k, per step;
- :mod:`~cirlab.bench.pml`: in-batch semi-hard mining checked against pytorch-metric-learning, and timed;
- :mod:`~cirlab.bench.naive`: samplers against loading and encoding an image per negative;
- :mod:`~cirlab.bench.extraction`: ``cirlab extract`` per encoder, against its forward passes alone;
- :mod:`~cirlab.bench.reencode`: an epoch from the feature cache against re-encoding every batch;
- :mod:`~cirlab.bench.evaluation`: Recall@K against a bare matrix product + top-k;
- :mod:`~cirlab.bench.search`: faiss exact/IVF latency (whole gallery and one category) and the HTTP
  service's latency, one client and several at once.

``run_benchmarks(names=None, quick=False, device="auto")`` runs them and returns a :class:`BenchReport`
(:mod:`~cirlab.bench.report` says which figures are ratios and which are this machine's absolutes).
"""

from cirlab.bench.report import KINDS, BenchReport, BenchResult, Figure
from cirlab.bench.runner import benchmark_names, run_benchmarks

__all__ = ["KINDS", "BenchReport", "BenchResult", "Figure", "benchmark_names", "run_benchmarks"]
