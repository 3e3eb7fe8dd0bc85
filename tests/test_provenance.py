"""Provenance: library versions from metadata, the git commit of a source checkout, and every way git can be absent."""

from __future__ import annotations

import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

import cirlab
from cirlab import provenance as module
from cirlab.provenance import git_state, provenance, source_checkout

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=root,
                          check=True, capture_output=True, text=True).stdout.strip()


def checkout(tmp_path: Path, layout: str = "src/cirlab") -> Path:
    """A git repository holding a committed package folder at ``layout``; returns the package folder."""
    root = tmp_path / "checkout"
    package = root / layout
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("x = 1\n", encoding="utf-8")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "first")
    return package


def test_versions_platform_and_keys():
    record = provenance()
    assert set(record) == {"cirlab", "python", "torch", "open_clip", "numpy", "faiss", "platform", "git_commit",
                           "git_dirty"}
    assert record["cirlab"] == cirlab.__version__
    assert record["python"] == platform.python_version()
    assert record["platform"] == platform.platform()
    assert record["numpy"] == metadata.version("numpy")
    assert record["open_clip"] == metadata.version("open_clip_torch")
    assert record["torch"] is not None and record["faiss"] is not None
    assert (record["git_commit"] is None) == (record["git_dirty"] is None)


def test_a_library_that_is_not_installed_is_none(monkeypatch):
    monkeypatch.setitem(module.DISTRIBUTIONS, "faiss", ("no-such-distribution-xyz",))
    monkeypatch.delitem(module.sys.modules, "faiss", raising=False)
    assert provenance()["faiss"] is None


def test_git_runs_at_most_once_per_process(monkeypatch):
    calls = []
    real_run = subprocess.run

    def counting_run(*args, **kwargs):
        calls.append(args)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(module.subprocess, "run", counting_run)
    module._checkout_state.cache_clear()
    try:
        first = provenance()
        assert [provenance() for _ in range(3)] == [first] * 3
        assert len(calls) <= 1
    finally:
        module._checkout_state.cache_clear()


@needs_git
@pytest.mark.parametrize("layout", ["src/cirlab", "cirlab"])
def test_commit_and_dirty_state_of_a_checkout(tmp_path, layout):
    package = checkout(tmp_path, layout)
    root = source_checkout(package)
    assert root == tmp_path / "checkout"
    head = git(root, "rev-parse", "HEAD")
    (package / "notes.txt").write_text("untracked\n", encoding="utf-8")
    assert git_state(package) == (head, False)  # untracked files do not count
    (package / "__init__.py").write_text("x = 2\n", encoding="utf-8")
    assert git_state(package) == (head, True)
    assert not (root / ".git" / "index.lock").exists()


def test_an_installed_package_is_not_a_checkout(tmp_path, monkeypatch):
    """site-packages, even inside a repository (a virtual environment in a project folder), has no commit."""
    (tmp_path / ".git").mkdir()
    package = tmp_path / ".venv" / "lib" / "python3" / "site-packages" / "cirlab"
    package.mkdir(parents=True)
    monkeypatch.setattr(module.subprocess, "run", lambda *a, **k: pytest.fail("git must not be called"))
    assert source_checkout(package) is None
    assert git_state(package) == (None, None)


def test_without_git_or_with_a_broken_repository_the_commit_is_none(tmp_path, monkeypatch):
    package = tmp_path / "src" / "cirlab"
    package.mkdir(parents=True)
    (tmp_path / ".git").mkdir()  # looks like a checkout, but git cannot read it
    assert source_checkout(package) == tmp_path
    assert git_state(package) == (None, None)
    monkeypatch.setenv("PATH", str(tmp_path / "no-binaries-here"))
    assert git_state(package) == (None, None)


@needs_git
def test_a_repository_without_commits_has_no_commit(tmp_path):
    package = tmp_path / "cirlab"
    package.mkdir()
    git(tmp_path, "init", "-q")
    assert git_state(package) == (None, None)
