"""Keep OpenMP worker threads from spinning when the CPU cores are shared.

PyTorch's CPU kernels run on an OpenMP thread pool whose idle threads, by GNU OpenMP's default, busy-wait
for the next parallel region. On a small machine shared with other work (two cores, another training
job), those spinning threads take the cores that the working threads need: on two shared cores,
``cirlab-rn-tiny`` training steps ran 6 to 8 times slower than with ``OMP_WAIT_POLICY=PASSIVE``, which
makes idle threads sleep instead. The variable is read once, when the OpenMP runtime loads with torch, so
it has to be set before torch is imported; a value the user set is kept.
"""

from __future__ import annotations

import os
import sys


def passive_omp_wait() -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless set already; return whether it takes effect in this process."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return "torch" not in sys.modules
