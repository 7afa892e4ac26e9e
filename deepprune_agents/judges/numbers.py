"""The number-overlap heuristic: Jaccard similarity of the numbers written in the two prefixes.

On GSM8K-style traces the intermediate results *are* the reasoning: two branches that computed the
same quantities early tend to end on the same answer. It is the baseline a trained judge must beat
(measured AUROC ~0.72 at 20 words on Mistral GSM8K pairs) and costs microseconds per pair.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

from deepprune_agents.judges.base import TracePair

_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:,\d{3})*(?:\.\d+)?|(?<![\w.])-?\.\d+")


def _canonical(tok: str) -> str:
    """'1,000' == '1000' and '3.50' == '3.5': the same quantity written two ways counts once."""
    raw = tok.replace(",", "")
    try:
        d = Decimal(raw).normalize()
    except InvalidOperation:  # pragma: no cover - the regex only matches numbers
        return raw
    s = format(d, "f")
    return "0" if s in ("-0", "0") else s


def number_set(text: str) -> frozenset[str]:
    """Canonical forms of all numbers in ``text``."""
    return frozenset(_canonical(m.group(0)) for m in _NUMBER.finditer(text))


def jaccard(a: frozenset[str], b: frozenset[str], empty: float = 0.5) -> float:
    """|a ∩ b| / |a ∪ b|; ``empty`` when both sets are empty (no evidence either way)."""
    if not a and not b:
        return empty
    return len(a & b) / len(a | b)


class NumberOverlapJudge:
    """Jaccard overlap of the number sets of the two prefixes; 0.5 when neither has a number.

    Number sets are cached across calls: the greedy clustering compares every new branch with up to K1
    members of every cluster, so the same member prefixes come back in every call (at N = 512 a round
    re-parsed ~160k prefixes without the cache, seconds on the event loop)."""

    name = "numbers"

    def __init__(self, cache_size: int = 16384) -> None:
        self.cache_size = max(0, cache_size)
        self._cache: OrderedDict[str, frozenset[str]] = OrderedDict()

    def _nums(self, text: str) -> frozenset[str]:
        found = self._cache.get(text)
        if found is None:
            found = self._cache[text] = number_set(text)
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return found

    def score_sync(self, pairs: Sequence[TracePair]) -> list[float]:
        return [jaccard(self._nums(a.text), self._nums(b.text)) for a, b in pairs]

    async def ascore(self, pairs: Sequence[TracePair]) -> list[float]:
        return self.score_sync(pairs)
