"""Branch streams read by worker processes (``stream_workers`` > 0), so the orchestrator's loop stays free.

In one process, every SSE chunk of every branch is parsed on the loop that also runs the graph, the judge
rounds and the caller: at hundreds of branches streaming at full speed one loop iteration holds a chunk of
each stream, and the loop lags by N x ~50 us (see bench/scale.py). ``StreamWorkers`` starts K worker
processes (``shard_worker.py``) that open, read and close the streams; each sends the orchestrator one
message per ~10 ms with every chunk since the last, which the orchestrator applies to its ``Branch``
records from a single reader callback per worker: a few microseconds per chunk, no task switch.

Cancellation stays a stream close: the orchestrator sends the branch ids, the worker closes their HTTP
streams (the server aborts the requests) and reports each close at once. A worker that dies fails its
branches with their text kept; the others go on.

Workers are started once per event loop and reused by every run on it (starting one costs ~1 s of
imports); they exit when the loop is garbage-collected, at interpreter exit, or when the orchestrator's
end of the pipe closes.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import logging
import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

from deepprune_agents.backends.openai_stream import BranchRequest
from deepprune_agents.backends.shard_worker import HEADER
from deepprune_agents.errors import BackendUnavailableError

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0
# At most this much is read (and applied) per reader callback: a worker that got ahead leaves the rest for
# the next loop iteration instead of one callback applying seconds of chunks while the loop waits.
READ_BYTES = 64 * 1024
Route = Callable[[int, str, Any], None]
# base URLs, read timeout (s), open retries, streams per endpoint before a run spills (None: no cap)
EndpointsCfg = tuple[tuple[str, ...], float, int, int | None]


class _Proc:
    """One worker process and the bytes read from it that do not make a whole frame yet."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "deepprune_agents.backends.shard_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        assert self.popen.stdout is not None and self.popen.stdin is not None
        self.fd = self.popen.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.buffer = bytearray()
        self.gids: set[int] = set()
        self.alive = True
        self.ready = False  # its first frame says it has imported what it needs

    def send(self, msg: Any) -> None:
        data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
        assert self.popen.stdin is not None
        self.popen.stdin.write(HEADER.pack(len(data)) + data)
        self.popen.stdin.flush()

    def frames(self) -> list[Any]:
        out = []
        while len(self.buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(self.buffer)
            if len(self.buffer) < HEADER.size + size:
                break
            out.append(pickle.loads(bytes(self.buffer[HEADER.size : HEADER.size + size])))
            del self.buffer[: HEADER.size + size]
        return out


class StreamWorkers:
    """K stream worker processes attached to one event loop, routing their records to the branch pools."""

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError("count must be >= 1")
        self.procs = [_Proc(i) for i in range(count)]
        self.loop: asyncio.AbstractEventLoop | None = None
        self.routes: dict[int, Route] = {}
        self._gids = itertools.count()
        self._next = 0
        self.closed = False

    def attach(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Read the workers from ``loop``. The processes outlive an event loop (``asyncio.run`` per call):
        a new loop takes them over once the old one is closed; False while another loop still runs them."""
        if self.loop is loop:
            return True
        if self.loop is not None and not self.loop.is_closed():
            if self.loop.is_running():
                return False
            for proc in self.procs:
                if proc.alive:
                    self.loop.remove_reader(proc.fd)
        stale = list(self.routes)  # the runs of the old loop are gone: stop their streams
        self.routes.clear()
        if stale:
            self.cancel(stale)
        self.loop = loop
        for proc in self.procs:
            if proc.alive:
                loop.add_reader(proc.fd, self._on_readable, proc)
        return True

    async def ready(self) -> None:
        """Wait until every worker has imported what it needs (its first frame says so)."""
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT_S
        while not all(p.ready or not p.alive for p in self.procs):
            if asyncio.get_running_loop().time() > deadline:
                self.close()
                raise BackendUnavailableError(f"stream workers did not start within {START_TIMEOUT_S:.0f} s.")
            await asyncio.sleep(0.02)
        if not any(p.alive for p in self.procs):
            codes = [p.popen.poll() for p in self.procs]
            raise BackendUnavailableError(f"every stream worker exited at start (codes {codes}).")

    def start(self, cfg: EndpointsCfg, requests: Sequence[BranchRequest], route: Route) -> list[int]:
        """Start one stream per request, spread over the live workers; the returned ids name them in
        every record passed to ``route``."""
        live = [p for p in self.procs if p.alive]
        if not live:
            raise BackendUnavailableError("every stream worker has exited; start the run again.")
        per_proc: dict[int, list[tuple[int, BranchRequest]]] = {}
        gids = []
        for req in requests:
            proc = live[self._next % len(live)]
            self._next += 1
            gid = next(self._gids)
            gids.append(gid)
            self.routes[gid] = route
            proc.gids.add(gid)
            per_proc.setdefault(proc.index, []).append((gid, req))
        for index, batch in per_proc.items():
            self._send(self.procs[index], ("start", cfg, batch))
        return gids

    def cancel(self, gids: Sequence[int]) -> None:
        per_proc: dict[int, list[int]] = {}
        for gid in gids:
            for proc in self.procs:
                if gid in proc.gids:
                    per_proc.setdefault(proc.index, []).append(gid)
        for index, batch in per_proc.items():
            self._send(self.procs[index], ("cancel", batch))

    def forget(self, gids: Sequence[int]) -> None:
        for gid in gids:
            self.routes.pop(gid, None)
            for proc in self.procs:
                proc.gids.discard(gid)

    def _send(self, proc: _Proc, msg: Any) -> None:
        if not proc.alive:
            return
        try:
            proc.send(msg)
        except (BrokenPipeError, OSError):
            self._lost(proc)

    def _on_readable(self, proc: _Proc) -> None:
        try:
            data = os.read(proc.fd, READ_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._lost(proc)
            return
        proc.buffer += data
        for frame in proc.frames():
            if frame == "ready":
                proc.ready = True
                continue
            for gid, kind, payload in frame:
                route = self.routes.get(gid)
                if route is not None:
                    route(gid, kind, payload)
                if kind == "end":
                    proc.gids.discard(gid)

    def _lost(self, proc: _Proc) -> None:
        """A worker exited: its branches end failed (their text so far is kept)."""
        if not proc.alive:
            return
        proc.alive = False
        if self.loop is not None and not self.loop.is_closed():
            self.loop.remove_reader(proc.fd)
        code = proc.popen.poll()
        error = f"the stream worker process exited (code {code}); the branch's text so far is kept"
        for gid in sorted(proc.gids):
            route = self.routes.get(gid)
            if route is not None:
                route(gid, "end", ("error", error, None))
        proc.gids.clear()

    def close(self) -> None:
        """Stop every worker (they close their streams first). Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        for proc in self.procs:
            if proc.alive and self.loop is not None and not self.loop.is_closed():
                with contextlib.suppress(Exception):
                    self.loop.remove_reader(proc.fd)
            with contextlib.suppress(Exception):
                proc.send(("exit",))
            with contextlib.suppress(Exception):
                assert proc.popen.stdin is not None
                proc.popen.stdin.close()
        for proc in self.procs:
            try:
                proc.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
            with contextlib.suppress(Exception):
                assert proc.popen.stdout is not None
                proc.popen.stdout.close()


_WORKERS: dict[int, StreamWorkers] = {}  # by count: processes shared by every run of this process


async def workers_for(count: int) -> StreamWorkers:
    """K workers read from the running loop, started (and waited for) on first use and reused after."""
    loop = asyncio.get_running_loop()
    workers = _WORKERS.get(count)
    if workers is not None and (workers.closed or not any(p.alive for p in workers.procs)):
        workers.close()
        workers = None
    if workers is None:
        workers = _WORKERS[count] = StreamWorkers(count)
    if not workers.attach(loop):  # another thread's loop uses the shared ones: this loop gets its own
        workers = StreamWorkers(count)
        workers.attach(loop)
        _EXTRA.append(workers)
    await workers.ready()
    return workers


_EXTRA: list[StreamWorkers] = []


@atexit.register
def close_workers() -> None:
    """Stop every worker process (at exit; tests call it too)."""
    for workers in [*_WORKERS.values(), *_EXTRA]:
        workers.close()
    _WORKERS.clear()
    _EXTRA.clear()
