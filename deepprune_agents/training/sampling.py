"""Oversampling of the minority class.

Whether "same answer" or "different answer" is the minority depends on the generator and the
question (26% of Llama-2 test pairs agree, 42% of Mistral's), so the minority is found from the labels
rather than assumed. Minority examples are repeated (every original kept, extra copies drawn without
replacement where possible) until ``minority / majority >= ratio``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from deepprune_agents.errors import ConfigError

IntArray = npt.NDArray[np.int64]


def oversample_indices(labels: Sequence[int] | npt.NDArray[np.integer], ratio: float, seed: int = 0) -> IntArray:
    """Indices into ``labels`` (every index at least once, shuffled) with the minority class repeated
    so that ``count(minority) >= ratio * count(majority)`` (rounded up).

    ``ratio`` in (0, 1]: 1.0 balances the classes. When the minority already meets the ratio, or one
    class is absent, the indices are just a permutation of ``range(len(labels))``.
    """
    if not 0.0 < ratio <= 1.0:
        raise ConfigError(f"oversampling ratio must lie in (0, 1] (got {ratio}); use 1.0 to balance classes.")
    y = np.asarray(labels).astype(np.int64)
    if y.ndim != 1:
        raise ConfigError("labels must be a 1-D sequence of 0/1.")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ConfigError("labels must be 0 or 1.")
    rng = np.random.default_rng(seed)
    idx = np.arange(y.size, dtype=np.int64)
    pos, neg = idx[y == 1], idx[y == 0]
    minority, majority = (pos, neg) if pos.size <= neg.size else (neg, pos)
    target = int(np.ceil(ratio * majority.size))
    extra_n = target - minority.size
    if minority.size == 0 or extra_n <= 0:
        return rng.permutation(idx)
    reps, rest = divmod(extra_n, minority.size)
    extra = np.concatenate([np.tile(minority, reps), rng.choice(minority, size=rest, replace=False)])
    return rng.permutation(np.concatenate([idx, extra]))


def class_counts(labels: Sequence[int] | npt.NDArray[np.integer]) -> tuple[int, int]:
    """(negatives, positives)."""
    y = np.asarray(labels)
    return int((y == 0).sum()), int((y == 1).sum())
