"""The streaming response: one trace as SSE at the configured pace (or in lockstep), with mid-stream faults,
watching for the client going away."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from deepprune_agents.evaluation.replay_data import RUN_STRIDE
from deepprune_agents.evaluation.replay_server.faults import _DropConnection
from deepprune_agents.evaluation.replay_server.payloads import _Stream
from deepprune_agents.evaluation.replay_server.records import RequestRecord
from deepprune_agents.evaluation.replay_server.state import ReplayState


class _SSEResponse(Response):
    """Streams one trace as SSE and watches for the client going away *while* streaming.

    Starlette's StreamingResponse (ASGI spec >= 2.4) only notices a disconnect when a write fails, which
    never happens during a stall or a slow pace; here a second task waits on ``http.disconnect`` so the
    record holds the moment the client closed the socket (the cancellation latency the benchmarks
    measure), and the producer is stopped at once."""

    media_type = "text/event-stream"

    def __init__(
        self, state: ReplayState, record: RequestRecord, stream: _Stream, usage: bool, continuous: bool, seed: int
    ) -> None:
        # No Response.__init__: it would add ``content-length: 0``; a stream is chunked.
        self.status_code = 200
        self.background = None
        self.raw_headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]
        self.state, self.record, self.stream = state, record, stream
        self.include_usage, self.continuous = usage, continuous
        self.seed = seed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        producer = asyncio.ensure_future(self._produce(send))
        watcher = asyncio.ensure_future(self._watch(receive))
        try:
            done, _ = await asyncio.wait({producer, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if watcher in done and not producer.done():
                producer.cancel()
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await producer
            else:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
                producer.result()  # re-raise _DropConnection so uvicorn closes the socket
        except OSError:
            self._disconnected()
        finally:
            for t in (producer, watcher):
                if not t.done():
                    t.cancel()
            self._close()

    async def _watch(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self._disconnected()
                return

    def _disconnected(self) -> None:
        r = self.record
        if r.finish_reason is None and not r.disconnected:
            r.disconnected = True
            r.t_disconnect = time.time()

    def _close(self) -> None:
        r = self.record
        with self.state.lock:
            r.t_end = time.time()
            self.state.open.pop(r.id, None)
            if r.finish_reason is not None:
                self.state.finished[r.finish_reason] = self.state.finished.get(r.finish_reason, 0) + 1
            elif r.disconnected:
                self.state.finished["abort"] += 1
            else:
                self.state.finished["error"] += 1

    async def _wait_turn(self, k: int, t0: float) -> None:
        """Sleep until piece ``k`` (1-based) is due."""
        state = self.state
        if state.tokens_per_s <= 0:
            if k % 8 == 0:
                await asyncio.sleep(0)  # full speed, but let the loop notice disconnects
            return
        if state.lockstep:
            branch = self.seed % RUN_STRIDE
            due = t0 + (k - 1) / state.tokens_per_s + branch * state.stagger_s
        else:
            due = t0 + k / state.tokens_per_s
        delay = due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _produce(self, send: Send) -> None:
        s, r, state = self.stream, self.record, self.state
        faults = state.faults
        now = time.time()
        t0 = state.epoch_for(str(r.question_id), self.seed, now) if state.lockstep else now
        if state.lockstep and now > t0:
            # A stream opened mid-run (a later wave of a staged run) starts at the next tick, in its seed's
            # slot: the simulator gives a branch launched during tick t its first piece at tick t + 1.
            t0 += (math.floor((now - t0) * state.tokens_per_s) + 1) / state.tokens_per_s

        async def write(data: str) -> None:
            await send({"type": "http.response.body", "body": data.encode("utf-8"), "more_body": True})

        await write(s.chunk(None, None, s.usage(0) if self.continuous else None, role=True))
        for k in range(1, s.limit + 1):
            if faults.stall_after is not None and r.tokens_sent >= faults.stall_after:
                r.fault = "stall"
                await asyncio.Event().wait()  # until the client gives up (the watcher cancels us)
            if faults.malformed_after is not None and r.tokens_sent >= faults.malformed_after:
                r.fault = "malformed"
                await write('data: {"id": "broken", "choices": [{"delta": {"content": "oops"\n\n')
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            if faults.drop_after is not None and r.tokens_sent >= faults.drop_after:
                r.fault = "drop"
                raise _DropConnection("injected connection drop")
            await self._wait_turn(k, t0)
            last = k == s.limit
            usage = s.usage(k) if self.continuous else None
            key, piece = s.parts[k - 1]
            data = s.chunk(piece, s.finish if last else None, usage, key=key)
            if last:  # finish chunk, usage and [DONE] in one write: the client sees the end at once
                r.finish_reason = s.finish
                if self.include_usage:
                    data += s.final_usage_chunk(k)
                data += "data: [DONE]\n\n"
            with state.lock:
                r.tokens_sent = k
                state.generation_tokens += 1
                ts = time.time()
                r.t_last_token = ts
                if r.t_first_token is None:
                    r.t_first_token = ts
            await write(data)
        if s.limit == 0:
            r.finish_reason = s.finish
            tail = s.final_usage_chunk(0) if self.include_usage else ""
            await write(tail + "data: [DONE]\n\n")
        await send({"type": "http.response.body", "body": b"", "more_body": False})
