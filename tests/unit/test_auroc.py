"""AUROC is scikit-learn's now; it must give what the hand-written Mann-Whitney version gave: the
pairwise definition P(score_pos > score_neg) + P(tie) / 2, for any labels and tied scores."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepprune_agents.training.evaluate import auroc

pairs = st.lists(st.tuples(st.booleans(), st.integers(0, 6).map(lambda k: k / 6)), min_size=1, max_size=80)


@settings(deadline=None)  # the first call imports scikit-learn
@given(pairs)
def test_auroc_is_the_pairwise_probability(data: list[tuple[bool, float]]) -> None:
    y = [int(label) for label, _ in data]
    s = [score for _, score in data]
    pos = [v for label, v in data if label]
    neg = [v for label, v in data if not label]
    if not pos or not neg:
        assert math.isnan(auroc(y, s))
        return
    brute = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))
    assert auroc(y, s) == pytest.approx(brute, abs=1e-12)
