"""Read a vLLM server's Prometheus ``/metrics``: the server's own account of what it generated.

Why the server's numbers and not ours: the claims this project makes (fewer tokens generated, cancelled
branches really aborted) are about the *server's* work. ``vllm:generation_tokens_total`` and
``vllm:num_requests_running`` are the independent evidence; counting chunks on the client side would
only measure what we read, not what the GPU/CPU spent.

Parsing is a pure function (``parse_prometheus``, over ``prometheus_client``'s parser) so it is
unit-tested without a server.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from deepprune_agents.errors import BackendUnavailableError

RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
GENERATION_TOKENS = "vllm:generation_tokens_total"
PROMPT_TOKENS = "vllm:prompt_tokens_total"
REQUEST_SUCCESS = "vllm:request_success_total"


@dataclass(frozen=True)
class Sample:
    """One line of the exposition format: ``name{labels} value``."""

    name: str
    value: float
    labels: dict[str, str] = field(default_factory=dict)

    def matches(self, name: str, labels: dict[str, str]) -> bool:
        return self.name == name and all(self.labels.get(k) == v for k, v in labels.items())


def _parsed(text: str) -> list[Sample]:
    """Every sample of ``text``; ValueError when a line is malformed."""
    from prometheus_client.parser import text_string_to_metric_families

    return [
        Sample(s.name, float(s.value), dict(s.labels))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def parse_prometheus(text: str) -> list[Sample]:
    """Parse the Prometheus text exposition format (``prometheus_client``'s parser). Comments are skipped,
    and so are malformed lines, not fatal: a metrics endpoint must never crash a run. The parser rejects
    a whole text for one bad line, so such a text is parsed again line by line, keeping the good ones."""
    try:
        return _parsed(text)
    except ValueError:
        pass
    samples: list[Sample] = []
    for line in text.split("\n"):  # the format is \n-delimited; a raw \r may sit in a label value
        if line.strip() and not line.lstrip().startswith("#"):
            with contextlib.suppress(ValueError):
                samples.extend(_parsed(line))
    return samples


def totals(samples: Iterable[Sample]) -> dict[str, float]:
    """Sum over label sets per metric name (one server may report per engine / per model)."""
    out: dict[str, float] = {}
    for s in samples:
        out[s.name] = out.get(s.name, 0.0) + s.value
    return out


def metric(samples: Iterable[Sample], name: str, **labels: str) -> float:
    """Sum of ``name`` over the samples whose labels include ``labels`` (0.0 when none match),
    e.g. ``metric(samples, "vllm:request_success_total", finished_reason="abort")``."""
    return sum(s.value for s in samples if s.matches(name, labels))


def _metrics_url(root_url: str) -> str:
    url = root_url.rstrip("/")
    if url.endswith("/v1"):  # accept a base URL too: /metrics lives at the root
        url = url[: -len("/v1")]
    return url + "/metrics"


async def scrape_samples(root_url: str, client: httpx.AsyncClient | None = None) -> list[Sample]:
    """GET ``/metrics`` and parse it. Raises BackendUnavailableError naming the URL when it fails."""
    url = _metrics_url(root_url)
    try:
        # A server busy on 2 cores (or a listen queue still full of a finished benchmark's sockets) can miss
        # one connect: retry connecting, never a request that got an answer.
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(4),
            wait=wait_exponential_jitter(multiplier=0.5, max=4.0),
            retry=retry_if_exception_type((httpx.ConnectError, httpx.ConnectTimeout)),
            reraise=True,
        ):
            with attempt:
                if client is not None:
                    resp = await client.get(url)
                else:
                    async with httpx.AsyncClient(timeout=10.0) as own:
                        resp = await own.get(url)
        resp.raise_for_status()
    except httpx.HTTPError as exc:
        raise BackendUnavailableError(
            f"could not read {url} ({exc!r}): is the vLLM server up, and is this its root URL?"
        ) from exc
    return parse_prometheus(resp.text)


async def scrape_metrics(root_url: str, client: httpx.AsyncClient | None = None) -> dict[str, float]:
    """``/metrics`` summed per metric name, e.g. ``m["vllm:generation_tokens_total"]``."""
    return totals(await scrape_samples(root_url, client))


async def wait_until_idle(
    root_url: str,
    timeout_s: float,
    *,
    poll_s: float = 0.05,
    include_waiting: bool = True,
    client: httpx.AsyncClient | None = None,
) -> bool:
    """Poll until no request runs (nor waits, by default); False if that did not happen in ``timeout_s``.

    Used to prove that "no request is left running on the server" after a run returns or raises.
    """
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=5.0) if client is None else contextlib.nullcontext(client) as c:
        while True:
            m = await scrape_metrics(root_url, c)
            busy = m.get(RUNNING, 0.0) + (m.get(WAITING, 0.0) if include_waiting else 0.0)
            if busy <= 0:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(poll_s)
