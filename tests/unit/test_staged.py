"""The ``staged`` policy's launch and cancel decisions (pure logic, scripted judges), and staged runs in the
simulator: unstarted branches, later waves starting at the next tick, wall time."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepprune_agents.evaluation.replay_data import ReplayTrace, make_trace
from deepprune_agents.evaluation.simulator import simulate
from deepprune_agents.judges.base import Judge, TracePair
from deepprune_agents.judges.constant import ConstantJudge
from deepprune_agents.pruning import StagedKnobs, StagedPolicy
from deepprune_agents.pruning.adaptive import AdaptiveKnobs, stop_is_safe
from deepprune_agents.pruning.staged import leader_votes_needed
from deepprune_agents.pruning.types import BranchView, Decision
from deepprune_agents.pruning.vote import majority_vote, vote_is_decided
from deepprune_agents.truncation import TruncationSpec

SPEC = TruncationSpec("tokens", 2)


def trace(length: int, answer: str) -> ReplayTrace:
    t = make_trace("w" + " w" * (length - 5) + f" The answer is {answer}")
    assert t.n_tokens == length and t.answer == answer
    return t


def view(i: int, status: str, answer: str | None = None, tokens: int = 4) -> BranchView:
    pieces = ["w"] * tokens if status not in ("unstarted",) else []
    return BranchView(
        id=i,
        text=" ".join(pieces),
        tokens=len(pieces),
        status=status,  # type: ignore[arg-type]
        pieces=pieces,
        answer=answer,
    )


def policy(**knobs: object) -> StagedPolicy:
    p = StagedPolicy(truncation=SPEC, knobs=StagedKnobs(**knobs))  # type: ignore[arg-type]
    return p


class FixedJudge:
    name = "fixed"

    def __init__(self, score: float) -> None:
        self.score, self.calls = score, 0

    async def ascore(self, pairs: Sequence[TracePair]) -> list[float]:
        self.calls += 1
        return [self.score] * len(pairs)


def test_first_wave_is_the_lowest_ids_capped_by_n() -> None:
    assert policy().first_wave(16) == [0, 1, 2, 3]  # four equal answers: the fewest the Beta rule stops on
    assert policy().first_wave(3) == [0, 1, 2]
    assert policy(first_wave=8).first_wave(8) == list(range(8))


async def test_a_split_first_wave_launches_every_other_branch_at_once() -> None:
    p = policy()
    p.first_wave(12)
    views = [view(i, "running") for i in range(4)] + [view(i, "unstarted") for i in range(4, 12)]
    assert p.ready(views)
    judge = FixedJudge(0.1)  # < split_tau: the first wave reads as split
    d = await p.step(views, judge)
    assert d.launch == list(range(4, 12)) and not d.cancel and not d.decided
    assert d.events[0]["why"] == "judge-split" and d.judge_calls == 1 and d.pairs_scored == 6
    assert not p.ready(views)  # read once


@pytest.mark.parametrize(("score", "split"), [(0.5, False), (0.45, False), (0.449, True)])
async def test_the_split_line_is_strictly_below_split_tau(score: float, split: bool) -> None:
    """A mean of exactly 0.5 (a lexical judge's frequent tie: half of the pairs share their numbers) is not
    read as split by default; only a mean below ``split_tau`` (0.45) is."""
    p = policy()
    p.first_wave(8)
    views = [view(i, "running") for i in range(4)] + [view(i, "unstarted") for i in range(4, 8)]
    d = await p.step(views, FixedJudge(score))
    assert (d.launch == list(range(4, 8))) is split and p.similarity == pytest.approx(score)


async def test_an_agreeing_first_wave_launches_nothing_and_cancels_nothing() -> None:
    p = policy()
    p.first_wave(12)
    views = [view(i, "running") for i in range(4)] + [view(i, "unstarted") for i in range(4, 12)]
    d = await p.step(views, ConstantJudge())
    assert d == Decision(judge_calls=1, pairs_scored=6)


async def test_four_equal_answers_stop_the_run_and_cancel_the_straggler() -> None:
    p = policy()
    p.first_wave(16)
    views = [view(i, "finished", "7") for i in range(4)] + [view(4, "running")]
    views += [view(i, "unstarted") for i in range(5, 16)]
    d = await p.step(views, ConstantJudge())
    assert d.decided == [4] and not d.launch and not d.cancel
    assert p.stopped == "beta-stop"


async def test_three_equal_answers_do_not_stop_and_need_no_more_branches() -> None:
    """3:0 is P = 0.9375 < 0.95; one more agreeing answer would do, and 2 branches still run."""
    p = policy()
    p.first_wave(16)
    views = [view(i, "finished", "7") for i in range(3)] + [view(i, "running") for i in (3, 4)]
    views += [view(i, "unstarted") for i in range(5, 16)]
    d = await p.step(views, ConstantJudge())
    assert d.decided == [] and d.launch == []


async def test_a_disagreement_starts_the_next_wave_at_once() -> None:
    """1:1 needs five more answers for the leader (6:1 is P = 0.965); two branches run, so three more are
    missing, and a wave is at least a first wave's worth (four)."""
    p = policy()
    p.first_wave(16)
    views = [view(0, "finished", "7"), view(1, "finished", "9")] + [view(i, "running") for i in (2, 3)]
    views += [view(i, "unstarted") for i in range(4, 16)]
    d = await p.step(views, ConstantJudge())
    assert not d.cancel and not d.decided
    assert d.launch == list(range(4, 8))
    assert d.events[-1]["why"] == "answers-need"


async def test_a_split_read_of_a_finished_first_wave_starts_the_rest_instead_of_stopping_on_it() -> None:
    """3:1 over a first wave that finished before it was read, four held back: undecided, whatever the judge
    says. The stop rules count the held branches as still to come; a split read then starts them (it had made
    the run stop at once on 3:1, as if the branches it had just started were already counted)."""
    for score, why in ((0.0, "judge-split"), (0.9, "answers-need")):
        p = policy()
        p.first_wave(8)
        wave = [view(0, "finished", "7"), view(1, "finished", "7"), view(2, "finished", "7"), view(3, "finished", "12")]
        d = await p.step([*wave, *(view(i, "unstarted") for i in range(4, 8))], FixedJudge(score))
        assert p.stopped is None and not d.decided, (score, d.events)
        assert d.launch == [4, 5, 6, 7] and d.events[-1]["why"] == why


async def test_a_branch_that_fails_after_a_round_makes_the_policy_due_to_start_more() -> None:
    """Three equal answers (P = 0.94 < 0.95) and one branch running: nothing starts. When that branch fails,
    the run is one answer short with nobody to give it; the policy must be due again (a round starts more)
    instead of letting the run vote 3:0 with four branches never started."""
    p = policy()
    p.first_wave(8)
    done = [view(i, "finished", "7") for i in range(3)]
    held = [view(i, "unstarted") for i in range(4, 8)]
    d = await p.step([*done, view(3, "running"), *held], FixedJudge(0.9))
    assert not d.launch and p.stopped is None
    after = [*done, view(3, "failed"), *held]
    assert p.ready(after)
    d = await p.step(after, FixedJudge(0.9))
    assert d.launch == [4, 5, 6, 7] and d.events[-1]["why"] == "answers-need"


def test_leader_votes_needed_follows_the_beta_rule() -> None:
    rule = AdaptiveKnobs(confidence=0.95, min_votes=3, min_vote_share=0.1)
    assert leader_votes_needed([], rule, launched=5, running=5, more=0) == 4  # 4:0 is P = 0.969
    assert leader_votes_needed([3], rule, launched=5, running=2, more=0) == 1
    assert leader_votes_needed([1, 1], rule, launched=5, running=3, more=11) == 5  # 6:1 is P = 0.965
    assert leader_votes_needed([1, 1], rule, launched=5, running=1, more=1) == 2  # not reachable: everything


async def test_simulator_starts_a_later_wave_at_the_next_tick() -> None:
    """Branches 0 and 1 finish at tick 6 with different answers: 1:1 needs five more for the leader, two
    run, so the next wave (4-7) is launched in that round and receives its first piece at tick 7."""
    traces = [trace(6, "9"), trace(6, "7"), trace(10, "7"), trace(10, "7")]
    traces += [trace(8, "7") for _ in range(4)]
    result = await simulate(policy(), ConstantJudge(), traces)
    assert result.start_ticks == [0, 0, 0, 0, 6, 6, 6, 6]
    assert result.answer == "7"
    assert result.wall == max(s + t for s, t in zip(result.start_ticks, result.branch_tokens, strict=True))
    assert "unstarted" not in result.statuses


async def test_simulator_leaves_branches_unstarted_when_the_first_wave_agrees() -> None:
    traces = [trace(10 + i, "7") for i in range(5)] + [trace(8, "3") for _ in range(11)]
    result = await simulate(policy(first_wave=5), ConstantJudge(), traces)
    assert result.statuses[5:] == ["unstarted"] * 11
    assert result.launched == 5 and result.answer == "7"
    # branch 3's 13th piece is the 4th equal answer: the round runs before branch 4's 13th piece
    assert result.statuses[4] == "cancelled" and result.branch_tokens[4] == 12
    assert result.tokens == 10 + 11 + 12 + 13 + 12 and result.wall == 13


class CheckingPolicy(StagedPolicy):
    """The staged policy, asserting on every decision that a cancel has finished answers behind it."""

    async def step(self, views: Sequence[BranchView], judge: Judge) -> Decision:
        d = await super().step(views, judge)
        assert not d.cancel, "the staged policy never prunes on the judge"
        if d.decided:
            ballots = [(v.id, v.answer, 1.0) for v in views if v.finished and v.answer is not None]
            counts = list(majority_vote([(b, a) for b, a, _ in ballots]).counts.values())
            assert ballots, "a running branch was cancelled before any finished answer"
            undecided = float(sum(1 for v in views if v.alive or v.unstarted))
            launched = sum(1 for v in views if not v.unstarted)
            assert stop_is_safe(counts, self.knobs, launched) or vote_is_decided(ballots, undecided)
        return d


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(min_value=5, max_value=30), st.sampled_from(["1", "2", "3", None])),
        min_size=1,
        max_size=20,
    ),
    st.integers(min_value=1, max_value=8),
)
def test_with_the_constant_judge_no_running_branch_is_cancelled_without_finished_answers_for_it(
    spec: list[tuple[int, str | None]], first_wave: int
) -> None:
    traces = [make_trace("w" + " w" * (n - 2) + (f" The answer is {a}" if a else " w")) for n, a in spec]
    p = CheckingPolicy(truncation=SPEC, knobs=StagedKnobs(first_wave=first_wave))
    result = asyncio.run(simulate(p, ConstantJudge(), traces))
    for status, reason in zip(result.statuses, result.cancel_reasons, strict=True):
        assert status != "cancelled" or reason == "vote-decided"
    # nothing is left unstarted while the vote could still change (the run ends only on a settled vote)
    if "unstarted" in result.statuses:
        assert p.stopped is not None


@pytest.mark.parametrize("n", [1, 5, 9])
async def test_staged_with_a_judge_that_always_splits_is_cons_at_n(n: int) -> None:
    traces = [trace(6 + i, "7" if i % 2 else "8") for i in range(n)]
    result = await simulate(policy(), FixedJudge(0.0), traces)
    assert result.launched == n
