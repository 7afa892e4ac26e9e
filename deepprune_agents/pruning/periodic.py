"""The ``periodic`` policy: the design card's continuous pruning.

The judge runs again every ``judge_every`` generated tokens per branch while branches grow:

1. branches that reached the minimum prefix (the truncation spec) are placed by the greedy rule, reading
   everything they have generated so far;
2. representatives of different clusters are compared again on their longer prefixes, and clusters the
   judge now calls equivalent are merged (two branches that looked different at 32 tokens may be plainly
   the same computation at 96);
3. each cluster keeps ``representatives`` branches running; the others are cancelled.

Once the weighted vote can no longer change (``stop_when_decided``), every branch still running is
stopped: the answer stays the same, the tokens are saved.

The vote weights each cluster by its size (its pruned members were predicted to agree with it), split
evenly over the cluster's representatives that finished with an answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from deepprune_agents.judges.base import Judge, RunAwareJudge, TracePair
from deepprune_agents.pruning.clustering import Clusters, GreedyClusteringPolicy, call_judge, judge_input
from deepprune_agents.pruning.knobs import Knobs, knob
from deepprune_agents.pruning.types import BranchView, Decision, VoteResult
from deepprune_agents.pruning.vote import vote_is_decided, weighted_vote
from deepprune_agents.truncation import TruncationSpec


@dataclass(frozen=True)
class PeriodicKnobs(Knobs):
    """The ``periodic`` policy's own knobs (it also reads ``ClusteringKnobs``)."""

    policies = ("periodic",)

    judge_every: int = knob(32, "Judge again after this many new tokens per branch.", low=1)
    representatives: int = knob(1, "Branches kept running per cluster.", low=1)


class PeriodicPolicy(GreedyClusteringPolicy):
    name = "periodic"

    def __init__(self, *, truncation: TruncationSpec, knobs: PeriodicKnobs | None = None, **common: Any) -> None:
        super().__init__(truncation=truncation, **common)
        self.knobs = knobs or PeriodicKnobs()
        self.representatives = self.knobs.representatives
        self.judge_every = self.knobs.judge_every
        self.tokens_at_last_step: dict[int, int] = {}
        self.status_at_last_step: dict[int, str] = {}

    def ready(self, views: Sequence[BranchView]) -> bool:
        """Due when running branches grew ``judge_every`` tokens on average, or a status changed."""
        if any(self.status_at_last_step.get(v.id) != v.status for v in views if not v.alive):
            return True
        running = [v for v in views if v.status == "running"]
        if not running:
            return False
        grown = sum(v.tokens - self.tokens_at_last_step.get(v.id, 0) for v in running) / len(running)
        return grown >= self.judge_every and any(self._eligible(v) or v.id in self.clusters.of for v in running)

    def _representatives(self, cluster: int, by_id: dict[int, BranchView]) -> list[int]:
        usable = [b for b in self.clusters.members[cluster] if by_id[b].alive or by_id[b].finished]
        return usable[: self.representatives]

    async def step(self, views: Sequence[BranchView], judge: Judge) -> Decision:
        decision = Decision()
        by_id = {v.id: v for v in views}
        await self._place_eligible(views, judge, decision, None)
        await self._merge(by_id, decision, judge)
        for c in self.clusters.non_empty():
            reps = set(self._representatives(c, by_id))
            decision.cancel.extend(b for b in self.clusters.members[c] if by_id[b].alive and b not in reps)
        decision.cancel = sorted(set(decision.cancel))
        if self.stop_when_decided:
            alive = [v.id for v in views if v.alive and v.id not in decision.cancel]
            if alive and self._decided(by_id, set(decision.cancel)):
                decision.decided = alive
        self.tokens_at_last_step = {v.id: v.tokens for v in views}
        self.status_at_last_step = {v.id: v.status for v in views}
        return decision

    async def _merge(self, by_id: dict[int, BranchView], decision: Decision, judge: Judge) -> None:
        """Re-judge the clusters' lead representatives on their current (longer) prefixes."""
        leads: list[tuple[int, int]] = []
        for c in self.clusters.non_empty():
            reps = self._representatives(c, by_id)
            if reps and by_id[reps[0]].alive:  # finished leads were already compared when they joined
                leads.append((c, reps[0]))
        if len(leads) < 2:
            return
        traces = {b: judge_input(by_id[b], None) for _, b in leads}
        index: list[tuple[int, int]] = []
        pairs: list[TracePair] = []
        for i, (ca, ba) in enumerate(leads):
            for cb, bb in leads[i + 1 :]:
                index.append((ca, cb))
                pairs.append((traces[ba], traces[bb]))
        run = None
        if isinstance(judge, RunAwareJudge):  # the leads are judged on their current text: so is the run
            run = [judge_input(v, None) for v in by_id.values() if v.alive or v.finished]
        scores = await call_judge(judge, pairs, self.judge_timeout_s, run)
        decision.judge_calls += 1
        decision.pairs_scored += len(pairs)
        for (ca, cb), score in zip(index, scores, strict=True):
            if score > self.tau and self.clusters.members[ca] and self.clusters.members[cb]:
                self.clusters.merge(ca, cb)
                decision.events.append({"event": "merge", "into": ca, "cluster": cb, "similarity": score})

    def _decided(self, by_id: dict[int, BranchView], cancelling: set[int]) -> bool:
        """Can the weighted vote still change? A cluster's weight counts as cast only once all of its
        running representatives have finished; unassigned live branches count as one undecided vote each."""
        ballots: list[tuple[int, str | None, float]] = []
        undecided = 0.0
        for c in self.clusters.non_empty():
            members = self.clusters.members[c]
            running = [b for b in members if by_id[b].alive and b not in cancelling]
            answered = [b for b in members if by_id[b].finished and by_id[b].answer is not None]
            if running or not answered:
                undecided += len(members) if running else 0.0
                continue
            ballots.extend((b, by_id[b].answer, len(members) / len(answered)) for b in answered)
        undecided += sum(1 for b, v in by_id.items() if v.alive and b not in self.clusters.of)
        return vote_is_decided(ballots, undecided)

    def vote(self, views: Sequence[BranchView]) -> VoteResult:
        by_id = {v.id: v for v in views}
        ballots: list[tuple[int, str | None, float]] = []
        for c in self.clusters.non_empty():
            members = self.clusters.members[c]
            answered = [b for b in members if by_id[b].finished and by_id[b].answer is not None]
            for b in answered:
                ballots.append((b, by_id[b].answer, len(members) / len(answered)))
        # Finished branches the clustering never saw (none in a completed run) still count once.
        ballots.extend((v.id, v.answer, 1.0) for v in views if v.finished and v.id not in self.clusters.of)
        return weighted_vote(ballots)

    def export(self) -> dict[str, Any]:
        return {"policy": self.name, "clusters": self.clusters.export()}

    def restore(self, exported: dict[str, Any], views: Sequence[BranchView]) -> None:
        """Continue from ``export()`` output (checkpoint resume)."""
        self.clusters = Clusters.rebuild(exported.get("clusters", []), views, None)
        self.tokens_at_last_step = {v.id: v.tokens for v in views}
        self.status_at_last_step = {v.id: v.status for v in views}
