"""Runs live in the registry of the graph that started them, never in process-global state."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from deepprune_agents.engine import LiveRun, RunRegistry
from deepprune_agents.graph import build_graph


class _Pool:
    """Records how the run closed its pool (the real pool cancels branch streams here)."""

    def __init__(self) -> None:
        self.closed_with: str | None = None

    async def aclose(self, reason: str = "closed") -> None:
        self.closed_with = reason


def _run(run_id: str) -> tuple[LiveRun, _Pool]:
    pool = _Pool()
    run = LiveRun(
        run_id=run_id,
        pool=cast(Any, pool),
        policy=cast(Any, None),
        judge=cast(Any, None),
        endpoints=cast(Any, None),
        owns_endpoints=False,
    )
    return run, pool


async def test_two_registries_never_see_each_others_runs() -> None:
    a, b = RunRegistry(), RunRegistry()
    run, pool = _run("r1")
    a.register(run, lease_s=60)
    assert a.get("r1") is run and b.get("r1") is None
    assert a.open() == ["r1"] and b.open() == [] and len(a) == 1
    await b.close("r1")  # another registry's close cannot touch it
    assert pool.closed_with is None
    await a.close("r1", "done")
    assert pool.closed_with == "done" and a.open() == [] and run.watchdog is not None
    await asyncio.sleep(0)
    assert run.watchdog.done()  # the watchdog stops with the run
    await a.close("r1")  # twice, and unknown ids, are no-ops
    await a.close("nobody")


async def test_close_all_closes_every_open_run_and_a_closed_run_leaves_its_registry() -> None:
    runs = RunRegistry()
    pairs = [_run(f"r{i}") for i in range(3)]
    for run, _ in pairs:
        runs.register(run, lease_s=60)
    await pairs[0][0].aclose("done")  # closed by its own vote node: the registry forgets it
    assert runs.open() == ["r1", "r2"]
    await runs.close_all("interrupted")
    assert runs.open() == []
    assert [p.closed_with for _, p in pairs] == ["done", "interrupted", "interrupted"]


async def test_an_abandoned_run_is_closed_by_its_watchdog() -> None:
    runs = RunRegistry()
    run, pool = _run("lost")
    runs.register(run, lease_s=0.04)  # checks every 10 ms; nobody touches the run
    for _ in range(100):
        if pool.closed_with is not None:
            break
        await asyncio.sleep(0.01)
    assert pool.closed_with == "abandoned" and runs.open() == []


def test_each_compiled_graph_has_its_own_registry() -> None:
    mine = RunRegistry()
    graph = build_graph(runs=mine)
    assert {"fan_out", "judge", "vote"} <= set(graph.get_graph().nodes)
    import deepprune_agents.engine as engine

    assert not any(isinstance(v, dict) and k.isupper() for k, v in vars(engine).items())  # no global run table


async def test_a_run_registered_after_its_owner_closed_it_is_closed_at_once() -> None:
    # The caller stopped while the fan-out node was still starting: its close came before the register.
    runs = RunRegistry()
    await runs.close("late", "caller-stopped")
    run, pool = _run("late")
    runs.register(run, lease_s=60)
    for _ in range(100):
        if pool.closed_with is not None:
            break
        await asyncio.sleep(0.01)
    assert pool.closed_with == "caller-stopped" and runs.open() == []
    other, other_pool = _run("other")  # an id nobody closed runs normally
    runs.register(other, lease_s=60)
    await asyncio.sleep(0.02)
    assert other_pool.closed_with is None and runs.open() == ["other"]
    await runs.close_all()
