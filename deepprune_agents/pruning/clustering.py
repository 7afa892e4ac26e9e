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
from typing import Any

from deepprune_agents.errors import JudgeError
from deepprune_agents.judges.base import Judge, TracePair
from deepprune_agents.pruning.types import BranchView
from deepprune_agents.traces import PartialTrace
from deepprune_agents.truncation import TruncationSpec, truncate


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


async def call_judge(judge: Judge, pairs: Sequence[TracePair], timeout_s: float) -> list[float]:
    """One judge call with a deadline; any failure becomes a JudgeError naming the judge."""
    if not pairs:
        return []
    try:
        async with asyncio.timeout(timeout_s):
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
) -> tuple[int, float | None, int]:
    """Greedy step for one trace. Returns (cluster index, best similarity or None, pairs scored)."""
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
    scores = await call_judge(judge, pairs, timeout_s)
    sims = [(sum(scores[a:b]) / (b - a), c) for c, a, b in spans]
    best_sim, best = max(sims, key=lambda s: (s[0], -s[1]))
    if best_sim > tau or len(live) >= max_clusters:
        return clusters.add(view.id, best, trace), best_sim, len(pairs)
    return clusters.add(view.id, None, trace), best_sim, len(pairs)


def export_inputs(clusters: Clusters) -> dict[str, Any]:
    """Serializable view for graph state and results."""
    return {"clusters": clusters.export(), "cluster_of": {str(k): v for k, v in clusters.of.items()}}
