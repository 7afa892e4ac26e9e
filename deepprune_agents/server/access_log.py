"""One access-log line per request, and the HTTP status counter of /metrics, as an ASGI middleware.

The line is written when the response has ended (for a stream: after ``[DONE]``), so it holds what the
run did: status, latency, branches, tokens and saving. It never holds a key, and the question only when
the operator asks for it (``--log-prompts``): prompts are the users' data. A handler fills the run's
fields into ``scope[INFO]`` (a dict shared with the middleware).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deepprune_agents.server.metrics import ProxyMetrics

log = logging.getLogger("deepprune.access")
INFO = "deepprune.access"
PROMPT_CHARS = 200


def access_line(scope: Scope, status: int, seconds: float, info: dict[str, Any], *, log_prompts: bool) -> str:
    """``127.0.0.1 "POST /v1/chat/completions" 200 1.234s id=... n=8 tokens=512 saved=37% queued=0.000s``."""
    client = scope.get("client") or ("-", 0)
    parts = [f'{client[0]} "{scope.get("method", "-")} {scope.get("path", "-")}" {status} {seconds:.3f}s']
    for key in ("id", "model", "stream", "n", "outcome", "tokens", "queued"):
        if key in info:
            value = info[key]
            parts.append(f"{key}={value:.3f}s" if key == "queued" else f"{key}={value}")
    if "saving" in info:
        parts.append(f"saved={info['saving']:.0%}")
    if log_prompts and info.get("prompt"):
        parts.append(f"prompt={str(info['prompt'])[:PROMPT_CHARS]!r}")
    return " ".join(parts)


class AccessLog:
    """Wraps the app: times each HTTP request, counts its status, logs its line."""

    def __init__(self, app: ASGIApp, metrics: ProxyMetrics, *, log_prompts: bool = False) -> None:
        self.app, self.metrics, self.log_prompts = app, metrics, log_prompts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        info: dict[str, Any] = {}
        scope[INFO] = info
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            shown = status or (499 if info.get("outcome") == "cancelled" else 500)  # 499: nginx's 'client left'
            self.metrics.responses.labels(status=str(shown)).inc()
            if scope.get("path") not in ("/health", "/metrics", "/ready"):  # probes would drown the log
                log.info(access_line(scope, shown, time.perf_counter() - t0, info, log_prompts=self.log_prompts))
