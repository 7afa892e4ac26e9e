"""The bootstrap helpers behind every CI in the reports: questions are resampled whole, two methods together."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deepprune_agents.evaluation.stats import bootstrap_ci, paired_delta, paired_ratio


def test_a_constant_ratio_has_a_ci_of_that_ratio_however_costly_the_questions() -> None:
    # Questions differ 10x in cost, the method costs 1.1x on each: paired resampling sees no spread at all.
    den = [100.0, 1000.0, 250.0, 40.0, 700.0]
    r = paired_ratio([1.1 * d for d in den], den)
    assert r["ratio"] == pytest.approx(1.1) and r["questions"] == 5
    lo, hi = r["ci95"]  # type: ignore[misc]
    assert lo == pytest.approx(1.1) and hi == pytest.approx(1.1)


def test_a_ratio_is_of_the_sums_and_its_ci_covers_it_and_widens_with_noise() -> None:
    rng = np.random.default_rng(1)
    den = rng.uniform(1500, 3000, size=10)
    num = den * rng.uniform(0.8, 1.2, size=10)
    r = paired_ratio(num.tolist(), den.tolist())
    assert r["ratio"] == pytest.approx(num.sum() / den.sum())
    lo, hi = r["ci95"]  # type: ignore[misc]
    assert lo < r["ratio"] < hi and hi - lo > 0.05


def test_one_question_or_nothing_to_divide_by_gives_a_degenerate_answer_not_an_error() -> None:
    assert paired_ratio([3.0], [2.0]) == {"ratio": 1.5, "ci95": [1.5, 1.5], "questions": 1}
    r = paired_ratio([1.0, 2.0], [0.0, 0.0])
    assert math.isnan(r["ratio"])  # type: ignore[arg-type]


def test_unpaired_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="one value per question"):
        paired_ratio([1.0, 2.0], [1.0])


def test_a_paired_delta_of_identical_methods_is_exactly_zero() -> None:
    acc = np.array([0.0, 1.0, 0.5, 1.0])
    d = paired_delta(acc, acc, reps=200)
    assert d == {"delta": 0.0, "ci95": [0.0, 0.0], "questions": 4}
    lo, hi = bootstrap_ci(acc, reps=500)
    assert 0.0 <= lo <= acc.mean() <= hi <= 1.0
