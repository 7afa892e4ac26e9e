"""The record the server keeps of each completion request (``GET /stats``, ``ReplayServer.records()``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class RequestRecord:
    """What the server did for one completion request."""

    id: str
    endpoint: str
    stream: bool
    question_id: str | None
    trace: int | None
    seed: int | None
    max_tokens: int | None
    t_start: float  # epoch seconds
    tokens_sent: int = 0
    status: int = 200
    t_first_token: float | None = None
    t_end: float | None = None
    finish_reason: str | None = None  # stop / length, None when it did not finish
    disconnected: bool = False  # the client went away before the stream ended
    t_disconnect: float | None = None
    t_last_token: float | None = None
    fault: str | None = None
    session: str | None = None  # the request's session header (its run, for a DeepPrune client), if any

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
