"""The ``paper`` policy: DeepPrune as published.

Each branch is judged once, on its first k tokens (or k reasoning words), and put into a cluster by
the greedy rule. When the largest cluster is known (every live branch assigned, or its lead can no
longer be overtaken), its first K2 members run to completion and every other branch is cancelled; the
answer is the majority vote of those K2. A branch that joins a cluster past its K2-th member can never be
among the finishers, so it is cancelled at once rather than kept waiting.

Once the kept branches' majority can no longer change (``stop_when_decided``, on by default), the kept
branches still running are stopped too: that never changes the voted answer, only saves their tokens.

Fallback: if every cluster is a singleton (the judge found no two alike), there is no "largest
cluster"; the first K2 branches run to completion and vote instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from deepprune_agents.judges.base import Judge
from deepprune_agents.pruning.clustering import Clusters, GreedyClusteringPolicy
from deepprune_agents.pruning.knobs import Knobs, knob
from deepprune_agents.pruning.types import BranchView, Decision, VoteResult
from deepprune_agents.pruning.vote import majority_vote, vote_is_decided, weighted_vote
from deepprune_agents.truncation import TruncationSpec


@dataclass(frozen=True)
class PaperKnobs(Knobs):
    """The ``paper`` policy's own knobs (it also reads ``ClusteringKnobs``)."""

    policies = ("paper",)

    k2: int = knob(20, "Traces of the largest cluster completed (K2).", low=1)


class PaperPolicy(GreedyClusteringPolicy):
    name = "paper"

    def __init__(self, *, truncation: TruncationSpec, knobs: PaperKnobs | None = None, **common: Any) -> None:
        super().__init__(truncation=truncation, **common)
        self.knobs = knobs or PaperKnobs()
        self.k2 = self.knobs.k2
        self.keep: list[int] | None = None  # set once the largest cluster is decided
        self.kept_done_seen = 0
        self.fallback: str | None = None

    def ready(self, views: Sequence[BranchView]) -> bool:
        """A judge round is due when some branch reached its truncation point (or finished), or — once
        the kept set is known — when one more kept branch finished (the vote may now be decided)."""
        if any(self._eligible(v) for v in views):
            return True
        return self.keep is not None and self.stop_when_decided and self._kept_done(views) > self.kept_done_seen

    def _kept_done(self, views: Sequence[BranchView]) -> int:
        keep = set(self.keep or [])
        return sum(1 for v in views if v.id in keep and not v.alive)

    async def step(self, views: Sequence[BranchView], judge: Judge) -> Decision:
        decision = Decision()
        by_id = {v.id: v for v in views}
        for v, cluster in await self._place_eligible(views, judge, decision, self.truncation):
            late = self.clusters.members[cluster].index(v.id) >= self.k2
            if self.keep is None and late and v.alive:
                decision.cancel.append(v.id)
        if self.keep is None:
            self._try_decide(views)
        if self.keep is not None:
            keep = set(self.keep)
            decision.cancel.extend(v.id for v in views if v.alive and v.id not in keep)
            if self.stop_when_decided:
                ballots = [(i, by_id[i].answer, 1.0) for i in self.keep if by_id[i].finished]
                running = [i for i in self.keep if by_id[i].alive]
                if running and vote_is_decided(ballots, float(len(running))):
                    decision.decided = running
        decision.cancel = sorted(set(decision.cancel) & {i for i, v in by_id.items() if v.alive})
        self.kept_done_seen = self._kept_done(views)
        return decision

    def _try_decide(self, views: Sequence[BranchView]) -> None:
        pending = sum(1 for v in views if v.alive and v.id not in self.clusters.of)
        live = self.clusters.non_empty()
        if not live:
            if pending == 0:
                self.keep = []
                self.fallback = "no-branch-assigned"
            return
        sizes = sorted(((len(self.clusters.members[c]), -c) for c in live), reverse=True)
        top = sizes[0][0]
        second = sizes[1][0] if len(sizes) > 1 else 0
        if pending and top - second <= pending:
            return
        usable = {v.id for v in views if v.status not in ("failed", "cancelled")}
        if top == 1 and pending == 0:
            self.fallback = "all-singletons"
            order = sorted(b for b in self.clusters.of if b in usable)
            self.keep = order[: self.k2]
            return
        winner = -sizes[0][1]
        self.keep = [b for b in self.clusters.members[winner] if b in usable][: self.k2]

    def vote(self, views: Sequence[BranchView]) -> VoteResult:
        """Majority over the kept finishers; pruned branches never vote."""
        keep = set(self.keep or [])
        ballots = [(v.id, v.answer, 1.0) for v in views if v.finished and v.id in keep]
        result = weighted_vote(ballots, fallback=self.fallback)
        if result.answer is None:
            # The kept branches failed or gave no parsable answer: say so and use whatever finished.
            rescue = majority_vote([(v.id, v.answer) for v in views if v.finished])
            rescue.fallback = "kept-branches-gave-no-answer"
            return rescue
        return result

    def export(self) -> dict[str, Any]:
        return {
            "policy": self.name,
            "clusters": self.clusters.export(),
            "keep": self.keep,
            "fallback": self.fallback,
        }

    def restore(self, exported: dict[str, Any], views: Sequence[BranchView]) -> None:
        """Continue from ``export()`` output (checkpoint resume); judge inputs are re-derived."""
        self.clusters = Clusters.rebuild(exported.get("clusters", []), views, self.truncation)
        self.keep = exported.get("keep")
        self.fallback = exported.get("fallback")
