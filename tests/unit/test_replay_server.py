"""The replay server's app, in-process through httpx's ASGI transport (no socket): vLLM-shaped chunks,
usage, records, metrics, seeds and faults. Real sockets, disconnects and stalls: tests/e2e/test_replay_*."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from deepprune_agents.backends.metrics import metric, parse_prometheus
from deepprune_agents.errors import ConfigError
from deepprune_agents.evaluation.replay_data import (
    RUN_STRIDE,
    QuestionIndex,
    ReplayQuestion,
    draw,
    make_trace,
    trace_index,
)
from deepprune_agents.evaluation.replay_server import FaultConfig, ReplayState, build_app

TEXTS = [
    "We add 2 and 3 to get 5. The answer is 5.",
    "2 + 3 = 6 so the answer is 6. The answer is 6.",
    "Two plus three is five. The answer is 5.",
    "Adding gives 5. The answer is 5.",
]
QUESTION = ReplayQuestion("q-add", "What is 2 + 3?", "5", tuple(make_trace(t) for t in TEXTS))
OTHER = ReplayQuestion("q-mul", "What is 2 * 3?", "6", (make_trace("2 * 3 = 6. The answer is 6."),))


@pytest.fixture
async def app_client() -> AsyncIterator[tuple[ReplayState, httpx.AsyncClient]]:
    state = ReplayState([QUESTION, OTHER])
    transport = httpx.ASGITransport(app=build_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://replay") as client:
        yield state, client


def sse_events(body: str) -> list[Any]:
    """Parse an SSE body into JSON payloads ('[DONE]' kept as the string)."""
    events: list[Any] = []
    for block in body.split("\n\n"):
        if not block.strip():
            continue
        assert block.startswith("data: "), block
        data = block[len("data: ") :]
        events.append(data if data == "[DONE]" else json.loads(data))
    return events


def chat_body(seed: int | None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "replay",
        "messages": [
            {"role": "system", "content": "Solve it."},
            {"role": "user", "content": "Problem:\n  What is 2 +   3?\nThink step by step."},
        ],
        "stream": True,
        "stream_options": {"include_usage": True, "continuous_usage_stats": True},
        **extra,
    }
    if seed is not None:
        body["seed"] = seed
    return body


async def test_models_lists_the_replay_model(app_client: tuple[ReplayState, httpx.AsyncClient]) -> None:
    _, client = app_client
    data = (await client.get("/v1/models")).json()
    assert [m["id"] for m in data["data"]] == ["replay"]
    assert (await client.get("/health")).status_code == 200


async def test_chat_stream_is_vllm_shaped(app_client: tuple[ReplayState, httpx.AsyncClient]) -> None:
    state, client = app_client
    resp = await client.post("/v1/chat/completions", json=chat_body(seed=2))
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = sse_events(resp.text)
    expected = QUESTION.traces[trace_index("q-add", 4, 2)]
    assert events[-1] == "[DONE]"
    first, *content, final = events[:-1]
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(e["object"] == "chat.completion.chunk" for e in events[:-1])
    # one piece per chunk, the pieces re-join to the recorded text
    assert [e["choices"][0]["delta"]["content"] for e in content] == list(expected.pieces)
    # continuous usage: completion_tokens counts the pieces so far
    assert [e["usage"]["completion_tokens"] for e in content] == list(range(1, expected.n_tokens + 1))
    assert [e["choices"][0]["finish_reason"] for e in content][-2:] == [None, "stop"]
    assert final["choices"] == [] and final["usage"]["completion_tokens"] == expected.n_tokens
    (record,) = state.records
    assert record.question_id == "q-add" and record.seed == 2
    assert record.trace == trace_index("q-add", 4, 2)
    assert record.tokens_sent == expected.n_tokens and record.finish_reason == "stop"
    assert not record.disconnected and record.t_end is not None and record.t_end >= record.t_start
    assert not state.open


async def test_completions_stream_without_usage_and_max_tokens(
    app_client: tuple[ReplayState, httpx.AsyncClient],
) -> None:
    _, client = app_client
    body = {
        "model": "replay",
        "prompt": "Question: What is 2 + 3?\nAnswer:",
        "stream": True,
        "seed": 0,
        "max_tokens": 3,
    }
    events = sse_events((await client.post("/v1/completions", json=body)).text)
    chunks = [e for e in events[:-1] if e["choices"] and e["choices"][0]["text"]]
    assert len(chunks) == 3
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert all("usage" not in e for e in events[:-1])
    expected = QUESTION.traces[trace_index("q-add", 4, 0)]
    assert "".join(c["choices"][0]["text"] for c in chunks) == "".join(expected.pieces[:3])


async def test_non_streaming_chat(app_client: tuple[ReplayState, httpx.AsyncClient]) -> None:
    state, client = app_client
    data = (await client.post("/v1/chat/completions", json=chat_body(seed=1, stream=False))).json()
    expected = QUESTION.traces[trace_index("q-add", 4, 1)]
    assert data["object"] == "chat.completion"
    assert data["choices"][0]["message"]["content"] == expected.text
    assert data["usage"]["completion_tokens"] == expected.n_tokens
    assert state.records[0].tokens_sent == expected.n_tokens


async def test_seeds_of_one_run_get_distinct_traces(app_client: tuple[ReplayState, httpx.AsyncClient]) -> None:
    state, client = app_client
    for seed in range(4):
        await client.post("/v1/chat/completions", json=chat_body(seed=seed, stream=False))
    for seed in range(4):  # the same seeds again: the same traces
        await client.post("/v1/chat/completions", json=chat_body(seed=seed, stream=False))
    served = [r.trace for r in state.records]
    assert sorted(served[:4]) == [0, 1, 2, 3]
    assert served[4:] == served[:4]
    assert served[:4] == draw("q-add", 4, 4, 0)


async def test_seedless_requests_take_branches_in_arrival_order(
    app_client: tuple[ReplayState, httpx.AsyncClient],
) -> None:
    state, client = app_client
    for _ in range(3):
        await client.post("/v1/chat/completions", json=chat_body(seed=None, stream=False))
    assert [r.seed for r in state.records] == [0, 1, 2]


async def test_wrong_model_is_a_vllm_404(app_client: tuple[ReplayState, httpx.AsyncClient]) -> None:
    state, client = app_client
    resp = await client.post("/v1/chat/completions", json=chat_body(seed=0, model="gpt-4"))
    assert resp.status_code == 404
    err = resp.json()["error"]
    assert err["type"] == "NotFoundError" and "gpt-4" in err["message"]
    assert not state.records


async def test_unknown_question_and_bad_body_are_400(app_client: tuple[ReplayState, httpx.AsyncClient]) -> None:
    _, client = app_client
    body = chat_body(seed=0)
    body["messages"] = [{"role": "user", "content": "What is the capital of France?"}]
    resp = await client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 400 and "--traces" in resp.json()["error"]["message"]
    resp = await client.post("/v1/chat/completions", content=b"not json", headers={"content-type": "application/json"})
    assert resp.status_code == 400


async def test_metrics_read_like_vllm(app_client: tuple[ReplayState, httpx.AsyncClient]) -> None:
    _, client = app_client
    await client.post("/v1/chat/completions", json=chat_body(seed=0))
    await client.post("/v1/chat/completions", json=chat_body(seed=1))
    samples = parse_prometheus((await client.get("/metrics")).text)
    sent = sum(QUESTION.traces[trace_index("q-add", 4, s)].n_tokens for s in (0, 1))
    assert metric(samples, "vllm:generation_tokens_total") == sent
    assert metric(samples, "vllm:num_requests_running") == 0
    assert metric(samples, "vllm:request_success_total", finished_reason="stop") == 2
    stats = (await client.get("/stats")).json()
    assert stats["open_streams"] == 0 and len(stats["records"]) == 2


async def test_fault_first_k_requests_get_429(app_client: tuple[ReplayState, httpx.AsyncClient]) -> None:
    _, client = app_client
    resp = await client.post("/admin/faults", json={"open_status": 429, "open_first": 2})
    assert resp.status_code == 200 and resp.json()["open_first"] == 2
    codes = [
        (await client.post("/v1/chat/completions", json=chat_body(seed=0, stream=False))).status_code for _ in range(3)
    ]
    assert codes == [429, 429, 200]


async def test_fault_rate_is_reproducible() -> None:
    def codes() -> list[int]:
        state = ReplayState([QUESTION], faults=FaultConfig(open_status=500, open_rate=0.5, seed=3))
        return [state.open_fault() or 200 for _ in range(40)]

    first = codes()
    assert first == codes()
    assert 5 < first.count(500) < 35


async def test_fault_malformed_chunk(app_client: tuple[ReplayState, httpx.AsyncClient]) -> None:
    state, client = app_client
    state.set_faults(FaultConfig(malformed_after=2))
    body = (await client.post("/v1/chat/completions", json=chat_body(seed=0))).text
    blocks = [b for b in body.split("\n\n") if b.strip()]
    assert len(blocks) == 1 + 2 + 1  # role chunk, two pieces, the broken one; no [DONE]
    with pytest.raises(json.JSONDecodeError):
        json.loads(blocks[-1][len("data: ") :])
    assert state.records[0].fault == "malformed" and state.records[0].tokens_sent == 2


async def test_bad_faults_are_rejected(app_client: tuple[ReplayState, httpx.AsyncClient]) -> None:
    _, client = app_client
    resp = await client.post("/admin/faults", json={"open_status": 200, "open_first": 1})
    assert resp.status_code == 400
    resp = await client.post("/admin/faults", json={"explode": True})
    assert resp.status_code == 400 and "explode" in resp.json()["error"]["message"]
    with pytest.raises(ConfigError):
        FaultConfig(stall_after=-1)


def test_question_index_matches_containment_and_prefers_the_longest() -> None:
    short = ReplayQuestion("s", "How many apples?", None, (make_trace("x"),))
    long = ReplayQuestion("l", "Tom has 3 apples. How many apples?", None, (make_trace("y"),))
    index = QuestionIndex([short, long])
    assert index.find("Q: Tom has 3 apples.\n How many   apples? Think.") is long
    assert index.find("How many apples?") is short
    assert index.find("How many pears?") is None


def test_trace_index_is_a_permutation_per_run() -> None:
    for run in range(3):
        served = [trace_index("q", 7, run * RUN_STRIDE + i) for i in range(7)]
        assert sorted(served) == list(range(7))
    runs = {tuple(draw("q", 50, 10, r)) for r in range(5)}
    assert len(runs) == 5  # different runs draw different subsets
    assert draw("q", 50, 10, 2) == draw("q", 50, 10, 2)
    with pytest.raises(ConfigError):
        trace_index("q", 0, 0)
