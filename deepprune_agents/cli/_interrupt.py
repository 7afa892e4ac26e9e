"""Ctrl-C in the CLI: recorded once, turned into exit status 130 whatever the layers below return.

``asyncio.run`` answers SIGINT by cancelling its main task and raises ``KeyboardInterrupt`` only if that
task then ends *cancelled*. A layer that absorbs the cancellation and returns a value makes
``asyncio.run`` return normally: exit 0 after the user pressed Ctrl-C. LangGraph does that in one window
(``Pregel.astream`` ends a finished run by awaiting its cancelled stream waiter under
``suppress(CancelledError)``, which also swallows a cancel of the caller's task), and any library could
in another. So the CLI does not rely on the cancellation arriving intact: SIGINT is counted here, the
coroutine is cancelled, every branch run still open is closed, and a counted interrupt always ends the
command with ``KeyboardInterrupt`` (``main`` prints the message and returns 130).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Coroutine, Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from deepprune_agents.engine import RunRegistry

T = TypeVar("T")

EXIT_INTERRUPTED = 130
_interrupts = 0


def interrupted() -> bool:
    """Whether SIGINT reached this process since ``install`` (or since the last ``reset``)."""
    return _interrupts > 0


def reset() -> None:
    global _interrupts
    _interrupts = 0


def _count() -> None:
    global _interrupts
    _interrupts += 1


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    """Outside the event loop: like Python's default handler, but the interrupt is recorded, so a library
    that catches ``KeyboardInterrupt`` (a bare ``except:`` in an import) cannot make the CLI exit 0."""
    _count()
    raise KeyboardInterrupt


def install() -> None:
    """Route SIGINT through ``_on_sigint`` (main thread only; Python allows signal handlers nowhere else)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_sigint)


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # not counted: a stop asked for by SIGTERM is a clean exit, not Ctrl-C's 130


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside, SIGTERM raises ``KeyboardInterrupt`` in the main thread (the previous handler is put back
    after), so a foreground server (``serve``, ``replicas``, the proxy) stops the same way on Ctrl-C and on
    ``docker stop``/systemd, through its ``except KeyboardInterrupt`` and ``finally``, with exit status 0."""
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _sigterm) if in_main else None
    try:
        yield
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def run_command(coro: Coroutine[Any, Any, T], runs: RunRegistry | None = None) -> T:
    """``asyncio.run`` for CLI commands: Ctrl-C cancels ``coro`` (its ``finally`` blocks close what it
    opened), then every branch run still open in ``runs`` (the registry of the reasoner ``coro`` uses) is
    closed, then ``KeyboardInterrupt`` is raised even when ``coro`` swallowed the cancellation and
    returned a result."""
    return asyncio.run(_guarded(coro, runs))


async def _guarded(coro: Coroutine[Any, Any, T], runs: RunRegistry | None) -> T:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        # A plain handler, not loop.add_signal_handler: it runs at once in the main thread, so the interrupt
        # is recorded even when the command returns before the loop would have read its self-pipe. The
        # cancel itself runs as a loop callback; a second Ctrl-C cancels again (cleanup is bounded).
        _count()
        loop.call_soon_threadsafe(task.cancel)

    if in_main:
        signal.signal(signal.SIGINT, on_sigint)
    try:
        result = await coro
    except asyncio.CancelledError:
        if not interrupted():
            raise
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
        if interrupted() and runs is not None:
            # Normally empty (the reasoner closes its run in a ``finally``); the guarantee when a layer
            # swallowed the cancellation.
            await runs.close_all("interrupted")
    if interrupted():
        raise KeyboardInterrupt
    return result
