"""The run context (judges/run_context.py), the ``context`` judge and how the policies hand it the run."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from deepprune_agents.errors import ConfigError
from deepprune_agents.judges import RunAwareJudge, get_judge
from deepprune_agents.judges.base import TracePair
from deepprune_agents.judges.blend import BLEND_FEATURES, BlendModel, save_blend
from deepprune_agents.judges.features import TextInfo
from deepprune_agents.judges.numbers import jaccard
from deepprune_agents.judges.run_context import (
    CONTEXT_CAP,
    CONTEXT_EXCLUDE,
    CONTEXT_FEATURES,
    context_features,
    run_context,
)
from deepprune_agents.pruning import make_policy
from deepprune_agents.pruning.clustering import call_judge
from deepprune_agents.pruning.types import BranchView
from deepprune_agents.settings import DeepPruneContext
from deepprune_agents.traces import PartialTrace

RUN = [
    "48 / 2 = 24 clips in May",
    "48 / 2 = 24 so in May",
    "48 / 2 = 24 clips in May",  # a copy of the first: a second member, not the same one
    "she sold 96 and then 7",
]


def _sims(a: str, b: str) -> tuple[float, float]:
    ia, ib = TextInfo(a), TextInfo(b)
    return jaccard(ia.nums, ib.nums), jaccard(ia.word_set, ib.word_set)


def test_centrality_is_the_mean_similarity_to_the_other_members_and_the_mean_is_over_pairs() -> None:
    ctx = run_context(RUN)
    assert ctx.size == 4
    for i, t in enumerate(RUN):
        others = [_sims(t, u) for j, u in enumerate(RUN) if j != i]  # a copy counts, the member itself does not
        assert ctx.centrality[t] == pytest.approx(tuple(np.mean(others, axis=0)))
    pairs = [_sims(a, b) for a, b in itertools.combinations(RUN, 2)]
    assert ctx.mean == pytest.approx(tuple(np.mean(pairs, axis=0)))
    shuffled = RUN[::-1]
    assert run_context(shuffled) == ctx  # order-free


def test_features_take_the_less_central_member_and_fall_back_on_the_pair_outside_a_run() -> None:
    ctx = run_context(RUN)
    x = context_features([(RUN[0], RUN[3])], ctx)[0]
    assert x.shape == (len(CONTEXT_FEATURES),)
    num, word = _sims(RUN[0], RUN[3])
    assert x[:2] == pytest.approx([num, word])
    assert x[2] == pytest.approx(ctx.mean[0]) and x[4] == pytest.approx(ctx.mean[1])  # type: ignore[index]
    assert x[3] == pytest.approx(min(ctx.centrality[RUN[0]][0], ctx.centrality[RUN[3]][0]))
    assert x[5] == pytest.approx(ctx.centrality[RUN[3]][1])  # the outlier is the less central one
    lone = context_features([("1 2 3", "1 2 4")], run_context(["1 2 3"]))[0]  # a run of one: no pairs
    assert lone[2] == lone[0] and lone[3] == lone[0] and lone[4] == lone[1] and lone[5] == lone[1]


def test_a_large_run_is_measured_against_a_fixed_sample_whatever_the_order() -> None:
    texts = [f"step {i % 50} gives {i} then {i * 7}" for i in range(3 * CONTEXT_CAP)]
    ctx = run_context(texts)
    shuffled = texts[:]
    random.Random(0).shuffle(shuffled)
    assert run_context(shuffled) == ctx
    assert set(ctx.centrality) == set(texts)  # every member gets a centrality, not only the sample
    assert all(0.0 <= v <= 1.0 for c in ctx.centrality.values() for v in c)


def _context_weights(tmp_path: Path) -> Path:
    """A context judge whose score rises with every column (the shipped layout, number context at 0)."""
    coef = np.array([0.0 if f in CONTEXT_EXCLUDE else 1.0 for f in CONTEXT_FEATURES], dtype=np.float32)
    n = len(CONTEXT_FEATURES)
    model = BlendModel(
        np.full(n, 0.3, np.float32), np.full(n, 0.2, np.float32), coef, 0.0, "tokens:32", CONTEXT_FEATURES
    )
    return save_blend(model, tmp_path / "context")


def test_the_context_judge_reads_the_run_and_refuses_weights_of_another_layout(tmp_path: Path) -> None:
    judge = get_judge("context", weights_dir=str(_context_weights(tmp_path)))
    assert isinstance(judge, RunAwareJudge) and judge.name == "context"
    run = [PartialTrace(text=t, trace_id=str(i)) for i, t in enumerate(RUN)]
    pair = (run[0], run[1])
    alone = asyncio.run(judge.ascore([pair]))  # the batch is the run: two branches
    in_run = asyncio.run(judge.ascore_in_run([pair], run))
    outlier = asyncio.run(judge.ascore_in_run([(run[0], run[3])], run))
    assert 0.0 <= outlier[0] < in_run[0] <= 1.0
    assert in_run != alone  # the run's other branches moved the score
    assert asyncio.run(judge.ascore_in_run([], run)) == []
    blend_layout = tmp_path / "blend"
    blend_layout.mkdir()
    m = BlendModel(*(np.ones(3, np.float32) for _ in range(3)), 0.0)
    (blend_layout / "blend.json").write_text(json.dumps(m.to_json()), encoding="utf-8")
    assert m.features == BLEND_FEATURES
    with pytest.raises(ConfigError, match="feature layout"):
        get_judge("context", weights_dir=str(blend_layout))


class RecordingRunJudge:
    """Scores 1.0 for equal first words and records the run each call was given."""

    name = "recording"

    def __init__(self) -> None:
        self.runs: list[list[str]] = []
        self.plain_calls = 0

    async def ascore(self, pairs: Sequence[TracePair]) -> list[float]:
        self.plain_calls += 1
        return [1.0 if a.text.split()[:1] == b.text.split()[:1] else 0.0 for a, b in pairs]

    async def ascore_in_run(self, pairs: Sequence[TracePair], run: Sequence[PartialTrace]) -> list[float]:
        self.runs.append(sorted(t.trace_id for t in run))
        return [1.0 if a.text.split()[:1] == b.text.split()[:1] else 0.0 for a, b in pairs]


def test_call_judge_hands_the_run_only_to_a_judge_that_reads_it() -> None:
    judge = RecordingRunJudge()
    a, b = PartialTrace(text="x 1", trace_id="0"), PartialTrace(text="x 2", trace_id="1")
    assert asyncio.run(call_judge(judge, [(a, b)], 5.0, [a, b])) == [1.0]
    assert judge.runs == [["0", "1"]] and judge.plain_calls == 0
    assert asyncio.run(call_judge(judge, [(a, b)], 5.0)) == [1.0]  # no run given: plain ascore
    assert judge.plain_calls == 1


@pytest.mark.parametrize("policy", ["adaptive", "paper"])
def test_every_placement_of_a_step_sees_the_whole_run_judged_so_far(policy: str) -> None:
    ctx = DeepPruneContext(n=6, policy=policy, truncate="tokens:2")  # type: ignore[arg-type]
    pol = make_policy(ctx)

    def views(ready: int) -> list[BranchView]:
        out = []
        for i in range(6):
            pieces = [f"{'ab'[i % 2]} ", f"x{i} ", "y "] if i < ready else [f"{'ab'[i % 2]} "]
            out.append(BranchView(id=i, text="".join(pieces), tokens=len(pieces), status="running", pieces=pieces))
        return out

    judge = RecordingRunJudge()
    asyncio.run(pol.step(views(4), judge))  # four branches reached the truncation
    assert judge.runs and all(r == ["0", "1", "2", "3"] for r in judge.runs)
    judge.runs.clear()
    asyncio.run(pol.step(views(6), judge))  # two more: the run holds the placed ones too
    assert judge.runs and all(r == ["0", "1", "2", "3", "4", "5"] for r in judge.runs)
    assert judge.plain_calls == 0


def test_judge_evaluation_gives_a_run_aware_judge_one_question_of_one_generator_at_a_time() -> None:
    from deepprune_agents.training.evaluate import score_pairs
    from deepprune_agents.training.pairs import PairExample

    def tr(i: int, text: str) -> PartialTrace:
        return PartialTrace(text=text, trace_id=str(i))

    q1 = [tr(0, "a 1"), tr(1, "a 2"), tr(2, "b 3")]
    q1_other_model = [tr(0, "a 9"), tr(1, "b 8")]
    pairs = [
        PairExample(a=q1[0], b=q1[1], label=1, group="q1", generator="m1"),
        PairExample(a=q1_other_model[0], b=q1_other_model[1], label=0, group="q1", generator="m2"),
        PairExample(a=q1[0], b=q1[2], label=0, group="q1", generator="m1"),
    ]
    judge = RecordingRunJudge()
    scores, _ = asyncio.run(score_pairs(judge, pairs, batch_size=1))
    assert scores.tolist() == [1.0, 0.0, 0.0]  # back in the pairs' order
    assert sorted(judge.runs) == [["0", "1"], ["0", "1", "2"], ["0", "1", "2"]]  # m2's run never meets m1's
