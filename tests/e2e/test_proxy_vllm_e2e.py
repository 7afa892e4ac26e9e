"""The proxy in front of the real (embedded) vLLM server: a streamed answer through the openai client, and a
client disconnect mid-stream that leaves none of the run's requests running on vLLM (its own metrics)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from deepprune_agents.backends.embedded import EmbeddedServer, ExternalServer
from deepprune_agents.backends.metrics import RUNNING, metric, parse_prometheus, wait_until_idle
from deepprune_agents.server.app import ProxyConfig, ProxyServer
from deepprune_agents.server.protocol import PROGRESS_PREFIX
from deepprune_agents.settings import DeepPruneContext

N = 4


def running(server: EmbeddedServer | ExternalServer) -> float:
    return metric(parse_prometheus(httpx.get(server.root_url + "/metrics", timeout=5).text), RUNNING)


@pytest.fixture
def proxy(vllm_server: EmbeddedServer | ExternalServer) -> Iterator[ProxyServer]:
    ctx = DeepPruneContext(base_urls=[vllm_server.base_url], model=vllm_server.model, judge="numbers")
    with ProxyServer(ProxyConfig(ctx)) as p:
        yield p


def test_streamed_answer_from_vllm(proxy: ProxyServer) -> None:
    client = openai.OpenAI(base_url=proxy.base_url, api_key="unused", max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model=f"{proxy.config.defaults.model}+deepprune:n=3,max_tokens=64",
            messages=[{"role": "user", "content": "What is 17 * 3?"}],
            stream=True,
        )
    )
    summary: dict[str, Any] = (chunks[-1].model_extra or {})["deepprune"]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == sum(b["tokens"] for b in summary["branches"]) > 0
    assert len(summary["branches"]) == 3
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert PROGRESS_PREFIX not in content


def test_disconnect_leaves_no_request_of_the_run_on_vllm(
    proxy: ProxyServer, vllm_server: EmbeddedServer | ExternalServer
) -> None:
    # vLLM 0.32 does not count client disconnects as finished_reason="abort" (see test_embedded_server), so
    # the evidence is num_requests_running: up while the run streams, back to 0 once the client left.
    # Other clients may share the server during development: wait for it to be idle first.
    assert asyncio.run(wait_until_idle(vllm_server.root_url, timeout_s=60)), "the server was busy before the test"
    client = openai.OpenAI(base_url=proxy.base_url, api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model=vllm_server.model,
        messages=[{"role": "user", "content": "Write a long story about a lighthouse keeper."}],
        stream=True,
        extra_body={"deepprune": {"n": N, "policy": "none", "max_tokens": 2048}},
    )
    for chunk in stream:
        if chunk.choices and "branches started" in (getattr(chunk.choices[0].delta, "reasoning", None) or ""):
            break
    deadline = time.monotonic() + 30
    while running(vllm_server) < N and time.monotonic() < deadline:
        time.sleep(0.02)
    assert running(vllm_server) >= N, "the run's branches were not all running on vLLM"
    closed_at = time.monotonic()
    stream.close()
    assert asyncio.run(wait_until_idle(vllm_server.root_url, timeout_s=10, poll_s=0.02)), "branches kept running"
    print(f"vLLM idle {1000 * (time.monotonic() - closed_at):.0f} ms after the client disconnected")
    assert httpx.get(proxy.root_url + "/health", timeout=5).json()["active_runs"] == 0
