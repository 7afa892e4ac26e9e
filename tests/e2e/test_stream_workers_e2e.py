"""Branch streams read by worker processes (``stream_workers``) against the replay server on 127.0.0.1:
the same branches and tokens as in-process, cancellation closes the server's streams, a dead worker fails
only its own branches (text kept), and the workers outlive an event loop."""

from __future__ import annotations

import asyncio
import math
import os
import signal
from pathlib import Path

import pytest

from deepprune_agents.backends import shards
from deepprune_agents.evaluation.replay_data import ReplayQuestion, load_replay_questions, run_seed
from deepprune_agents.evaluation.replay_server import ReplayServer
from deepprune_agents.reasoner import DeepPruneReasoner
from deepprune_agents.settings import DeepPruneContext

TRACE_FILE = "traces/ovm_gsm8k_test_n300_mistral7b-ep2.jsonl"


@pytest.fixture(scope="module")
def question(shared_data: Path) -> ReplayQuestion:
    return load_replay_questions([shared_data / TRACE_FILE])[0]


@pytest.fixture(autouse=True)
def _stop_workers() -> object:
    yield
    shards.close_workers()


def ctx_for(server: ReplayServer, **kw: object) -> DeepPruneContext:
    base: dict[str, object] = {
        "n": 12,
        "base_urls": [server.base_url],
        "model": "replay",
        "seed": run_seed(1),
        "max_tokens": 4096,
        "stream_workers": 2,
        "judge": "numbers",
    }
    base.update(kw)
    return DeepPruneContext(**base)


async def test_workers_stream_the_same_branches_as_the_engine_in_process(question: ReplayQuestion) -> None:
    with ReplayServer([question]) as server:
        ctx = ctx_for(server, policy="none")
        sharded = await DeepPruneReasoner(ctx).ainvoke(question.question)
        local = await DeepPruneReasoner(ctx.replace(stream_workers=0)).ainvoke(question.question)
        assert server.wait_idle(5.0)
    assert sharded.finished == 12 and sharded.failed == 0
    # Every token of every branch arrives, in order, exactly as when this process reads the streams.
    assert [(b.tokens, b.text, b.answer, b.finish_reason) for b in sharded.branches] == [
        (b.tokens, b.text, b.answer, b.finish_reason) for b in local.branches
    ]
    assert sharded.answer == local.answer and sharded.votes == local.votes
    assert all(b.endpoint == server.base_url for b in sharded.branches)


async def test_pruning_closes_the_streams_on_the_server(question: ReplayQuestion) -> None:
    with ReplayServer([question], tokens_per_s=40) as server:
        ctx = ctx_for(server, policy="periodic", tau=0.0, judge_every=8, truncate="tokens:8", n=8)
        result = await DeepPruneReasoner(ctx).ainvoke(question.question)
        assert server.wait_idle(5.0), "a worker left a stream open"
        records = {r.seed: r for r in server.records()}
    cancelled = [b for b in result.branches if b.status == "cancelled"]
    assert cancelled, "tau 0 merges every branch: the periodic policy keeps one per cluster"
    for b in cancelled:
        record = records[b.seed]
        assert record.disconnected and record.finish_reason is None  # the server saw the close
        # What the worker read before the close is kept. A token the server wrote while the close was on its
        # way (cancel decided -> pipe -> worker -> socket) was never read: at most what its pace allows in
        # that lag, plus the one in flight (the same bound as the in-process test in test_replay_server_e2e).
        assert b.text and question.traces[record.trace or 0].text.startswith(b.text)
        assert record.t_disconnect is not None and b.cancel_decided_at is not None
        lag = record.t_disconnect - b.cancel_decided_at
        assert -0.01 <= lag < 0.5
        assert b.tokens <= record.tokens_sent <= b.tokens + 1 + math.ceil(40 * lag)
        assert b.cancel_latency_ms is not None and b.cancel_latency_ms < 1000
    assert result.answer is not None


async def test_a_dead_worker_fails_only_its_branches_and_keeps_their_text(question: ReplayQuestion) -> None:
    with ReplayServer([question], tokens_per_s=30) as server:
        ctx = ctx_for(server, policy="none", n=8)
        workers = await shards.workers_for(2)
        victim = workers.procs[0]
        reasoner = DeepPruneReasoner(ctx)
        run = asyncio.create_task(reasoner.ainvoke(question.question))
        for _ in range(1200):  # until every branch has streamed a little
            if server.state.snapshot()["generation_tokens_total"] >= 40:
                break
            await asyncio.sleep(0.05)
        os.kill(victim.popen.pid, signal.SIGKILL)
        result = await asyncio.wait_for(run, 120)
        assert server.wait_idle(10.0), "the killed worker's streams must close with its process"
    failed = [b for b in result.branches if b.status == "failed"]
    assert len(failed) == 4 and all("worker process exited" in (b.error or "") for b in failed)
    assert all(b.text for b in failed)  # their text so far is kept
    assert sum(b.status == "finished" for b in result.branches) == 4 and result.answer is not None


def test_workers_outlive_an_event_loop(question: ReplayQuestion) -> None:
    with ReplayServer([question]) as server:
        reasoner = DeepPruneReasoner(ctx_for(server, policy="none", n=4))
        first = reasoner.invoke(question.question)  # asyncio.run per call: a new loop each time
        pids = [p.popen.pid for p in shards._WORKERS[2].procs]
        second = reasoner.invoke(question.question)
        assert [p.popen.pid for p in shards._WORKERS[2].procs] == pids  # the same processes, re-attached
        assert server.wait_idle(5.0)
    assert first.finished == second.finished == 4
    assert [b.text for b in first.branches] == [b.text for b in second.branches]
