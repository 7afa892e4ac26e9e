"""Bootstrap confidence intervals over questions, the one resampling every report uses (pure numpy).

Questions are the unit: the runs of one question are not independent draws of the method's behaviour, so a CI
resamples whole questions, and two methods run on the same questions are resampled together (paired).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def bootstrap_ci(per_question: np.ndarray, reps: int, seed: int = 0) -> list[float]:
    """95% percentile CI of the mean over questions, resampling questions."""
    if len(per_question) < 2:
        m = float(per_question.mean()) if len(per_question) else math.nan
        return [m, m]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(per_question), size=(reps, len(per_question)))
    means = per_question[idx].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def paired_delta(
    per_question: np.ndarray, reference: np.ndarray, reps: int, seed: int = 0
) -> dict[str, float | int | list[float]]:
    """Accuracy delta (method - reference) with its paired bootstrap 95% CI over questions, and the number of
    questions behind it: both methods ran on the same draws, so the questions are resampled together (a
    question hard for both moves both means, not their difference)."""
    diff = np.asarray(per_question, dtype=np.float64) - np.asarray(reference, dtype=np.float64)
    return {
        "delta": float(diff.mean()) if len(diff) else math.nan,
        "ci95": bootstrap_ci(diff, reps, seed),
        "questions": len(diff),
    }


def paired_ratio(
    numerator: Sequence[float], denominator: Sequence[float], reps: int = 10_000, seed: int = 0
) -> dict[str, float | int | list[float]]:
    """sum(numerator) / sum(denominator) with its paired bootstrap 95% CI over questions: e.g. one method's
    tokens over another's on the same questions. A question costly for both moves both sums, not their ratio,
    so the questions are resampled together; the CI says whether a ratio near 1 is a difference or sampling."""
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    if num.shape != den.shape:
        raise ValueError(f"paired_ratio needs one value per question on both sides, got {num.shape} and {den.shape}")
    total = float(den.sum())
    ratio = float(num.sum()) / total if total else math.nan
    if len(num) < 2 or not total:
        return {"ratio": ratio, "ci95": [ratio, ratio], "questions": len(num)}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(num), size=(reps, len(num)))
    dens = den[idx].sum(axis=1)
    ratios = np.divide(num[idx].sum(axis=1), dens, out=np.full(reps, np.nan), where=dens > 0)
    lo, hi = np.nanpercentile(ratios, [2.5, 97.5])
    return {"ratio": ratio, "ci95": [float(lo), float(hi)], "questions": len(num)}
