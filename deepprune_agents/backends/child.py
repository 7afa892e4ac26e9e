"""Servers we run as child processes on 127.0.0.1: the embedded vLLM server and vllm-router.

Both are started the same way and must be stopped the same way, so the lifecycle lives here once:
* the child gets its own process group, so ``stop`` signals the workers it forks too (vLLM forks an engine
  core and a worker; SIGTERM to the group lets the API server shut them down, SIGKILL after a grace period
  makes sure nothing outlives us);
* its stdout and stderr go to a log file, because a server says why it failed in its log, not on the socket:
  a failed start raises an error that quotes the log's tail;
* ``start`` blocks until ``/health`` answers 200, and stops the child again if it does not.

A subclass says what to run (``launch``) and how its errors read (``not_started``, ``exited``,
``timed_out``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, ClassVar, Self

import httpx

LOG_TAIL_LINES = 30


class Startable:
    """``with x:`` / ``async with x:`` start it and stop it (the async form off the event loop: a start
    blocks for as long as the server takes to come up)."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)


class ChildServer(Startable):
    """A server of ours on 127.0.0.1: ``port`` (None: a free one at start), ``log_path`` (set by ``launch``
    where the caller gave none), ``startup_timeout_s`` to come up, ``stop_timeout_s`` before SIGKILL."""

    poll_s: ClassVar[float] = 0.5  # how often start polls /health

    def __init__(
        self,
        *,
        port: int | None,
        startup_timeout_s: float,
        stop_timeout_s: float,
        log_path: Path | None = None,
    ) -> None:
        self.port = port
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_fh: IO[bytes] | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------- what a subclass says
    def launch(self) -> tuple[list[str], dict[str, str] | None]:
        """The command line and environment (None: ours) to run. Called under the lock when not running:
        check what the server needs, and choose ``port`` and ``log_path`` where they are None."""
        raise NotImplementedError

    def not_started(self) -> Exception:
        """The error for asking a URL before the port is known."""
        raise NotImplementedError

    def exited(self, code: int) -> Exception:
        """The error for a child that ended before it answered /health (quote ``log_tail(self.log_path)``)."""
        raise NotImplementedError

    def timed_out(self) -> Exception:
        """The error for a child that did not answer /health within ``startup_timeout_s``."""
        raise NotImplementedError

    # ------------------------------------------------------------------------- the lifecycle
    @property
    def root_url(self) -> str:
        if self.port is None:
            raise self.not_started()
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root_url + "/v1"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> Self:
        """Start and block until /health answers 200; on any failure stop the child and raise."""
        with self._lock:
            if self.running:
                return self
            command, env = self.launch()
            assert self.log_path is not None, "launch() must choose log_path"
            self._spawn(command, self.log_path, env)
        try:
            assert self.proc is not None
            wait_healthy(
                self.proc,
                self.root_url,
                self.startup_timeout_s,
                exited=self.exited,
                timed_out=self.timed_out,
                poll_s=self.poll_s,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, command: Sequence[str], log_path: Path, env: dict[str, str] | None) -> None:
        self._log_fh = log_path.open("wb")
        self.proc = subprocess.Popen(
            list(command),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL after ``stop_timeout_s``; close the log. Idempotent."""
        with self._lock:
            proc, self.proc = self.proc, None
            if proc is not None:
                terminate_group(proc, self.stop_timeout_s)
            if self._log_fh is not None:
                self._log_fh.close()
                self._log_fh = None


def free_port() -> int:
    """An unused localhost port (the OS picks it; a tiny race with other binders is accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_tail(path: Path | None, n: int = LOG_TAIL_LINES) -> str:
    if path is None:
        return "(no log)"
    try:
        with path.open(errors="replace") as fh:
            return "".join(deque(fh, maxlen=n)).rstrip()
    except OSError:
        return "(no log)"


def wait_healthy(
    proc: subprocess.Popen[bytes],
    root_url: str,
    timeout_s: float,
    *,
    exited: Callable[[int], Exception],
    timed_out: Callable[[], Exception],
    poll_s: float,
) -> None:
    """Poll ``root_url/health`` until it answers 200. A server we start (vLLM, vllm-router) says why it failed
    in its log, not on the socket, so the caller builds the errors (quoting the log's tail): ``exited(code)``
    when the process ends first, ``timed_out()`` past ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2.0) as client:
        while True:
            code = proc.poll()
            if code is not None:
                raise exited(code)
            with contextlib.suppress(httpx.HTTPError):
                if client.get(root_url + "/health").status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise timed_out()
            time.sleep(poll_s)


def terminate_group(proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    def signal_group(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)  # pgid == pid thanks to start_new_session

    if proc.poll() is None:
        signal_group(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            signal_group(signal.SIGKILL)
            proc.wait(timeout=10)
    # The API server may be gone while an engine child lingers: sweep the group either way.
    signal_group(signal.SIGKILL)
