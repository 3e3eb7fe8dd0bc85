"""Progress: a tqdm bar on a terminal; in a log, a few plain lines whose timing depends only on the count."""

from __future__ import annotations

import io
import sys

import pytest
from tqdm.auto import tqdm

from cirlab.progress import LineProgress, progress


class Stream(io.StringIO):
    """A stderr stand-in that records each write and says whether it is a terminal."""

    def __init__(self, terminal: bool) -> None:
        super().__init__()
        self.terminal = terminal
        self.writes: list[str] = []

    def isatty(self) -> bool:
        return self.terminal

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def redirect(monkeypatch, terminal: bool = False) -> Stream:
    """stderr replaced by a :class:`Stream` (inside the test: pytest's capture resets it after fixtures), progress
    allowed."""
    stream = Stream(terminal)
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setenv("CIRLAB_NO_PROGRESS", "0")
    return stream


def test_a_log_gets_one_line_per_tenth_of_the_work_and_no_redraws(monkeypatch):
    log = redirect(monkeypatch)
    with progress(desc="train", total=700, unit="step") as bar:
        assert isinstance(bar, LineProgress)
        for step in range(700):
            bar.update(1)
            bar.set_postfix(epoch=step // 70 + 1, loss=f"{1 / (step + 1):.4f}")
    lines = log.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == [f"train: {n}/700 step ({n // 7}%)" for n in range(70, 701, 70)]
    assert lines[-1].endswith("epoch=10, loss=0.0014")
    assert "\r" not in log.getvalue()
    assert all(write.endswith("\n") and write.count("\n") == 1 for write in log.writes)  # one write per line


def test_iteration_counts_and_closes_with_a_final_line(monkeypatch):
    log = redirect(monkeypatch)
    assert list(progress(range(5), desc="images", unit="img")) == [0, 1, 2, 3, 4]
    assert [line.split(",")[0] for line in log.getvalue().splitlines()] == [
        f"images: {n}/5 img ({n * 20}%)" for n in range(1, 6)]


def test_unknown_total_writes_at_doubling_counts_and_at_the_end(monkeypatch):
    log = redirect(monkeypatch)
    bar = progress(iter(range(11)), desc="scan")
    assert sum(1 for _ in bar) == 11
    assert [line.split(",")[0] for line in log.getvalue().splitlines()] == [
        "scan: 1 it", "scan: 2 it", "scan: 4 it", "scan: 8 it", "scan: 11 it"]


def test_big_updates_and_a_second_close_write_nothing_twice(monkeypatch):
    log = redirect(monkeypatch)
    bar = progress(desc="index", total=100, unit="img")
    bar.update(55)
    bar.update(45)
    bar.close()
    bar.close()
    assert [line.split(",")[0] for line in log.getvalue().splitlines()] == [
        "index: 55/100 img (55%)", "index: 100/100 img (100%)"]


def test_a_terminal_gets_a_tqdm_bar(monkeypatch):
    redirect(monkeypatch, terminal=True)
    bar = progress(desc="train", total=3)
    assert isinstance(bar, tqdm) and not bar.disable
    bar.close()


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_no_progress_env_turns_both_kinds_off(monkeypatch, value):
    log = redirect(monkeypatch)
    monkeypatch.setenv("CIRLAB_NO_PROGRESS", value)
    for terminal in (False, True):
        log.terminal = terminal
        with progress(desc="train", total=10) as bar:
            bar.update(10)
    assert log.getvalue() == ""


def test_disabled_by_the_caller(monkeypatch):
    log = redirect(monkeypatch)
    with progress(desc="train", total=10, enabled=False) as bar:
        bar.update(10)
    assert log.getvalue() == ""
