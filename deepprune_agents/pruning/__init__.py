"""Pure pruning: clustering policies driven by a Judge, and the vote. No I/O in here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from deepprune_agents.errors import ConfigError
from deepprune_agents.judges.base import Judge
from deepprune_agents.pruning.adaptive import AdaptiveKnobs, AdaptivePolicy
from deepprune_agents.pruning.paper import PaperPolicy
from deepprune_agents.pruning.periodic import PeriodicPolicy
from deepprune_agents.pruning.types import BranchView, Decision, VoteResult
from deepprune_agents.pruning.vote import majority_vote, weighted_vote
from deepprune_agents.truncation import parse_truncation

if TYPE_CHECKING:  # settings imports pruning.adaptive (the knobs), so no import at run time
    from deepprune_agents.settings import DeepPruneContext


class PruningPolicy(Protocol):
    """What the engine needs from a policy: when to judge, what to cancel, how to vote."""

    name: str

    def ready(self, views: Sequence[BranchView]) -> bool: ...

    async def step(self, views: Sequence[BranchView], judge: Judge) -> Decision: ...

    def vote(self, views: Sequence[BranchView]) -> VoteResult: ...

    def export(self) -> dict[str, Any]: ...

    def restore(self, exported: dict[str, Any], views: Sequence[BranchView]) -> None: ...


class NoPrunePolicy:
    """Plain self-consistency (cons@N): never judges, never cancels. The baseline every figure is against."""

    name = "none"

    def ready(self, views: Sequence[BranchView]) -> bool:
        return False

    async def step(self, views: Sequence[BranchView], judge: Judge) -> Decision:
        return Decision()

    def vote(self, views: Sequence[BranchView]) -> VoteResult:
        return majority_vote([(v.id, v.answer) for v in views if v.finished])

    def export(self) -> dict[str, Any]:
        return {"policy": self.name, "clusters": []}

    def restore(self, exported: dict[str, Any], views: Sequence[BranchView]) -> None:
        """Nothing to restore: this policy keeps no state."""


def make_policy(ctx: DeepPruneContext) -> PruningPolicy:
    """Build the policy named in the settings, with all constants from the settings."""
    spec = parse_truncation(ctx.truncate)
    if ctx.policy == "paper":
        return PaperPolicy(
            truncation=spec,
            tau=ctx.tau,
            k1=ctx.k1,
            max_clusters=ctx.max_clusters,
            k2=ctx.k2,
            seed=ctx.seed,
            judge_timeout_s=ctx.judge_timeout_s,
            stop_when_decided=ctx.stop_when_decided,
        )
    if ctx.policy == "periodic":
        return PeriodicPolicy(
            truncation=spec,
            tau=ctx.tau,
            k1=ctx.k1,
            max_clusters=ctx.max_clusters,
            representatives=ctx.representatives,
            judge_every=ctx.judge_every,
            seed=ctx.seed,
            judge_timeout_s=ctx.judge_timeout_s,
            stop_when_decided=ctx.stop_when_decided,
        )
    if ctx.policy == "adaptive":
        return AdaptivePolicy(
            truncation=spec,
            knobs=ctx.adaptive_knobs(),
            tau=ctx.tau,
            k1=ctx.k1,
            max_clusters=ctx.max_clusters,
            seed=ctx.seed,
            judge_timeout_s=ctx.judge_timeout_s,
            stop_when_decided=ctx.stop_when_decided,
        )
    if ctx.policy == "none":
        return NoPrunePolicy()
    raise ConfigError(f"unknown policy {ctx.policy!r}: use paper, periodic, adaptive or none.")


__all__ = [
    "AdaptiveKnobs",
    "AdaptivePolicy",
    "BranchView",
    "Decision",
    "NoPrunePolicy",
    "PaperPolicy",
    "PeriodicPolicy",
    "PruningPolicy",
    "VoteResult",
    "majority_vote",
    "make_policy",
    "weighted_vote",
]
