"""Training pipeline: pair builder, leakage-free splits, focal loss, oversampling, metrics, a tiny run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from deepprune_agents.errors import ConfigError
from deepprune_agents.trace_io import write_traces
from deepprune_agents.traces import QuestionTraces, Trace
from deepprune_agents.training.evaluate import at_threshold, auroc, metrics, tnr_at_fnr
from deepprune_agents.training.losses import cross_entropy_loss, focal_loss, make_loss
from deepprune_agents.training.pairs import (
    build_pairs,
    check_no_leakage,
    generator_of,
    question_folds,
    question_key,
    split_questions,
)
from deepprune_agents.training.sampling import class_counts, oversample_indices


def q(question: str, answers: list[str | None], source: str = "ovm_gsm8k_test_n5_llama7b-2-ep2") -> QuestionTraces:
    traces = [Trace(text=f"Step one uses {i} and {i * 2}. The answer is {a}", answer=a) for i, a in enumerate(answers)]
    return QuestionTraces(
        question_id=f"{source}:{question}", question=question, ground_truth="1", traces=traces, source=source
    )


# ---------------------------------------------------------------- pairs


def test_build_pairs_all_pairs_and_labels() -> None:
    answers = ["72", "72.0", "36", None, None]
    pairs = build_pairs([q("How many?", answers)])
    assert len(pairs) == math.comb(5, 2)
    by_ids = {(p.a.trace_id[-1], p.b.trace_id[-1]): p.label for p in pairs}
    assert by_ids[("0", "1")] == 1  # 72 == 72.0 under the vote's equality
    assert by_ids[("0", "2")] == 0
    assert by_ids[("3", "4")] == 0  # None agrees with nothing, not even None
    assert by_ids[("0", "3")] == 0
    assert sum(p.label for p in pairs) == 1


def test_build_pairs_truncates_and_samples_deterministically() -> None:
    questions = [q(f"question {k}", [str(i % 3) for i in range(12)]) for k in range(3)]
    pairs = build_pairs(questions, "tokens:5", max_traces=6, seed=3)
    assert len(pairs) == 3 * math.comb(6, 2)
    assert all(len(p.a.text.split()) < len(questions[0].traces[0].text.split()) for p in pairs)
    assert all(p.a.answer is not None for p in pairs)  # the full-trace answer is kept for the label
    again = build_pairs(questions, "tokens:5", max_traces=6, seed=3)
    assert [(p.a.trace_id, p.b.trace_id) for p in pairs] == [(p.a.trace_id, p.b.trace_id) for p in again]
    capped = build_pairs(questions, None, max_pairs=5, seed=0)
    assert len(capped) == 15
    with pytest.raises(ConfigError):
        build_pairs(questions, max_traces=1)


def test_tokens_truncation_counts_pieces() -> None:
    text = "Natalia sold 48 clips in April and then 24 more clips in May. The answer is 72"
    qt = QuestionTraces("x", "q", "72", [Trace(text=text, answer="72"), Trace(text=text, answer="72")], source="s")
    (pair,) = build_pairs([qt], "tokens:4")
    assert pair.a.tokens == 4
    assert pair.a.text.startswith("Natalia sold") and len(pair.a.text) < len(text)
    assert pair.label == 1


def test_generator_and_question_keys() -> None:
    a = q("Janet  has ducks?", ["1", "1"], "ovm_gsm8k_test_n500_llama7b-2-ep2")
    b = q("janet has ducks?", ["1", "1"], "ovm_gsm8k_test_n300_mistral7b-ep2")
    assert generator_of(a) == "llama7b-2-ep2"
    assert generator_of(b) == "mistral7b-ep2"
    assert question_key(a) == question_key(b)  # same question text from two files is one group


def test_split_questions_has_no_leakage() -> None:
    gens = ("ovm_gsm8k_test_n5_llama7b-2-ep2", "ovm_gsm8k_test_n5_mistral7b-ep2")
    questions = [q(f"question {k}", ["1", "1", "2"], src) for k in range(6) for src in gens]
    folds = question_folds(questions, k=3, seed=0)
    assert sorted(k for f in folds for k in f) == sorted({question_key(x) for x in questions})
    train, test = split_questions(questions, test_generators=["mistral7b-ep2"], test_questions=folds[0])
    assert train and test
    assert {generator_of(x) for x in train} == {"llama7b-2-ep2"}
    assert {generator_of(x) for x in test} == {"mistral7b-ep2"}
    assert not {question_key(x) for x in train} & {question_key(x) for x in test}
    check_no_leakage(build_pairs(train), build_pairs(test))
    # the model-only split keeps shared questions, and the check catches them
    train_m, test_m = split_questions(questions, test_generators=["mistral7b-ep2"])
    check_no_leakage(build_pairs(train_m), build_pairs(test_m), by=("generator",))
    with pytest.raises(ConfigError, match="group"):
        check_no_leakage(build_pairs(train_m), build_pairs(test_m))


# ---------------------------------------------------------------- losses


def test_focal_loss_matches_hand_computation() -> None:
    logits = torch.tensor([2.0, -1.0])
    targets = torch.tensor([1.0, 0.0])
    alpha, gamma = 0.25, 2.0
    p1 = 1 / (1 + math.exp(-2.0))  # p_t for the positive
    p2 = 1 - 1 / (1 + math.exp(1.0))  # p_t for the negative = 1 - sigmoid(-1)
    expected = [-alpha * (1 - p1) ** gamma * math.log(p1), -(1 - alpha) * (1 - p2) ** gamma * math.log(p2)]
    got = focal_loss(logits, targets, alpha=alpha, gamma=gamma, reduction="none")
    assert got.tolist() == pytest.approx(expected, rel=1e-5)
    assert float(focal_loss(logits, targets, alpha=alpha, gamma=gamma)) == pytest.approx(sum(expected) / 2, rel=1e-5)


def test_focal_reduces_to_ce_and_downweights_easy() -> None:
    logits = torch.tensor([3.0, 0.1, -2.0, 0.5])
    targets = torch.tensor([1.0, 1.0, 0.0, 0.0])
    ce = cross_entropy_loss(logits, targets, reduction="none")
    assert focal_loss(logits, targets, alpha=None, gamma=0.0, reduction="none").tolist() == pytest.approx(ce.tolist())
    fl = focal_loss(logits, targets, alpha=None, gamma=2.0, reduction="none")
    ratio = (fl / ce).tolist()
    assert ratio[0] < ratio[1]  # the confident correct positive is down-weighted more than the unsure one
    with pytest.raises(ConfigError):
        make_loss("hinge")
    with pytest.raises(ConfigError):
        focal_loss(logits, targets, gamma=-1.0)


# ---------------------------------------------------------------- oversampling


@pytest.mark.parametrize("ratio", [1.0, 0.5, 0.3])
def test_oversampling_reaches_ratio(ratio: float) -> None:
    labels = np.array([1] * 10 + [0] * 90)
    idx = oversample_indices(labels, ratio, seed=1)
    neg, pos = class_counts(labels[idx])
    assert neg == 90
    assert pos == math.ceil(ratio * 90)
    assert set(range(100)) <= set(idx.tolist())  # every original example is kept


def test_oversampling_finds_minority_and_is_noop_when_balanced() -> None:
    labels = np.array([1] * 80 + [0] * 20)  # here "different answer" is the minority
    neg, pos = class_counts(labels[oversample_indices(labels, 1.0)])
    assert (neg, pos) == (80, 80)
    balanced = np.array([0, 1] * 10)
    idx = oversample_indices(balanced, 0.5, seed=0)
    assert sorted(idx.tolist()) == list(range(20))
    assert oversample_indices(labels, 1.0, seed=4).tolist() == oversample_indices(labels, 1.0, seed=4).tolist()
    with pytest.raises(ConfigError):
        oversample_indices(labels, 1.5)


# ---------------------------------------------------------------- metrics


def test_auroc_against_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    s = np.round(rng.random(60), 1)  # many ties
    pos, neg = s[y == 1], s[y == 0]
    brute = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))
    assert auroc(y, s) == pytest.approx(brute)
    assert auroc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert math.isnan(auroc([1, 1], [0.2, 0.3]))


def test_tnr_at_fnr_and_threshold_metrics() -> None:
    y = np.array([1] * 10 + [0] * 10)
    s = np.concatenate([np.linspace(0.5, 0.95, 10), np.linspace(0.0, 0.9, 10)])
    tnr, thr = tnr_at_fnr(y, s, 0.2)
    assert np.mean(s[y == 1] < thr) <= 0.2
    assert tnr == pytest.approx(np.mean(s[y == 0] < thr))
    online = at_threshold(y, s, 0.5)
    assert online["tpr"] == pytest.approx(np.mean(s[y == 1] > 0.5))
    assert online["accuracy"] == pytest.approx(np.mean((s > 0.5) == (y == 1)))
    m = metrics(y, s)
    assert {"auroc", "tnr", "pairs", "tnr_online", "accuracy_online"} <= set(m)
    assert m["pairs"] == 20


# ---------------------------------------------------------------- tiny training run


def _toy_questions(n_q: int, n_t: int, seed: int, source: str) -> list[QuestionTraces]:
    """Traces whose first computed number decides the final answer: learnable from the prefix."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n_q):
        traces = []
        for _ in range(n_t):
            first = int(rng.choice([12, 15, 18]))
            more = first // 3
            text = f"We start with {first} apples and add {more} more, so {first} + {more} = {first + more}."
            traces.append(Trace(text=text + f" The answer is {first * 2}", answer=str(first * 2)))
        out.append(QuestionTraces(f"{source}:{k}", f"toy question {k}", None, traces, source=source))
    return out


def test_tiny_training_lowers_loss_and_learns(tmp_path: Path) -> None:
    from deepprune_agents.judges.trained import TrainedJudge
    from deepprune_agents.training.train import TrainConfig, encode_pairs, fit_head, head_scores, train_judge

    train_q = _toy_questions(4, 8, seed=0, source="toy_n8_genA")
    pairs = build_pairs(train_q, "words:40")
    data = encode_pairs(pairs)
    cfg = TrainConfig(truncation="words:40", epochs=15, batch_size=32, lr=5e-3, seed=0)
    head, history = fit_head(data, cfg)
    assert history[-1] < history[0]
    scores = head_scores(head, data)
    assert auroc(data.labels, scores) > 0.9
    # determinism: same seed, same losses
    _, history2 = fit_head(data, cfg)
    assert history2 == pytest.approx(history)

    # end to end through files: train_judge writes a loadable judge with provenance
    f = tmp_path / "toy.jsonl"
    write_traces(f, train_q)
    out = tmp_path / "judge"
    prov = train_judge([f], out, TrainConfig(truncation="words:40", epochs=3, batch_size=32), progress=False)
    assert (out / "provenance.json").is_file() and prov["pairs"] == len(pairs)
    assert prov["data"][0]["file"] == "toy.jsonl" and len(prov["data"][0]["sha256"]) == 64
    judge = TrainedJudge(weights_dir=str(out))
    assert judge.truncation == "words:40"
    a, b = pairs[0].a, pairs[0].b
    (s,) = judge.score_sync([(a, b)])
    assert 0.0 <= s <= 1.0


async def test_shipped_judge_loads_offline_and_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    from deepprune_agents.judges import get_judge
    from deepprune_agents.judges.trained import SHIPPED_WEIGHTS
    from deepprune_agents.traces import PartialTrace

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    assert (SHIPPED_WEIGHTS / "head.safetensors").is_file()
    size = sum(p.stat().st_size for p in SHIPPED_WEIGHTS.iterdir())
    assert size < 10 * 1024 * 1024
    judge = get_judge("trained")
    same = PartialTrace("She has 16 - 3 - 4 = 9 eggs left, and sells them for 9 * 2 = $18")
    same2 = PartialTrace("16 - 3 - 4 = 9 eggs remain. 9 * 2 = $18 per day")
    other = PartialTrace("She uses 3 + 4 = 7 eggs, so 16 + 7 = 23 eggs, and 23 * 2 = $46")
    scores = await judge.ascore([(same, same2), (same, other), (same2, same)])
    s_same, s_other, s_rev = scores
    assert all(0.0 <= x <= 1.0 for x in scores)
    assert s_same > s_other
    assert s_rev == pytest.approx(s_same, abs=1e-5)  # symmetric by construction


def test_pairs_from_shared_data(shared_data: Path) -> None:
    from deepprune_agents.trace_io import load_traces

    files = sorted((shared_data / "traces").glob("ovm_gsm8k_train_n100_*.jsonl"))
    if not files:
        pytest.skip(f"no ovm_gsm8k_train_n100_*.jsonl under {shared_data / 'traces'}")
    questions = load_traces(files)
    pairs = build_pairs(questions, "tokens:32", max_traces=20, seed=0)
    assert len(pairs) == len(questions) * math.comb(20, 2)
    rate = np.mean([p.label for p in pairs])
    assert 0.05 < rate < 0.95  # both classes present on real data
    full_texts = {t.text for qt in questions for t in qt.traces}
    assert all(any(full.startswith(p.a.text) for full in full_texts) for p in pairs[:50])
    assert {p.generator for p in pairs} == {"llama7b-2-ep2", "mistral7b-ep2"}
