"""The replay server on a real socket: disconnect records, the engine unchanged against it (pruning closes
streams and the server sees it), faults that need a live connection (stall, drop), and /metrics as
``backends/metrics.py`` reads vLLM's."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from deepprune_agents.backends.metrics import GENERATION_TOKENS, RUNNING, scrape_metrics, wait_until_idle
from deepprune_agents.evaluation.replay_data import ReplayQuestion, draw, make_trace
from deepprune_agents.evaluation.replay_server import FaultConfig, ReplayServer
from deepprune_agents.reasoner import DeepPruneReasoner
from deepprune_agents.settings import DeepPruneContext

# Branches of two kinds: they share numbers early iff they end on the same answer (the numbers judge
# clusters them), with enough tokens after the truncation point for pruning to save something.
RIGHT = "Tom has 3 apples and buys 4 more, so 3 + 4 = 7 apples." + " Counting again we get 7." * 6 + " The answer is 7."
WRONG = "Tom has 3 apples and loses 2, so 3 - 2 = 1 apple." + " Counting again we get 1." * 6 + " The answer is 1."
QUESTION = ReplayQuestion(
    "apples",
    "Tom has 3 apples and buys 4 more. How many apples does he have?",
    "7",
    tuple(make_trace(t) for t in [RIGHT, WRONG, RIGHT, RIGHT, WRONG, RIGHT, RIGHT, RIGHT]),
)


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    with ReplayServer([QUESTION], tokens_per_s=100) as s:
        yield s
        assert s.wait_idle(5.0), "the replay server still has an open stream after the test"


def stream_body(seed: int) -> dict[str, object]:
    return {
        "model": "replay",
        "messages": [{"role": "user", "content": QUESTION.question}],
        "stream": True,
        "seed": seed,
        "stream_options": {"include_usage": True, "continuous_usage_stats": True},
    }


async def test_client_disconnect_is_recorded(server: ReplayServer) -> None:
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("POST", server.base_url + "/chat/completions", json=stream_body(0)) as resp,
    ):
        read = 0
        async for line in resp.aiter_lines():
            if line.startswith("data: ") and '"content":""' not in line:
                read += 1
            if read == 5:
                break
    closed_at = time.time()
    assert server.wait_idle(2.0)
    (record,) = server.records()
    assert record.disconnected and record.finish_reason is None
    assert record.t_disconnect is not None and record.t_disconnect - closed_at < 0.5
    # it kept pacing at 100 tok/s until it noticed: a token or two past what we read, no more
    assert 5 <= record.tokens_sent <= 5 + 2 + math.ceil(100 * (record.t_disconnect - closed_at))
    assert record.tokens_sent < QUESTION.traces[record.trace or 0].n_tokens


async def test_engine_prunes_against_the_replay_server(server: ReplayServer) -> None:
    ctx = DeepPruneContext(
        n=8, policy="paper", judge="numbers", truncate="tokens:12", tau=0.5, base_urls=[server.base_url], model="replay"
    )
    result = await DeepPruneReasoner(ctx).ainvoke(QUESTION.question)
    assert result.answer == "7"
    assert server.wait_idle(2.0)
    records = {r.seed: r for r in server.records()}
    assert sorted(records) == list(range(8))
    served = draw("apples", 8, 8, 0)
    cancelled = [b for b in result.branches if b.status == "cancelled"]
    assert cancelled, "the wrong-answer branches should have been pruned"
    for b in result.branches:
        rec = records[b.seed]
        assert rec.trace == served[b.id]
        if b.status == "finished":
            assert rec.finish_reason == "stop" and rec.tokens_sent == b.tokens
        elif not rec.disconnected:
            # the race a loaded machine can show: the server wrote its last chunk before the cancel,
            # the client had not read it yet; the request ended on the server all the same
            assert rec.finish_reason == "stop" and b.tokens <= rec.tokens_sent
        else:
            # the server saw the socket close, and sent at most what its pace allows past the client's count
            assert rec.t_disconnect is not None and b.cancel_decided_at is not None
            lag = rec.t_disconnect - b.cancel_decided_at
            assert -0.01 <= lag < 0.5
            assert b.tokens <= rec.tokens_sent <= b.tokens + 1 + math.ceil(100 * lag)
    assert any(records[b.seed].disconnected for b in cancelled), "no pruned stream was closed mid-way"
    assert result.tokens_generated < sum(t.n_tokens for t in QUESTION.traces)


async def test_metrics_like_vllm(server: ReplayServer) -> None:
    ctx = DeepPruneContext(n=4, policy="none", base_urls=[server.base_url], model="replay")
    result = await DeepPruneReasoner(ctx).ainvoke(QUESTION.question)
    assert await wait_until_idle(server.root_url, 2.0)
    m = await scrape_metrics(server.root_url)
    assert m[RUNNING] == 0
    assert m[GENERATION_TOKENS] == result.tokens_generated == sum(r.tokens_sent for r in server.records())


async def test_stall_fault_ends_in_a_read_timeout(server: ReplayServer) -> None:
    server.set_faults(FaultConfig(stall_after=3))
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key="x", timeout=0.5, max_retries=0)
    stream = await client.chat.completions.create(
        model="replay", messages=[{"role": "user", "content": QUESTION.question}], stream=True, seed=0
    )
    got = []
    with pytest.raises(openai.APITimeoutError):
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                got.append(chunk.choices[0].delta.content)
    await client.close()
    assert len(got) == 3
    assert server.wait_idle(2.0)
    (record,) = server.records()
    assert record.fault == "stall" and record.tokens_sent == 3 and record.disconnected


async def test_drop_fault_breaks_the_stream(server: ReplayServer) -> None:
    server.set_faults(FaultConfig(drop_after=4))
    async with httpx.AsyncClient(timeout=5) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            async with client.stream("POST", server.base_url + "/chat/completions", json=stream_body(1)) as resp:
                async for _ in resp.aiter_lines():
                    pass
    assert server.wait_idle(2.0)
    (record,) = server.records()
    assert record.fault == "drop" and record.tokens_sent == 4 and record.finish_reason is None


async def test_open_faults_go_through_the_engine_retries(server: ReplayServer) -> None:
    server.set_faults(FaultConfig(open_status=429, open_first=2))
    ctx = DeepPruneContext(n=2, policy="none", base_urls=[server.base_url], model="replay", open_retries=3)
    result = await DeepPruneReasoner(ctx).ainvoke(QUESTION.question)
    assert result.finished == 2  # two 429s were retried away
    assert len(server.records()) == 2  # rejected opens are not completions


async def test_many_concurrent_streams_full_speed() -> None:
    with ReplayServer([QUESTION]) as s:
        async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=None)) as client:

            async def one(seed: int) -> int:
                resp = await client.post(s.base_url + "/chat/completions", json=stream_body(seed))
                return resp.text.count('"content":"') - 1

            counts = await asyncio.gather(*(one(i) for i in range(64)))
        assert s.wait_idle(2.0)
        assert sum(counts) == sum(r.tokens_sent for r in s.records()) == s.stats()["generation_tokens_total"]
