"""The number-overlap heuristic: Jaccard similarity of the numbers written in the two prefixes.

On GSM8K-style traces the intermediate results *are* the reasoning: two branches that computed the
same quantities early tend to end on the same answer. It is the baseline a trained judge must beat
(measured AUROC ~0.72 at 20 words on Mistral GSM8K pairs) and costs microseconds per pair.
"""

from __future__ import annotations

import re
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
    """Jaccard overlap of the number sets of the two prefixes; 0.5 when neither has a number."""

    name = "numbers"

    def score_sync(self, pairs: Sequence[TracePair]) -> list[float]:
        cache: dict[str, frozenset[str]] = {}

        def nums(text: str) -> frozenset[str]:
            s = cache.get(text)
            if s is None:
                s = cache[text] = number_set(text)
            return s

        return [jaccard(nums(a.text), nums(b.text)) for a, b in pairs]

    async def ascore(self, pairs: Sequence[TracePair]) -> list[float]:
        return self.score_sync(pairs)
