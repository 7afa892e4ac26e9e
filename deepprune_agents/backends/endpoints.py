"""Several OpenAI-compatible endpoints behind one ``open()``.

Branches go to the endpoint with the fewest open streams (ties: list order), which is all a user who
outgrows one machine needs: point ``base_urls`` at several vLLM replicas, or at one vLLM router URL.
An endpoint that fails to connect is skipped for a short cool-down, so the retry of a branch lands on
another endpoint; that is how "an endpoint goes down, its branches move to the others" works without a
home-made cluster manager.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import openai
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from deepprune_agents.backends.openai_stream import (
    BranchRequest,
    BranchStream,
    Endpoint,
    is_retryable,
    translate_open_error,
)
from deepprune_agents.errors import BackendUnavailableError, ConfigError, ModelNotFoundError

DOWN_COOLDOWN_S = 5.0
OPEN_SPACING_S = 0.0005


class EndpointPool:
    """Owns one client per base URL; opens branch streams on the least-loaded healthy endpoint."""

    def __init__(
        self,
        base_urls: Sequence[str],
        *,
        read_timeout_s: float = 60.0,
        open_retries: int = 3,
        retry_wait_s: float = 0.25,
    ) -> None:
        if not base_urls:
            raise ConfigError("no base URL given: pass base_urls=[...] (…/v1) or start `deepprune serve`.")
        self.endpoints = [Endpoint(u, read_timeout_s=read_timeout_s) for u in dict.fromkeys(base_urls)]
        self.open_retries = open_retries
        self.retry_wait_s = retry_wait_s
        self._next_open = 0.0

    def pick(self) -> Endpoint:
        """Least in-flight streams among endpoints not cooling down (all cooling down: least recent)."""
        now = time.monotonic()
        healthy = [e for e in self.endpoints if e.down_until <= now]
        candidates = healthy or sorted(self.endpoints, key=lambda e: e.down_until)[:1]
        return min(candidates, key=lambda e: e.inflight)

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
                    endpoint = self.pick()
                    # Reserve the slot before awaiting the open: N branches fanned out at once must see
                    # each other's pending opens, or they would all land on the first endpoint.
                    endpoint.inflight += 1
                    try:
                        stream = await endpoint.open(req)
                    except BaseException as exc:
                        endpoint.inflight -= 1
                        last = (exc, endpoint)
                        if isinstance(exc, openai.APIConnectionError):
                            endpoint.failures += 1
                            endpoint.down_until = time.monotonic() + DOWN_COOLDOWN_S
                        raise
                    endpoint.failures = 0
                    endpoint.down_until = 0.0
                    return endpoint, stream
        except (openai.APIError, openai.OpenAIError) as exc:
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
            except openai.APIError as exc:
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
            await endpoint.aclose()
