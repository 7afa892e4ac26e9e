"""Property-based tests of the clustering invariants (hypothesis, scripted deterministic judges)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from deepprune_agents.judges.base import TracePair
from deepprune_agents.pruning import ClusteringKnobs, PaperKnobs, PaperPolicy, PeriodicKnobs, PeriodicPolicy
from deepprune_agents.pruning.types import BranchView
from deepprune_agents.truncation import TruncationSpec

SPEC = TruncationSpec(mode="tokens", k=3)
LABELS = st.lists(st.sampled_from("abcde"), min_size=1, max_size=24)


class HashJudge:
    """Deterministic and symmetric; scores depend only on the two texts. Optionally answers late, in a
    scrambled order, to show that completion order does not matter."""

    name = "hash"

    def __init__(self, jitter: bool = False, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.jitter = jitter

    async def ascore(self, pairs: Sequence[TracePair]) -> list[float]:
        if self.jitter:
            await asyncio.sleep(self.rng.random() / 1000)
        out = []
        for a, b in pairs:
            la, lb = a.text.split()[0], b.text.split()[0]
            out.append(1.0 if la == lb else (0.3 if {la, lb} == {"a", "b"} else 0.0))
        return out


def views_for(labels: list[str], statuses: list[str] | None = None) -> list[BranchView]:
    out = []
    for i, lab in enumerate(labels):
        pieces = [f"{lab} ", "x ", "y ", "z "]
        status = statuses[i] if statuses else "running"
        out.append(
            BranchView(
                id=i,
                text="".join(pieces),
                tokens=4,
                status=status,
                pieces=pieces,  # type: ignore[arg-type]
                answer=lab if status == "finished" else None,
            )
        )
    return out


def members(policy: PaperPolicy | PeriodicPolicy) -> list[int]:
    return sorted(b for c in policy.clusters.export() for b in c)


@settings(max_examples=120, deadline=None)
@given(labels=LABELS, k1=st.integers(1, 5), k2=st.integers(1, 6), kmax=st.integers(1, 6), seed=st.integers(0, 9))
def test_paper_every_branch_in_exactly_one_cluster_and_pruned_never_vote(
    labels: list[str], k1: int, k2: int, kmax: int, seed: int
) -> None:
    policy = PaperPolicy(
        truncation=SPEC, seed=seed, clustering=ClusteringKnobs(k1=k1, max_clusters=kmax), knobs=PaperKnobs(k2=k2)
    )
    views = views_for(labels)
    decision = asyncio.run(policy.step(views, HashJudge()))
    assert members(policy) == list(range(len(labels)))
    assert len(policy.clusters.export()) <= kmax
    assert policy.keep is not None and len(policy.keep) <= k2
    assert not set(decision.cancel) & set(policy.keep)
    # Everything not kept was cancelled; finish the kept ones and vote.
    final = views_for(labels, ["finished" if i in policy.keep else "cancelled" for i in range(len(labels))])
    result = policy.vote(final)
    assert set(result.voters) <= set(policy.keep)
    assert not set(result.voters) & set(decision.cancel)


@settings(max_examples=80, deadline=None)
@given(labels=LABELS, r=st.integers(1, 3), seed=st.integers(0, 9))
def test_periodic_keeps_at_most_r_running_per_cluster(labels: list[str], r: int, seed: int) -> None:
    policy = PeriodicPolicy(truncation=SPEC, seed=seed, knobs=PeriodicKnobs(representatives=r))
    views = views_for(labels)
    decision = asyncio.run(policy.step(views, HashJudge()))
    assert members(policy) == list(range(len(labels)))
    for cluster in policy.clusters.export():
        assert len([b for b in cluster if b not in decision.cancel]) <= r


@settings(max_examples=60, deadline=None)
@given(labels=LABELS, k1=st.integers(1, 4), seed=st.integers(0, 9), order_seed=st.integers(0, 99))
def test_clusters_do_not_depend_on_judge_timing(labels: list[str], k1: int, seed: int, order_seed: int) -> None:
    calm = PaperPolicy(truncation=SPEC, seed=seed, clustering=ClusteringKnobs(k1=k1))
    jittery = PaperPolicy(truncation=SPEC, seed=seed, clustering=ClusteringKnobs(k1=k1))
    views = views_for(labels)
    shuffled = list(views)
    random.Random(order_seed).shuffle(shuffled)
    asyncio.run(calm.step(views, HashJudge()))
    asyncio.run(jittery.step(shuffled, HashJudge(jitter=True, seed=order_seed)))
    assert calm.clusters.export() == jittery.clusters.export()
    assert calm.keep == jittery.keep
