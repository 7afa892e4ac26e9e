"""The offline simulator: a hand-computed run, and equality with a naive per-delivery reference loop."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from deepprune_agents.evaluation.replay_data import ReplayTrace, make_trace
from deepprune_agents.evaluation.simulator import PrefixPieces, simulate
from deepprune_agents.judges.base import TracePair
from deepprune_agents.judges.numbers import NumberOverlapJudge
from deepprune_agents.pruning import (
    ClusteringKnobs,
    NoPrunePolicy,
    PaperKnobs,
    PaperPolicy,
    PeriodicKnobs,
    PeriodicPolicy,
    PruningPolicy,
)
from deepprune_agents.pruning.types import BranchView
from deepprune_agents.truncation import TruncationSpec


def trace(label: str, length: int, answer: str) -> ReplayTrace:
    """A trace of exactly ``length`` pieces: the label, fillers, then ' The answer is X'."""
    t = make_trace(label + " w" * (length - 5) + f" The answer is {answer}")
    assert t.n_tokens == length and t.answer == answer
    return t


class LabelJudge:
    """Pure fake: 'same' iff both prefixes start with the same label word."""

    name = "label"

    async def ascore(self, pairs: Sequence[TracePair]) -> list[float]:
        return [1.0 if a.text.split()[0] == b.text.split()[0] else 0.0 for a, b in pairs]


async def test_no_prune_runs_everything_and_votes_the_majority() -> None:
    traces = [trace("A", 10, "7"), trace("B", 8, "9"), trace("C", 6, "7")]
    result = await simulate(NoPrunePolicy(), LabelJudge(), traces)
    assert result.branch_tokens == [10, 8, 6]
    assert result.tokens == 24
    assert result.statuses == ["finished"] * 3
    assert result.answer == "7" and result.votes == {"7": 2.0, "9": 1.0}
    assert result.ticks == 10 and result.rounds == 1  # the engine's one round once nothing is alive


async def test_paper_policy_hand_computed() -> None:
    """tokens:2, labels A A B A, lengths 10 12 8 6, answers 7 7 9 7.

    Tick 2 delivers the 2nd piece to branches 0..3 in turn; each delivery makes that branch eligible,
    so four rounds place them one by one. After branch 3 joins A the lead (3 vs 1, nothing pending)
    is final: keep [0, 1, 3], cancel branch 2 at 2 tokens. Branch 3 finishes at tick 6 (1 vote, 2
    running: undecided); branch 0 finishes at tick 10 (2 votes > 0 + 1 running): branch 1 is stopped
    before its 10th piece, with 9 tokens. Total 10 + 9 + 2 + 6 = 27."""
    traces = [trace("A", 10, "7"), trace("A", 12, "7"), trace("B", 8, "9"), trace("A", 6, "7")]
    policy = PaperPolicy(truncation=TruncationSpec("tokens", 2), knobs=PaperKnobs(k2=20))
    result = await simulate(policy, LabelJudge(), traces)
    assert result.branch_tokens == [10, 9, 2, 6]
    assert result.tokens == 27
    assert result.statuses == ["finished", "cancelled", "cancelled", "finished"]
    assert result.cancel_reasons == [None, "vote-decided", "pruned", None]
    assert result.clusters == [[0, 1, 3], [2]]
    assert result.answer == "7"
    assert result.rounds == 6  # four placements, branch 3 done, branch 0 done


async def test_max_tokens_cuts_branches_like_the_server() -> None:
    traces = [trace("A", 10, "7"), trace("B", 6, "7")]
    result = await simulate(NoPrunePolicy(), LabelJudge(), traces, max_tokens=8)
    assert result.branch_tokens == [8, 6]
    assert result.answers == [None, "7"]  # branch 0 was cut before its answer


def test_prefix_pieces_behaves_like_a_list_prefix() -> None:
    pieces = ("a", "b", "c", "d")
    view = PrefixPieces(pieces, 3)
    assert len(view) == 3
    assert list(view) == ["a", "b", "c"]
    assert view[:2] == ["a", "b"] and view[:10] == ["a", "b", "c"]
    assert view[-1] == "c" and view[1:] == ["b", "c"]
    with pytest.raises(IndexError):
        view[3]


# -------------------------------------------------------------------------------------------------
# the bisection shortcut equals checking after every single delivery
# -------------------------------------------------------------------------------------------------
async def reference(policy: PruningPolicy, judge: NumberOverlapJudge, traces: Sequence[ReplayTrace]) -> list[int]:
    """The simulator's contract spelled out naively: one delivery at a time, readiness checked after each."""
    tokens = [0] * len(traces)
    status = ["running"] * len(traces)

    def views() -> list[BranchView]:
        return [
            BranchView(
                id=i,
                text=t.prefix(tokens[i]),
                tokens=tokens[i],
                status=status[i],  # type: ignore[arg-type]
                pieces=list(t.pieces[: tokens[i]]),
                answer=t.answer if status[i] == "finished" else None,
                recorded_answer=t.recorded_answer,
            )
            for i, t in enumerate(traces)
        ]

    def alive() -> bool:
        return any(s == "running" for s in status)

    async def rounds() -> None:
        while True:
            decision = await policy.step(views(), judge)
            for i in [*decision.cancel, *decision.decided]:
                if status[i] == "running":
                    status[i] = "cancelled"
            if not alive() or not policy.ready(views()):
                return

    while alive():
        for i in [i for i, s in enumerate(status) if s == "running"]:
            if status[i] != "running":
                continue
            tokens[i] += 1
            if tokens[i] == traces[i].n_tokens:
                status[i] = "finished"
            if not alive() or policy.ready(views()):
                await rounds()
    return tokens


def random_traces(rng: random.Random, n: int) -> list[ReplayTrace]:
    out = []
    for _ in range(n):
        steps = " ".join(f"{rng.randint(1, 6)} + {rng.randint(1, 6)} = {rng.randint(2, 12)}." for _ in range(6))
        filler = " so" * rng.randint(0, 30)
        out.append(make_trace(f"{steps}{filler} The answer is {rng.choice('789')}."))
    return out


@pytest.mark.parametrize("seed", range(12))
async def test_simulator_equals_the_naive_per_delivery_loop(seed: int) -> None:
    rng = random.Random(seed)
    traces = random_traces(rng, rng.randint(2, 14))
    spec = TruncationSpec("tokens", rng.choice([4, 8, 16]))
    tau = rng.choice([0.2, 0.4, 0.6])
    for make in (
        lambda: PaperPolicy(
            truncation=spec, clustering=ClusteringKnobs(tau=tau), knobs=PaperKnobs(k2=rng.choice([2, 20]))
        ),
        lambda: PeriodicPolicy(
            truncation=spec, clustering=ClusteringKnobs(tau=tau), knobs=PeriodicKnobs(judge_every=rng.choice([4, 16]))
        ),
    ):
        state = rng.getstate()
        expected = await reference(make(), NumberOverlapJudge(), traces)
        rng.setstate(state)
        result = await simulate(make(), NumberOverlapJudge(), traces)
        assert result.branch_tokens == expected
