"""The request-open path written for scale: the request body (what openai's client sent), the raw SSE line
splitter, and the pacing of opens. Their HTTP behaviour (status errors, refused connections, drops) is
covered end to end against the replay server (tests/e2e/test_faults_e2e.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from deepprune_agents.backends import endpoints
from deepprune_agents.backends.endpoints import EndpointPool
from deepprune_agents.backends.openai_stream import BranchRequest, BranchStream, RawLines, request_body


class FakeResponse:
    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts
        self.closed = False

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        for p in self.parts:
            yield p

    async def aclose(self) -> None:
        self.closed = True


async def lines_of(parts: list[bytes]) -> list[str]:
    return [line async for line in RawLines(FakeResponse(parts)).iter_lines()]  # type: ignore[arg-type]


async def test_lines_split_across_reads_crlf_and_a_character_cut_in_two() -> None:
    body = 'data: {"x": "é"}\r\n\r\ndata: [DONE]\n\n'.encode()
    cut = body.index("é".encode()) + 1  # inside the two-byte é
    assert await lines_of([body[:cut], body[cut:]]) == ['data: {"x": "é"}', "", "data: [DONE]", ""]
    assert await lines_of([b"data: 1\n", b"\n", b"data: 2"]) == ["data: 1", "", "data: 2"]
    assert await lines_of([]) == []


async def test_branch_stream_over_raw_lines_decodes_chunks() -> None:
    body = b'data: {"choices":[{"delta":{"content":"Hi"},"finish_reason":null}]}\n\n'
    body += b'data: {"choices":[{"delta":{"content":"!"},"finish_reason":"stop"}],"usage":{"completion_tokens":2}}\n\n'
    body += b"data: [DONE]\n\n"
    response = FakeResponse([body[:30], body[30:]])
    stream = BranchStream(RawLines(response), "chat")  # type: ignore[arg-type]
    chunks = [c async for c in stream]
    assert "".join(c.text for c in chunks) == "Hi!"
    assert chunks[-1].finish_reason == "stop" and chunks[-1].completion_tokens == 2
    await stream.close()
    assert response.closed


def test_request_body_matches_what_the_openai_client_sent() -> None:
    req = BranchRequest(model="m", messages=[{"role": "user", "content": "q"}], seed=3, extra_body={"top_k": 5})
    body = request_body(req)
    assert body == {
        "model": "m",
        "max_tokens": 512,
        "temperature": 0.8,
        "top_p": 0.95,
        "stream": True,
        "stream_options": {"include_usage": True},  # no continuous_usage_stats: routers drop it
        "seed": 3,
        "messages": [{"role": "user", "content": "q"}],
        "top_k": 5,
    }
    resumed = request_body(req.resumed("so far", 12))
    assert resumed["messages"][-1] == {"role": "assistant", "content": "so far"}
    assert resumed["continue_final_message"] is True and resumed["add_generation_prompt"] is False
    assert resumed["max_tokens"] == 500 and req.messages == [{"role": "user", "content": "q"}]
    completion = request_body(BranchRequest(model="m", prompt="P", endpoint="completions", continuation="C"))
    assert completion["prompt"] == "PC" and "messages" not in completion and "seed" not in completion


async def test_opens_are_spaced_not_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    """N opens at once start OPEN_SPACING_S apart (a fan-out no longer lands in one loop iteration), and
    every one of them is in flight together (no cap slows a fan-out to a slow server)."""
    monkeypatch.setattr(endpoints, "OPEN_SPACING_S", 0.01)
    pool = EndpointPool(["http://127.0.0.1:1/v1"])
    started: list[float] = []
    release, all_started = asyncio.Event(), asyncio.Event()

    async def fake_open(req: BranchRequest) -> str:
        started.append(time.monotonic())
        if len(started) == 6:
            all_started.set()
        await release.wait()
        return "stream"

    monkeypatch.setattr(pool.endpoints[0], "open", fake_open)
    t0 = time.monotonic()
    tasks = [asyncio.create_task(pool.open(BranchRequest(model="m"))) for _ in range(6)]
    await asyncio.wait_for(all_started.wait(), timeout=10)
    assert pool.endpoints[0].inflight == 6  # all six in flight at once: spaced, not capped
    release.set()
    results = await asyncio.gather(*tasks)
    assert [s for _, s in results] == ["stream"] * 6
    # Slots are absolute (t0, t0 + 10 ms, ...): a late loop may start two in one go, never one early.
    assert started[-1] - t0 >= 0.05 - 0.002
    await pool.aclose()
