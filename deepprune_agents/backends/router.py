"""vLLM replicas behind vllm-router, started locally: the deployment past one machine, in small.

In production the replicas are ``vllm serve`` processes on separate GPUs or machines and ``vllm-router
--policy consistent_hash`` sits in front of them; DeepPrune (the reasoner, or the stateless proxy) points at
the router's one URL and sends the run id as ``X-Session-ID`` on every branch request, which is what
``consistent_hash`` hashes: each run's branches land on one replica (its prompt computed once there) and
runs spread over replicas. Here the same shape runs on one machine, for trying it, for the e2e test and for
``bench/router.py``: ``RouterProcess`` runs the real ``vllm-router`` binary (``pip install
deepprune-agents[router]``) in front of any OpenAI-compatible servers, and ``Replicas`` adds N embedded
vLLM-CPU servers (``backends/embedded.py``) behind it (``deepprune replicas --n 2 --router``).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Self

from deepprune_agents.backends.child import ChildServer, Startable, free_port, log_tail
from deepprune_agents.backends.embedded import EmbeddedServer, root_url_of
from deepprune_agents.errors import BackendUnavailableError, ConfigError

ROUTER_EXECUTABLE = "vllm-router"
INSTALL_ROUTER = "pip install 'deepprune-agents[router]'  (or: pip install vllm-router)"
DEFAULT_POLICY = "consistent_hash"  # keeps requests with one X-Session-ID on one replica
# vllm-router's policies that keep a run together by its X-Session-ID header (measured, issue 35).
SESSION_POLICIES = ("consistent_hash", "sticky_least_loaded")


def router_executable() -> str | None:
    """The ``vllm-router`` console script: on PATH, or beside this interpreter (a venv not activated)."""
    found = shutil.which(ROUTER_EXECUTABLE)
    if found:
        return found
    beside = Path(sys.executable).parent / ROUTER_EXECUTABLE
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


class RouterProcess(ChildServer):
    """``vllm-router`` in its own process group on 127.0.0.1, in front of ``worker_urls``.

    ``with RouterProcess([a.root_url, b.root_url]) as router: ... router.base_url ...``"""

    def __init__(
        self,
        worker_urls: Sequence[str],
        *,
        policy: str = DEFAULT_POLICY,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout_s: float = 60.0,
        log_path: Path | None = None,
    ) -> None:
        if not worker_urls:
            raise ConfigError("vllm-router needs at least one worker URL.")
        super().__init__(port=port, startup_timeout_s=startup_timeout_s, stop_timeout_s=10.0, log_path=log_path)
        self.worker_urls = [root_url_of(u) for u in worker_urls]
        self.policy = policy
        self.metrics_port: int | None = None
        self.extra_args = tuple(extra_args)

    def command(self, executable: str) -> list[str]:
        return [
            executable,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--worker-urls",
            *self.worker_urls,
            "--policy",
            self.policy,
            # its own Prometheus exporter listens on a fixed port (29000) unless told: a second router on the
            # machine would die on "Address already in use"
            *(
                ["--prometheus-host", "127.0.0.1", "--prometheus-port", str(self.metrics_port)]
                if self.metrics_port
                else []
            ),
            # consistent_hash logs every request's key at INFO: a line per branch
            "--log-level",
            "warning",
            *self.extra_args,
        ]

    # ------------------------------------------------------------------------------ start-up (ChildServer)
    poll_s = 0.1

    def launch(self) -> tuple[list[str], dict[str, str] | None]:
        executable = router_executable()
        if executable is None:
            raise BackendUnavailableError(f"the vllm-router executable is not installed: {INSTALL_ROUTER}.")
        if self.port is None:
            self.port = free_port()
        if self.metrics_port is None:
            self.metrics_port = free_port()
        if self.log_path is None:
            self.log_path = Path(tempfile.gettempdir()) / f"vllm-router-{self.port}-{os.getpid()}.log"
        return self.command(executable), None

    def not_started(self) -> Exception:
        return ConfigError("the router has no port yet: call start() first.")

    def exited(self, code: int) -> Exception:
        return BackendUnavailableError(
            f"vllm-router exited with code {code} while starting (log: {self.log_path}):\n{log_tail(self.log_path)}"
        )

    def timed_out(self) -> Exception:
        # the router checks its workers before it answers /health
        return BackendUnavailableError(
            f"vllm-router did not become healthy within {self.startup_timeout_s:.0f} s (are its "
            f"workers up? {self.worker_urls}; log: {self.log_path}):\n{log_tail(self.log_path)}"
        )


class Replicas(Startable):
    """N embedded vLLM-CPU servers, optionally behind vllm-router: ``base_urls`` is what a client uses
    (the router's one URL, or every replica's URL for the client's own placement)."""

    def __init__(
        self,
        n: int,
        *,
        router: bool = True,
        policy: str = DEFAULT_POLICY,
        router_port: int | None = None,
        server_args: Sequence[str] = (),
        startup_timeout_s: float = 600.0,
    ) -> None:
        if n < 1:
            raise ConfigError(f"replicas: n must be >= 1 (got {n}).")
        self.servers = [EmbeddedServer(extra_args=server_args, startup_timeout_s=startup_timeout_s) for _ in range(n)]
        self.router: RouterProcess | None = None
        self._router_args = (policy, router_port) if router else None

    @property
    def base_urls(self) -> list[str]:
        if self.router is not None:
            return [self.router.base_url]
        return [s.base_url for s in self.servers]

    def start(self) -> Self:
        """Start the replicas (one after another: on a small machine two vLLM start-ups at once thrash),
        then the router; on any failure stop what was started."""
        try:
            for server in self.servers:
                server.start()
            if self._router_args is not None:
                if self.router is None:  # a second start() reuses it (a new one would orphan the first)
                    policy, port = self._router_args
                    self.router = RouterProcess([s.root_url for s in self.servers], policy=policy, port=port)
                self.router.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.router is not None:
            self.router.stop()
        for server in self.servers:
            server.stop()
