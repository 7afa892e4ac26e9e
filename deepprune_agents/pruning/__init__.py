"""Pure pruning: clustering policies driven by a Judge, and the vote. No I/O in here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from deepprune_agents.errors import ConfigError
from deepprune_agents.judges.base import Judge
from deepprune_agents.pruning.adaptive import AdaptiveKnobs, AdaptivePolicy
from deepprune_agents.pruning.clustering import ClusteringKnobs
from deepprune_agents.pruning.knobs import Knobs, KnobSet
from deepprune_agents.pruning.paper import PaperKnobs, PaperPolicy
from deepprune_agents.pruning.periodic import PeriodicKnobs, PeriodicPolicy
from deepprune_agents.pruning.staged import StagedKnobs, StagedPolicy
from deepprune_agents.pruning.types import BranchView, Decision, VoteResult
from deepprune_agents.pruning.vote import majority_vote, weighted_vote
from deepprune_agents.truncation import parse_truncation

K = TypeVar("K", bound=Knobs)

# Every policy's knobs class: the settings, the command lines, the evaluation and the proxy derive their
# knob fields, flags and options from this tuple. It changes only when a policy is added.
KNOB_CLASSES: tuple[type[Knobs], ...] = (ClusteringKnobs, PaperKnobs, PeriodicKnobs, AdaptiveKnobs, StagedKnobs)


def default_knobs(**settings: object) -> KnobSet:
    """Every policy's knobs at their defaults, with ``settings`` (by settings field name) applied."""
    return KnobSet.from_settings(KNOB_CLASSES, settings)


class PruningPolicy(Protocol):
    """What the engine (and the simulator, through the same calls) needs from a policy: which branches start
    at once (``first_wave``; the rest stay unstarted until a ``Decision.launch``), when to judge, what to
    cancel or launch, how to vote."""

    name: str

    def first_wave(self, n: int) -> list[int]: ...

    def ready(self, views: Sequence[BranchView]) -> bool: ...

    async def step(self, views: Sequence[BranchView], judge: Judge) -> Decision: ...

    def vote(self, views: Sequence[BranchView]) -> VoteResult: ...

    def export(self) -> dict[str, Any]: ...

    def restore(self, exported: dict[str, Any], views: Sequence[BranchView]) -> None: ...


class NoPrunePolicy:
    """Plain self-consistency (cons@N): never judges, never cancels. The baseline every figure is against."""

    name = "none"

    def first_wave(self, n: int) -> list[int]:
        return list(range(n))

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


class PolicySettings(Protocol):
    """What ``make_policy`` reads from the settings. ``settings.DeepPruneContext`` provides it; the
    settings derive their knob fields from ``KNOB_CLASSES`` here, so this package names no settings type
    (imports go one way: settings -> pruning)."""

    @property
    def policy(self) -> str: ...

    @property
    def truncate(self) -> str: ...

    @property
    def seed(self) -> int: ...

    @property
    def judge_timeout_s(self) -> float: ...

    def knobs(self, kind: type[K]) -> K: ...


def make_policy(ctx: PolicySettings) -> PruningPolicy:
    """Build the policy named in the settings, handing it its knobs objects from the settings."""
    if ctx.policy == "none":
        return NoPrunePolicy()
    common: dict[str, Any] = {
        "truncation": parse_truncation(ctx.truncate),
        "clustering": ctx.knobs(ClusteringKnobs),
        "seed": ctx.seed,
        "judge_timeout_s": ctx.judge_timeout_s,
    }
    if ctx.policy == "paper":
        return PaperPolicy(knobs=ctx.knobs(PaperKnobs), **common)
    if ctx.policy == "periodic":
        return PeriodicPolicy(knobs=ctx.knobs(PeriodicKnobs), **common)
    if ctx.policy == "adaptive":
        return AdaptivePolicy(knobs=ctx.knobs(AdaptiveKnobs), **common)
    if ctx.policy == "staged":
        return StagedPolicy(knobs=ctx.knobs(StagedKnobs), **common)
    raise ConfigError(f"unknown policy {ctx.policy!r}: use paper, periodic, adaptive, staged or none.")


__all__ = [
    "KNOB_CLASSES",
    "AdaptiveKnobs",
    "AdaptivePolicy",
    "BranchView",
    "ClusteringKnobs",
    "Decision",
    "KnobSet",
    "Knobs",
    "NoPrunePolicy",
    "PaperKnobs",
    "PaperPolicy",
    "PeriodicKnobs",
    "PeriodicPolicy",
    "PolicySettings",
    "PruningPolicy",
    "StagedKnobs",
    "StagedPolicy",
    "VoteResult",
    "default_knobs",
    "majority_vote",
    "make_policy",
    "weighted_vote",
]
