"""Cheap, symmetric hand features of a pair of partial traces (pure; used by the ``trained`` judge).

On math traces the early *quantities* carry most of the signal (two branches that computed the same
intermediate results tend to end on the same answer), which sentence embeddings blur: "48 / 2 = 24"
and "48 / 2 = 26" embed almost identically. These features give the head exact number overlap, the
overlap of *results* (numbers right after '=' or closing a ``<<...>>`` calculator call), and
how far the two texts run identically. All are symmetric in (a, b) so the judge is too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from deepprune_agents.judges.numbers import _NUMBER, _canonical, jaccard

FEATURE_NAMES: tuple[str, ...] = (
    "num_jaccard",
    "num_inter",
    "num_union_log",
    "num_min_count",
    "num_max_count",
    "res_jaccard",
    "res_inter",
    "res_any",
    "seq_prefix_frac",
    "last_num_equal",
    "word_jaccard",
    "common_prefix_frac",
    "len_ratio",
    "len_min_log",
    "identical",
)

_RESULT = re.compile(r"(?:=|>>)\s*\$?\s*(-?\d+(?:,\d{3})*(?:\.\d+)?|-?\.\d+)")
_WORD = re.compile(r"\w+")


class TextInfo:
    """Per-text parse, computed once per distinct text and reused across all its pairs."""

    __slots__ = ("num_seq", "nums", "results", "word_set", "words")

    def __init__(self, text: str) -> None:
        self.num_seq = [_canonical(m.group(0)) for m in _NUMBER.finditer(text)]
        self.nums = frozenset(self.num_seq)
        self.results = frozenset(_canonical(m.group(1)) for m in _RESULT.finditer(text))
        self.words = [w.lower() for w in _WORD.findall(text)]
        self.word_set = frozenset(self.words)


def _common_prefix(a: Sequence[str], b: Sequence[str]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def pair_features(a: TextInfo, b: TextInfo) -> list[float]:
    """The ``FEATURE_NAMES`` values of one pair (order matters: it is the head's input layout)."""
    inter = len(a.nums & b.nums)
    union = len(a.nums | b.nums)
    res_inter = len(a.results & b.results)
    seq_min = min(len(a.num_seq), len(b.num_seq))
    len_a, len_b = len(a.words), len(b.words)
    len_min, len_max = min(len_a, len_b), max(len_a, len_b)
    return [
        jaccard(a.nums, b.nums),
        float(inter) / 5.0,
        float(np.log1p(union)),
        min(len(a.nums), len(b.nums)) / 5.0,
        max(len(a.nums), len(b.nums)) / 5.0,
        jaccard(a.results, b.results),
        float(res_inter) / 3.0,
        1.0 if (a.results or b.results) else 0.0,
        _common_prefix(a.num_seq, b.num_seq) / seq_min if seq_min else 0.5,
        1.0 if a.num_seq and b.num_seq and a.num_seq[-1] == b.num_seq[-1] else 0.0,
        jaccard(a.word_set, b.word_set),
        _common_prefix(a.words, b.words) / len_min if len_min else 0.0,
        len_min / len_max if len_max else 1.0,
        float(np.log1p(len_min)),
        1.0 if a.words == b.words and a.num_seq == b.num_seq else 0.0,
    ]


def features_for(pairs: Sequence[tuple[str, str]], cache: dict[str, TextInfo] | None = None) -> npt.NDArray[np.float32]:
    """A (len(pairs), len(FEATURE_NAMES)) float32 matrix; parses each distinct text once."""
    info = cache if cache is not None else {}

    def get(t: str) -> TextInfo:
        x = info.get(t)
        if x is None:
            x = info[t] = TextInfo(t)
        return x

    out = np.empty((len(pairs), len(FEATURE_NAMES)), dtype=np.float32)
    for i, (ta, tb) in enumerate(pairs):
        out[i] = pair_features(get(ta), get(tb))
    return out
