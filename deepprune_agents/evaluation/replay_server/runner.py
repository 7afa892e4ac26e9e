"""Running the server: ``ReplayServer`` in a background thread (tests, benchmarks), ``serve_forever`` in the
foreground (``deepprune replay-server``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from starlette.applications import Starlette

from deepprune_agents.asgi_server import ThreadedServer, bind, serve_foreground
from deepprune_agents.evaluation.replay_data import ReplayQuestion
from deepprune_agents.evaluation.replay_server.app import build_app
from deepprune_agents.evaluation.replay_server.faults import FaultConfig
from deepprune_agents.evaluation.replay_server.records import RequestRecord
from deepprune_agents.evaluation.replay_server.state import (
    DEFAULT_LOCKSTEP_LEAD_S,
    DEFAULT_MODEL,
    DEFAULT_SESSION_HEADER,
    ReplayState,
)


class ReplayServer(ThreadedServer):
    """The replay server on 127.0.0.1 in a background thread.

    ``with ReplayServer(questions, tokens_per_s=50) as server: ... server.base_url ... server.stats()``
    """

    def __init__(
        self,
        questions: Sequence[ReplayQuestion],
        *,
        tokens_per_s: float = 0.0,
        faults: FaultConfig | None = None,
        model: str = DEFAULT_MODEL,
        host: str = "127.0.0.1",
        port: int = 0,
        lockstep: bool = False,
        stagger_s: float = 0.0,
        lockstep_lead_s: float = DEFAULT_LOCKSTEP_LEAD_S,
        reasoning: str | None = None,
        session_header: str = DEFAULT_SESSION_HEADER,
    ) -> None:
        self.state = ReplayState(
            questions,
            tokens_per_s=tokens_per_s,
            model=model,
            faults=faults,
            lockstep=lockstep,
            stagger_s=stagger_s,
            lockstep_lead_s=lockstep_lead_s,
            reasoning=reasoning,
            session_header=session_header,
        )
        super().__init__(host=host, port=port)

    label = "replay server"

    def build(self) -> Starlette:
        return build_app(self.state)

    @property
    def model(self) -> str:
        return self.state.model

    # -- inspection / control -----------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Same JSON as ``GET /stats``: ``records``, ``open_streams``, counters, faults."""
        return self.state.snapshot()

    def records(self) -> list[RequestRecord]:
        with self.state.lock:
            return list(self.state.records)

    def open_streams(self) -> int:
        with self.state.lock:
            return len(self.state.open)

    def set_faults(self, faults: FaultConfig | None) -> None:
        self.state.set_faults(faults or FaultConfig())

    def reset(self) -> None:
        self.state.reset()

    def wait_idle(self, timeout_s: float = 5.0) -> bool:
        """Wait until no stream is open (a cancelled client's disconnect can take a moment to land)."""
        deadline = time.monotonic() + timeout_s
        while self.open_streams():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True


def serve_forever(questions: Sequence[ReplayQuestion], *, host: str, port: int, **options: Any) -> None:
    """Run the server in the foreground (the CLI); Ctrl-C stops it."""
    state = ReplayState(questions, **options)
    sock = bind(host, port)
    actual = sock.getsockname()[1]
    print(f"replay server: {len(questions)} questions, model {state.model!r}, http://{host}:{actual}/v1", flush=True)
    serve_foreground(build_app(state), sock)
