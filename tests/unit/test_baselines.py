"""cons@N, ESC and DeepConf-online against hand-computed small cases; the evaluation report on a tiny
synthetic trace file with log-probabilities."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from deepprune_agents.errors import ConfigError
from deepprune_agents.evaluation.baselines import (
    cons_at_n,
    deepconf_online,
    esc,
    group_confidences,
    stop_position,
)
from deepprune_agents.evaluation.replay_data import ReplayTrace, load_replay_questions, make_trace
from deepprune_agents.evaluation.replay_eval import EvalConfig, compare_at_equal_tokens, evaluate


def trace(answer: str | None, length: int, logprobs: list[float] | None = None) -> ReplayTrace:
    """Exactly ``length`` pieces ending in 'The answer is X' (or no answer at all)."""
    tail = f" The answer is {answer}" if answer is not None else " no idea at all"
    text = tail.lstrip() if length == 4 else "Go" + " w" * (length - 5) + tail
    t = make_trace(text, token_logprobs=logprobs)
    assert t.n_tokens == length and t.answer == answer
    return t


def test_cons_votes_the_majority_and_counts_every_token() -> None:
    traces = [trace("7", 5), trace("9", 6), trace("7", 7), trace(None, 8), trace("9", 9), trace("7", 10)]
    out = cons_at_n(traces)
    assert out.answer == "7"
    assert out.tokens == 5 + 6 + 7 + 8 + 9 + 10
    assert out.traces_started == 6 and out.traces_voting == 5  # the answerless trace cannot vote


def test_cons_groups_equal_answers_written_differently() -> None:
    traces = [make_trace(f"The answer is {a}") for a in ("3", "0.5", "1/2")]
    out = cons_at_n(traces)
    assert out.answer == "0.5"  # 0.5 and 1/2 form one class of two votes, against one for 3
    assert out.traces_voting == 3


def test_esc_stops_after_the_first_unanimous_window() -> None:
    # windows of 2: (7, 9) mixed, (7, 7) unanimous -> stop after 4 traces; vote over 7, 9, 7, 7.
    traces = [trace("7", 5), trace("9", 6), trace("7", 7), trace("7", 8), trace("9", 9), trace("9", 10)]
    out = esc(traces, window=2)
    assert out.traces_started == 4
    assert out.tokens == 5 + 6 + 7 + 8
    assert out.answer == "7"


def test_esc_without_a_unanimous_window_is_cons() -> None:
    traces = [trace("7", 5), trace("9", 6), trace("7", 7), trace(None, 8), trace(None, 9)]
    out = esc(traces, window=2)  # (7, 9), (7, None), (None): a missing answer never counts as agreement
    assert out.traces_started == 5
    assert out.tokens == cons_at_n(traces).tokens
    assert out.answer == "7"


def test_esc_window_five_on_ten_traces() -> None:
    first = [trace("4", 5)] * 4 + [trace("5", 5)]
    second = [trace("5", 6)] * 5
    out = esc(first + second, window=5)
    assert out.traces_started == 10 and out.tokens == 5 * 5 + 5 * 6
    assert out.answer == "5"  # 6 votes for 5 against 4
    assert esc(second + first, window=5).tokens == 30  # unanimous first window: stop at once


def test_esc_rejects_a_bad_window() -> None:
    with pytest.raises(ConfigError, match="window"):
        esc([trace("1", 5)], window=0)


def test_group_confidences_and_stop_position() -> None:
    assert group_confidences([-1.0, -3.0, -2.0], 2) == [-2.0, -2.5]
    assert group_confidences([-1.0, -3.0], 5) == [-2.0]  # shorter than a window: one group
    assert stop_position([-0.1, -0.1, -2.0, -2.0], 2, threshold=-0.5) == 3  # window [-0.1, -2.0] = -1.05
    assert stop_position([-0.1, -0.1, -0.1], 2, threshold=-0.5) is None


def deepconf_case() -> list[ReplayTrace]:
    return [
        trace("7", 4, [-0.1, -0.1, -0.1, -0.1]),  # warm-up, lowest group -0.1
        trace("9", 4, [-0.1, -1.0, -1.0, -0.1]),  # warm-up, lowest group -1.0
        trace("9", 5, [-0.2, -0.2, -2.0, -2.0, -0.2]),  # groups -0.2, -1.1: stopped after 3 tokens
        trace("7", 4, [-0.3, -0.3, -0.3, -0.3]),  # completes; 7 then holds all the weight: stop
        trace("9", 4, [-0.1, -0.1, -0.1, -0.1]),  # never started
    ]


def test_deepconf_online_hand_computed() -> None:
    """warm-up 2, window 2, keep_top 0.5: threshold = median(-0.1, -1.0) = -0.55. Warm-up trace 1 is
    below it and does not vote. Trace 2 falls below at its window ending on token 3 (stopped, 3 tokens),
    trace 3 completes and the vote is unanimous (consensus 1.0 >= 0.95), so trace 4 never starts:
    4 + 4 + 3 + 4 = 15 tokens, answer 7."""
    out = deepconf_online(deepconf_case(), warmup=2, window=2, keep_top=0.5)
    assert out.tokens == 15
    assert out.answer == "7"
    assert out.traces_started == 4 and out.traces_voting == 2


def test_deepconf_weights_by_confidence() -> None:
    # Two confident 7s against three hesitant 9s (all kept: keep_top=1.0, threshold = the minimum).
    traces = [trace("9", 4, [-0.9] * 4)] * 3 + [trace("7", 4, [-0.01] * 4)] * 2
    out = deepconf_online(traces, warmup=5, window=2, keep_top=1.0)
    assert 2 * math.exp(-0.01) > 3 * math.exp(-0.9)
    assert out.answer == "7" and out.tokens == 20


def test_deepconf_needs_logprobs() -> None:
    with pytest.raises(ConfigError, match="token_logprobs"):
        deepconf_online([trace("7", 5)])


def test_compare_at_equal_tokens_interpolates() -> None:
    curve = [{"tokens": 100.0, "accuracy": 0.5}, {"tokens": 200.0, "accuracy": 0.7}]
    got = compare_at_equal_tokens(curve, {"tokens": 150.0, "accuracy": 0.55})
    assert got is not None and got["deepprune_accuracy"] == pytest.approx(0.6)
    assert got["delta"] == pytest.approx(0.05)
    assert compare_at_equal_tokens(curve, {"tokens": 300.0, "accuracy": 0.5}) is None


def write_synthetic_file(path: Path) -> None:
    """Three questions, eight traces each, our JSONL format with token_logprobs; one generic line."""
    lines = []
    for q, (truth, wrong) in enumerate([("7", "9"), ("12", "4"), ("30", "31")]):
        traces = []
        for i in range(8):
            answer = wrong if i in (1, 5) else truth
            text = f"Step {i}: compute {q} + {i}. Then" + " w" * (3 + i) + f" The answer is {answer}"
            n = len(make_trace(text).pieces)
            lp = [-0.05 if answer == truth else -0.8] * n
            traces.append({"text": text, "token_logprobs": lp})
        lines.append({"question_id": f"syn-{q}", "question": f"Question {q}?", "ground_truth": truth, "traces": traces})
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")


def test_report_on_a_synthetic_file_with_logprobs(tmp_path: Path) -> None:
    f = tmp_path / "syn.jsonl"
    write_synthetic_file(f)
    questions = load_replay_questions([f])
    assert all(q.has_logprobs for q in questions)
    report = evaluate(questions, EvalConfig(n=6, runs=3, judge="numbers", policy="paper", truncate="tokens:4"))
    methods = report["methods"]
    for name in ("cons", "esc", "deepconf-low", "deepconf-high", "deepprune", "oracle", "deepprune-periodic"):
        assert 0.0 <= methods[name]["accuracy"] <= 1.0
        lo, hi = methods[name]["accuracy_ci95"]
        assert lo <= methods[name]["accuracy"] <= hi
    # 6 of 8 traces with 2 wrong: the truth always has >= 4 of 6 votes, so cons@6 is always right.
    assert methods["cons"]["accuracy"] == 1.0
    assert methods["cons"]["token_reduction"] == 0.0
    assert methods["oracle"]["tokens"] < methods["cons"]["tokens"]
    assert report["token_reduction"] == pytest.approx(1 - methods["deepprune"]["tokens"] / methods["cons"]["tokens"])
    saved = methods["cons"]["tokens"] - methods["deepprune"]["tokens"]
    oracle_saved = methods["cons"]["tokens"] - methods["oracle"]["tokens"]
    assert report["oracle_saving_fraction"] == pytest.approx(saved / oracle_saved)


def test_generic_trace_lines_get_extracted_answers(tmp_path: Path) -> None:
    f = tmp_path / "generic.jsonl"
    f.write_text(
        json.dumps(
            {"question": "Q?", "ground_truth": "5", "traces": ["so 2+3=5. The answer is 5.", "The answer is 6."]}
        )
    )
    (q,) = load_replay_questions([f])
    assert [t.answer for t in q.traces] == ["5", "6"]
    assert [t.correct for t in q.traces] == [True, False]
    assert cons_at_n(q.traces).tokens == sum(t.n_tokens for t in q.traces)
