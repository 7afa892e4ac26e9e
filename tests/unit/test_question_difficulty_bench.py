"""research/question_difficulty.py's pure part: the question's column and the judge that appends it to the
`context` judge's rows (the refactored ``ContextJudge.features_in_run``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from bench_scripts import load_research

from deepprune_agents.judges.blend import BlendModel
from deepprune_agents.judges.context import ContextJudge
from deepprune_agents.traces import PartialTrace

qd = load_research("question_difficulty")


def _t(i: int, text: str) -> PartialTrace:
    return PartialTrace(text=text, tokens=len(text.split()), trace_id=str(i))


def test_the_question_column_falls_with_the_count_of_distinct_numbers() -> None:
    assert qd.question_column("No numbers here.") == 0.0
    assert qd.question_column("Tom has 3 apples and 3 pears and buys 4.5 more.") == pytest.approx(-math.log(3))
    assert qd.question_column("1, 2, 3, 4 and 5") < qd.question_column("1 and 2")


def test_the_judge_appends_the_question_column_to_the_context_rows() -> None:
    run = [_t(0, "She has 16 eggs and eats 3"), _t(1, "16 - 3 = 13 eggs left"), _t(2, "She bakes 4 muffins")]
    pairs = [(run[0], run[1]), (run[1], run[2])]
    d = len(qd.FEATURES)
    only_question = np.array([1.0 if f == qd.QUESTION else 0.0 for f in qd.FEATURES])
    model = BlendModel(np.zeros(d), np.ones(d), only_question, 0.0, "tokens:32", qd.FEATURES)
    judge = qd.QuestionAwareJudge(model)
    judge.question = "Janet's ducks lay 16 eggs per day. She eats 3 and bakes 4."
    rows = judge.features_in_run(pairs, run)
    assert rows.shape == (2, d)
    np.testing.assert_allclose(rows[:, :-1], ContextJudge().features_in_run(pairs, run))
    np.testing.assert_allclose(rows[:, -1], -math.log(4), rtol=1e-12)
    easy = judge.score_in_run(pairs, run)
    # a constant within one question: it cannot tell its branches apart
    assert easy[0] == pytest.approx(easy[1], rel=1e-12)
    judge.question = "A question with 1, 2, 3, 4, 5, 6 and 7 in it."
    assert judge.score_in_run(pairs, run)[0] < easy[0]  # more numbers in the question: less likely to agree
