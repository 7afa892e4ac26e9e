"""Serving a Starlette app with uvicorn: bound socket, one config, and a background-thread server.

Two servers of ours run this way, the replay server (evaluation/) and the OpenAI-compatible proxy
(server/): both bind first (so ``port=0`` picks a free port the caller can read back before serving),
share the same uvicorn settings (no access log, no lifespan, a deep backlog for thousands of streams),
and run in a daemon thread for tests and benchmarks or in the foreground for the CLI."""

from __future__ import annotations

import socket
import threading
import time
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


def uvicorn_config(app: Starlette) -> Any:
    import uvicorn

    return uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
        backlog=2048,
        timeout_graceful_shutdown=2,
    )


def serve_foreground(app: Starlette, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` until Ctrl-C / SIGTERM (the CLI commands)."""
    import uvicorn

    uvicorn.Server(uvicorn_config(app)).run(sockets=[sock])


class ThreadedServer:
    """A Starlette app served in a daemon thread: ``with Sub(...) as s: s.base_url``. Subclasses give the
    app (``build``) and a name for the thread and for errors."""

    label = "server"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def build(self) -> Starlette:
        raise NotImplementedError

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root_url + "/v1"

    def start(self, timeout_s: float = 10.0) -> Self:
        import uvicorn

        if self._thread is not None:
            return self
        sock = bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn_config(self.build()))
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
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
