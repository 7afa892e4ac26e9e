"""The offline simulator: a pruning policy replayed over recorded traces in-process, without HTTP.

It runs the *same* policy objects as the engine (``make_policy``), on a token clock that models what the
engine sees from the replay server in lockstep pacing:

* at tick k every live branch receives its k-th token piece, one branch after the other in id order
  (the server staggers the streams of one run by seed, and branch i has seed ``base + i``);
* after each delivery the engine's judge node checks ``policy.ready(views)``; when it holds (or when the
  last live branch just ended) a judge round runs *before the next delivery*: ``policy.step`` on
  snapshots, then the branches it cancels stop where they are (their tokens are what they had);
* after a round, the judge node checks ``ready`` again and runs another round at once while it holds;
  once no branch is alive (and the last round launched nothing) the policy votes;
* staged fan-out: only the policy's ``first_wave`` starts at tick 0, the others are ``unstarted`` until a
  round's ``Decision.launch``; a branch launched during tick t receives its first piece at tick t + 1 (the
  replay server starts a stream opened mid-run at the next tick, in its seed's slot). A run's wall time in
  ticks is then ``max(start tick + tokens)`` over its branches (``SimResult.wall``).

Checking ``ready`` after every single delivery costs O(N) snapshots each, O(N^2) per tick. Instead a tick
is first checked whole, and only when a round is due there a bisection finds the first delivery that
made it due. That relies on ``ready`` being monotone within a tick (more tokens never make a due round
undue), which holds for the built-in policies: eligibility only grows with tokens, a finished branch
stays finished (adaptive's count of finished branches only grows), and periodic's growth counter only
grows until a round resets it.

The figures (tokens per branch, statuses, the vote) equal the engine's against ``ReplayServer`` in
lockstep mode; ``tests/e2e/test_replay_equivalence.py`` proves it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from deepprune_agents.answers import Extractor, extract_answer
from deepprune_agents.engine import branch_answer
from deepprune_agents.errors import DeepPruneError
from deepprune_agents.evaluation.replay_data import ReplayTrace, as_reasoning_trace
from deepprune_agents.judges.base import Judge
from deepprune_agents.pruning import PruningPolicy
from deepprune_agents.pruning.types import BaseBranch, BranchStatus, BranchView

MAX_ROUNDS_IN_A_ROW = 1000  # a policy that stays ready after stepping would spin the engine as well


class PrefixPieces(Sequence[str]):
    """The first ``n`` pieces of a trace, without copying them (views are built very often)."""

    __slots__ = ("_n", "_pieces")

    def __init__(self, pieces: tuple[str, ...], n: int) -> None:
        self._pieces, self._n = pieces, n

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            if i.start is None and i.step is None and i.stop is not None and i.stop >= 0:
                return list(self._pieces[: min(i.stop, self._n)])
            return list(self._pieces[: self._n][i])
        return self._pieces[: self._n][i]

    def __iter__(self) -> Iterator[str]:
        return iter(self._pieces[: self._n])


@dataclass(kw_only=True)
class SimBranch(BaseBranch):
    """A branch replayed from a recorded trace: it has generated the trace's first ``tokens`` pieces."""

    trace: ReplayTrace
    limit: int
    status: BranchStatus = "running"
    # The run's extractor; None: the built-in one, whose answer of the full trace ReplayTrace already holds.
    extract: Extractor | None = field(default=None, repr=False)
    thinking: int = 0  # reasoning mode: how many of the trace's pieces are thinking
    start_tick: int = 0  # the tick after which it received its first piece (a later wave: when launched)
    _views: dict[tuple[int, str], BranchView] = field(default_factory=dict, repr=False)
    _full_answer: list[str | None] = field(default_factory=list, repr=False)

    @property
    def trace_text(self) -> str:
        return self.trace.prefix(self.tokens)

    def pieces_so_far(self) -> PrefixPieces:
        return PrefixPieces(self.trace.pieces, self.tokens)

    def recorded_answer(self) -> str | None:
        return self.trace.recorded_answer

    def vote_answer(self) -> str | None:
        if self.status != "finished":
            return None
        extract = self.extract or extract_answer
        if self.thinking:  # a reasoning model: the content's answer, else the thinking's (engine's rule)
            t, cut = self.trace, min(self.tokens, self.thinking)
            reasoning, content = t.text[: t.offsets[cut]], t.text[t.offsets[cut] : t.offsets[self.tokens]]
            return branch_answer(content, reasoning, "stop" if self.tokens == t.n_tokens else "length", extract)
        if self.tokens == self.trace.n_tokens:
            if self.extract is None:
                return self.trace.answer
            if not self._full_answer:
                self._full_answer.append(extract(self.trace.text))
            return self._full_answer[0]
        return extract(self.trace.prefix(self.tokens))  # cut by max_tokens

    def view(self) -> BranchView:
        """Memoized per (tokens, status): the search for the delivery that made a round due asks for the
        same states again and again."""
        key = (self.tokens, self.status)
        cached = self._views.get(key)
        if cached is not None:
            return cached
        if len(self._views) > 4:
            self._views.clear()
        view = self._views[key] = super().view()
        return view


@dataclass
class SimResult:
    """One simulated run: the vote and what every branch generated."""

    answer: str | None
    votes: dict[str, float]
    tokens: int
    branch_tokens: list[int]
    statuses: list[str]
    cancel_reasons: list[str | None]
    answers: list[str | None]
    clusters: list[list[int]] = field(default_factory=list)
    rounds: int = 0
    judge_calls: int = 0
    pairs_scored: int = 0
    ticks: int = 0
    fallback: str | None = None
    start_ticks: list[int | None] = field(default_factory=list)  # None: never launched

    @property
    def wall(self) -> int:
        """When the answer was known, in ticks: the last piece any branch received (later waves start late)."""
        return max(
            (s + t for s, t in zip(self.start_ticks, self.branch_tokens, strict=True) if s is not None), default=0
        )

    @property
    def launched(self) -> int:
        return sum(1 for s in self.start_ticks if s is not None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "votes": self.votes,
            "tokens": self.tokens,
            "branch_tokens": self.branch_tokens,
            "statuses": self.statuses,
            "cancel_reasons": self.cancel_reasons,
            "clusters": self.clusters,
            "rounds": self.rounds,
            "judge_calls": self.judge_calls,
            "pairs_scored": self.pairs_scored,
            "fallback": self.fallback,
            "start_ticks": self.start_ticks,
            "wall": self.wall,
        }


class _Sim:
    def __init__(
        self,
        policy: PruningPolicy,
        judge: Judge,
        traces: Sequence[ReplayTrace],
        max_tokens: int | None,
        extract: Extractor | None = None,
        reasoning: bool = False,
    ):
        if not traces:
            raise DeepPruneError("simulate needs at least one trace.")
        self.policy, self.judge = policy, judge
        served = [as_reasoning_trace(t) if reasoning else (t, 0) for t in traces]
        self.branches = [
            SimBranch(
                id=i,
                trace=t,
                limit=t.n_tokens if max_tokens is None else min(t.n_tokens, max_tokens),
                extract=extract,
                thinking=k,
            )
            for i, (t, k) in enumerate(served)
        ]
        first = set(policy.first_wave(len(self.branches)))
        for b in self.branches:
            if b.id not in first:
                b.status = "unstarted"
            elif b.limit == 0:
                b.status = "finished"
        self.rounds = self.judge_calls = self.pairs_scored = self.ticks = 0

    def alive(self) -> bool:
        return any(b.alive for b in self.branches)

    def views(self) -> list[BranchView]:
        return [b.view() for b in self.branches]

    def due(self) -> bool:
        """The engine's wait predicate: a round is due, or nothing is left alive."""
        return not self.alive() or self.policy.ready(self.views())

    def _advance(self, ids: Sequence[int]) -> None:
        for i in ids:
            b = self.branches[i]
            b.tokens += 1
            if b.tokens >= b.limit:
                b.status = "finished"

    def _undo(self, ids: Sequence[int]) -> None:
        for i in ids:
            b = self.branches[i]
            b.tokens -= 1
            b.status = "running"

    async def _round(self) -> None:
        decision = await self.policy.step(self.views(), self.judge)
        self.rounds += 1
        self.judge_calls += decision.judge_calls
        self.pairs_scored += decision.pairs_scored
        for ids, reason in ((decision.cancel, "pruned"), (decision.decided, "vote-decided")):
            for i in ids:
                b = self.branches[i]
                if b.alive:
                    b.status, b.cancel_reason = "cancelled", reason
        for i in decision.launch:  # a later wave: its first piece comes at the next tick
            b = self.branches[i]
            if b.status == "unstarted":
                b.status, b.start_tick = ("finished" if b.limit == 0 else "running"), self.ticks

    async def _rounds(self) -> None:
        """One round, then more while the policy stays ready (the engine loops on its judge node)."""
        for _ in range(MAX_ROUNDS_IN_A_ROW):
            await self._round()
            if not self.alive() or not self.policy.ready(self.views()):
                return
        raise DeepPruneError(
            f"policy {self.policy.name!r} stayed ready after {MAX_ROUNDS_IN_A_ROW} rounds without progress."
        )

    def _due_after(self, ids: Sequence[int]) -> bool:
        self._advance(ids)
        try:
            return self.due()
        finally:
            self._undo(ids)

    def _first_due(self, rest: Sequence[int]) -> int:
        """Index in ``rest`` of the first delivery after which a round is due, knowing that it is due
        after all of them: galloping, then bisection (rounds often fall on consecutive deliveries, e.g.
        each branch reaching its truncation point in turn, so the next one is tried first)."""
        lo, hi, step = 0, 0, 1
        while hi < len(rest) - 1 and not self._due_after(rest[: hi + 1]):
            lo = hi + 1  # not due after hi: the first due delivery lies beyond it
            hi = min(len(rest) - 1, hi + step)
            step *= 2
        while lo < hi:
            mid = (lo + hi) // 2
            if self._due_after(rest[: mid + 1]):
                hi = mid
            else:
                lo = mid + 1
        return lo

    async def run(self) -> SimResult:
        if self.due():
            await self._rounds()
        while self.alive():
            self.ticks += 1
            order = [b.id for b in self.branches if b.alive]
            pos = 0
            while pos < len(order):
                rest = [i for i in order[pos:] if self.branches[i].alive]
                if not rest:
                    break
                self._advance(rest)
                if not self.due():
                    break
                self._undo(rest)
                lo = self._first_due(rest)
                self._advance(rest[: lo + 1])
                await self._rounds()
                pos = order.index(rest[lo]) + 1
        views = self.views()
        outcome = self.policy.vote(views)
        exported = self.policy.export()
        return SimResult(
            answer=outcome.answer,
            votes=dict(outcome.counts),
            tokens=sum(b.tokens for b in self.branches),
            branch_tokens=[b.tokens for b in self.branches],
            statuses=[b.status for b in self.branches],
            cancel_reasons=[b.cancel_reason for b in self.branches],
            answers=[v.answer for v in views],
            clusters=exported.get("clusters", []),
            rounds=self.rounds,
            judge_calls=self.judge_calls,
            pairs_scored=self.pairs_scored,
            ticks=self.ticks,
            fallback=outcome.fallback or exported.get("fallback"),
            start_ticks=[None if b.status == "unstarted" else b.start_tick for b in self.branches],
        )


async def simulate(
    policy: PruningPolicy,
    judge: Judge,
    traces: Sequence[ReplayTrace],
    *,
    max_tokens: int | None = None,
    extract: Extractor | None = None,
    reasoning: bool = False,
) -> SimResult:
    """Replay ``policy`` over ``traces`` (branch i = ``traces[i]``) with ``judge``; see the module doc.

    ``policy`` must be fresh (policies keep cluster state); ``max_tokens`` caps each branch like the
    request's ``max_tokens`` does on the server; ``extract`` is the run's answer extractor
    (``answers.make_extractor(ctx.answer_pattern)``, as the engine uses it), None for the built-in one.
    ``reasoning``: the traces as the replay server streams them in its ``reasoning``/``reasoning_content``
    mode (thinking, then answer; the judge reads both, the vote the content's answer, or the thinking's when
    a branch was cut before its content)."""
    return await _Sim(policy, judge, traces, max_tokens, extract, reasoning).run()
