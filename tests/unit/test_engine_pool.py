"""BranchPool bookkeeping under cancellation races (scripted streams; the e2e suites cover real HTTP).

A branch that is told to stop at the very moment it finishes, or before its task ever ran, must still
end up not alive: the judge loop waits while any branch is alive, so one stuck status is a hung run
(found by the 200-run soak: a 'vote-decided' cancel landing while the stream was closing).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from deepprune_agents.backends.openai_stream import BranchRequest, StreamChunk
from deepprune_agents.engine import BranchPool


class SlowClosingStream:
    def __init__(self, closing: asyncio.Event, release: asyncio.Event) -> None:
        self.closing, self.release = closing, release

    async def __aiter__(self) -> AsyncIterator[StreamChunk]:
        yield StreamChunk(text="The answer is 7.", completion_tokens=5, finish_reason="stop")

    async def close(self) -> None:
        self.closing.set()
        await self.release.wait()


class FakeEndpoint:
    base_url = "http://127.0.0.1:1/v1"
    inflight = 0


class FakeEndpoints:
    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.endpoint = FakeEndpoint()

    async def open(self, req: BranchRequest) -> tuple[FakeEndpoint, Any]:
        self.endpoint.inflight += 1
        return self.endpoint, self.stream


async def test_cancel_while_the_stream_closes_still_ends_the_branch() -> None:
    closing, release = asyncio.Event(), asyncio.Event()
    endpoints = FakeEndpoints(SlowClosingStream(closing, release))
    pool = BranchPool(endpoints, [BranchRequest(model="m")])  # type: ignore[arg-type]
    pool.start()
    await asyncio.wait_for(closing.wait(), 5)
    asyncio.get_running_loop().call_later(0.05, release.set)
    await pool.cancel([0], "vote-decided")
    (b,) = pool.branches
    assert not pool.alive
    assert b.status == "finished" and b.answer == "7"  # it had finished: the late cancel changes nothing
    assert b.cancel_reason is None and b.cancel_latency_ms() is None
    assert endpoints.endpoint.inflight == 0


async def test_cancel_before_the_task_ever_ran() -> None:
    endpoints = FakeEndpoints(SlowClosingStream(asyncio.Event(), asyncio.Event()))
    pool = BranchPool(endpoints, [BranchRequest(model="m"), BranchRequest(model="m")])  # type: ignore[arg-type]
    pool.start()
    await pool.cancel([0, 1], "closed")  # no await in between: neither task has taken a step
    assert not pool.alive
    assert [b.status for b in pool.branches] == ["cancelled", "cancelled"]
    assert endpoints.endpoint.inflight == 0


class AnswerStream:
    async def __aiter__(self) -> AsyncIterator[StreamChunk]:
        yield StreamChunk(text="The answer is 7.", completion_tokens=5, finish_reason="stop")

    async def close(self) -> None:
        return None


class CountingEndpoints(FakeEndpoints):
    def __init__(self) -> None:
        super().__init__(None)
        self.seeds: list[int | None] = []

    async def open(self, req: BranchRequest) -> tuple[FakeEndpoint, Any]:
        self.seeds.append(req.seed)
        self.endpoint.inflight += 1
        return self.endpoint, AnswerStream()


async def test_held_branches_stay_unstarted_until_launched_with_their_own_seeds() -> None:
    """Staged fan-out: held branches open no request; a launch starts them with the requests (seeds) they
    were built with; a checkpointed unstarted branch is restored unstarted, not restarted."""
    endpoints = CountingEndpoints()
    requests = [BranchRequest(model="m", seed=100 + i) for i in range(4)]
    pool = BranchPool(endpoints, requests)  # type: ignore[arg-type]
    pool.hold([2, 3])
    pool.start()
    await asyncio.wait_for(pool.wait_until(lambda: False, timeout_s=5), 6)
    assert [b.status for b in pool.branches] == ["finished", "finished", "unstarted", "unstarted"]
    assert sorted(endpoints.seeds) == [100, 101] and not pool.alive
    restored = BranchPool.restore(endpoints, requests, pool.dumps())  # type: ignore[arg-type]
    restored.start()
    assert [b.status for b in restored.branches][2:] == ["unstarted", "unstarted"]
    assert pool.launch([3, 0]) == [3]  # only unstarted branches start
    await asyncio.wait_for(pool.wait_until(lambda: False, timeout_s=5), 6)
    assert sorted(endpoints.seeds) == [100, 101, 103]
    assert [b.status for b in pool.branches] == ["finished", "finished", "unstarted", "finished"]
    assert endpoints.endpoint.inflight == 0
