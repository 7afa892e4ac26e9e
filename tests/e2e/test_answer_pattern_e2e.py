"""A run's ``answer_pattern`` through the real stack: the Runnable, LangGraph, the engine's branch pool and
real HTTP streams from the replay server on a free port. Branches state their answer in a task-specific
form the built-in extractor does not read; with the pattern (a regex from settings, or a callable from
Python) they vote, without it every finished branch is visibly answerless."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from deepprune_agents.evaluation.replay_data import ReplayQuestion, make_trace
from deepprune_agents.evaluation.replay_server import ReplayServer
from deepprune_agents.reasoner import DeepPruneReasoner
from deepprune_agents.settings import DeepPruneContext
from deepprune_agents.tools import make_think_hard_tool

TEXTS = [
    "Thanksgiving 2001 is the fourth Thursday of November. RESULT<<11/22/2001>>\nEND",
    "Counting Thursdays in November 2001 gives the 22nd. RESULT<<11/22/2001>>\nEND",
    "The fourth Thursday is November 29 by my count. RESULT<<11/29/2001>>\nEND",
    "November 1, 2001 was a Thursday, plus three weeks. RESULT<<11/22/2001>>\nEND",
]
QUESTION = ReplayQuestion(
    "thanksgiving",
    "Today is the US Thanksgiving of 2001. What is the date today in MM/DD/YYYY?",
    "11/22/2001",
    tuple(make_trace(t) for t in TEXTS),
)
PATTERN = r"RESULT<<([^>]+)>>"


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    with ReplayServer([QUESTION], tokens_per_s=400) as s:
        yield s
        assert s.wait_idle(5.0), "the replay server still has an open stream after the test"


def _ctx(server: ReplayServer, **kw: object) -> DeepPruneContext:
    return DeepPruneContext(n=4, policy="none", judge="numbers", base_urls=[server.base_url], model="replay", **kw)  # type: ignore[arg-type]


async def test_without_a_pattern_branches_are_visibly_answerless(server: ReplayServer) -> None:
    result = await DeepPruneReasoner(_ctx(server)).ainvoke(QUESTION.question)
    assert result.answer is None and result.no_answer == 4
    assert all(b.no_answer and b.answer is None for b in result.branches)


async def test_a_regex_pattern_from_settings_decides_the_vote(server: ReplayServer) -> None:
    result = await DeepPruneReasoner(_ctx(server, answer_pattern=PATTERN)).ainvoke(QUESTION.question)
    assert result.answer == "11/22/2001" and result.no_answer == 0
    assert sorted(b.answer or "" for b in result.branches) == ["11/22/2001"] * 3 + ["11/29/2001"]


async def test_a_callable_and_a_per_call_override(server: ReplayServer) -> None:
    def last_token_date(text: str) -> str | None:
        start = text.rfind("<<")
        return text[start + 2 : text.find(">>", start)] if start >= 0 else None

    reasoner = DeepPruneReasoner(_ctx(server), answer_pattern=last_token_date)
    result = await reasoner.ainvoke(QUESTION.question)
    assert result.answer == "11/22/2001"
    overridden = await reasoner.ainvoke(QUESTION.question, {"configurable": {"answer_pattern": r"(END)"}})
    assert overridden.answer == "END"


async def test_the_tool_passes_the_pattern_through(server: ReplayServer) -> None:
    tool = make_think_hard_tool(
        base_urls=[server.base_url], model="replay", judge="numbers", n=4, answer_pattern=PATTERN
    )
    msg = await tool.ainvoke(
        {"type": "tool_call", "id": "call-1", "name": "think_hard", "args": {"question": QUESTION.question}}
    )
    assert "11/22/2001" in msg.content and msg.artifact["answer"] == "11/22/2001"
