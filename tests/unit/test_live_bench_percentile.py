"""The live benchmark's nearest-rank percentile (it reports cancel-latency p99)."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deepprune_agents.evaluation.live_bench import percentile


def test_p99_of_100_samples_is_the_99th_smallest_not_the_maximum() -> None:
    samples = [float(v) for v in range(1, 101)]
    random.Random(0).shuffle(samples)
    assert percentile(samples, 99) == 99.0
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 7) == 7.0  # numpy's inverted_cdf says 8 here (floating-point rank)
    assert percentile(samples, 100) == 100.0
    assert percentile(samples, 0) == 1.0


def test_small_and_empty_samples() -> None:
    assert percentile([], 99) is None
    assert percentile([3.0], 99) == 3.0
    assert percentile([1.0, 2.0], 50) == 1.0
    assert percentile([1.0, 2.0], 51) == 2.0


@given(st.lists(st.integers(-1000, 1000), min_size=1, max_size=300), st.integers(1, 100))
def test_nearest_rank_definition(values: list[int], q: int) -> None:
    """At least q% of the values are <= the answer, and fewer than q% are strictly below it."""
    p = percentile([float(v) for v in values], q)
    assert p is not None
    n = len(values)
    assert sum(v <= p for v in values) * 100 >= q * n
    assert sum(v < p for v in values) * 100 < q * n
    assert p in values


@pytest.mark.parametrize("n", [10, 100, 1000])
def test_integer_percentiles_match_ceil_rank(n: int) -> None:
    samples = [float(v) for v in range(1, n + 1)]
    for q in range(1, 101):
        assert percentile(samples, q) == float(math.ceil(q * n / 100))


def test_answer_histogram_and_plurality_share() -> None:
    """The live report's regime figures: branches per answer (most frequent first) and the plurality's share,
    where branches with no answer count in the total but never lead."""
    from deepprune_agents.pruning.vote import answer_histogram, plurality_share

    hist = answer_histogram(["7", None, "7", "12", None, None, "7"])
    assert list(hist.items()) == [("7", 3), ("none", 3), ("12", 1)]
    assert plurality_share(hist) == pytest.approx(3 / 7)
    assert plurality_share(answer_histogram([None, None])) == 0.0
    assert plurality_share({}) == 0.0
    # classes as the vote forms them: "10" and "10 dollars" are one answer
    assert answer_histogram(["10 dollars", None, "10", "7"]) == {"10 dollars": 2, "none": 1, "7": 1}
