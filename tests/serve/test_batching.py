"""The micro-batcher on its own: a fake clock and explicit flushes, and caller threads that block on events."""

import threading
import time

import pytest

from cirlab.errors import ConfigError
from cirlab.serve.batching import BatchSettings, MicroBatcher


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A batch function that doubles numbers, fails on negative ones, and remembers every batch."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __call__(self, items: list[int]) -> list[object]:
        self.batches.append(list(items))
        return [ValueError(f"negative: {item}") if item < 0 else 2 * item for item in items]


def batcher(window_ms: float = 5.0, max_batch: int = 3, run=None, clock=None) -> MicroBatcher:
    return MicroBatcher(run or Recorder(), BatchSettings(window_ms=window_ms, max_batch=max_batch),
                        clock=clock or FakeClock())


def until(condition, what: str) -> None:
    """Wait for ``condition()`` to hold (a state another thread reaches), failing after a minute."""
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)


def call_in_threads(queue: MicroBatcher, items) -> tuple[list[threading.Thread], dict]:
    """Call ``queue(item)`` for each item on its own thread; results (or errors) land in the returned dict."""
    results: dict = {}

    def caller(item) -> None:
        try:
            results[item] = queue(item)
        except Exception as exc:  # the test inspects it
            results[item] = exc

    threads = [threading.Thread(target=caller, args=(item,), daemon=True) for item in items]
    for thread in threads:
        thread.start()
    return threads, results


def join(threads) -> None:
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive(), "a caller is still waiting"


def test_a_batch_is_due_when_its_oldest_item_has_waited_the_window():
    clock = FakeClock()
    queue = batcher(window_ms=5.0, max_batch=3, clock=clock)
    assert queue.due_in() is None
    queue.submit(1)
    assert queue.due_in() == pytest.approx(0.005)
    clock.now += 0.002
    queue.submit(2)
    assert queue.due_in() == pytest.approx(0.003)  # the oldest item decides
    clock.now += 0.004
    assert queue.due_in() == 0.0


def test_a_full_batch_is_due_at_once():
    queue = batcher(window_ms=5.0, max_batch=3)
    for item in (1, 2):
        queue.submit(item)
    assert queue.due_in() > 0
    queue.submit(3)
    assert queue.due_in() == 0.0


def test_flush_answers_up_to_max_batch_items_oldest_first_as_one_batch():
    run = Recorder()
    queue = batcher(max_batch=3, run=run)
    tickets = [queue.submit(item) for item in range(5)]
    assert queue.flush() == 3
    assert run.batches == [[0, 1, 2]]
    assert [t.done() for t in tickets] == [True, True, True, False, False]
    assert [t.result() for t in tickets[:3]] == [0, 2, 4]
    assert queue.waiting() == 2
    assert queue.flush() == 2 and run.batches[-1] == [3, 4]
    assert queue.flush() == 0 and len(run.batches) == 2
    assert (queue.batches, queue.items) == (2, 5)


def test_an_item_that_fails_fails_alone():
    queue = batcher(max_batch=4)
    tickets = [queue.submit(item) for item in (1, -2, 3)]
    queue.flush()
    assert tickets[0].result() == 2 and tickets[2].result() == 6
    with pytest.raises(ValueError, match="negative: -2"):
        tickets[1].result()


def test_a_batch_function_that_raises_fails_its_batch_only():
    calls = []

    def run(items):
        calls.append(items)
        if len(calls) == 1:
            raise RuntimeError("the index is damaged")
        return [item + 1 for item in items]

    queue = batcher(max_batch=2, run=run)
    first = [queue.submit(item) for item in (1, 2)]
    second = queue.submit(3)
    queue.flush()
    for ticket in first:
        with pytest.raises(RuntimeError, match="the index is damaged"):
            ticket.result()
    assert not second.done()
    queue.flush()
    assert second.result() == 4


def test_a_batch_function_that_answers_the_wrong_number_of_items_fails_the_batch():
    queue = batcher(run=lambda items: items[:-1])
    tickets = [queue.submit(item) for item in (1, 2)]
    queue.flush()
    for ticket in tickets:
        with pytest.raises(RuntimeError, match="answered 1 of 2 items"):
            ticket.result()


def test_an_unanswered_ticket_times_out():
    ticket = batcher().submit(1)
    with pytest.raises(TimeoutError):
        ticket.result(timeout=0)


def test_concurrent_callers_are_answered_as_one_full_batch():
    # The clock never moves, so the window never ends: only a full batch can close it.
    run = Recorder()
    queue = batcher(window_ms=5.0, max_batch=4, run=run)
    threads, results = call_in_threads(queue, range(4))
    join(threads)
    assert results == {0: 0, 1: 2, 2: 4, 3: 6}
    assert len(run.batches) == 1 and sorted(run.batches[0]) == [0, 1, 2, 3]


def test_a_caller_alone_answers_its_own_batch_on_its_own_thread_once_the_window_has_passed():
    clock = FakeClock()
    threads = []

    def run(items):
        threads.append(threading.get_ident())
        return [2 * item for item in items]

    queue = batcher(window_ms=5.0, max_batch=4, run=run, clock=clock)
    ticket = queue.submit(5)
    clock.now += 1.0  # the queued item has waited longer than the window
    assert queue(6) == 12  # this caller leads: the batch is due (its oldest item has waited) and holds both
    assert ticket.result(timeout=0) == 10
    assert threads == [threading.get_ident()] and queue.waiting() == 0


def test_the_next_batch_fills_while_one_is_answered_and_its_callers_take_the_lead_in_turn():
    started, release = threading.Event(), threading.Event()
    batches: list[list[int]] = []

    def run(items):
        batches.append(list(items))
        if len(batches) == 1:
            started.set()
            assert release.wait(60)
        return [item * 10 for item in items]

    queue = batcher(window_ms=5.0, max_batch=2, run=run)
    first, first_results = call_in_threads(queue, (1, 2))  # full: answered at once, and held there
    assert started.wait(60)
    second, second_results = call_in_threads(queue, (3, 4, 5))
    until(lambda: queue.waiting() == 3, "three queued items")
    assert first_results == {} and second_results == {}
    release.set()
    join(first)
    until(lambda: len(second_results) == 2, "the second batch")
    assert first_results == {1: 10, 2: 20}
    assert sorted(batches[1]) in ([3, 4], [3, 5], [4, 5])  # the two oldest of the second wave, in arrival order
    # The last caller leads its own batch, alone, and its window never ends on the frozen clock.
    assert queue.waiting() == 1
    assert queue.flush() == 1
    join(second)
    assert second_results == {3: 30, 4: 40, 5: 50}
    assert len(batches) == 3


def test_every_caller_gets_its_own_outcome_from_a_shared_batch():
    queue = batcher(window_ms=5.0, max_batch=3)
    threads, results = call_in_threads(queue, (1, -2, 3))
    join(threads)
    assert results[1] == 2 and results[3] == 6
    assert isinstance(results[-2], ValueError) and str(results[-2]) == "negative: -2"


@pytest.mark.parametrize(("settings", "message"), [
    ({"window_ms": -1.0}, "--batch-window-ms must be a number of milliseconds >= 0, got -1.0"),
    ({"window_ms": float("nan")}, "--batch-window-ms must be a number of milliseconds >= 0, got nan"),
    ({"window_ms": float("inf")}, "--batch-window-ms must be a number of milliseconds >= 0, got inf"),
    ({"max_batch": 0}, "--max-batch must be a positive integer, got 0"),
    ({"max_batch": 2.5}, "--max-batch must be a positive integer, got 2.5"),
])
def test_bad_settings_are_one_line_errors(settings, message):
    with pytest.raises(ConfigError) as caught:
        BatchSettings(**settings)
    assert str(caught.value) == message


def test_one_query_per_batch_turns_batching_off():
    assert BatchSettings().enabled and BatchSettings(window_ms=0, max_batch=2).enabled
    assert not BatchSettings(max_batch=1).enabled
