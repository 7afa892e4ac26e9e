"""The ``staged`` policy: the judge decides how many branches a question needs, not which ones to cancel.

In a parallel run, tokens are saved only by not starting a branch, or by cancelling it on evidence:
branches that start together also finish together, so a stopping rule alone saves little, and a quota
that cancels half of a cluster whatever it says is cons@(N/2) under another name (issue 34). So this
policy starts a *first wave* and lets the evidence decide when the rest start:

1. **First wave.** Branches ``0 .. first_wave - 1`` start at once; the others stay unstarted, with the seeds
   (and so the traces) an all-at-once run would give them. Four, not ESC's window of five: four equal answers
   are the fewest the Beta rule at 0.95 stops on (P = 0.97; three give 0.94), so a first wave of four can
   settle an uncontested question alone, while a fifth branch would only run beside the fourth to be
   cancelled (measured with the constant judge: MATH x8 1,564 tokens per question with four, 1,799 with
   five; ESC 1,866).
2. **Contested: start the rest early (the judge).** Once every first-wave branch has its judge input
   (its truncated prefix, or its whole text if it finished sooner), the judge scores every pair of them,
   once. A mean similarity below ``split_tau`` reads the question as split, and every remaining branch
   starts at once, so a contested question's wall time stays near cons@N's instead of ESC's window after
   window. The judge's measured strength is this:
   telling how contested a question is (pooled AUROC 0.73-0.84 at 32 tokens), not ranking two branches
   of one question. The line sits just below the lexical judges' frequent tie at 0.5 (half of the pairs
   sharing their numbers): read as split, that tie started MATH x8's three remaining branches on 37% of
   its runs though only 12% were contested (2,039 tokens per question against ESC's 1,866).
3. **Uncontested: stop on the answers (no judge).** Only finished answers are votes. The run stops once
   Adaptive-Consistency's Beta rule holds (``pruning.adaptive.stop_is_safe``: P(leader is the majority)
   >= ``confidence``, 0.95 as in the paper; at least ``min_votes`` answers and ``min_vote_share`` of the
   launched branches: when a split read started all of them, the first to finish are the shortest traces,
   a biased sample, so 30% of them must have answered: at 10%, OVM Mistral N = 64 lost 1 point to
   cons@64, at 30% none), or once no outcome of the branches still to come
   can change the winner. Four equal answers of a first wave stop the run and cancel what still runs (a
   straggler of a larger wave): cancelled on the evidence of four finished answers, never on a quota.
4. **Not yet decided: start what the rule needs.** When the answers so far cannot stop the run even if
   every running branch answered with the leader (a finished answer disagreed), the next wave starts at
   once: the branches the rule would still need, at least ``first_wave`` of them.

A running branch is only ever cancelled by rule 3, i.e. when finished answers argue for it; the judge
only ever *starts* branches. With the ``constant`` judge (no information) rule 2 never fires and the
policy is a parallel, evidence-driven ESC/Adaptive-Consistency; the judge's share of the savings is the
wall time it wins on contested questions (``docs/staged_fanout.md``).

The knobs are declared once, in ``StagedKnobs`` (see ``pruning/knobs.py``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from deepprune_agents.judges.base import Judge, RunAwareJudge, TracePair
from deepprune_agents.pruning.adaptive import StopRule, answer_counts, stop_is_safe
from deepprune_agents.pruning.clustering import ClusteringKnobs, call_judge, judge_input
from deepprune_agents.pruning.knobs import Knobs, knob
from deepprune_agents.pruning.types import BranchView, Decision, VoteResult
from deepprune_agents.pruning.vote import majority_vote, vote_is_decided
from deepprune_agents.truncation import TruncationSpec, reached


@dataclass(frozen=True)
class StagedKnobs(Knobs):
    """The staged policy's knobs (it reads ``stop_when_decided`` from ``ClusteringKnobs``): settings
    ``staged_<name>``, flags ``--staged-<name>``. Chosen on every shared set at N = 8-64 at once
    (docs/staged_fanout.md), not on one."""

    prefix = "staged_"
    policies = ("staged",)

    first_wave: int = knob(
        4,
        "Branches started at once; the others start when the judge reads the first wave as split, or when "
        "the finished answers need more votes (then at least this many at a time). Four equal answers are "
        "the fewest the Beta rule at 0.95 stops on.",
        low=1,
        high=1 << 20,
    )
    split_tau: float = knob(
        0.45,
        "Read the question as split, and start every other branch at once, when the mean judge similarity "
        "of the first wave's pairs is below this.",
        low=0.0,
        high=1.0,
    )
    confidence: float = knob(
        0.95,
        "Stop when P(leading answer is the majority | finished answers) reaches this (Adaptive-Consistency's "
        "Beta rule and its published threshold).",
        low=0.5,
        high=1.0,
    )
    min_votes: int = knob(3, "Stop only once this many finished branches have an answer.", low=1, high=1 << 20)
    min_vote_share: float = knob(
        0.3,
        "Stop only once this share of the launched branches have answered (the first to finish are the "
        "shortest traces, a biased sample).",
        low=0.0,
        high=1.0,
    )


def leader_votes_needed(counts: Sequence[int], rule: StopRule, launched: int, running: int, more: int) -> int:
    """The fewest further answers, all for the leader, after which the Beta rule would stop the run, counting
    that answers beyond the ``running`` branches need newly launched ones (``more`` unstarted at most);
    ``running + more`` when not even all of them would do."""
    ordered = sorted(counts, reverse=True) or [0]
    for m in range(running + more + 1):
        trial = [ordered[0] + m, *ordered[1:]]
        if stop_is_safe(trial, rule, launched + max(0, m - running)):
            return m
    return running + more


class StagedPolicy:
    """See the module doc. Pure: reads ``BranchView`` snapshots, answers with ``Decision``s."""

    name = "staged"

    def __init__(
        self,
        *,
        truncation: TruncationSpec,
        knobs: StagedKnobs | None = None,
        clustering: ClusteringKnobs | None = None,
        seed: int = 0,
        judge_timeout_s: float = 60.0,
    ) -> None:
        self.truncation = truncation
        self.knobs = knobs or StagedKnobs()
        clustering = clustering or ClusteringKnobs()
        self.stop_when_decided = clustering.stop_when_decided
        self.seed = seed
        self.judge_timeout_s = judge_timeout_s
        self.wave: list[int] = []
        self.judged = False
        self.similarity: float | None = None
        self.stopped: str | None = None
        self.ended_seen = 0

    # -- what starts when ----------------------------------------------------------------------
    def first_wave(self, n: int) -> list[int]:
        self.wave = list(range(min(n, self.knobs.first_wave)))
        return list(self.wave)

    def _read_ready(self, v: BranchView) -> bool:
        """A first-wave branch the split read can wait no longer for: its judge input is final, or it ended."""
        return not v.alive or (v.status == "running" and reached(v.text, self.truncation, v.pieces))

    def _split_due(self, views: Sequence[BranchView]) -> bool:
        if self.judged or not any(v.unstarted for v in views):
            return False
        wave = [views[i] for i in self.wave if i < len(views)]
        return bool(wave) and all(self._read_ready(v) for v in wave)

    def ready(self, views: Sequence[BranchView]) -> bool:
        """Due when the first wave can be read, or one more launched branch ended: a new vote, or one fewer to
        come (a branch that failed may leave the rule short of answers, and only a round starts more)."""
        if self.stopped is not None:
            return False  # settled: the branches it cancelled ending is no news
        return self._split_due(views) or sum(1 for v in views if v.ended) > self.ended_seen

    async def _read_split(self, views: Sequence[BranchView], judge: Judge, decision: Decision) -> bool:
        """Score every pair of the first wave's judge inputs once; split when their mean is below split_tau."""
        self.judged = True
        wave = [views[i] for i in self.wave if views[i].finished or views[i].alive]
        inputs = [judge_input(v, self.truncation) for v in wave]
        pairs: list[TracePair] = list(itertools.combinations(inputs, 2))
        if not pairs:
            return False
        run = inputs if isinstance(judge, RunAwareJudge) else None
        scores = await call_judge(judge, pairs, self.judge_timeout_s, run)
        decision.judge_calls += 1
        decision.pairs_scored += len(pairs)
        self.similarity = sum(scores) / len(scores)
        return self.similarity < self.knobs.split_tau

    # -- a round -------------------------------------------------------------------------------
    async def step(self, views: Sequence[BranchView], judge: Judge) -> Decision:
        """The stop rules first, on the branches as they are (a held branch counts as still to come); then,
        when the run goes on, the split read or the answers decide what starts."""
        decision = Decision()
        self.ended_seen = sum(1 for v in views if v.ended)
        if self.stopped is not None:
            return decision
        finished = [v for v in views if v.finished]
        ballots = [(v.id, v.answer, 1.0) for v in finished if v.answer is not None]
        counts = sorted(answer_counts(ballots), reverse=True)
        running = [v.id for v in views if v.alive]
        unstarted = [v.id for v in views if v.unstarted]
        launched = len(views) - len(unstarted)
        if self.stop_when_decided and vote_is_decided(ballots, float(len(running) + len(unstarted))):
            self.stopped = "vote-decided"
        elif stop_is_safe(counts, self.knobs, launched):
            self.stopped = "beta-stop"
        if self.stopped is not None:
            if running:
                decision.decided = running
            decision.events.append({"event": "stop", "rule": self.stopped, "votes": counts})
            return decision
        if self._split_due(views) and await self._read_split(views, judge, decision):
            decision.launch = unstarted
            decision.events.append(
                {"event": "launch", "branches": unstarted, "why": "judge-split", "similarity": self.similarity}
            )
            return decision
        need = leader_votes_needed(counts, self.knobs, launched, len(running), len(unstarted))
        missing = need - len(running)
        if missing > 0 and unstarted:
            more = unstarted[: max(missing, self.knobs.first_wave)]
            decision.launch = more
            decision.events.append({"event": "launch", "branches": more, "why": "answers-need", "votes": counts})
        return decision

    def vote(self, views: Sequence[BranchView]) -> VoteResult:
        """Plain majority over the finished branches' answers."""
        return majority_vote([(v.id, v.answer) for v in views if v.finished])

    def export(self) -> dict[str, Any]:
        return {
            "policy": self.name,
            "clusters": [],
            "wave": list(self.wave),
            "judged": self.judged,
            "similarity": self.similarity,
            "stopped": self.stopped,
        }

    def restore(self, exported: dict[str, Any], views: Sequence[BranchView]) -> None:
        """Continue from ``export()`` output (checkpoint resume): which branches are unstarted is in their
        records, the first wave and the split read are here."""
        self.wave = [int(i) for i in exported.get("wave", self.wave or range(min(len(views), self.knobs.first_wave)))]
        self.judged = bool(exported.get("judged", False))
        self.similarity = exported.get("similarity")
        self.stopped = exported.get("stopped")
        self.ended_seen = 0  # re-check the rules on the first round after resuming


__all__ = ["StagedKnobs", "StagedPolicy", "leader_votes_needed"]
