"""The ``adaptive`` policy: prune redundancy inside clusters, stop the run once the vote is statistically safe.

Built for agent-scale N (8 to 64), where the ``paper`` policy prunes nothing (its K2 = 20 finishers
cover the whole largest cluster) and a wrong merge on a 32-token prefix can cancel the branches that
would have won. Two mechanisms, each safe on its own:

1. **Thinning** (uses the judge). Each branch is placed once, on its truncated prefix, by the greedy rule
   shared with ``paper``. Every cluster keeps ``max(min_keep, ceil(keep_fraction * size))`` usable
   members (finished with an answer, or running); the surplus running members, latest joined first, are
   cancelled. A cluster at least half of whose members are *copies* (their judge input repeats another
   member's word for word, as templated openings do) keeps ``copy_keep_fraction`` instead: the judge had
   nothing to tell them apart, so thinning them is random subsampling. A cluster never loses its last
   running member to thinning, so a wrong merge (two answers in one cluster) still leaves several
   branches of the cluster to show the difference: thinning removes redundancy, it never removes the
   last voice of a cluster.
2. **Stopping** (never uses the judge). Only finished branches' extracted answers are votes. With ``a``
   votes for the leading answer and ``b`` for the runner-up, the share ``p`` of the leader among the two
   has the posterior Beta(a + 1, b + 1) (uniform prior), and the run stops once
   ``P(p > 1/2) >= confidence`` and at least ``min_votes`` votes (and ``min_vote_share`` of the N
   branches) are in: Adaptive-Consistency's Beta stopping rule (Aggarwal et al., EMNLP 2023), applied to
   parallel streams as they finish (see ``votes_needed`` for why the share). It also stops
   when the vote can no longer change at all. A predicted cluster never decides alone.

High-agreement questions stop after the first few finishers (four equal answers reach 0.97); split
questions never satisfy the rule and keep every kept branch to the end. The vote is plain majority over
finished branches (cons@N over the branches that finished).

The knobs are declared once, in ``AdaptiveKnobs`` (see ``pruning/knobs.py``): the settings fields, their
validation, the command-line flags and the evaluation's config are all derived from that dataclass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from deepprune_agents.judges.base import Judge
from deepprune_agents.pruning.clustering import Clusters, GreedyClusteringPolicy
from deepprune_agents.pruning.knobs import Knobs, knob
from deepprune_agents.pruning.types import BranchView, Decision, VoteResult
from deepprune_agents.pruning.vote import cluster_ballots, vote_is_decided, weighted_vote
from deepprune_agents.truncation import TruncationSpec


@dataclass(frozen=True)
class AdaptiveKnobs(Knobs):
    """The adaptive policy's own knobs (it also reads ``ClusteringKnobs``): settings ``adaptive_<name>``,
    flags ``--adaptive-<name>``."""

    prefix = "adaptive_"
    policies = ("adaptive",)

    keep_fraction: float = knob(
        0.5,
        "Thinning: share of each cluster kept running (1.0: no thinning, no judge calls).",
        low=0.0,
        high=1.0,
        low_open=True,
    )
    min_keep: int = knob(2, "Thinning: fewest branches a cluster keeps, whatever its size.", low=1, high=1 << 20)
    copy_keep_fraction: float = knob(
        0.6,
        "Thinning: share kept of a cluster at least half of whose members are copies (their judge input "
        "repeats another member's word for word: the judge had nothing to tell them apart).",
        low=0.0,
        high=1.0,
        low_open=True,
    )
    confidence: float = knob(
        0.99,
        "Stop when P(leading answer is the majority | finished answers) reaches this (Beta rule).",
        low=0.5,
        high=1.0,
    )
    min_votes: int = knob(3, "Stop only once this many finished branches have an answer.", low=1, high=1 << 20)
    min_vote_share: float = knob(
        0.1,
        "Stop only once this share of the N branches have answered (the first to finish are the shortest "
        "traces, a biased sample).",
        low=0.0,
        high=1.0,
    )


def majority_probability(leader: int, runner_up: int) -> float:
    """P(p > 1/2) for p ~ Beta(leader + 1, runner_up + 1): the posterior probability that the leading
    answer is the more frequent of the two, after ``leader`` vs ``runner_up`` votes (uniform prior).

    For integer parameters, P(Beta(a, b) > 1/2) = P(Binomial(a + b - 1, 1/2) <= a - 1): exact, no scipy."""
    if leader < 0 or runner_up < 0:
        raise ValueError("vote counts must be >= 0")
    a, b = leader + 1, runner_up + 1
    n = a + b - 1
    return sum(math.comb(n, k) for k in range(a)) / (1 << n)


def answer_counts(ballots: Sequence[tuple[int, str | None, float]]) -> list[int]:
    """Finished answers per answer class, one each whatever their vote weight: the stopping rule's
    evidence is the answers seen, so a cluster's size (a prediction) never makes a stop more likely."""
    return [int(c) for c in weighted_vote([(b, a, 1.0) for b, a, _ in ballots]).counts.values()]


class StopRule(Protocol):
    """What the Beta stopping rule reads. ``AdaptiveKnobs`` and ``StagedKnobs`` each declare these three
    knobs (their own settings, defaults and texts), and either is passed to the rule as it is."""

    @property
    def confidence(self) -> float: ...
    @property
    def min_votes(self) -> int: ...
    @property
    def min_vote_share(self) -> float: ...


def votes_needed(knobs: StopRule, n: int) -> int:
    """Finished answers the stopping rule needs before it may stop a run of ``n`` parallel branches.

    The Beta rule assumes the answers in hand are a fair sample, which holds for Adaptive-Consistency's
    one-at-a-time traces but not for parallel streams: the first branches to finish are the shortest.
    Measured on OVM Llama at N = 128 with the oracle judge: in 7 draws of 100, six traces of under 32
    tokens that all answered 180 stopped the run while 105-115 of the 128 branches said 540 (37 % vs
    cons 44 %). Waiting for answers from ``min_vote_share`` of the branches (13 of 128) removed all 7
    (44 %) for 1.6 % more tokens; at N <= 30 the default share asks for no more than ``min_votes``."""
    return max(knobs.min_votes, math.ceil(knobs.min_vote_share * n - 1e-9))


def stop_is_safe(counts: Sequence[float], knobs: StopRule, n: int = 0) -> bool:
    """The Beta stopping rule over the vote counts of the finished branches' answer classes, for a run of
    ``n`` parallel branches (0: answers that arrive one at a time, as in Adaptive-Consistency)."""
    ordered = sorted((int(c) for c in counts), reverse=True)
    if not ordered or sum(ordered) < votes_needed(knobs, n):
        return False
    runner_up = ordered[1] if len(ordered) > 1 else 0
    return majority_probability(ordered[0], runner_up) >= knobs.confidence


class AdaptivePolicy(GreedyClusteringPolicy):
    name = "adaptive"

    def __init__(self, *, truncation: TruncationSpec, knobs: AdaptiveKnobs | None = None, **common: Any) -> None:
        super().__init__(truncation=truncation, **common)
        self.knobs = knobs or AdaptiveKnobs()
        self.thinning = self.knobs.keep_fraction < 1.0
        self.votes_seen = 0
        self._words: dict[int, str] = {}  # branch -> its judge input, whitespace-normalized (copies)
        self.stopped: str | None = None

    def _votes(self, views: Sequence[BranchView]) -> int:
        return sum(1 for v in views if v.finished)

    def ready(self, views: Sequence[BranchView]) -> bool:
        """Due when a branch can be placed (thinning only), or one more branch finished (a new vote)."""
        if self.thinning and any(self._eligible(v) for v in views):
            return True
        return self._votes(views) > self.votes_seen

    def keep_target(self, size: int, copies: int = 0) -> int:
        """Members a cluster of ``size`` keeps usable; ``copies`` of them repeat another member's judge
        input word for word. A cluster made mostly of copies is kept at ``copy_keep_fraction``: the judge
        had nothing to tell its members apart (see ``copies``)."""
        fraction = self.knobs.copy_keep_fraction if 2 * copies >= size else self.knobs.keep_fraction
        return max(self.knobs.min_keep, math.ceil(fraction * size - 1e-9))

    def copies(self, members: Sequence[int]) -> int:
        """Members whose judge input repeats, word for word, that of an earlier member of the cluster.

        A judge cannot tell two identical inputs apart, so their merge is a prior, not evidence: on
        templated openings such pairs agree hardly more often than any two branches. Measured at 32
        tokens over pairs of traces of one question: dates, 91 % of pairs are copies and 73 % of those
        agree vs 71 % of all pairs; MATH, 45 %, 95 % vs 92 %; OVM GSM8K, where 32 tokens already
        compute, 1.5 % / 0.4 %. Thinning a cluster of copies at ``keep_fraction`` is then cons@k for a
        smaller k, which flips near-ties (dates: -1.0 point vs cons@10 with the embedding judge).
        The figures: ``research/prefix_copies.py``."""
        seen: set[str] = set()
        for b in members:
            if b not in self._words:
                self._words[b] = " ".join(self.clusters.inputs[b].text.split())
            seen.add(self._words[b])
        return len(members) - len(seen)

    def thin(self, by_id: Mapping[int, BranchView]) -> list[int]:
        """Surplus running members of every cluster (latest joined first), never a cluster's last one."""
        cancel: list[int] = []
        for c in self.clusters.non_empty():
            members = self.clusters.members[c]
            alive = [b for b in members if by_id[b].alive]
            answered = sum(1 for b in members if by_id[b].finished and by_id[b].answer is not None)
            target = self.keep_target(len(members), self.copies(members))
            keep_alive = max(1 if alive else 0, target - answered)
            cancel.extend(alive[keep_alive:])
        return cancel

    async def step(self, views: Sequence[BranchView], judge: Judge) -> Decision:
        decision = Decision()
        by_id = {v.id: v for v in views}
        # Never force a join: once max_clusters clusters exist the greedy rule puts every further branch into
        # the most similar one however unlike, and here a cluster's size is its answers' vote weight (measured:
        # Llama N=128, oracle judge, 32 clusters: 37% vs cons 44%). Thinning, not the cluster count, bounds
        # the cost, so every branch may open its own cluster.
        self.max_clusters = max(self.max_clusters, len(views))
        if self.thinning:
            await self._place_eligible(views, judge, decision, self.truncation)
            decision.cancel = sorted(set(self.thin(by_id)))
        self.votes_seen = self._votes(views)
        if self.stop_when_decided:
            cancelling = set(decision.cancel)
            running = [v.id for v in views if v.alive and v.id not in cancelling]
            ballots = self.ballots(by_id)
            counts = answer_counts(ballots)
            if running and vote_is_decided(ballots, self.undecided_weight(by_id, cancelling)):
                self.stopped = "vote-decided"
            elif running and stop_is_safe(counts, self.knobs, len(views)):
                self.stopped = "beta-stop"
            if self.stopped is not None and running:
                decision.decided = running
                decision.events.append({"event": "stop", "rule": self.stopped, "votes": sorted(counts, reverse=True)})
        return decision

    def ballots(self, by_id: Mapping[int, BranchView]) -> list[tuple[int, str | None, float]]:
        """One ballot per finished branch with an answer. A thinned cluster's cancelled and running
        members are shared among its members that answered (they were predicted to agree with them), so
        thinning does not shrink a large cluster's say to that of a small one; members seen to end with
        no answer add nothing, and a cluster with no answered member weighs nothing, whatever its size
        (``vote.cluster_ballots``)."""
        out: list[tuple[int, str | None, float]] = []
        for c in self.clusters.non_empty():
            out.extend(cluster_ballots(self.clusters.members[c], by_id))
        out.extend((b, v.answer, 1.0) for b, v in by_id.items() if v.finished and b not in self.clusters.of)
        return sorted(out)

    def undecided_weight(self, by_id: Mapping[int, BranchView], cancelling: set[int]) -> float:
        """Weight that can still move: a cluster with a running member may still reweigh all of its
        members' ballots; each unplaced running branch is one vote to come."""
        weight = 0.0
        for c in self.clusters.non_empty():
            members = self.clusters.members[c]
            if any(by_id[b].alive and b not in cancelling for b in members):
                weight += len(members)
        return weight + sum(
            1 for b, v in by_id.items() if v.alive and b not in cancelling and b not in self.clusters.of
        )

    def vote(self, views: Sequence[BranchView]) -> VoteResult:
        """Weighted majority over the finished branches' answers (see ``ballots``)."""
        return weighted_vote(self.ballots({v.id: v for v in views}))

    def export(self) -> dict[str, Any]:
        return {"policy": self.name, "clusters": self.clusters.export(), "stopped": self.stopped}

    def restore(self, exported: dict[str, Any], views: Sequence[BranchView]) -> None:
        """Continue from ``export()`` output (checkpoint resume); judge inputs are re-derived."""
        self.clusters = Clusters.rebuild(exported.get("clusters", []), views, self.truncation)
        self._words = {}
        self.stopped = exported.get("stopped")
        self.votes_seen = 0  # re-check the stopping rule on the first round after resuming


__all__ = [
    "AdaptiveKnobs",
    "AdaptivePolicy",
    "StopRule",
    "answer_counts",
    "majority_probability",
    "stop_is_safe",
    "votes_needed",
]
