"""Building a run, and rebuilding it after a restart: the one place that assembles a ``LiveRun``.

A live run (branch streams, the policy's clusters, the judge's model, the HTTP clients) cannot live in
the graph's serializable state, so the graph keeps it in a ``RunRegistry`` between node calls. ``fan_out``
starts one here (``start_run``); ``judge`` and ``vote`` look it up (``live_run``), and when the process
restarted from a checkpoint the lookup rebuilds it here from the checkpointed state (``resume_run``):
finished branches as they were, running ones continuing after their text, the policy with its clusters.
Both paths build the judge, the policy, the endpoints, the requests and the pool the same way, because
they call the same functions below; the graph's nodes only call in.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deepprune_agents.answers import make_extractor
from deepprune_agents.backends.endpoints import EndpointPool
from deepprune_agents.backends.openai_stream import BranchRequest
from deepprune_agents.engine import BranchPool, LiveRun, RunRegistry
from deepprune_agents.errors import DeepPruneError, JudgeError
from deepprune_agents.judges.base import Judge
from deepprune_agents.prompts import branch_requests
from deepprune_agents.pruning import PruningPolicy, make_policy
from deepprune_agents.pruning.clustering import call_judge
from deepprune_agents.result import BranchRecordDict
from deepprune_agents.settings import DeepPruneContext
from deepprune_agents.traces import PartialTrace

Writer = Callable[[Any], None]  # LangGraph's stream writer: takes one custom event


@functools.lru_cache(maxsize=16)
def _judge(name: str, options_json: str) -> Judge:
    from deepprune_agents.judges import get_judge

    return get_judge(name, **json.loads(options_json))


_WARM: set[int] = set()


async def cached_judge(ctx: DeepPruneContext) -> Judge:
    """Judges load models: build each (name, options) once per process. Building imports torch and reads
    weights, so it runs in a worker thread (LangGraph's dev server rejects blocking calls on the loop)."""
    return await asyncio.to_thread(_judge, ctx.judge, json.dumps(ctx.judge_options, sort_keys=True, default=str))


async def warm_up(judge: Judge, timeout_s: float) -> str | None:
    """Score one pair before any branch starts, so loading the judge's model does not delay the first
    round while branches run on unpruned. A failure is returned (recorded), not raised: the run then
    goes on and the judge rounds record their own errors."""
    if id(judge) in _WARM:
        return None
    probe = PartialTrace(text="2 + 2 = 4")
    try:
        await call_judge(judge, [(probe, probe)], timeout_s)
    except JudgeError as exc:
        return str(exc)
    _WARM.add(id(judge))
    return None


async def endpoints_for(ctx: DeepPruneContext) -> tuple[EndpointPool, list[str]]:
    """The configured base URLs, or the embedded vLLM server when none is configured."""
    urls = list(ctx.base_urls)
    if not urls:
        from deepprune_agents.backends.embedded import get_default_server

        server = await asyncio.to_thread(get_default_server)
        urls = [server.base_url]
    pool = EndpointPool(
        urls,
        read_timeout_s=ctx.request_timeout_s,
        open_retries=ctx.open_retries,
        max_streams_per_endpoint=ctx.max_streams_per_endpoint,
    )
    return pool, urls


def worker_cap(ctx: DeepPruneContext, workers: int) -> int | None:
    """``max_streams_per_endpoint`` for one of ``workers`` stream processes: each counts only its own
    streams, and a run's branches are dealt over all of them."""
    cap = ctx.max_streams_per_endpoint
    return None if cap is None else max(1, -(-cap // workers))


async def make_pool(
    ctx: DeepPruneContext,
    endpoints: EndpointPool,
    urls: list[str],
    requests: list[BranchRequest],
    records: list[BranchRecordDict] | None = None,
) -> BranchPool:
    """The run's branch pool: in this process, or over ``ctx.stream_workers`` worker processes; rebuilt
    from checkpointed ``records`` when given (a resumed run)."""
    extract = make_extractor(ctx.answer_pattern)
    kwargs: dict[str, Any] = {}
    cls: type[BranchPool] = BranchPool
    workers = ctx.workers_for_run()
    if workers > 0:
        from deepprune_agents.backends.shards import workers_for
        from deepprune_agents.sharded_pool import ShardedBranchPool

        cls = ShardedBranchPool
        kwargs = {
            "workers": await workers_for(workers),
            "endpoints_cfg": (tuple(urls), ctx.request_timeout_s, ctx.open_retries, worker_cap(ctx, workers)),
        }
    if records is not None:
        return cls.restore(endpoints, requests, records, extract=extract, **kwargs)
    return cls(endpoints, requests, extract=extract, **kwargs)


def _register(
    run_id: str,
    pool: BranchPool,
    policy: PruningPolicy,
    judge: Judge,
    endpoints: EndpointPool,
    ctx: DeepPruneContext,
    runs: RunRegistry,
    held: Sequence[int] = (),
) -> LiveRun:
    """The live run, with its deadline, in the registry (whose lease closes it if the graph stops calling),
    its streams started but for ``held`` (staged fan-out: they wait for the policy's launch decision)."""
    run = LiveRun(run_id=run_id, pool=pool, policy=policy, judge=judge, endpoints=endpoints, owns_endpoints=True)
    run.deadline = time.monotonic() + ctx.run_timeout_s
    runs.register(run, lease_s=max(120.0, 4 * ctx.judge_timeout_s))
    if held:
        pool.hold(list(held))
    pool.start()
    return run


@dataclass(frozen=True)
class StartedRun:
    """A new run and what ``fan_out`` reports about it."""

    run: LiveRun
    model: str  # the model name the server resolved ``ctx.model`` to
    urls: list[str]
    warm_error: str | None  # the judge's warm-up failure, recorded as the run's first judge error
    first_wave: list[int]  # the branches started now; the others wait for the policy (staged fan-out)


async def start_run(
    question: str,
    run_id: str,
    ctx: DeepPruneContext,
    runs: RunRegistry,
    conversation: Sequence[dict[str, Any]] | None = None,
) -> StartedRun:
    """Build the judge (warmed up) and the policy, resolve the model, and start the policy's first wave of
    the N branch streams (all N but for a staged policy). Every request carries the run's id as its session
    and, given ``conversation``, the whole chat. The endpoints are closed again when anything fails before
    the run owns them."""
    judge = await cached_judge(ctx)
    policy = make_policy(ctx)
    warm_error = None if policy.name == "none" else await warm_up(judge, ctx.judge_timeout_s)
    endpoints, urls = await endpoints_for(ctx)
    try:
        model = await endpoints.resolve_model(ctx.model)
        requests = branch_requests(question, model, ctx, run_id=run_id, conversation=conversation)
        pool = await make_pool(ctx, endpoints, urls, requests)
    except BaseException:
        await endpoints.aclose()
        raise
    started = set(policy.first_wave(ctx.n))
    first = sorted(started)
    held = [i for i in range(ctx.n) if i not in started]
    run = _register(run_id, pool, policy, judge, endpoints, ctx, runs, held)
    return StartedRun(run=run, model=model, urls=urls, warm_error=warm_error, first_wave=first)


async def resume_run(state: Mapping[str, Any], ctx: DeepPruneContext, writer: Writer, runs: RunRegistry) -> LiveRun:
    """Rebuild the run from checkpointed state: finished branches are kept as they are, branches that were
    still generating continue after their text, and the policy picks up its clusters."""
    judge = await cached_judge(ctx)
    policy = make_policy(ctx)
    endpoints, urls = await endpoints_for(ctx)
    requests = branch_requests(
        state["question"], state["model"], ctx, run_id=state["run_id"], conversation=state.get("conversation")
    )
    pool = await make_pool(ctx, endpoints, urls, requests, state["branches"])
    policy.restore(state.get("policy_state") or {}, pool.views())
    restarted = [b.id for b in pool.branches if b.alive]
    run = _register(state["run_id"], pool, policy, judge, endpoints, ctx, runs)
    writer({"event": "resume", "run_id": run.run_id, "restarted": restarted})
    return run


async def live_run(state: Mapping[str, Any], ctx: DeepPruneContext, writer: Writer, runs: RunRegistry) -> LiveRun:
    """The live run of this graph run, or — after a restart from a checkpoint — a resumed one."""
    run = runs.get(state.get("run_id", ""))
    if run is not None:
        return run
    if not state.get("branches") or not state.get("model"):
        raise DeepPruneError(f"run {state.get('run_id')!r} has no branches to resume: start the question again.")
    return await resume_run(state, ctx, writer, runs)
