"""Run slots: at most ``limit`` runs at a time, then a bounded FIFO queue with a timeout.

Why a queue rather than a 429 at the cap: a run takes seconds to minutes, far longer than a client's
retry backoff (the openai client gives up after two retries, about 2 s), so a burst just over the cap
was refused although every request would have been served a few seconds later. A 429 now means the
queue itself is full; a request that waited ``timeout_s`` gets a 503 (retryable), and when the proxy
stops every waiter is told at once. One event loop owns it (no locks).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time


class QueueFull(Exception):
    """The cap is reached and ``size`` requests already wait."""


class QueueTimeout(Exception):
    """The request waited ``timeout_s`` without getting a slot."""


class QueueClosed(Exception):
    """The proxy is shutting down: no new run starts."""


class RunSlots:
    """``async with``-free on purpose: the slot outlives the handler (it is released when the streamed
    response ends), so callers pair ``acquire`` with ``release`` themselves."""

    def __init__(self, limit: int, size: int = 0, timeout_s: float = 30.0) -> None:
        self.limit, self.size, self.timeout_s = limit, size, timeout_s
        self.active = 0
        self.closed = False
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def waiting(self) -> int:
        return sum(not w.done() for w in self._waiters)

    def full(self) -> bool:
        """No slot and no room to wait: the caller answers 429."""
        return self.active >= self.limit and self.waiting >= self.size

    async def acquire(self) -> float:
        """Take a slot, waiting in line if needed; returns the seconds waited."""
        if self.closed:
            raise QueueClosed
        if self.active < self.limit and not self.waiting:
            self.active += 1
            return 0.0
        if self.waiting >= self.size:
            raise QueueFull
        t0 = time.perf_counter()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.timeout_s):
                await waiter
        except TimeoutError:
            self._give_back(waiter)
            raise QueueTimeout from None
        except asyncio.CancelledError:  # the client left while waiting
            self._give_back(waiter)
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
        return time.perf_counter() - t0

    def _give_back(self, waiter: asyncio.Future[None]) -> None:
        """A slot handed to ``waiter`` just as it stopped waiting goes on to the next one."""
        if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
            self.release()
        elif not waiter.done():
            waiter.cancel()

    def release(self) -> None:
        """Hand the slot to the first waiter still waiting, or free it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on: ``active`` is unchanged
                return
        self.active = max(0, self.active - 1)

    def close(self) -> None:
        """Shutting down: every waiter gets QueueClosed, and so does every later ``acquire``."""
        self.closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(QueueClosed())
