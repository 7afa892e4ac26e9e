"""Fitting the ``blend`` judge: a non-negative logistic regression (scipy's L-BFGS-B).

Sample weights give every *dataset* (generator x task) the same total weight and balance the classes
within it, so 20 OVM questions with hundreds of samples each do not drown 369 date questions with ten.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from deepprune_agents.errors import ConfigError
from deepprune_agents.judges.blend import BLEND_FEATURES, BlendModel


def balanced_weights(datasets: Sequence[str], labels: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.float64]:
    """Weights with equal total mass per (dataset, class), normalised to mean 1."""
    ds = np.asarray(datasets)
    y = np.asarray(labels)
    w = np.zeros(y.shape[0], dtype=np.float64)
    cells = [(d, c) for d in np.unique(ds) for c in (0, 1)]
    for d, c in cells:
        m = (ds == d) & (y == c)
        if m.any():
            w[m] = 1.0 / m.sum()
    if not w.any():
        raise ConfigError("no training pairs to weight.")
    return w * (w.size / w.sum())


def fit_blend(
    x: npt.NDArray[np.floating[Any]],
    y: npt.NDArray[np.integer[Any]],
    sample_weight: npt.NDArray[np.floating[Any]] | None = None,
    *,
    l2: float = 0.1,
    truncation: str | None = None,
    exclude: Sequence[str] = (),
    features: tuple[str, ...] = BLEND_FEATURES,
) -> BlendModel:
    """Weighted logistic regression on standardised features with **non-negative** weights and an L2
    penalty ``l2`` (on the mean loss); the intercept is free. Returns the numpy-only BlendModel.

    Non-negative because every blend feature is a similarity: a fitted negative weight can only be a
    property of the training tasks (it inverted the blend on an unseen generator), never of "same
    answer". Deterministic (L-BFGS-B from zeros).

    ``exclude`` names columns of ``features`` to leave out: their weight is fixed at 0, so the
    judge never computes them (``exclude=("cosine",)`` gives a blend that needs no MiniLM forward pass).
    ``features`` names the columns of ``x`` (``BLEND_FEATURES``, or ``CONTEXT_FEATURES`` for ``context``)."""
    from scipy.optimize import minimize

    xs = np.array(x, dtype=np.float64)
    ys = np.asarray(y).astype(np.float64)
    if xs.ndim != 2 or xs.shape[0] != ys.shape[0] or xs.shape[0] == 0:
        raise ConfigError(f"fit_blend needs an (n, d) matrix and n labels (got {xs.shape} and {ys.shape}).")
    unknown = sorted(set(exclude) - set(features))
    if unknown or xs.shape[1] != len(features):
        raise ConfigError(
            f"x must be an (n, {len(features)}) matrix of {list(features)} and exclude name its columns "
            f"(got {xs.shape[1]} columns, exclude {list(exclude)})."
        )
    dropped = [features.index(f) for f in exclude]
    xs[:, dropped] = 0.0  # a constant column standardises to 0: the feature's values never reach the fit
    if np.unique(ys).size < 2:
        raise ConfigError("fit_blend needs both same-answer and different-answer pairs.")
    w = np.ones(ys.shape[0]) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    w = w / w.sum()
    mean = w @ xs
    scale = np.sqrt(w @ (xs - mean) ** 2)
    scale = np.where(scale < 1e-6, 1.0, scale)
    z = (xs - mean) / scale
    d = z.shape[1]

    def loss(p: npt.NDArray[np.float64]) -> tuple[float, npt.NDArray[np.float64]]:
        coef, b = p[:d], p[d]
        t = z @ coef + b
        per = ys * np.logaddexp(0.0, -t) + (1.0 - ys) * np.logaddexp(0.0, t)
        r = (1.0 / (1.0 + np.exp(-t)) - ys) * w
        grad = np.concatenate([z.T @ r + l2 * coef, [r.sum()]])
        return float(w @ per + 0.5 * l2 * coef @ coef), grad

    bounds = [(0.0, 0.0) if i in dropped else (0.0, None) for i in range(d)] + [(None, None)]
    res = minimize(loss, np.zeros(d + 1), jac=True, method="L-BFGS-B", bounds=bounds)
    if not np.all(np.isfinite(res.x)):
        raise ConfigError("fit_blend did not converge to finite weights.")
    return BlendModel(
        mean.astype(np.float32),
        scale.astype(np.float32),
        res.x[:d].astype(np.float32),
        float(res.x[d]),
        truncation,
        tuple(features),
    )
