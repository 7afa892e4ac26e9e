"""Several OpenAI-compatible endpoints behind one ``open()``.

With one base URL (one server, or a router such as vllm-router in front of many) the client does no
placement: every branch request carries the run's session header and the router keeps the run together.
With several base URLs and no router, a run's branches go to one endpoint, its home, and runs spread
(``backends/placement.py`` states the rule). An endpoint that refuses (connection error, 429, 5xx on
opening) is skipped for a short cool-down, so the retry of a branch lands on the next endpoint of the
run's order; that is how "an endpoint goes down, its branches move to the others" works without a
home-made cluster manager.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Sequence

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from deepprune_agents.backends.openai_stream import (
    BranchRequest,
    BranchStream,
    Endpoint,
    is_retryable,
    loaded_types,
    translate_open_error,
)
from deepprune_agents.backends.placement import place
from deepprune_agents.errors import BackendUnavailableError, ConfigError, ModelNotFoundError

DOWN_COOLDOWN_S = 5.0
OPEN_SPACING_S = 0.0005

# Every live Endpoint of this process by base URL: a graph run owns its own EndpointPool, and the
# per-endpoint cap and the fewest-streams rule count the streams of every run of the process.
_LIVE: dict[str, weakref.WeakSet[Endpoint]] = {}


def open_streams(base_url: str) -> int:
    """Streams this process has open (or opening) on ``base_url``, over every EndpointPool."""
    return sum(e.inflight for e in _LIVE.get(base_url.rstrip("/"), ()))


class EndpointPool:
    """Owns one client per base URL; opens each branch's stream where ``placement.place`` says."""

    def __init__(
        self,
        base_urls: Sequence[str],
        *,
        read_timeout_s: float = 60.0,
        open_retries: int = 3,
        retry_wait_s: float = 0.25,
        max_streams_per_endpoint: int | None = None,
    ) -> None:
        if not base_urls:
            raise ConfigError("no base URL given: pass base_urls=[...] (…/v1) or start `deepprune serve`.")
        if max_streams_per_endpoint is not None and max_streams_per_endpoint < 1:
            raise ConfigError(f"max_streams_per_endpoint must be >= 1 or None (got {max_streams_per_endpoint}).")
        self.endpoints = [Endpoint(u, read_timeout_s=read_timeout_s) for u in dict.fromkeys(base_urls)]
        for e in self.endpoints:
            _LIVE.setdefault(e.base_url, weakref.WeakSet()).add(e)
        self.urls = [e.base_url for e in self.endpoints]
        self.open_retries = open_retries
        self.retry_wait_s = retry_wait_s
        self.max_streams_per_endpoint = max_streams_per_endpoint
        self._next_open = 0.0

    def pick(self, session: str = "") -> Endpoint:
        """The endpoint for a new stream of run ``session`` (``placement.place``); endpoints cooling down
        after a refusal are skipped (all cooling down: the one whose cool-down ends first)."""
        if len(self.endpoints) == 1:
            return self.endpoints[0]
        now = time.monotonic()
        healthy = [e.down_until <= now for e in self.endpoints]
        if not any(healthy):
            soonest = min(range(len(self.endpoints)), key=lambda i: self.endpoints[i].down_until)
            healthy[soonest] = True
        loads = [open_streams(u) for u in self.urls]
        return self.endpoints[place(session, self.urls, loads, healthy, self.max_streams_per_endpoint)]

    async def open(self, req: BranchRequest) -> tuple[Endpoint, BranchStream]:
        """Open a stream with retries on connection errors, 429 and 5xx; nothing else is retried.

        On success the endpoint's ``inflight`` count includes the new stream: the caller decrements it
        once the stream is closed."""
        last: tuple[BaseException, Endpoint] | None = None
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.open_retries + 1),
            wait=wait_exponential_jitter(multiplier=self.retry_wait_s, max=4.0),
            retry=retry_if_exception(is_retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self._paced()
                    endpoint = self.pick(req.session_id)
                    # Reserve the slot before awaiting the open: N branches fanned out at once must see
                    # each other's pending opens (the cap, and the fewest-streams rule for session-less ones).
                    endpoint.inflight += 1
                    try:
                        stream = await endpoint.open(req)
                    except BaseException as exc:
                        endpoint.inflight -= 1
                        last = (exc, endpoint)
                        if is_retryable(exc):  # refused (down, 429, 5xx): the retry goes to the next endpoint
                            endpoint.failures += 1
                            endpoint.down_until = time.monotonic() + DOWN_COOLDOWN_S
                        raise
                    endpoint.failures = 0
                    endpoint.down_until = 0.0
                    return endpoint, stream
        except loaded_types("openai", "OpenAIError") as exc:  # no openai import unless one was raised
            failed = last[1] if last else self.endpoints[0]
            raise translate_open_error(exc, failed.base_url, req.model) from exc
        raise AssertionError("unreachable: tenacity either returns or reraises")  # pragma: no cover

    async def _paced(self) -> None:
        """Start opens at most one per OPEN_SPACING_S (a time slot each, no cap on how many are in flight).

        An open costs ~0.5 ms of Python before its first await; 512 branches fanned out at once all did
        theirs in one loop iteration and stalled the loop, and every stream on it, for up to a second.
        Spaced, each loop iteration starts only the opens whose slot has come, so the work of a fan-out is
        spread over OPEN_SPACING_S * N (0.25 s for 512 branches) instead of landing at once."""
        now = time.monotonic()
        slot = max(now, self._next_open)
        self._next_open = slot + OPEN_SPACING_S
        if slot > now:
            await asyncio.sleep(slot - now)

    async def resolve_model(self, model: str | None) -> str:
        """Check ``model`` against what the servers list; None picks the first listed model."""
        errors: list[str] = []
        for endpoint in self.endpoints:
            try:
                listed = await endpoint.list_models()
            except loaded_types("openai", "APIError") as exc:
                errors.append(f"{endpoint.base_url}: {type(exc).__name__}")
                continue
            if not listed:
                errors.append(f"{endpoint.base_url}: lists no model")
                continue
            if model is None:
                return listed[0]
            if model in listed:
                return model
            raise ModelNotFoundError(
                f"{endpoint.base_url} does not serve model {model!r}; it serves {listed}. "
                "Pass one of those (--model), or leave it unset to use the first."
            )
        raise BackendUnavailableError(
            "no endpoint answered GET /models ("
            + "; ".join(errors)
            + "). Start a server (`deepprune serve`) or fix the base URL(s)."
        )

    async def aclose(self) -> None:
        for endpoint in self.endpoints:
            _LIVE.get(endpoint.base_url, weakref.WeakSet()).discard(endpoint)
            await endpoint.aclose()
