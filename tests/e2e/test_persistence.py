"""The graph with a SQLite checkpointer: a run interrupted mid-way resumes from its last checkpoint
without regenerating finished branches (branches still generating continue after their text)."""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from deepprune_agents.backends.metrics import wait_until_idle
from deepprune_agents.engine import RunRegistry
from deepprune_agents.graph import build_graph
from deepprune_agents.settings import DeepPruneContext

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have now?"


async def test_resume_after_the_process_lost_the_run(vllm_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # tau = 1.0: the judge never merges, so nothing is pruned and every branch's fate is visible.
    ctx = DeepPruneContext(
        n=4,
        base_urls=[vllm_server.base_url],
        model=vllm_server.model,
        max_tokens=160,
        judge="numbers",
        policy="periodic",
        tau=1.0,
        judge_every=8,
        truncate="tokens:8",
    )
    config: dict[str, Any] = {"configurable": {"thread_id": "resume-test"}}
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "checkpoints.sqlite")) as saver:
        runs = RunRegistry()
        graph = build_graph(checkpointer=saver, runs=runs)
        await graph.ainvoke({"question": QUESTION}, config, context=ctx, interrupt_after=["judge"])
        # Step judge rounds until the checkpoint holds both finished and still-running branches.
        for _ in range(200):
            state = (await graph.aget_state(config)).values
            statuses = [b["status"] for b in state["branches"]]
            if "finished" in statuses and "running" in statuses:
                break
            assert any(s in ("running", "pending") for s in statuses), "all finished before a mixed checkpoint"
            await graph.ainvoke(None, config, context=ctx, interrupt_after=["judge"])
        checkpoint = {b["id"]: b for b in state["branches"]}
        # The process "dies": its run and every stream are gone; only the checkpoint survives.
        await runs.close(state["run_id"], "process-died")
        assert state["run_id"] not in runs.open()
        assert await wait_until_idle(vllm_server.root_url, 5)
        # A new process compiles a new graph: its registry has never seen the run, only the checkpoint has.
        fresh = RunRegistry()
        graph = build_graph(checkpointer=saver, runs=fresh)

        events: list[dict[str, Any]] = []
        final = None
        async for mode, chunk in graph.astream(None, config, context=ctx, stream_mode=["custom", "values"]):
            if mode == "custom":
                events.append(chunk)
            elif "result" in chunk:
                final = chunk["result"]
    assert final is not None
    assert fresh.open() == []  # the resumed run was closed by the vote
    resumed = [e for e in events if e["event"] == "resume"]
    assert len(resumed) == 1
    was_running = sorted(i for i, b in checkpoint.items() if b["status"] == "running")
    assert sorted(resumed[0]["restarted"]) == was_running
    by_id = {b["id"]: b for b in final["branches"]}
    for i, before in checkpoint.items():
        after = by_id[i]
        if before["status"] == "finished":  # kept as it was: not generated again
            assert after["text"] == before["text"] and after["tokens"] == before["tokens"]
        elif before["status"] == "running":  # continued after its checkpointed text
            assert after["text"].startswith(before["text"])
            assert after["tokens"] >= before["tokens"]
    assert await wait_until_idle(vllm_server.root_url, 5)
