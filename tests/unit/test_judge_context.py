"""research/judge_context.py: the set-context pair scores and the within-question AUROC behind issue 11's
analysis (pure functions on hand-made pairs; the figures themselves come from the shared traces)."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest
from bench_scripts import load_research

from deepprune_agents.traces import PartialTrace
from deepprune_agents.training.pairs import PairExample


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_research("judge_context")


def _pairs(question: str, texts: list[str], answers: list[str]) -> list[PairExample]:
    pieces = enumerate(zip(texts, answers, strict=True))
    traces = [PartialTrace(text=t, trace_id=f"{question}#{i}", answer=a) for i, (t, a) in pieces]
    return [
        PairExample(a=traces[i], b=traces[j], label=int(answers[i] == answers[j]), group=question, generator="g")
        for i in range(len(traces))
        for j in range(i + 1, len(traces))
    ]


def test_an_outlier_branch_lowers_the_min_centrality_of_its_pairs(bench: ModuleType) -> None:
    pairs = _pairs("q", ["3 + 4 = 7", "3 + 4 = 7 so", "3 * 4 = 12"], ["7", "7", "12"])
    scores = bench.context_scores(pairs)
    by_ids = {(p.a.trace_id, p.b.trace_id): k for k, p in enumerate(pairs)}
    typical, with_outlier = by_ids[("q#0", "q#1")], by_ids[("q#0", "q#2")]
    assert scores["numbers"][typical] == 1.0
    assert scores["min_centrality"][typical] > scores["min_centrality"][with_outlier]
    assert np.allclose(scores["question_mean"], scores["numbers"].mean())  # one question: one run mean
    assert np.allclose(
        scores["numbers_plus_context"], scores["numbers"] + scores["question_mean"] + scores["min_centrality"]
    )


def test_within_question_auroc_skips_single_label_questions(bench: ModuleType) -> None:
    labels = np.array([1, 0, 1, 1])
    groups = np.array(["a", "a", "b", "b"])
    scores = np.array([0.9, 0.1, 0.2, 0.3])
    assert bench.within_question_auroc(labels, groups, scores) == 1.0  # only question "a" counts
    assert bench.within_question_auroc(np.array([1, 1]), np.array(["b", "b"]), np.array([0.1, 0.2])) is None


def test_the_question_rate_ceiling_ranks_an_easy_question_above_a_split_one(bench: ModuleType) -> None:
    easy = _pairs("easy", ["1 2", "1 2", "1 2"], ["5", "5", "5"])
    split = _pairs("split", ["1 2", "1 2", "1 3"], ["5", "6", "5"])
    figures = bench.measure(easy + split)
    assert figures["pairs"] == 6
    assert figures["same_share"] == pytest.approx(4 / 6)
    assert figures["oracle_question_rate_auroc"] > 0.5
    assert figures["numbers_within_question_auroc"] is not None  # "split" carries both labels
