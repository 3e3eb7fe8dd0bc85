"""Micro-batching: requests that arrive within a few milliseconds of each other are answered as one batch.

As inference servers batch dynamically, the service queues each checked query and answers the queue in
batches: a batch closes when ``max_batch`` queries wait or when its oldest query has waited
``window_ms``, whichever comes first, and one batch is answered at a time. While a batch is being
answered the next one fills, so under load batches grow by themselves and the window costs nothing; an
idle service adds at most the window to a lone request's latency.

There is no worker thread: the waiting callers take turns. The caller of the oldest query *leads*: it
waits until the batch is due, answers it on its own thread, and, once its own query is answered, hands
the lead to the caller of the oldest query still waiting, which answers the queries that queued in the
meantime. Every other caller sleeps until its query is answered (or the lead comes to it). A lone
request therefore runs on its own thread, as without batching, and a batch costs no hand-over to
another thread before it starts.

:class:`MicroBatcher` knows nothing about search: it queues items, runs a batch function over up to
``max_batch`` of them, and hands each caller its own result or its own error. Its clock is injectable
and its batches can be flushed explicitly (:meth:`MicroBatcher.submit`, :meth:`MicroBatcher.due_in`,
:meth:`MicroBatcher.flush`), so its behaviour can be tested without timing.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from cirlab.errors import ConfigError

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class BatchSettings:
    """How concurrent queries are batched: the longest wait for company, and the largest batch.

    ``max_batch`` 1 turns batching off: each request is answered on its own thread, one query at a time.
    """

    window_ms: float = 2.0  # how long the oldest waiting query may wait for others to join its batch
    max_batch: int = 32  # most queries answered together

    def __post_init__(self) -> None:
        if not (isinstance(self.window_ms, (int, float)) and 0 <= self.window_ms < math.inf):
            raise ConfigError(f"--batch-window-ms must be a number of milliseconds >= 0, got {self.window_ms!r}")
        if isinstance(self.max_batch, bool) or not isinstance(self.max_batch, int) or self.max_batch < 1:
            raise ConfigError(f"--max-batch must be a positive integer, got {self.max_batch!r}")

    @property
    def enabled(self) -> bool:
        """Whether queries are batched at all."""
        return self.max_batch > 1


class Ticket(Generic[R]):
    """A queued item's place in line: :meth:`result` waits for its batch and returns or raises its outcome."""

    __slots__ = ("_done", "_error", "_lead", "_signal", "_value", "arrived", "caller")

    def __init__(self, arrived: float, caller: bool) -> None:
        self.arrived = arrived
        self.caller = caller  # a thread waits on this ticket and can take the lead
        self._signal = threading.Event()  # set when the item is answered, or when its caller is to lead
        self._done = False
        self._lead = False
        self._value: R | None = None
        self._error: BaseException | None = None

    def done(self) -> bool:
        """Whether the item's batch has been answered."""
        return self._done

    def result(self, timeout: float | None = None) -> R:
        """The item's result; raises its error, or :class:`TimeoutError` when not answered within ``timeout``."""
        if not self._signal.wait(timeout) or not self._done:
            raise TimeoutError("the batch of this item was not answered in time")
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value] - set with done

    def _settle(self, value: R | None, error: BaseException | None) -> None:
        self._value, self._error, self._done = value, error, True
        self._signal.set()

    def _promote(self) -> None:
        self._lead = True
        self._signal.set()


class MicroBatcher(Generic[T, R]):
    """Queue items and answer them in batches with ``run_batch``, on the callers' own threads.

    ``run_batch(items)`` returns one outcome per item, in order: a result, or an exception that only
    that item's caller gets. When ``run_batch`` itself raises, every item of that batch gets the error.
    ``clock`` gives the time in seconds (``time.monotonic`` by default; tests pass a fake one).
    Calling the batcher (``batcher(item)``) queues the item and returns its result.
    """

    def __init__(self, run_batch: Callable[[list[T]], Sequence[R | BaseException]], settings: BatchSettings,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.run_batch = run_batch
        self.settings = settings
        self._clock = clock
        self._queue: deque[tuple[T, Ticket[R]]] = deque()
        self._condition = threading.Condition()
        self._led = False  # a caller leads (waits to answer the next batch, or answers it)
        self.batches = 0  # batches answered so far
        self.items = 0  # items answered so far

    # ------------------------------------------------------------ callers
    def __call__(self, item: T) -> R:
        """Queue ``item``, wait for its batch (answering it, when this caller leads) and return its result."""
        with self._condition:
            ticket = self._enqueue(item, caller=True)
            lead = not self._led
            self._led = True
        if not lead:
            ticket._signal.wait()
        while not ticket.done():
            self._answer_next(ticket)
        return ticket.result()

    def _answer_next(self, ticket: Ticket[R]) -> None:
        """As the leader: wait until the next batch is due, answer it, and pass the lead on once ``ticket``'s
        own item is answered."""
        with self._condition:
            while not ticket.done():
                due = self._due_in()
                if due == 0:
                    break
                self._condition.wait(due)
        if not ticket.done():  # (an explicit flush may have answered it meanwhile)
            self.flush()
        if ticket.done():
            with self._condition:
                successor = next((waiting for _, waiting in self._queue if waiting.caller), None)
                if successor is None:
                    self._led = False
                else:
                    successor._promote()

    # ------------------------------------------------------------ queueing
    def submit(self, item: T) -> Ticket[R]:
        """Queue ``item`` without waiting; its ticket is answered by a later batch (a :meth:`flush`, or a
        caller's batch that takes it)."""
        with self._condition:
            return self._enqueue(item, caller=False)

    def _enqueue(self, item: T, caller: bool) -> Ticket[R]:
        ticket: Ticket[R] = Ticket(self._clock(), caller)
        self._queue.append((item, ticket))
        self._condition.notify_all()  # the leader may be waiting for a full batch
        return ticket

    def waiting(self) -> int:
        """How many items are queued and not yet taken into a batch."""
        with self._condition:
            return len(self._queue)

    def due_in(self) -> float | None:
        """Seconds until the next batch is due (0: now), or ``None`` when nothing waits."""
        with self._condition:
            return self._due_in()

    def _due_in(self) -> float | None:
        if not self._queue:
            return None
        if len(self._queue) >= self.settings.max_batch:
            return 0.0
        return max(0.0, self._queue[0][1].arrived + self.settings.window_ms / 1000 - self._clock())

    # ------------------------------------------------------------ answering
    def flush(self) -> int:
        """Take up to ``max_batch`` queued items, oldest first, and answer them as one batch in this thread,
        whether or not the batch is due; returns how many were answered."""
        with self._condition:
            taken = [self._queue.popleft() for _ in range(min(len(self._queue), self.settings.max_batch))]
        if not taken:
            return 0
        items = [item for item, _ in taken]
        try:
            outcomes = list(self.run_batch(items))
            if len(outcomes) != len(items):
                raise RuntimeError(f"the batch function answered {len(outcomes)} of {len(items)} items")
        except Exception as exc:  # the batch's callers get the error; the next batch is answered as usual
            outcomes = [exc] * len(items)
        with self._condition:
            self.batches += 1
            self.items += len(items)
            for (_, ticket), outcome in zip(taken, outcomes):
                if isinstance(outcome, BaseException):
                    ticket._settle(None, outcome)
                else:
                    ticket._settle(outcome, None)
            self._condition.notify_all()  # a leader whose item this batch answered stops waiting
        return len(items)
