"""Serving a Starlette app with uvicorn: bound socket, one config, and a background-thread server.

Two servers of ours run this way, the replay server (evaluation/) and the OpenAI-compatible proxy
(server/): both bind first (so ``port=0`` picks a free port the caller can read back before serving),
share the same uvicorn settings (no access log, no lifespan, a deep backlog for thousands of streams),
and run in a daemon thread for tests and benchmarks or in the foreground for the CLI. An app may bring
its own graceful stop (``drain``), run when the server starts shutting down."""

from __future__ import annotations

import asyncio
import math
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Self

from starlette.applications import Starlette

from deepprune_agents.errors import ConfigError


def bind(host: str, port: int) -> socket.socket:
    """A listening, non-blocking socket on ``host:port`` (0: any free port), or a ConfigError naming the fix."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({exc}): pick another --port (0 = any free port).") from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock


Drain = Callable[[], Awaitable[None]]
LINGER_S = 1.0  # on SIGTERM, how long a draining app still accepts connections (to refuse them properly)
DRAIN_MARGIN_S = 10.0  # uvicorn's own deadline lies this far past the app's, so the app always ends first


def uvicorn_config(app: Any, grace_s: float = 2.0) -> Any:
    import uvicorn

    return uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
        backlog=2048,
        timeout_graceful_shutdown=math.ceil(grace_s),
    )


def make_server(app: Any, drain: Drain | None = None, grace_s: float = 0.0, linger_s: float = 0.0) -> Any:
    """A uvicorn server; with ``drain``, shutting down (SIGTERM, Ctrl-C, ``stop()``) first starts
    ``drain()`` — the app's own graceful stop, which must end its open responses within ``grace_s`` —
    while uvicorn stops accepting and waits for the connections to close. Without it uvicorn would cancel
    the responses still open after its timeout: clients cut without a word, and a CancelledError traceback
    in the log."""
    import uvicorn

    class DrainingServer(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            task = asyncio.ensure_future(drain()) if drain is not None else None
            if task is not None and linger_s > 0:
                # Connections the kernel already queued would be reset when the listener closes: keep
                # accepting a moment, so their requests are answered by the draining app (a 503 with
                # Retry-After, which clients retry elsewhere) instead.
                await asyncio.sleep(min(linger_s, grace_s))
            try:
                await super().shutdown(sockets)
            finally:
                if task is not None:
                    await task

    return DrainingServer(uvicorn_config(app, grace_s + DRAIN_MARGIN_S if drain is not None else 2.0))


def serve_foreground(app: Any, sock: socket.socket, drain: Drain | None = None, grace_s: float = 0.0) -> None:
    """Serve ``app`` on ``sock`` until Ctrl-C / SIGTERM (the CLI commands; they linger, see ``make_server``)."""
    make_server(app, drain, grace_s, LINGER_S).run(sockets=[sock])


class ThreadedServer:
    """A Starlette app served in a daemon thread: ``with Sub(...) as s: s.base_url``. Subclasses give the
    app (``build``) and a name for the thread and for errors."""

    label = "server"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    grace_s = 0.0  # how long ``drain`` may take

    def build(self) -> Starlette:
        raise NotImplementedError

    def drain(self) -> Drain | None:
        """The app's graceful stop (see ``make_server``); None: uvicorn's own."""
        return None

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root_url + "/v1"

    def start(self, timeout_s: float = 10.0) -> Self:
        if self._thread is not None:
            return self
        sock = bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        app = self.build()
        self._server = make_server(app, self.drain(), self.grace_s)
        name = "deepprune-" + self.label.replace(" ", "-")
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, name=name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError(f"the {self.label} did not start on {self.root_url} within {timeout_s:.0f} s.")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=self.grace_s + 2 * DRAIN_MARGIN_S)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
