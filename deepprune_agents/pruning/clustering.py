"""Online greedy clustering, the part both policies share.

DeepPrune's rule: the similarity of a trace to a cluster is the mean judge score against up to K1
members sampled from it; the trace joins the most similar cluster if that mean exceeds tau, otherwise it
opens a new cluster while fewer than K exist (once K exist it joins the most similar one anyway, so a
bounded number of clusters keeps running).

Sampling uses a ``random.Random`` seeded by (seed, trace id), so a deterministic judge gives the same
clusters whatever order the judge calls complete in.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from deepprune_agents.errors import JudgeError
from deepprune_agents.judges.base import Judge, RunAwareJudge, TracePair
from deepprune_agents.pruning.knobs import Knobs, knob
from deepprune_agents.pruning.types import BranchView, Decision
from deepprune_agents.traces import PartialTrace
from deepprune_agents.truncation import TruncationSpec, reached, truncate


@dataclass(frozen=True)
class ClusteringKnobs(Knobs):
    """What every clustering policy reads: the greedy rule's constants and early stopping. Unprefixed
    settings and flags (``tau``, ``--tau``), as they were before knobs were declared per policy."""

    policies = ("paper", "periodic", "adaptive")

    tau: float = knob(0.5, "Join a cluster when similarity > tau.", low=0.0, high=1.0)
    k1: int = knob(10, "Members sampled per cluster for similarity.", low=1)
    max_clusters: int = knob(32, "K: most clusters opened.", low=1)
    stop_when_decided: bool = knob(True, "Stop the remaining branches once the vote can no longer change.")


def judge_input(view: BranchView, spec: TruncationSpec | None) -> PartialTrace:
    """What the judge reads of a branch: its text truncated by ``spec`` (None: everything so far)."""
    text = view.text if spec is None else truncate(view.text, spec, view.pieces)
    return PartialTrace(
        text=text,
        tokens=view.tokens,
        trace_id=str(view.id),
        finished=view.finished,
        answer=view.recorded_answer,
    )


async def call_judge(
    judge: Judge, pairs: Sequence[TracePair], timeout_s: float, run: Sequence[PartialTrace] | None = None
) -> list[float]:
    """One judge call with a deadline; any failure becomes a JudgeError naming the judge. A judge that
    reads the run (``RunAwareJudge``) gets ``run``, the judge inputs of every branch judged so far."""
    if not pairs:
        return []
    try:
        async with asyncio.timeout(timeout_s):
            if run is not None and isinstance(judge, RunAwareJudge):
                scores = await judge.ascore_in_run(pairs, run)
            else:
                scores = await judge.ascore(pairs)
    except TimeoutError as exc:
        raise JudgeError(f"judge {judge.name!r} did not answer {len(pairs)} pairs within {timeout_s:.0f} s.") from exc
    except JudgeError:
        raise
    except Exception as exc:
        raise JudgeError(f"judge {judge.name!r} raised {type(exc).__name__}: {exc}") from exc
    if len(scores) != len(pairs):
        raise JudgeError(f"judge {judge.name!r} returned {len(scores)} scores for {len(pairs)} pairs.")
    return [min(1.0, max(0.0, float(s))) for s in scores]


@dataclass
class Clusters:
    """Cluster membership (branch ids in join order) and the judge input frozen at assignment."""

    members: list[list[int]] = field(default_factory=list)
    of: dict[int, int] = field(default_factory=dict)
    inputs: dict[int, PartialTrace] = field(default_factory=dict)

    def add(self, branch: int, cluster: int | None, trace: PartialTrace) -> int:
        if cluster is None:
            self.members.append([branch])
            cluster = len(self.members) - 1
        else:
            self.members[cluster].append(branch)
        self.of[branch] = cluster
        self.inputs[branch] = trace
        return cluster

    def merge(self, keep: int, gone: int) -> None:
        """Move every member of cluster ``gone`` into ``keep``; ``gone`` stays as an empty slot so that
        cluster indices held elsewhere (events, state) stay valid."""
        for b in self.members[gone]:
            self.of[b] = keep
        self.members[keep].extend(self.members[gone])
        self.members[gone] = []

    def non_empty(self) -> list[int]:
        return [i for i, m in enumerate(self.members) if m]

    def export(self) -> list[list[int]]:
        return [list(m) for m in self.members if m]

    @classmethod
    def rebuild(
        cls, members: Sequence[Sequence[int]], views: Sequence[BranchView], spec: TruncationSpec | None
    ) -> Clusters:
        """Clusters from exported member lists, with judge inputs re-derived from the branch views."""
        by_id = {v.id: v for v in views}
        out = cls()
        for group in members:
            cluster: int | None = None
            for b in group:
                cluster = out.add(b, cluster, judge_input(by_id[b], spec))
        return out


async def assign(
    clusters: Clusters,
    view: BranchView,
    trace: PartialTrace,
    judge: Judge,
    *,
    tau: float,
    k1: int,
    max_clusters: int,
    seed: int,
    timeout_s: float,
    run: Sequence[PartialTrace] | None = None,
) -> tuple[int, float | None, int]:
    """Greedy step for one trace. Returns (cluster index, best similarity or None, pairs scored); ``run``
    goes to a judge that reads it (``call_judge``)."""
    live = clusters.non_empty()
    if not live:
        return clusters.add(view.id, None, trace), None, 0
    rng = random.Random(seed * 1_000_003 + view.id)
    pairs: list[TracePair] = []
    spans: list[tuple[int, int, int]] = []
    for c in live:
        ids = clusters.members[c]
        sample = ids if len(ids) <= k1 else rng.sample(ids, k1)
        start = len(pairs)
        pairs.extend((trace, clusters.inputs[m]) for m in sample)
        spans.append((c, start, len(pairs)))
    scores = await call_judge(judge, pairs, timeout_s, run)
    sims = [(sum(scores[a:b]) / (b - a), c) for c, a, b in spans]
    best_sim, best = max(sims, key=lambda s: (s[0], -s[1]))
    if best_sim > tau or len(live) >= max_clusters:
        return clusters.add(view.id, best, trace), best_sim, len(pairs)
    return clusters.add(view.id, None, trace), best_sim, len(pairs)


class GreedyClusteringPolicy:
    """What ``paper``, ``periodic`` and ``adaptive`` share: their ``ClusteringKnobs``, the cluster state,
    which branches are ready to be placed, and placing them (one judge call per branch, recorded in the
    decision)."""

    name = "greedy"

    def __init__(
        self,
        *,
        truncation: TruncationSpec,
        clustering: ClusteringKnobs | None = None,
        seed: int = 0,
        judge_timeout_s: float = 60.0,
    ) -> None:
        self.truncation = truncation
        self.clustering = clustering or ClusteringKnobs()
        self.tau, self.k1 = self.clustering.tau, self.clustering.k1
        self.max_clusters = self.clustering.max_clusters  # a policy may raise it (adaptive: never force a join)
        self.stop_when_decided = self.clustering.stop_when_decided
        self.seed = seed
        self.judge_timeout_s = judge_timeout_s
        self.clusters = Clusters()

    def first_wave(self, n: int) -> list[int]:
        """Every branch starts at once (the policies that only cancel)."""
        return list(range(n))

    def _eligible(self, v: BranchView) -> bool:
        """Not yet placed, and long enough for its truncated prefix to be final (or finished)."""
        if v.id in self.clusters.of:
            return False
        return v.finished or (v.status == "running" and reached(v.text, self.truncation, v.pieces))

    async def _place_eligible(
        self, views: Sequence[BranchView], judge: Judge, decision: Decision, spec: TruncationSpec | None
    ) -> list[tuple[BranchView, int]]:
        """Place every eligible branch in id order; the judge reads it truncated by ``spec``. A judge that
        reads the run gets every placed or eligible branch's input (the same for every placement of the
        step: branches placed first are not judged on a smaller run)."""
        placed: list[tuple[BranchView, int]] = []
        eligible = sorted((v for v in views if self._eligible(v)), key=lambda v: v.id)
        if not eligible:
            return placed
        inputs = {v.id: judge_input(v, spec) for v in eligible}
        run = [*self.clusters.inputs.values(), *inputs.values()] if isinstance(judge, RunAwareJudge) else None
        for v in eligible:
            cluster, sim, pairs = await assign(
                self.clusters, v, inputs[v.id], judge, tau=self.tau, k1=self.k1,
                max_clusters=self.max_clusters, seed=self.seed, timeout_s=self.judge_timeout_s, run=run,
            )  # fmt: skip
            decision.pairs_scored += pairs
            decision.judge_calls += 1 if pairs else 0
            decision.events.append({"event": "cluster", "branch": v.id, "cluster": cluster, "similarity": sim})
            placed.append((v, cluster))
            # A judge that answers without awaiting (numbers, oracle) would otherwise hold the event loop
            # for a whole round of placements: at N = 512, seconds in which no stream is read or closed.
            await asyncio.sleep(0)
        return placed
