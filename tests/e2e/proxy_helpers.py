"""Shared by the proxy's e2e tests: a recording upstream (the replay server, keeping every completion
request body it receives: what reached the branches), and a proxy factory on real sockets."""

from __future__ import annotations

import json
import threading
from typing import Any

from starlette.applications import Starlette
from starlette.types import Message, Receive, Scope, Send

from deepprune_agents.evaluation.replay_server import ReplayServer


class RecordingReplayServer(ReplayServer):
    """The replay server, with the JSON body of every ``POST …/chat/completions`` kept in ``bodies``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bodies: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def build(self) -> Starlette:
        app = super().build()

        async def recording(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or not str(scope.get("path", "")).endswith("/chat/completions"):
                await app(scope, receive, send)
                return
            chunks: list[bytes] = []

            async def receiving() -> Message:
                message = await receive()
                if message["type"] == "http.request":
                    chunks.append(message.get("body", b""))
                    if not message.get("more_body"):
                        with self._lock:
                            self.bodies.append(json.loads(b"".join(chunks)))
                return message

            await app(scope, receiving, send)

        return recording  # type: ignore[return-value]

    def branch_bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.bodies)
