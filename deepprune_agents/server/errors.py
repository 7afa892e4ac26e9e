"""What a client is told when a request fails: an HTTP status, OpenAI's error type and code, and a message
about its request, never the operator's (no flags, environment variables or upstream URLs to fix).

Why a module of its own: the engine's errors are written for the person who runs it ("start a server",
"set DEEPPRUNE_JUDGE_BASE_URL", "pass --model"); behind the proxy that person is the operator, and the
client can act on none of it. So an error is mapped here by its type, and an upstream's message keeps
only its first sentence (the finding), without the advice that follows it. Pure functions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from deepprune_agents.errors import (
    AllBranchesFailedError,
    BackendUnavailableError,
    ConfigError,
    DeepPruneError,
    ModelNotFoundError,
)

# OpenAI's error codes where one fits, ours (same style) where none does.
MODEL_NOT_FOUND = "model_not_found"
INVALID_API_KEY = "invalid_api_key"
UNSUPPORTED_PARAMETER = "unsupported_parameter"
UNSUPPORTED_VALUE = "unsupported_value"
INVALID_VALUE = "invalid_value"
RATE_LIMIT = "rate_limit_exceeded"
QUEUE_TIMEOUT = "queue_timeout"
UPSTREAM_UNAVAILABLE = "upstream_unavailable"
UPSTREAM_ERROR = "upstream_error"
SHUTTING_DOWN = "server_shutting_down"
SERVER_ERROR = "server_error"
NOT_FOUND = "not_found"
METHOD_NOT_ALLOWED = "method_not_allowed"
BODY_TOO_LARGE = "request_too_large"

_REJECTED = re.compile(r"rejected the request \((4\d\d)\b")


@dataclass
class ClientError(Exception):
    """A failure as the client sees it (also raised inside the proxy to answer at once)."""

    status: int
    message: str
    kind: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


class ShuttingDown(DeepPruneError):
    """The proxy stops (SIGTERM) and this run outlived the grace period."""


def first_sentence(text: str) -> str:
    """``text`` up to its first full stop outside parentheses: the finding without the advice after it
    ("cannot reach X (ConnectError: ...). Start a server ..." -> "cannot reach X (ConnectError: ...)")."""
    depth = 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        elif ch == "." and depth == 0 and (i + 1 == len(text) or text[i + 1] in " \n"):
            return text[:i]
    return text


def upstream_rejected(exc: BaseException) -> int | None:
    """The 4xx status with which the upstream refused every branch of the run, if it did."""
    if not isinstance(exc, AllBranchesFailedError) or not exc.branches:
        return None
    statuses = {m.group(1) for b in exc.branches if (m := _REJECTED.search(str(b.get("error") or "")))}
    if len(statuses) == 1 and all(_REJECTED.search(str(b.get("error") or "")) for b in exc.branches):
        return int(statuses.pop())
    return None


def from_run_error(exc: BaseException, *, model: str, has_images: bool = False) -> ClientError:
    """The client's view of a run that raised ``exc`` (URLs are scrubbed by the caller)."""
    if isinstance(exc, ClientError):
        return exc
    if isinstance(exc, ShuttingDown):
        return ClientError(503, str(exc), "server_error", SHUTTING_DOWN, headers={"Retry-After": "1"})
    if isinstance(exc, ModelNotFoundError):
        return ClientError(404, f"The model {model!r} does not exist upstream.", code=MODEL_NOT_FOUND, param="model")
    if isinstance(exc, ConfigError):
        return ClientError(400, first_sentence(str(exc)) + ".", code=INVALID_VALUE)
    rejected = upstream_rejected(exc)
    if rejected is not None and has_images:
        return ClientError(
            400,
            f"the model {model!r} did not accept this request with images (the model server answered "
            f"{rejected}): send text only, or ask for a model that takes images.",
            code=UNSUPPORTED_VALUE,
            param="messages",
        )
    if isinstance(exc, BackendUnavailableError):
        return ClientError(
            503,
            "the model server is unavailable: " + first_sentence(str(exc)) + ". Try again later.",
            "server_error",
            UPSTREAM_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )
    if isinstance(exc, AllBranchesFailedError):
        head, _, cause = str(exc).partition("; first error: ")
        text = f"{head} upstream; first error: {first_sentence(cause)}" if cause else first_sentence(head)
        return ClientError(502, text + ".", "upstream_error", UPSTREAM_ERROR)
    if isinstance(exc, DeepPruneError):
        return ClientError(502, first_sentence(str(exc)) + ".", "upstream_error", UPSTREAM_ERROR)
    return ClientError(500, "the proxy failed on this request (logged for the operator).", "server_error", SERVER_ERROR)


def body(message: str, kind: str, code: str | None, param: str | None) -> dict[str, object]:
    """OpenAI's error shape: the openai client raises it with ``message`` as the text."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def scrub_urls(text: str, upstreams: Sequence[str]) -> str:
    """The upstream URLs in ``text`` replaced by ``upstream #i``: the operator's network layout is not the
    client's to see."""
    for i, url in enumerate(upstreams):
        base = url.rstrip("/")
        root = base[: -len("/v1")] if base.endswith("/v1") else base
        text = text.replace(base, f"upstream #{i}").replace(root, f"upstream #{i}")
    return text
