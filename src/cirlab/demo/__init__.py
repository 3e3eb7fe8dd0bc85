"""``cirlab demo``: the whole pipeline on the synthetic benchmark in one command, each stage cached.

``run_demo(DemoOptions(out="demo-output"))`` generates the benchmark, pretrains a small encoder on
its tags, extracts features and compares the negative-sampling strategies; see
:mod:`cirlab.demo.pipeline` for the stages and :mod:`cirlab.demo.state` for how they are cached.

Names are imported on first use, so ``import cirlab.demo`` does not load torch.
"""

from __future__ import annotations

from cirlab.lazy import lazy_exports

_EXPORTS = {
    "DEFAULT_STRATEGIES": "cirlab.demo.options",
    "DemoOptions": "cirlab.demo.options",
    "DemoResult": "cirlab.demo.pipeline",
    "run_demo": "cirlab.demo.pipeline",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
