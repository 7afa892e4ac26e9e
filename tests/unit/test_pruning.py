"""Clustering policies and the vote, driven by a scripted judge (pure logic: fakes allowed)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from deepprune_agents.judges.base import TracePair
from deepprune_agents.pruning import (
    ClusteringKnobs,
    NoPrunePolicy,
    PaperKnobs,
    PaperPolicy,
    PeriodicKnobs,
    PeriodicPolicy,
    majority_vote,
    weighted_vote,
)
from deepprune_agents.pruning.types import BranchView
from deepprune_agents.truncation import TruncationSpec

SPEC = TruncationSpec(mode="tokens", k=4)


class LabelJudge:
    """Says 'same' iff both texts start with the same label word; records every pair it saw."""

    name = "label"

    def __init__(self) -> None:
        self.calls: list[list[tuple[str, str]]] = []

    async def ascore(self, pairs: Sequence[TracePair]) -> list[float]:
        self.calls.append([(a.text, b.text) for a, b in pairs])
        return [1.0 if a.text.split()[0] == b.text.split()[0] else 0.0 for a, b in pairs]


def view(i: int, label: str, *, tokens: int = 8, status: str = "running", answer: str | None = None) -> BranchView:
    pieces = [f"{label} "] + [f"w{j} " for j in range(tokens - 1)]
    return BranchView(id=i, text="".join(pieces), tokens=tokens, status=status, pieces=pieces, answer=answer)  # type: ignore[arg-type]


async def test_paper_keeps_the_largest_cluster_and_cancels_the_rest() -> None:
    labels = ["a", "a", "b", "a", "b", "c"]
    views = [view(i, lab) for i, lab in enumerate(labels)]
    policy = PaperPolicy(truncation=SPEC, knobs=PaperKnobs(k2=20))
    assert policy.ready(views)
    decision = await policy.step(views, LabelJudge())
    assert policy.clusters.export() == [[0, 1, 3], [2, 4], [5]]
    assert policy.keep == [0, 1, 3]
    assert decision.cancel == [2, 4, 5]
    # Finish the kept ones; pruned ones never vote even if they had an answer.
    final = [
        view(i, lab, status="finished", answer="7") if i in (0, 1, 3) else view(i, lab, status="cancelled", answer="9")
        for i, lab in enumerate(labels)
    ]
    result = policy.vote(final)
    assert result.answer == "7"
    assert result.voters == [0, 1, 3]
    assert result.counts == {"7": 3.0}


async def test_paper_cancels_members_past_k2_at_once() -> None:
    views = [view(i, "a") for i in range(3)] + [view(3, "b", tokens=2)]  # branch 3 not at truncation yet
    policy = PaperPolicy(truncation=SPEC, knobs=PaperKnobs(k2=2))
    decision = await policy.step(views, LabelJudge())
    # cluster a has 3 members; the third can never be among the first K2 finishers.
    assert 2 in decision.cancel
    assert policy.keep is not None  # lead 3 - 0 > 1 pending branch: decided early
    assert 3 in decision.cancel


async def test_paper_waits_while_the_lead_can_still_change() -> None:
    views = [view(0, "a"), view(1, "b"), view(2, "c", tokens=1), view(3, "c", tokens=1)]
    policy = PaperPolicy(truncation=SPEC)
    decision = await policy.step(views, LabelJudge())
    assert policy.keep is None and decision.cancel == []
    views = [view(0, "a"), view(1, "b"), view(2, "c"), view(3, "c")]
    decision = await policy.step(views, LabelJudge())
    assert policy.keep == [2, 3]
    assert decision.cancel == [0, 1]


async def test_paper_all_singletons_falls_back_to_first_k2() -> None:
    views = [view(i, lab) for i, lab in enumerate("abcd")]
    policy = PaperPolicy(truncation=SPEC, knobs=PaperKnobs(k2=2))
    decision = await policy.step(views, LabelJudge())
    assert policy.fallback == "all-singletons"
    assert policy.keep == [0, 1]
    assert decision.cancel == [2, 3]


async def test_max_clusters_forces_joining_the_most_similar() -> None:
    views = [view(i, lab) for i, lab in enumerate("abc")]
    policy = PaperPolicy(truncation=SPEC, clustering=ClusteringKnobs(max_clusters=2))
    await policy.step(views, LabelJudge())
    assert len(policy.clusters.export()) == 2
    assert sorted(b for c in policy.clusters.export() for b in c) == [0, 1, 2]


async def test_similarity_uses_at_most_k1_members_per_cluster() -> None:
    views = [view(i, "a") for i in range(8)]
    judge = LabelJudge()
    policy = PaperPolicy(truncation=SPEC, clustering=ClusteringKnobs(k1=3))
    await policy.step(views, judge)
    assert max(len(call) for call in judge.calls) == 3


async def test_judge_sees_only_the_truncated_prefix() -> None:
    judge = LabelJudge()
    policy = PaperPolicy(truncation=SPEC)
    await policy.step([view(0, "a", tokens=50), view(1, "a", tokens=50)], judge)
    ((a, b),) = judge.calls[0]
    assert a == "a w0 w1 w2 " and b == "a w0 w1 w2 "


async def test_periodic_keeps_r_representatives_and_merges_later() -> None:
    policy = PeriodicPolicy(truncation=SPEC, knobs=PeriodicKnobs(representatives=1, judge_every=4))
    views = [view(0, "a"), view(1, "a"), view(2, "b")]
    decision = await policy.step(views, LabelJudge())
    assert decision.cancel == [1]
    assert policy.clusters.export() == [[0, 1], [2]]
    # Later, branch 2's longer prefix reads like branch 0's: the clusters merge and 2 is cancelled.
    grown = [view(0, "a", tokens=16), view(1, "a", status="cancelled"), view(2, "a", tokens=16)]
    assert policy.ready(grown)
    decision = await policy.step(grown, LabelJudge())
    assert decision.cancel == [2]
    assert policy.clusters.export() == [[0, 1, 2]]


async def test_periodic_vote_weights_clusters_by_size() -> None:
    policy = PeriodicPolicy(truncation=SPEC, knobs=PeriodicKnobs(representatives=1))
    views = [view(0, "a"), view(1, "a"), view(2, "a"), view(3, "b"), view(4, "c")]
    await policy.step(views, LabelJudge())
    final = [
        view(0, "a", status="finished", answer="1"),
        view(1, "a", status="cancelled"),
        view(2, "a", status="cancelled"),
        view(3, "b", status="finished", answer="2"),
        view(4, "c", status="finished", answer="2"),
    ]
    result = policy.vote(final)
    assert result.counts == {"1": 3.0, "2": 2.0}
    assert result.answer == "1"


async def test_periodic_not_ready_until_branches_grow() -> None:
    policy = PeriodicPolicy(truncation=SPEC, knobs=PeriodicKnobs(judge_every=10))
    views = [view(0, "a", tokens=5), view(1, "b", tokens=5)]
    await policy.step(views, LabelJudge())
    assert not policy.ready([view(0, "a", tokens=9), view(1, "b", tokens=9)])
    assert policy.ready([view(0, "a", tokens=16), view(1, "b", tokens=16)])
    assert policy.ready([view(0, "a", tokens=6, status="finished"), view(1, "b", tokens=6)])


async def test_deterministic_judge_gives_order_independent_clusters() -> None:
    labels = "abacbbcaab"
    views = [view(i, lab) for i, lab in enumerate(labels)]
    first = PaperPolicy(truncation=SPEC, seed=3, clustering=ClusteringKnobs(k1=2))
    second = PaperPolicy(truncation=SPEC, seed=3, clustering=ClusteringKnobs(k1=2))
    await first.step(views, LabelJudge())
    await second.step(list(reversed(views)), LabelJudge())
    assert first.clusters.export() == second.clusters.export()


def test_weighted_vote_groups_equal_answers_and_breaks_ties_by_branch_id() -> None:
    result = weighted_vote([(3, "0.5", 1.0), (1, "1/2", 1.0), (0, "7", 2.0), (5, None, 9.0)])
    assert result.answer in ("7", "0.5") and sum(result.counts.values()) == 4.0
    assert result.answer == "7"  # tie 2 vs 2: lowest first branch id (0) wins
    assert 5 not in result.voters


def test_majority_vote_without_answers_is_none() -> None:
    assert majority_vote([(0, None), (1, None)]).answer is None


async def test_no_prune_policy_never_cancels() -> None:
    policy = NoPrunePolicy()
    views = [view(i, "a") for i in range(4)]
    assert not policy.ready(views)
    assert (await policy.step(views, LabelJudge())).cancel == []
    result = policy.vote([view(i, "a", status="finished", answer=str(i % 2)) for i in range(3)])
    assert result.answer == "0"


@pytest.mark.parametrize("k2", [1, 3])
async def test_paper_never_keeps_more_than_k2(k2: int) -> None:
    policy = PaperPolicy(truncation=SPEC, knobs=PaperKnobs(k2=k2))
    await policy.step([view(i, "a") for i in range(6)], LabelJudge())
    assert policy.keep is not None and len(policy.keep) == k2


def test_vote_is_decided_only_when_the_undecided_weight_cannot_flip_it() -> None:
    from deepprune_agents.pruning.vote import vote_is_decided

    ballots = [(0, "7", 5.0), (1, "8", 2.0)]
    assert vote_is_decided(ballots, 2.0)  # 5 > 2 + 2
    assert not vote_is_decided(ballots, 3.0)  # 5 = 2 + 3: a tie could flip on the tie-break
    assert not vote_is_decided([], 0.0)


async def test_periodic_stops_the_rest_once_the_vote_cannot_change() -> None:
    policy = PeriodicPolicy(truncation=SPEC, knobs=PeriodicKnobs(representatives=1))
    views = [view(i, "a") for i in range(5)] + [view(5, "b"), view(6, "c")]
    first = await policy.step(views, LabelJudge())
    assert first.cancel == [1, 2, 3, 4] and first.decided == []
    # Cluster a (weight 5) finished with an answer; b and c (weight 1 each) cannot outvote it.
    later = [view(0, "a", status="finished", answer="7")]
    later += [view(i, "a", status="cancelled") for i in range(1, 5)] + [view(5, "b"), view(6, "c")]
    second = await policy.step(later, LabelJudge())
    assert second.decided == [5, 6]
    off = PeriodicPolicy(
        truncation=SPEC, clustering=ClusteringKnobs(stop_when_decided=False), knobs=PeriodicKnobs(representatives=1)
    )
    await off.step(views, LabelJudge())
    assert (await off.step(later, LabelJudge())).decided == []


async def test_paper_stops_kept_branches_once_their_majority_is_certain() -> None:
    policy = PaperPolicy(truncation=SPEC)
    views = [view(i, "a") for i in range(5)]
    await policy.step(views, LabelJudge())
    assert policy.keep == [0, 1, 2, 3, 4]
    done = [view(i, "a", status="finished", answer="7") for i in range(3)] + [view(3, "a"), view(4, "a")]
    decision = await policy.step(done, LabelJudge())
    assert decision.decided == [3, 4]  # 3 votes for 7 > 0 + 2 undecided


async def test_restore_continues_from_exported_clusters() -> None:
    policy = PeriodicPolicy(truncation=SPEC)
    views = [view(0, "a"), view(1, "a"), view(2, "b")]
    await policy.step(views, LabelJudge())
    again = PeriodicPolicy(truncation=SPEC)
    again.restore(policy.export(), views)
    assert again.clusters.export() == policy.clusters.export()
    assert not again.ready(views)


async def test_paper_is_ready_again_when_a_kept_branch_finishes() -> None:
    policy = PaperPolicy(truncation=SPEC)
    views = [view(i, "a") for i in range(3)]
    await policy.step(views, LabelJudge())
    assert not policy.ready(views)
    assert policy.ready([view(0, "a", status="finished", answer="1"), view(1, "a"), view(2, "a")])


def test_cluster_ballots_share_only_predicted_members() -> None:
    """Cancelled and running members lend their weight to the answered ones; a member seen to finish
    without an answer, or failed, lends nothing: a lone answer beside no-answer members no longer outweighs
    two agreeing ones."""
    from deepprune_agents.pruning.types import BranchView
    from deepprune_agents.pruning.vote import cluster_ballots, weighted_vote

    def view(i: int, status: str, answer: str | None = None) -> BranchView:
        return BranchView(id=i, text="t", tokens=3, status=status, answer=answer)  # type: ignore[arg-type]

    by_id = {
        0: view(0, "finished", "A"),
        1: view(1, "finished"),
        2: view(2, "finished"),
        3: view(3, "failed"),
        4: view(4, "cancelled"),
        5: view(5, "finished", "B"),
        6: view(6, "finished", "B"),
        7: view(7, "running"),
        8: view(8, "cancelled"),
    }
    lonely = cluster_ballots([0, 1, 2, 3, 4], by_id)
    assert lonely == [(0, "A", 2.0)]  # itself + the cancelled member 4; the no-answer and failed ones add nothing
    pair = cluster_ballots([5, 6, 7, 8], by_id)
    assert pair == [(5, "B", 2.0), (6, "B", 2.0)]
    assert weighted_vote(lonely + pair).answer == "B"
    assert cluster_ballots([1, 2, 4], by_id) == []  # nobody answered: the cluster weighs nothing
