"""The blend judge's pure parts: features, the non-negative fit, weights I/O, and the provenance check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deepprune_agents.errors import ConfigError
from deepprune_agents.judges._encoder import pair_cosines
from deepprune_agents.judges.blend import BLEND_FEATURES, BlendModel, blend_features, load_blend, save_blend
from deepprune_agents.traces import QuestionTraces, Trace
from deepprune_agents.training.blend import balanced_weights, fit_blend
from deepprune_agents.training.pairs import question_key
from deepprune_agents.training.provenance import training_overlap


def test_features_are_symmetric_and_exact() -> None:
    a, b = "48 / 2 = 24 clips so", "48 / 2 = 26 clips so"
    x = blend_features([(a, b), (b, a), (a, a)], np.array([0.9, 0.9, 1.0]))
    assert x.shape == (3, len(BLEND_FEATURES))
    assert np.allclose(x[0], x[1])
    assert x[0, 0] == pytest.approx(2 / 4)  # {48, 2, 24} vs {48, 2, 26}
    assert x[2, 0] == 1.0 and x[2, 1] == 1.0


def test_identical_texts_tie_at_cosine_one_whatever_the_float_noise() -> None:
    # float32 unit vectors dot to 1 +- 1e-7 depending on kernels and thread count; identical inputs must tie,
    # or that noise orders them (the date traces' boilerplate openings: AUROC 0.526 on one machine, 0.480 on another)
    u = np.array([[0.6, 0.8], [1.0, 0.0], [0.6, 0.8]], dtype=np.float32)
    v = np.array([[0.6000001, 0.7999999], [0.0, 1.0], [0.8, 0.6]], dtype=np.float32)
    cos = pair_cosines([("same", "same"), ("a", "b"), ("c", "d")], u, v)
    assert cos.dtype == np.float64
    assert cos[0] == 1.0 and cos[1] == 0.0 and cos[2] == pytest.approx(0.96)


def test_fit_is_non_negative_and_ranks_by_similarity() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    x = np.column_stack([y + rng.normal(0, 0.5, 400), rng.normal(0, 1, 400), -(y + rng.normal(0, 0.5, 400))])
    m = fit_blend(x, y)
    assert (m.coef >= 0).all()
    assert m.coef[2] == 0.0  # a similarity that anti-correlates is ignored, never inverted
    p = m.predict(x)
    assert p[y == 1].mean() > p[y == 0].mean() and ((p >= 0) & (p <= 1)).all()
    with pytest.raises(ConfigError):
        fit_blend(x, np.zeros(400, dtype=int))


def test_excluded_feature_gets_weight_zero_and_the_rest_fit_as_without_it() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    x = np.column_stack([y + rng.normal(0, 0.5, 400), y + rng.normal(0, 1.0, 400), y + rng.normal(0, 0.3, 400)])
    full, lexical = fit_blend(x, y), fit_blend(x, y, exclude=("cosine",))
    assert full.coef[2] > 0 and full.uses_cosine
    assert lexical.coef[2] == 0.0 and not lexical.uses_cosine
    junk = x.copy()
    junk[:, 2] = rng.normal(0, 5, 400)  # whatever the cosine column holds, a lexical blend scores the same
    assert np.array_equal(lexical.predict(x), lexical.predict(junk))
    two = fit_blend(x[:, :2], y, features=("num_jaccard", "word_jaccard"))  # the same fit, two features
    assert np.allclose(lexical.coef[:2], two.coef, atol=1e-4)
    assert lexical.intercept == pytest.approx(two.intercept, abs=1e-4)
    with pytest.raises(ConfigError, match="exclude"):
        fit_blend(x, y, exclude=("length",))
    with pytest.raises(ConfigError, match="exclude"):
        fit_blend(x[:, :2], y, exclude=("cosine",))
    with pytest.raises(ConfigError, match="matrix"):
        fit_blend(x[:, :2], y)  # two columns are not the three BLEND_FEATURES


def test_a_blend_without_cosine_never_runs_the_encoder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from deepprune_agents.judges.blend import BlendJudge
    from deepprune_agents.traces import PartialTrace as P

    coef = np.array([1.0, 0.5, 0.0], np.float32)
    save_blend(BlendModel(np.zeros(3, np.float32), np.ones(3, np.float32), coef, -0.5, "tokens:32"), tmp_path)
    judge = BlendJudge(weights_dir=str(tmp_path))

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("MiniLM must not run for a blend whose cosine weight is 0")

    monkeypatch.setattr(judge._encoder, "encode", boom)
    monkeypatch.setattr(judge._encoder, "_get_model", boom)
    assert judge.needs_encoder is False
    a, b, c = "48 / 2 = 24 clips so", "48 / 2 = 26 clips so", "She sells 9 eggs"
    scores = judge.score_sync([(P(a), P(b)), (P(a), P(c)), (P(a), P(a))])
    x = blend_features([(a, b), (a, c), (a, a)], np.zeros(3))
    assert scores == pytest.approx(list(judge.model.predict(x)))
    assert scores[2] > scores[0] > scores[1]


def test_balanced_weights_equalise_datasets_and_classes() -> None:
    w = balanced_weights(["a"] * 8 + ["b"] * 2, np.array([1, 1, 1, 1, 1, 1, 0, 0, 1, 0]))
    ds = np.array(["a"] * 8 + ["b"] * 2)
    y = np.array([1, 1, 1, 1, 1, 1, 0, 0, 1, 0])
    cells = [w[(ds == d) & (y == c)].sum() for d in "ab" for c in (0, 1)]
    assert np.allclose(cells, cells[0]) and w.mean() == pytest.approx(1.0)


def test_weights_round_trip_and_reject_garbage(tmp_path: Path) -> None:
    m = BlendModel(np.zeros(3, np.float32), np.ones(3, np.float32), np.array([1, 0, 2], np.float32), -0.5, "tokens:32")
    save_blend(m, tmp_path, {"judge": "blend"})
    back = load_blend(tmp_path)
    assert np.allclose(back.coef, m.coef) and back.intercept == -0.5 and back.truncation == "tokens:32"
    data = json.loads((tmp_path / "blend.json").read_text())
    data["coef"] = [1.0]
    (tmp_path / "blend.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="malformed"):
        load_blend(tmp_path)
    with pytest.raises(ConfigError, match="no blend judge"):
        load_blend(tmp_path / "absent")


def _q(qid: str, text: str) -> QuestionTraces:
    return QuestionTraces(qid, text, "1", [Trace("a")], "src")


def test_training_overlap_by_question_and_by_file(tmp_path: Path) -> None:
    seen, unseen = _q("s:1", "Seen question?"), _q("s:2", "New question?")
    prov = {"data": [{"files": [], "question_ids": [], "question_keys": [question_key(seen)]}]}
    assert training_overlap(prov, {"t.jsonl": [seen, unseen]}) == {"files": [], "questions": 1, "of": 2}
    assert training_overlap(prov, {"t.jsonl": [unseen]}) is None
    f = tmp_path / "train.jsonl"
    f.write_text("x\n")
    from deepprune_agents.training.train import file_digest

    whole = {"data": [{"file": "train.jsonl", "sha256": file_digest(f)}]}
    assert training_overlap(whole, {str(f): [unseen, unseen]}) == {"files": ["train.jsonl"], "questions": 2, "of": 2}
    assert training_overlap(None, {str(f): [unseen]}) is None
