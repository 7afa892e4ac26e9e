"""Reading the embedded vLLM server's log in e2e tests: the log is the server's own record of what it
added and aborted, the evidence behind every cancellation test.

An abort lands after the engine's current step (seconds on a slow machine), so a test polls the log
until a condition holds instead of reading it once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

ABORT_GRACE_S = 60.0  # how long an abort may take to land on a slow machine (cold engine: 8 s per step seen)


def log_size(server: Any) -> int:
    """Where the log ends now: pass it as ``offset`` to look only at what a test caused."""
    return server.log_path.stat().st_size if server.log_path else 0


def log_since(server: Any, offset: int = 0) -> str:
    """The log text written after byte ``offset``."""
    text: str = server.log_path.read_bytes()[offset:].decode("utf-8", "replace")
    return text


async def wait_for_log(server: Any, holds: Callable[[str], bool], timeout_s: float, offset: int = 0) -> bool:
    """Whether ``holds(log text after offset)`` becomes true within ``timeout_s`` (polled every 0.1 s)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if holds(log_since(server, offset)):
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)


def every_added_request_aborted(log: str) -> bool:
    """vLLM logs one "Added request" and, when the client goes away, one "Aborted request(s) <id>" per request."""
    added = log.count("Added request")
    return added > 0 and log.count("Aborted request(s)") >= added
