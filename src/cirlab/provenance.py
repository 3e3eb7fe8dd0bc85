"""Provenance of a result: the versions of cirlab and its numeric libraries, the platform and the git commit.

Writers of results (``metrics.json``, ``comparison.json``...) record :func:`provenance` so that a
number can be traced to the code and libraries that produced it. It is cheap to call: versions come
from the installed packages' metadata (nothing heavy is imported), and git is asked once per process,
only when cirlab is imported from a source checkout (``<checkout>/src/cirlab`` or
``<checkout>/cirlab`` next to a ``.git``). Without git, or outside a checkout, the commit is ``None``;
nothing here touches the network.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import cirlab

#: Distributions that provide each library, first match wins (faiss ships under several names).
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "open_clip": ("open_clip_torch", "open-clip-torch"),
    "numpy": ("numpy",),
    "faiss": ("faiss-cpu", "faiss-gpu", "faiss-gpu-cu12", "faiss-gpu-cu11", "faiss"),
}
#: Longest wait for git (a hung network file system must not stall a training run).
GIT_TIMEOUT_S = 10.0


def provenance() -> dict[str, Any]:
    """``{"cirlab", "python", "torch", "open_clip", "numpy", "faiss", "platform", "git_commit", "git_dirty"}``.

    A library that is not installed is ``None``. ``git_commit`` is the commit of the cirlab checkout
    this process imported cirlab from and ``git_dirty`` whether tracked files differed from it; both
    are ``None`` when cirlab is not imported from a git checkout or git cannot tell.
    """
    commit, dirty = _checkout_state()
    return {
        "cirlab": cirlab.__version__,
        "python": platform.python_version(),
        **{name: _version(name, distributions) for name, distributions in DISTRIBUTIONS.items()},
        "platform": platform.platform(),
        "git_commit": commit,
        "git_dirty": dirty,
    }


def _version(module: str, distributions: tuple[str, ...]) -> str | None:
    """The version of ``module``: from the module itself when it is already imported, else from its metadata."""
    loaded = sys.modules.get(module)
    if loaded is not None and isinstance(getattr(loaded, "__version__", None), str):
        return str(loaded.__version__)  # torch.__version__ is a str subclass
    for distribution in distributions:
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return None


@functools.cache
def _checkout_state() -> tuple[str | None, bool | None]:
    """:func:`git_state` of the imported cirlab package, computed once per process."""
    return git_state(Path(cirlab.__file__).resolve().parent)


def source_checkout(package_dir: Path) -> Path | None:
    """The git checkout whose source tree holds ``package_dir`` (``src/cirlab`` or ``cirlab`` at its root), or None.

    Decided from the folder layout alone, so that a cirlab installed into a virtual environment that
    happens to sit inside some git repository is not mistaken for a checkout.
    """
    for root in (package_dir.parent.parent, package_dir.parent):
        if (root / ".git").exists() and package_dir in (root / "src" / package_dir.name, root / package_dir.name):
            return root
    return None


def git_state(package_dir: Path) -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the checkout holding ``package_dir``; ``(None, None)`` when there is none or git fails.

    One ``git status`` call gives both: the ``# branch.oid`` header is the commit, and any further
    line is a tracked file that differs from it (untracked files are not counted, as in
    ``git describe --dirty``). Optional locks are off, so the call never writes the repository's index.
    """
    root = source_checkout(package_dir)
    if root is None:
        return None, None
    try:
        completed = subprocess.run(
            ["git", "status", "--porcelain=v2", "--branch", "--untracked-files=no"], cwd=root,
            capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=False,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None, None
    if completed.returncode != 0:
        return None, None
    commit, dirty = None, False
    for line in completed.stdout.splitlines():
        if line.startswith("# branch.oid "):
            oid = line.split()[-1]
            commit = oid if oid != "(initial)" else None
        elif line and not line.startswith("#"):
            dirty = True
    return (commit, dirty) if commit is not None else (None, None)
