"""Property-based tests of the adaptive policy (hypothesis; scripted deterministic judges, synthetic traces)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from deepprune_agents.evaluation.baselines import cons_at_n
from deepprune_agents.evaluation.replay_data import ReplayTrace, make_trace
from deepprune_agents.evaluation.simulator import simulate
from deepprune_agents.judges.base import TracePair
from deepprune_agents.pruning import AdaptiveKnobs, AdaptivePolicy
from deepprune_agents.pruning.adaptive import answer_counts, stop_is_safe
from deepprune_agents.pruning.types import BranchView
from deepprune_agents.pruning.vote import vote_is_decided
from deepprune_agents.truncation import TruncationSpec

SPEC = TruncationSpec(mode="tokens", k=2)
KNOBS = st.builds(
    AdaptiveKnobs,
    keep_fraction=st.sampled_from([0.1, 0.25, 0.5, 0.75, 1.0]),
    min_keep=st.integers(1, 4),
    confidence=st.sampled_from([0.5, 0.8, 0.95, 0.99]),
    min_votes=st.integers(1, 5),
)


class PrefixJudge:
    """Deterministic, arbitrary: the score is a hash of the two first words, so clusters are a wrong mix
    of answers as often as not. ``jitter`` answers late in a scrambled order."""

    name = "prefix"

    def __init__(self, salt: int = 0, jitter: bool = False) -> None:
        self.salt, self.jitter, self.rng = salt, jitter, random.Random(salt)

    async def ascore(self, pairs: Sequence[TracePair]) -> list[float]:
        if self.jitter:
            await asyncio.sleep(self.rng.random() / 2000)
        out = []
        for a, b in pairs:
            x, y = sorted((a.text.split()[:1] or [""])[0:1] + (b.text.split()[:1] or [""])[0:1])
            out.append(random.Random(f"{self.salt}:{x}:{y}").random())
        return out


def traces_for(labels: Sequence[str], answers: Sequence[str | None], lengths: Sequence[int]) -> list[ReplayTrace]:
    out = []
    for lab, ans, n in zip(labels, answers, lengths, strict=True):
        tail = f" The answer is {ans}" if ans is not None else " no answer"
        out.append(make_trace(lab + " w" * n + tail))
    return out


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 25), min_size=1, max_size=16),
    labels=st.data(),
    knobs=KNOBS,
    salt=st.integers(0, 5),
)
def test_a_unanimous_set_gives_cons_at_n_answer(
    lengths: list[int], labels: st.DataObject, knobs: AdaptiveKnobs, salt: int
) -> None:
    words = labels.draw(st.lists(st.sampled_from(["p", "q", "r", "s"]), min_size=len(lengths), max_size=len(lengths)))
    traces = traces_for(words, ["42"] * len(lengths), lengths)
    policy = AdaptivePolicy(truncation=SPEC, knobs=knobs, seed=salt)
    result = asyncio.run(simulate(policy, PrefixJudge(salt), traces))
    assert result.answer == cons_at_n(traces).answer == "42"


@settings(max_examples=150, deadline=None)
@given(
    branches=st.lists(
        st.tuples(
            st.sampled_from("pqrs"),
            st.sampled_from(["running", "finished", "cancelled"]),
            st.sampled_from(["1", "2", "3", None]),
        ),
        min_size=1,
        max_size=20,
    ),
    knobs=KNOBS,
    salt=st.integers(0, 5),
)
def test_never_cancels_the_last_running_branch_of_an_answer_that_can_still_win(
    branches: list[tuple[str, str, str | None]], knobs: AdaptiveKnobs, salt: int
) -> None:
    """Thinning leaves every cluster that has a running branch one running branch (a cluster is a
    predicted answer; its last voice is never pruned), and the run as a whole is only stopped when the
    finished answers satisfy the stopping rule or no outcome of the running branches can change the vote."""
    views = [
        BranchView(id=i, text=f"{lab} x y", tokens=3, status=status,  # type: ignore[arg-type]
                   pieces=[f"{lab} ", "x ", "y"], answer=ans if status == "finished" else None)
        for i, (lab, status, ans) in enumerate(branches)
    ]  # fmt: skip
    policy = AdaptivePolicy(truncation=SPEC, knobs=knobs, seed=salt)
    decision = asyncio.run(policy.step(views, PrefixJudge(salt)))
    by_id = {v.id: v for v in views}
    cancelled = set(decision.cancel)
    assert cancelled <= {v.id for v in views if v.alive}
    for members in policy.clusters.export():
        running = [b for b in members if by_id[b].alive]
        if running:
            assert set(running) - cancelled, f"cluster {members} lost its last running branch to thinning"
    if decision.decided:
        ballots = policy.ballots(by_id)
        still = [v.id for v in views if v.alive and v.id not in cancelled]
        assert sorted(decision.decided) == sorted(still)
        assert stop_is_safe(answer_counts(ballots), knobs) or vote_is_decided(
            ballots, policy.undecided_weight(by_id, cancelled)
        )


@settings(max_examples=25, deadline=None)
@given(
    spec=st.lists(
        st.tuples(st.sampled_from("pqrs"), st.sampled_from(["1", "2", None]), st.integers(1, 20)),
        min_size=2,
        max_size=12,
    ),
    knobs=KNOBS,
    seed=st.integers(0, 3),
)
def test_results_are_deterministic_for_a_seed(
    spec: list[tuple[str, str | None, int]], knobs: AdaptiveKnobs, seed: int
) -> None:
    """Same traces, same seed, same knobs: the same run, even when the judge answers in a scrambled order."""
    traces = traces_for([s[0] for s in spec], [s[1] for s in spec], [s[2] for s in spec])

    def once(jitter_seed: int) -> dict[str, object]:
        policy = AdaptivePolicy(truncation=SPEC, knobs=knobs, seed=seed)
        judge = PrefixJudge(salt=0, jitter=True)
        judge.rng = random.Random(jitter_seed)
        return asyncio.run(simulate(policy, judge, traces)).as_dict()

    assert once(1) == once(2)
