"""The real vllm-router binary (``--policy consistent_hash``) in front of two replay servers (issue 35).

What a deployment past one machine relies on, end to end over real HTTP: every branch request of a run
carries the run's ``X-Session-ID``, so the router keeps a run's branches on one replica while different runs
spread; a pruned branch's disconnect passes through the router and aborts the request on its replica;
nothing is left running; and token counts through the router equal those of the same run direct, although
the router drops ``stream_options.continuous_usage_stats``.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from collections.abc import Iterator

import pytest
from test_replay_server_e2e import QUESTION  # tests/e2e is on sys.path (rootdir import mode)

from deepprune_agents.backends.router import INSTALL_ROUTER, RouterProcess, router_executable
from deepprune_agents.evaluation.replay_server import ReplayServer
from deepprune_agents.reasoner import DeepPruneReasoner
from deepprune_agents.result import DeepPruneResult
from deepprune_agents.settings import DeepPruneContext

pytestmark = pytest.mark.skipif(
    router_executable() is None, reason=f"the vllm-router executable is not installed ({INSTALL_ROUTER})"
)

# An agent-sized system prompt, the same for both runs: what cache_aware routing would pile onto one replica.
LONG_SYSTEM_PROMPT = (
    "You are a careful assistant for arithmetic word problems. " * 150 + "Finish with 'The answer is N.'"
)
TOKENS_PER_S = 50


@pytest.fixture
def replicas() -> Iterator[tuple[ReplayServer, ReplayServer, RouterProcess]]:
    with (
        ReplayServer([QUESTION], tokens_per_s=TOKENS_PER_S) as a,
        ReplayServer([QUESTION], tokens_per_s=TOKENS_PER_S) as b,
        RouterProcess([a.root_url, b.root_url], policy="consistent_hash") as router,
    ):
        yield a, b, router
        assert a.wait_idle(5.0) and b.wait_idle(5.0), "a request is still running on a replica after the test"


def sessions_by_replica(*servers: ReplayServer) -> dict[str | None, set[int]]:
    """For each session header seen, the replicas (by position) its requests reached."""
    where: dict[str | None, set[int]] = defaultdict(set)
    for k, server in enumerate(servers):
        for record in server.records():
            where[record.session].add(k)
    return where


async def test_each_run_on_one_replica_runs_spread_pruned_branches_aborted_upstream(
    replicas: tuple[ReplayServer, ReplayServer, RouterProcess],
) -> None:
    a, b, router = replicas
    ctx = DeepPruneContext(
        n=8, policy="paper", judge="numbers", truncate="tokens:12", tau=0.5, base_urls=[router.base_url],
        model="replay", system_prompt=LONG_SYSTEM_PROMPT,
    )  # fmt: skip
    runs = [DeepPruneReasoner(ctx), DeepPruneReasoner(ctx.replace(seed=1000))]  # seeds 0-7 and 1000-1007
    results: list[DeepPruneResult] = list(await asyncio.gather(*(r.ainvoke(QUESTION.question) for r in runs)))
    assert all(r.answer == "7" for r in results)
    assert a.wait_idle(5.0) and b.wait_idle(5.0)

    where = sessions_by_replica(a, b)
    assert None not in where, "a branch request reached a replica without the session header"
    assert len(where) == 2 and all(len(replicas_of) == 1 for replicas_of in where.values()), where
    records = a.records() + b.records()
    assert len(records) == 16
    for session in where:
        assert sum(r.session == session for r in records) == 8  # the run's 8 requests, all on its replica

    cancelled = [br for r in results for br in r.branches if br.status == "cancelled"]
    assert cancelled, "the wrong-answer branches should have been pruned"
    # Every request ended on its replica: finished, or aborted when the client's disconnect came through
    # the router; none is still open (wait_idle above) and the abort count is the disconnect count.
    assert all(r.finish_reason is not None or r.disconnected for r in records)
    aborted = [r for r in records if r.disconnected]
    assert aborted, "no pruned stream was closed mid-way on its replica"
    assert sum(s.stats()["finished"]["abort"] for s in (a, b)) == len(aborted)
    for r in aborted:  # the disconnect reached the replica within a few chunks of the client's count
        assert r.t_disconnect is not None and r.t_last_token is not None
        assert r.t_disconnect - r.t_last_token < 1.0
    by_seed = {r.seed: r for r in records}
    for result in results:
        assert len({by_seed[br.seed].session for br in result.branches}) == 1  # one session per run
        for br in result.branches:
            rec = by_seed[br.seed]
            if br.status == "finished":
                assert rec.tokens_sent == br.tokens  # the final usage chunk, through the router
            else:
                assert br.tokens <= rec.tokens_sent <= br.tokens + 2 + math.ceil(TOKENS_PER_S * 1.0)

    # Different runs are not forced onto one replica: more (short) runs until both replicas served one.
    # consistent_hash splits sessions about evenly (measured 39-61% over 100), so 20 runs miss with p < 1e-4.
    quick = DeepPruneReasoner(ctx.replace(n=2, policy="none", system_prompt=""))
    for _ in range(20):
        if {k for replicas_of in sessions_by_replica(a, b).values() for k in replicas_of} == {0, 1}:
            break
        await quick.ainvoke(QUESTION.question)
    where = sessions_by_replica(a, b)
    assert all(len(replicas_of) == 1 for replicas_of in where.values())
    assert {k for replicas_of in where.values() for k in replicas_of} == {0, 1}


async def test_token_counts_through_the_router_equal_the_direct_run(
    replicas: tuple[ReplayServer, ReplayServer, RouterProcess],
) -> None:
    a, _, router = replicas
    ctx = DeepPruneContext(n=6, policy="none", base_urls=[a.base_url], model="replay", max_tokens=20)
    direct = await DeepPruneReasoner(ctx).ainvoke(QUESTION.question)
    routed = await DeepPruneReasoner(ctx.replace(base_urls=[router.base_url])).ainvoke(QUESTION.question)
    assert [br.tokens for br in routed.branches] == [br.tokens for br in direct.branches]
    assert routed.tokens_generated == direct.tokens_generated > 0
    assert [br.text for br in routed.branches] == [br.text for br in direct.branches]
