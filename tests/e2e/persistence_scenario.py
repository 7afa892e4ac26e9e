"""The one "lose the process, resume from the checkpoint" scenario both persistence tests run: on the
replay server (``test_persistence_replay.py``, fast) and on real vLLM (``test_persistence.py``, slow).

Step judge rounds under a SQLite checkpointer until the checkpoint holds finished and still-running
branches, close the run as a dying process would (only the checkpoint survives), then resume with a new
graph and a fresh ``RunRegistry``, as a new process would.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from deepprune_agents.engine import RunRegistry
from deepprune_agents.graph import build_graph
from deepprune_agents.settings import DeepPruneContext


@dataclass
class Resumed:
    """What a test checks: the mixed checkpoint before the loss, and what the resumed run produced."""

    lost_state: dict[str, Any]  # the graph state at the mixed checkpoint (what the process had saved)
    final: dict[str, Any]  # the resumed run's result
    events: list[dict[str, Any]] = field(default_factory=list)  # the resumed run's custom stream events

    @property
    def checkpoint(self) -> dict[int, dict[str, Any]]:
        """The checkpointed branch records by id."""
        return {b["id"]: b for b in self.lost_state["branches"]}

    @property
    def restarted(self) -> list[list[int]]:
        return [sorted(e["restarted"]) for e in self.events if e["event"] == "resume"]


async def lose_and_resume(
    question: str,
    ctx: DeepPruneContext,
    db: Path,
    *,
    idle: Callable[[], Awaitable[bool]],
    after_loss: Callable[[], None] = lambda: None,
) -> Resumed:
    """Run ``question`` to a mixed checkpoint, lose the process, resume. ``idle`` waits until the server
    runs nothing (the lost run's streams are closed); ``after_loss`` runs just before the resume."""
    config: dict[str, Any] = {"configurable": {"thread_id": f"resume-{db.stem}"}}
    async with AsyncSqliteSaver.from_conn_string(str(db)) as saver:
        runs = RunRegistry()
        graph = build_graph(checkpointer=saver, runs=runs)
        await graph.ainvoke({"question": question}, config, context=ctx, interrupt_after=["judge"])
        for _ in range(200):  # judge rounds until the checkpoint holds finished and still-running branches
            state = (await graph.aget_state(config)).values
            statuses = [b["status"] for b in state["branches"]]
            if "finished" in statuses and "running" in statuses:
                break
            assert any(s in ("running", "pending") for s in statuses), "all finished before a mixed checkpoint"
            await graph.ainvoke(None, config, context=ctx, interrupt_after=["judge"])
        assert "finished" in statuses and "running" in statuses
        await runs.close(state["run_id"], "process-died")  # the process "dies": only the checkpoint survives
        assert state["run_id"] not in runs.open()
        assert await idle(), "the lost run's streams are still open on the server"
        after_loss()
        fresh = RunRegistry()  # a new process: a registry that never saw the run, only the checkpoint has
        graph = build_graph(checkpointer=saver, runs=fresh)
        events: list[dict[str, Any]] = []
        final = None
        async for mode, chunk in graph.astream(None, config, context=ctx, stream_mode=["custom", "values"]):
            if mode == "custom":
                events.append(chunk)
            elif "result" in chunk:
                final = chunk["result"]
    assert final is not None
    assert fresh.open() == []  # the resumed run was closed by its vote
    return Resumed(state, final, events)


def assert_resumed_from_the_checkpoint(r: Resumed, *, same: tuple[str, ...] = ("text", "tokens")) -> None:
    """Finished branches kept as they were (not generated again); branches that were generating restarted
    once and continued after their checkpointed text."""
    was_running = sorted(i for i, b in r.checkpoint.items() if b["status"] in ("pending", "running"))
    assert r.restarted == [was_running]
    by_id = {b["id"]: b for b in r.final["branches"]}
    for i, before in r.checkpoint.items():
        after = by_id[i]
        if before["status"] == "finished":
            assert [after[k] for k in same] == [before[k] for k in same], i
        else:
            assert after["text"].startswith(before["text"]) and after["tokens"] >= before["tokens"], i
