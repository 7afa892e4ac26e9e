"""The graph with a SQLite checkpointer over the replay server (no vLLM): what a checkpoint holds is plain
JSON branch records, and a run whose process lost it resumes from them without regenerating finished
branches. ``test_persistence.py`` checks the same against a real vLLM server (slow); this one runs fast."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, get_type_hints

import pytest
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from deepprune_agents.engine import RunRegistry
from deepprune_agents.evaluation.replay_data import ReplayQuestion, make_trace
from deepprune_agents.evaluation.replay_server import ReplayServer
from deepprune_agents.graph import build_graph
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
    config: dict[str, Any] = {"configurable": {"thread_id": "resume-replay"}}
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "checkpoints.sqlite")) as saver:
        runs = RunRegistry()
        graph = build_graph(checkpointer=saver, runs=runs)
        await graph.ainvoke({"question": QUESTION.question}, config, context=ctx, interrupt_after=["judge"])
        for _ in range(200):  # judge rounds until the checkpoint holds finished and still-running branches
            state = (await graph.aget_state(config)).values
            statuses = [b["status"] for b in state["branches"]]
            if "finished" in statuses and "running" in statuses:
                break
            assert any(s in ("running", "pending") for s in statuses), "all finished before a mixed checkpoint"
            await graph.ainvoke(None, config, context=ctx, interrupt_after=["judge"])
        assert "finished" in statuses and "running" in statuses
        # What the checkpointer stored is plain JSON, shaped like BranchRecordDict (no pickled objects).
        assert json.loads(json.dumps(state["branches"])) == state["branches"]
        assert all(set(b) == set(get_type_hints(BranchRecordDict)) for b in state["branches"])
        checkpoint = {b["id"]: b for b in state["branches"]}
        await runs.close(state["run_id"], "process-died")  # the process "dies": only the checkpoint survives
        assert state["run_id"] not in runs.open()
        assert server.wait_idle(5.0)
        opened_before = len(server.records())
        graph = build_graph(checkpointer=saver, runs=RunRegistry())  # a new process: a registry without the run

        events: list[dict[str, Any]] = []
        final = None
        async for mode, chunk in graph.astream(None, config, context=ctx, stream_mode=["custom", "values"]):
            if mode == "custom":
                events.append(chunk)
            elif "result" in chunk:
                final = chunk["result"]
    assert final is not None
    DeepPruneResult.model_validate(final)
    assert all(set(b) == set(get_type_hints(BranchRecordDict)) for b in final["branches"])
    was_running = sorted(i for i, b in checkpoint.items() if b["status"] in ("pending", "running"))
    assert [sorted(e["restarted"]) for e in events if e["event"] == "resume"] == [was_running]
    assert len(server.records()) == opened_before + len(was_running)  # finished branches were not requested again
    by_id = {b["id"]: b for b in final["branches"]}
    for i, before in checkpoint.items():
        after = by_id[i]
        if before["status"] == "finished":  # kept as it was: not generated again
            assert (after["text"], after["tokens"], after["answer"]) == (
                before["text"],
                before["tokens"],
                before["answer"],
            )
        else:  # was generating: continued after its checkpointed text
            assert after["text"].startswith(before["text"]) and after["tokens"] >= before["tokens"]
