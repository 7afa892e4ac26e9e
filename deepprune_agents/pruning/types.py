"""Data the pruning policies read and write. Plain, serializable, no I/O.

A policy sees the branches only as ``BranchView`` snapshots (text so far, token pieces, status) and
answers with a ``Decision`` (which branches to cancel). The engine turns decisions into closed streams;
the policy never touches a stream, which is what makes it testable with a scripted judge and replayable
offline on recorded traces.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

# "unstarted": a branch of a staged run that no wave has launched yet (staged fan-out: the policy decides when a
# branch starts). It is not alive: it generates nothing, and a run whose live branches are done ends unless the
# policy launches it. Its seed and its place in the draw are fixed from the start, so a draw is comparable
# across policies whatever they launch.
BranchStatus = Literal["pending", "running", "finished", "cancelled", "failed", "unstarted"]
ALIVE: frozenset[str] = frozenset({"pending", "running"})


@dataclass(frozen=True, slots=True)
class BranchView:
    """A snapshot of one branch as a policy sees it."""

    id: int
    text: str
    tokens: int
    status: BranchStatus
    pieces: Sequence[str] | None = None
    answer: str | None = None
    recorded_answer: str | None = None  # offline traces only: what the full trace ended with (oracle)

    @property
    def alive(self) -> bool:
        return self.status in ALIVE

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    @property
    def unstarted(self) -> bool:
        return self.status == "unstarted"

    @property
    def ended(self) -> bool:
        """Launched and done: finished, cancelled or failed."""
        return not self.alive and not self.unstarted


@dataclass(kw_only=True)
class BaseBranch(ABC):
    """What every branch has, live (``engine.Branch``) or replayed offline (``simulator.SimBranch``), and
    the one place a ``BranchView`` is built from it, so a policy reads both the same way."""

    id: int
    tokens: int = 0
    status: BranchStatus = "pending"
    cancel_reason: str | None = None

    @property
    def alive(self) -> bool:
        return self.status in ALIVE

    @property
    @abstractmethod
    def trace_text(self) -> str:
        """Thinking then content so far, as generated: what judges and truncation read."""

    @abstractmethod
    def pieces_so_far(self) -> Sequence[str]:
        """The token pieces of ``trace_text``, in order."""

    @abstractmethod
    def vote_answer(self) -> str | None:
        """The answer the branch votes with (None while it runs, or when it stated none)."""

    def recorded_answer(self) -> str | None:
        """What the full recorded trace ended with: known offline only (the oracle judge reads it)."""
        return None

    def view(self) -> BranchView:
        return BranchView(
            id=self.id,
            text=self.trace_text,
            tokens=self.tokens,
            status=self.status,
            pieces=self.pieces_so_far(),
            answer=self.vote_answer(),
            recorded_answer=self.recorded_answer(),
        )


@dataclass(slots=True)
class Decision:
    """What one judge round decided: branches to cancel, and (staged fan-out) unstarted branches to launch.
    Launches are policy output like cancellations, so the engine and the simulator carry out both the same
    way; the policy says why in a ``launch`` event."""

    cancel: list[int] = field(default_factory=list)
    decided: list[int] = field(default_factory=list)  # cancelled because the vote can no longer change
    launch: list[int] = field(default_factory=list)  # unstarted branches to start now
    judge_calls: int = 0
    pairs_scored: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class VoteResult:
    """The vote: the winning answer, the weight of every answer class, and who voted."""

    answer: str | None
    counts: dict[str, float]
    voters: list[int]
    fallback: str | None = None
