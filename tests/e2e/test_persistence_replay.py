"""The graph with a SQLite checkpointer over the replay server (no vLLM): what a checkpoint holds is plain
JSON branch records, and a run whose process lost it resumes from them without regenerating finished
branches. ``test_persistence.py`` checks the same against a real vLLM server (slow); this one runs fast."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import get_type_hints

import pytest
from persistence_scenario import assert_resumed_from_the_checkpoint, lose_and_resume

from deepprune_agents.evaluation.replay_data import ReplayQuestion, make_trace
from deepprune_agents.evaluation.replay_server import ReplayServer
from deepprune_agents.result import BranchRecordDict, DeepPruneResult
from deepprune_agents.settings import DeepPruneContext

SHORT = "3 + 4 = 7. The answer is 7."
LONG = "Tom has 3 apples and buys 4 more, so he has 3 + 4 = 7 apples." + " Counting again we get 7." * 12
QUESTION = ReplayQuestion(
    "apples-persistence",
    "Tom has 3 apples and buys 4 more. How many apples does he have now?",
    "7",
    tuple(make_trace(t) for t in [SHORT, LONG, SHORT, LONG + " The answer is 7."]),
)


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    with ReplayServer([QUESTION], tokens_per_s=40) as s:
        yield s
        assert s.wait_idle(5.0), "the replay server still has an open stream after the test"


async def test_checkpoints_hold_json_records_and_a_lost_run_resumes_from_them(server: ReplayServer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # tau = 1.0: the judge never merges, so nothing is pruned and every branch's fate is visible.
    ctx = DeepPruneContext(
        n=4,
        base_urls=[server.base_url],
        model="replay",
        judge="numbers",
        policy="periodic",
        tau=1.0,
        judge_every=4,
        truncate="tokens:4",
    )
    opened: list[int] = []

    async def idle() -> bool:
        return await asyncio.to_thread(server.wait_idle, 5.0)

    def after_loss() -> None:
        opened.append(len(server.records()))

    r = await lose_and_resume(QUESTION.question, ctx, tmp_path / "replay.sqlite", idle=idle, after_loss=after_loss)
    # What the checkpointer stored is plain JSON, shaped like BranchRecordDict (no pickled objects).
    branches = r.lost_state["branches"]
    assert json.loads(json.dumps(branches)) == branches
    assert all(set(b) == set(get_type_hints(BranchRecordDict)) for b in branches)
    DeepPruneResult.model_validate(r.final)
    assert all(set(b) == set(get_type_hints(BranchRecordDict)) for b in r.final["branches"])
    assert_resumed_from_the_checkpoint(r, same=("text", "tokens", "answer"))
    # Finished branches were not requested again: only the restarted ones opened a stream.
    assert len(server.records()) == opened[0] + len(r.restarted[0])
