"""The run-scoped branch pool: starts, records and cancels branch streams.

LangGraph cannot cancel one running node from another, so branches are not nodes: each branch is an
asyncio task owned by a ``BranchPool`` that lives for one graph run (kept in the graph's ``RunRegistry``
under the run id), and the graph state only ever holds each branch's record (``Branch.record()``, as
JSON). The judge node reads the branches' views, asks the policy, and calls ``cancel`` — which closes the
branch's HTTP stream so the server aborts the request. Branches never wait for the judge: they stream on
while it thinks.

Nothing is left running: the vote node closes the run, ``DeepPruneReasoner`` closes it in a ``finally``
(caller cancelled, error, KeyboardInterrupt), and a watchdog closes a run whose graph stopped touching it
(a Studio run killed mid-way) after ``lease_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from deepprune_agents.answers import Extractor, extract_answer
from deepprune_agents.backends.endpoints import EndpointPool
from deepprune_agents.backends.openai_stream import BranchRequest, BranchStream, StreamChunk
from deepprune_agents.errors import DeepPruneError
from deepprune_agents.judges.base import Judge
from deepprune_agents.pruning import PruningPolicy
from deepprune_agents.pruning.types import ALIVE, BaseBranch, BranchStatus, BranchView
from deepprune_agents.result import BranchRecord, BranchRecordDict

log = logging.getLogger(__name__)
T = TypeVar("T")

CLOSE_TIMEOUT_S = 5.0
CLOSED_EARLY_KEPT = 4096  # ids a RunRegistry remembers as closed before (or after) registration
YIELD_EVERY = 256  # branches handled per loop callback when reading all of them (views, records)
PREDICATE_SHARE = 4.0  # wait_until waits this many times the cost of a predicate check before the next


def branch_answer(
    text: str, reasoning: str = "", finish_reason: str | None = None, extract: Extractor = extract_answer
) -> str | None:
    """The answer a branch votes with: extracted from its final content; from the last answer in its
    thinking only when the content cannot hold one (cut by ``length``, or empty), as a reasoning model
    stopped mid-thinking has no content yet. The one place the engine (and the simulator) call the
    extractor (``extract``: the run's, ``answers.make_extractor(ctx.answer_pattern)``)."""
    answer = extract(text) if text.strip() else None
    if answer is None and reasoning and (finish_reason == "length" or not text.strip()):
        answer = extract(reasoning)
    return answer


@dataclass(slots=True)
class _Joined:
    """A list of pieces joined once per new piece, not once per read (the judge reads often)."""

    count: int = 0
    text: str = ""

    def of(self, pieces: list[str]) -> str:
        if self.count != len(pieces):
            self.text += "".join(pieces[self.count :])
            self.count = len(pieces)
        return self.text


@dataclass(kw_only=True)
class Branch(BaseBranch):
    """One branch's live state. Mutated only by its own task and by ``BranchPool.cancel``."""

    request: BranchRequest
    pieces: list[str] = field(default_factory=list)  # thinking and content, as generated: what the judge reads
    reasoning_pieces: list[str] = field(default_factory=list)
    content_pieces: list[str] = field(default_factory=list)
    base_tokens: int = 0  # tokens generated before a resume (the server's usage counts only new ones)
    usage_seen: bool = False
    finish_reason: str | None = None
    error: str | None = None
    endpoint: str | None = None
    answer: str | None = None
    t_start: float | None = None
    t_first_token: float | None = None
    t_end: float | None = None
    t_cancel_decided: float | None = None
    t_cancel_closed: float | None = None
    cancel_decided_at: float | None = None  # wall clock (epoch s), to match server-side metrics
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    stream: BranchStream | None = field(default=None, repr=False)
    _joined: _Joined = field(default_factory=_Joined, repr=False)
    _joined_text: _Joined = field(default_factory=_Joined, repr=False)
    _joined_reasoning: _Joined = field(default_factory=_Joined, repr=False)
    _view: BranchView | None = field(default=None, repr=False)
    _view_key: tuple[Any, ...] = field(default=(), repr=False)
    _dump: BranchRecordDict | None = field(default=None, repr=False)
    _dump_key: tuple[Any, ...] = field(default=(), repr=False)

    @property
    def trace_text(self) -> str:
        return self._joined.of(self.pieces)

    @property
    def text(self) -> str:
        """The final content so far (all the output of a non-reasoning model)."""
        return self._joined_text.of(self.content_pieces)

    @property
    def reasoning(self) -> str:
        """The thinking so far (empty for a non-reasoning model)."""
        return self._joined_reasoning.of(self.reasoning_pieces)

    def pieces_so_far(self) -> list[str]:
        return self.pieces

    def vote_answer(self) -> str | None:
        return self.answer

    def apply(self, chunk: StreamChunk) -> None:
        """One stream chunk (see ``apply_parts``)."""
        self.apply_parts(chunk.text, chunk.completion_tokens, chunk.finish_reason, chunk.reasoning, chunk.reclassify)

    def apply_parts(
        self, text: str, completion_tokens: int | None, finish_reason: str | None, reasoning: str, reclassify: bool
    ) -> None:
        """One stream chunk's fields (``StreamChunk`` order): its text, its token (one per chunk until the
        server reports usage), and the finish reason. The one place chunks become branch state, in-process
        or from a stream worker (which sends plain tuples: unpickling a dataclass costs ~10 us)."""
        if text or reasoning or reclassify:
            if self.t_first_token is None:
                self.t_first_token = time.perf_counter()
            self.add(text, reasoning, reclassify)
            if not self.usage_seen:
                self.tokens += 1
        if completion_tokens is not None:
            self.usage_seen = True
            self.tokens = self.base_tokens + completion_tokens
        if finish_reason is not None:
            self.finish_reason = finish_reason

    def add(self, text: str, reasoning: str = "", reclassify: bool = False) -> None:
        """Append one chunk's thinking and content (``reclassify``: the content so far was thinking)."""
        if reclassify and self.content_pieces:
            self.reasoning_pieces.extend(self.content_pieces)
            self.content_pieces = []
            self._joined_text = _Joined()
        if reasoning:
            self.pieces.append(reasoning)
            self.reasoning_pieces.append(reasoning)
        if text:
            self.pieces.append(text)
            self.content_pieces.append(text)

    def view(self) -> BranchView:
        """The policy's snapshot, rebuilt only when the branch changed: the judge node reads all N views on
        every check, and at 2,048 branches rebuilding them took ~13 ms of the loop each time."""
        key = (self.status, len(self.pieces), self.tokens, self.answer)
        if self._view is None or self._view_key != key:
            self._view_key = key
            self._view = super().view()
        return self._view

    def cancel_latency_ms(self) -> float | None:
        if self.t_cancel_decided is None or self.t_cancel_closed is None:
            return None
        return (self.t_cancel_closed - self.t_cancel_decided) * 1000.0

    def record(self) -> BranchRecord:
        """The branch as graph state, events and the result hold it (its one serialized form)."""
        return BranchRecord(
            id=self.id,
            status=self.status,
            tokens=self.tokens,
            answer=self.answer,
            finish_reason=self.finish_reason,
            endpoint=self.endpoint,
            error=self.error,
            cancel_reason=self.cancel_reason,
            cancel_latency_ms=self.cancel_latency_ms(),
            cancel_decided_at=self.cancel_decided_at,
            seed=self.request.seed,
            text=self.text,
            reasoning=self.reasoning,
        )

    def dump(self) -> BranchRecordDict:
        """``record()`` as the graph state holds it, rebuilt only when the branch changed: the judge node
        writes all N into the state every round, and at 2,048 branches building them cost the loop ~15 ms."""
        key = (
            self.status,
            len(self.pieces),
            len(self.content_pieces),
            self.tokens,
            self.answer,
            self.finish_reason,
            self.error,
            self.cancel_reason,
            self.endpoint,
            self.cancel_decided_at,
            self.t_cancel_closed,
        )
        if self._dump is None or self._dump_key != key:
            self._dump_key = key
            self._dump = self.record().dump()
        return self._dump

    def restore(self, record: BranchRecord) -> None:
        """Take back a checkpointed record (``record``'s inverse for what a resumed run needs). A branch that
        was still generating becomes pending and continues after its text (``BranchRequest.resumed``), so no
        already generated token is generated twice; the others keep their end as it was."""
        from deepprune_agents.truncation import simple_tokenize

        self.reasoning_pieces = simple_tokenize(record.reasoning) if record.reasoning else []
        self.content_pieces = simple_tokenize(record.text) if record.text else []
        self.pieces = self.reasoning_pieces + self.content_pieces
        self.tokens = self.base_tokens = record.tokens
        self.answer, self.finish_reason, self.error = record.answer, record.finish_reason, record.error
        self.endpoint, self.cancel_reason = record.endpoint, record.cancel_reason
        self.cancel_decided_at = record.cancel_decided_at  # (its latency was measured on the lost process' clock)
        if record.status in ALIVE:
            self.status = "pending"
            if record.text or record.reasoning:
                self.request = self.request.resumed(record.text, self.tokens, record.reasoning)
        else:
            self.status = record.status


class BranchPool:
    """N branch tasks against an EndpointPool, with progress notification and cancellation."""

    def __init__(
        self, endpoints: EndpointPool, requests: Sequence[BranchRequest], *, extract: Extractor = extract_answer
    ) -> None:
        self.endpoints = endpoints
        self.extract = extract  # the run's extractor (answers.make_extractor(ctx.answer_pattern))
        self.branches = [Branch(id=i, request=r) for i, r in enumerate(requests)]
        self._changed = asyncio.Event()
        self.closed = False

    @classmethod
    def restore(
        cls,
        endpoints: EndpointPool,
        requests: Sequence[BranchRequest],
        records: Sequence[BranchRecord | BranchRecordDict],
        *,
        extract: Extractor = extract_answer,
        **pool_kwargs: Any,
    ) -> BranchPool:
        """Rebuild a pool from checkpointed records (a resumed run in a new process; the graph state holds
        their dumps): finished, cancelled and failed branches are not started again (``Branch.restore``)."""
        pool = cls(endpoints, requests, extract=extract, **pool_kwargs)
        for b, record in zip(pool.branches, records, strict=True):
            b.restore(BranchRecord.model_validate(record))
        return pool

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start every live branch that has no task yet (at fan-out, on resume, after ``launch``)."""
        for b in self.branches:
            if b.alive and b.task is None:
                b.task = asyncio.create_task(self._run(b), name=f"deepprune-branch-{b.id}")

    def hold(self, ids: Sequence[int]) -> None:
        """Staged fan-out: keep these branches unstarted (their requests, seeds included, stay as they are)
        until a policy decision launches them. Call before ``start``."""
        for i in ids:
            b = self.branches[i]
            if b.status == "pending" and b.task is None and b.tokens == 0:
                b.status = "unstarted"

    def launch(self, ids: Sequence[int]) -> list[int]:
        """Start unstarted branches (a later wave): the same requests and endpoints as the first wave's, so
        they are scheduled, cancelled and resumed like them. Returns the ids actually started."""
        started = []
        for i in ids:
            b = self.branches[i]
            if b.status == "unstarted":
                b.status = "pending"
                started.append(i)
        if started:
            self.start()
            self._notify()
        return started

    async def _run(self, b: Branch) -> None:
        b.t_start = time.perf_counter()
        try:
            endpoint, stream = await self.endpoints.open(b.request)
        except asyncio.CancelledError:
            self._end(b, "cancelled")
            raise
        except DeepPruneError as exc:
            b.error = str(exc)
            self._end(b, "failed")
            return
        except Exception as exc:  # an unexpected client bug must fail this branch, not the run
            b.error = f"{type(exc).__name__}: {exc}"
            self._end(b, "failed")
            return
        b.stream, b.endpoint = stream, endpoint.base_url  # endpoint.inflight already counts it
        b.status = "running"
        self._notify()
        status: BranchStatus = "failed"
        try:
            async for chunk in stream:
                b.apply(chunk)
                self._notify()
                # Chunks already buffered are read without suspending: yield so that one fast stream
                # cannot hold the loop for its whole body while 511 others (and the judge) wait. (Per chunk,
                # not per time budget: with every stream busy, a loop iteration costs N x the work a branch
                # does before yielding, so one chunk keeps iterations, and the loop lag, shortest.)
                await asyncio.sleep(0)
            status = self.stream_ended(b)
        except asyncio.CancelledError:
            status = "cancelled"
            raise
        except Exception as exc:  # killed server, read timeout, malformed SSE: keep the text so far
            b.error = f"{type(exc).__name__}: {exc}"
        finally:
            endpoint.inflight -= 1
            try:
                with contextlib.suppress(Exception):
                    await asyncio.shield(stream.close())
            finally:
                # A cancel that lands while the stream closes (a branch told to stop just as it finished)
                # raises CancelledError here: the branch must still end, or it would look alive forever.
                self._end(b, status)

    def stream_ended(self, b: Branch) -> BranchStatus:
        """A stream that ended by itself: finished (and its answer extracted) when the server said why it
        stopped, failed otherwise."""
        if b.finish_reason is None:
            b.error = "the stream ended without a finish_reason (server closed it early)"
            return "failed"
        b.answer = branch_answer(b.text, b.reasoning, b.finish_reason, self.extract)
        return "finished"

    def _end(self, b: Branch, status: BranchStatus) -> None:
        b.status = status
        b.t_end = time.perf_counter()
        if status != "cancelled":  # it finished (or failed) before the cancel could take effect
            b.cancel_reason = b.t_cancel_decided = b.cancel_decided_at = None
        elif b.t_cancel_decided is not None:
            b.t_cancel_closed = b.t_end
        self._notify()

    def _notify(self) -> None:
        self._changed.set()

    # -- reading -------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return any(b.alive for b in self.branches)

    def views(self) -> list[BranchView]:
        return [b.view() for b in self.branches]

    def records(self) -> list[BranchRecord]:
        return [b.record() for b in self.branches]

    def dumps(self) -> list[BranchRecordDict]:
        """The records as the graph state holds them (plain JSON, for checkpointers and Studio)."""
        return [b.dump() for b in self.branches]

    async def dumps_async(self) -> list[BranchRecordDict]:
        """``dumps()`` yielding to the loop every ``YIELD_EVERY`` branches: at 2,048 streaming branches the
        records of one judge round cost ~8 ms, held in one piece on the loop every round."""
        return await self._yielding(Branch.dump)

    async def views_async(self) -> list[BranchView]:
        """``views()`` yielding to the loop every ``YIELD_EVERY`` branches (see ``dumps_async``)."""
        return await self._yielding(Branch.view)

    async def _yielding(self, get: Callable[[Branch], T]) -> list[T]:
        out: list[T] = []
        for start in range(0, len(self.branches), YIELD_EVERY):
            if start:
                await asyncio.sleep(0)
            out.extend(get(b) for b in self.branches[start : start + YIELD_EVERY])
        return out

    async def wait_until(
        self,
        predicate: Callable[[], bool],
        *,
        timeout_s: float,
        on_tick: Callable[[], None] | None = None,
        tick_s: float = 0.25,
    ) -> bool:
        """Wait until ``predicate()`` holds or no branch is alive; False on timeout.

        ``on_tick`` runs at most every ``tick_s`` while waiting (the judge node streams progress
        events from it)."""
        deadline = time.monotonic() + timeout_s
        last_tick = 0.0
        while True:
            checked = time.monotonic()
            if predicate() or not self.alive:
                return True
            now = time.monotonic()
            cost = now - checked
            if now >= deadline:
                return False
            if on_tick is not None and now - last_tick >= tick_s:
                last_tick = now
                on_tick()
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(tick_s, deadline - now)):
                    await self._changed.wait()
            # Branches notify on every chunk, so with many streams the event is set again in every loop
            # iteration, and the predicate reads every branch (O(N)): at 2,048 branches checking it that
            # often cost the loop more than the streams themselves. So the next check waits PREDICATE_SHARE
            # times what this one cost: the predicate takes at most ~1/(1+PREDICATE_SHARE) of the loop.
            # With a few branches a check costs microseconds and no wait is added (rounds stay on time).
            wait = PREDICATE_SHARE * cost - (time.monotonic() - now)
            if wait > 0.001:
                await asyncio.sleep(min(wait, max(0.0, deadline - time.monotonic())))

    # -- cancelling ---------------------------------------------------------------------------
    async def cancel(self, ids: Sequence[int], reason: str = "pruned") -> None:
        """Cancel branches and wait (bounded) until their streams are closed."""
        tasks = []
        now, wall = time.perf_counter(), time.time()
        for i in ids:
            b = self.branches[i]
            if not b.alive or b.task is None:
                continue
            b.t_cancel_decided, b.cancel_decided_at = now, wall
            b.cancel_reason = reason
            b.task.cancel()
            tasks.append(b.task)
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT_S)
            for i in ids:  # a task cancelled before its first step never ran its own bookkeeping
                b = self.branches[i]
                if b.alive and b.task is not None and b.task.done():
                    self._end(b, "cancelled")
            for t in pending:  # pragma: no cover - a stream that would not close in 5 s
                log.warning("branch task %s did not stop within %.0f s", t.get_name(), CLOSE_TIMEOUT_S)
            for t in done:
                if not t.cancelled() and t.exception() is not None:  # pragma: no cover
                    log.warning("branch task %s: %r", t.get_name(), t.exception())

    async def aclose(self, reason: str = "closed") -> None:
        """Cancel everything still alive. Idempotent."""
        if self.closed:
            return
        self.closed = True
        await self.cancel([b.id for b in self.branches if b.alive], reason)
        # Retrieve results of tasks that ended on their own so asyncio never warns about them.
        for b in self.branches:
            if b.task is not None and b.task.done() and not b.task.cancelled():
                b.task.exception()


@dataclass
class LiveRun:
    """Everything a graph run needs between node calls that cannot live in (serializable) state."""

    run_id: str
    pool: BranchPool
    policy: PruningPolicy
    judge: Judge
    endpoints: EndpointPool
    owns_endpoints: bool
    started_at: float = field(default_factory=time.perf_counter)
    deadline: float = 0.0
    last_touch: float = field(default_factory=time.monotonic)
    sent_chars: dict[int, int] = field(default_factory=dict)
    sent_status: dict[int, str] = field(default_factory=dict)
    judge_retry_at: float = 0.0
    watchdog: asyncio.Task[None] | None = None
    closed: bool = False
    on_close: Callable[[LiveRun], None] | None = field(default=None, repr=False)  # the registry forgets it

    def touch(self) -> None:
        self.last_touch = time.monotonic()

    async def aclose(self, reason: str = "closed") -> None:
        if self.closed:
            return
        self.closed = True
        try:
            await self.pool.aclose(reason)
        finally:
            if self.owns_endpoints:
                await self.endpoints.aclose()
            if self.watchdog is not None and self.watchdog is not asyncio.current_task():
                self.watchdog.cancel()
            if self.on_close is not None:
                self.on_close(self)


class RunRegistry:
    """The open runs of one compiled graph (or one ``DeepPruneReasoner``), by run id.

    Graph nodes are separate calls that share only serializable state, so the live run (branch tasks,
    streams, policy) is looked up here by the ``run_id`` in state. The registry belongs to the graph that
    ``build_graph(runs=...)`` compiled, not to the process: two graphs, two reasoners or two test cases
    never see each other's runs, and whoever owns the registry can close what is still open in it."""

    def __init__(self) -> None:
        self._runs: dict[str, LiveRun] = {}
        # Ids closed before they were registered, with the close's reason: a caller that stops while the
        # fan-out node is still starting (its task may register the run after the caller's ``close``) must
        # not leave it running. Bounded: a finished run's id also lands here (its vote closed it first), and
        # ids never repeat.
        self._closed_early: OrderedDict[str, str] = OrderedDict()

    def register(self, run: LiveRun, *, lease_s: float) -> None:
        """Make the run reachable from later nodes, and start its watchdog (or close it at once when its
        owner already closed that id)."""
        self._runs[run.run_id] = run
        run.on_close = self._forget
        early = self._closed_early.pop(run.run_id, None)
        if early is not None:
            run.watchdog = asyncio.create_task(run.aclose(early), name=f"deepprune-close-{run.run_id}")
            return

        async def watchdog() -> None:
            while not run.closed:
                await asyncio.sleep(min(5.0, lease_s / 4))
                if time.monotonic() - run.last_touch > lease_s:
                    log.warning("run %s: graph stopped touching it for %.0f s; closing", run.run_id, lease_s)
                    await run.aclose("abandoned")
                    return

        run.watchdog = asyncio.create_task(watchdog(), name=f"deepprune-watchdog-{run.run_id}")

    def _forget(self, run: LiveRun) -> None:
        if self._runs.get(run.run_id) is run:
            del self._runs[run.run_id]

    def get(self, run_id: str) -> LiveRun | None:
        return self._runs.get(run_id)

    async def close(self, run_id: str, reason: str = "closed") -> None:
        """Close a run if it is still open (safe to call twice, and for unknown ids)."""
        run = self._runs.get(run_id)
        if run is not None:
            await run.aclose(reason)
        elif run_id:
            self._closed_early[run_id] = reason
            while len(self._closed_early) > CLOSED_EARLY_KEPT:
                self._closed_early.popitem(last=False)

    async def close_all(self, reason: str = "closed") -> None:
        """Close every run still open (the CLI's Ctrl-C guarantee)."""
        for run_id in list(self._runs):
            await asyncio.shield(self.close(run_id, reason))

    def open(self) -> list[str]:
        """Ids of the runs not closed yet."""
        return list(self._runs)

    def __len__(self) -> int:
        return len(self._runs)
