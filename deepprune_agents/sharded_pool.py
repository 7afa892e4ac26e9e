"""A ``BranchPool`` whose streams run in worker processes (``stream_workers`` > 0).

Same branches, same records, same cancellation contract as ``engine.BranchPool``; only where the
HTTP streams are read differs (``backends/shards.py`` says why). Every chunk is applied with the same
``Branch.apply`` and every end with the same ``BranchPool.stream_ended`` as in-process, so the graph, the
policies and the results cannot tell the two apart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from deepprune_agents.answers import Extractor, extract_answer
from deepprune_agents.backends.endpoints import EndpointPool
from deepprune_agents.backends.openai_stream import BranchRequest
from deepprune_agents.backends.shards import EndpointsCfg, StreamWorkers
from deepprune_agents.engine import CLOSE_TIMEOUT_S, Branch, BranchPool, log


class ShardedBranchPool(BranchPool):
    """Branch streams opened, read and closed by ``workers``; this process keeps the records."""

    def __init__(
        self,
        endpoints: EndpointPool,
        requests: Sequence[BranchRequest],
        *,
        extract: Extractor = extract_answer,
        workers: StreamWorkers,
        endpoints_cfg: EndpointsCfg,
    ) -> None:
        super().__init__(endpoints, requests, extract=extract)
        self.workers = workers
        self.endpoints_cfg = endpoints_cfg
        self._by_gid: dict[int, Branch] = {}
        self._ended: dict[int, asyncio.Event] = {}

    def start(self) -> None:
        todo = [b for b in self.branches if b.alive and b.id not in self._ended]
        if not todo:
            return
        now = time.perf_counter()
        gids = self.workers.start(self.endpoints_cfg, [b.request for b in todo], self._on_record)
        for b, gid in zip(todo, gids, strict=True):
            b.t_start = now
            self._by_gid[gid] = b
            self._ended[b.id] = asyncio.Event()

    def _on_record(self, gid: int, kind: str, payload: Any) -> None:
        """One record from a worker, in the order the worker saw it (called from the loop's reader)."""
        b = self._by_gid.get(gid)
        if b is None or not b.alive:
            return
        if kind == "chunks":  # tuples in StreamChunk's field order
            for parts in payload:
                b.apply_parts(*parts)
        elif kind == "open":
            b.endpoint, b.status = payload, "running"
        elif kind == "end":
            outcome, error, t_end = payload
            if outcome == "eof":
                status = self.stream_ended(b)
            elif outcome == "cancelled":
                status = "cancelled"
            else:
                b.error, status = error, "failed"
            self._end(b, status)
            if t_end is not None and b.t_cancel_closed is not None:
                b.t_cancel_closed = b.t_end = t_end  # when the worker closed the stream, not when we heard
            self._ended[b.id].set()
            self.workers.forget([gid])
        self._notify()

    async def cancel(self, ids: Sequence[int], reason: str = "pruned") -> None:
        """Tell the workers to close these streams; wait (bounded) until they report them closed."""
        gid_of = {b.id: gid for gid, b in self._by_gid.items()}
        now, wall = time.perf_counter(), time.time()
        gids, waits = [], []
        for i in ids:
            b = self.branches[i]
            if not b.alive:
                continue
            if i not in gid_of:  # never started (a pool closed before start): nothing to close
                self._end(b, "cancelled")
                continue
            b.t_cancel_decided, b.cancel_decided_at, b.cancel_reason = now, wall, reason
            gids.append(gid_of[i])
            waits.append(asyncio.create_task(self._ended[i].wait()))
        if not gids:
            return
        self.workers.cancel(gids)
        _, pending = await asyncio.wait(waits, timeout=CLOSE_TIMEOUT_S)
        for task in pending:  # pragma: no cover - a worker that would not close a stream in 5 s
            task.cancel()
        for i in ids:
            b = self.branches[i]
            if b.alive and i in gid_of:
                log.warning("branch %s: its worker did not report the stream closed within %.0f s", i, CLOSE_TIMEOUT_S)
                b.error = "the stream worker did not confirm the close"
                self._end(b, "cancelled")

    async def aclose(self, reason: str = "closed") -> None:
        if self.closed:
            return
        self.closed = True
        await self.cancel([b.id for b in self.branches if b.alive], reason)
        self.workers.forget(list(self._by_gid))
