"""The oracle judge: looks at the *recorded* final answers. Only meaningful on offline traces.

It is the upper bound of every learned judge (a perfect predictor of answer equivalence), so replays
with it separate the loss due to the judge from the loss due to the clustering/vote policy.
"""

from __future__ import annotations

from collections.abc import Sequence

from deepprune_agents.judges.base import TracePair


class OracleJudge:
    """1.0 when both traces carry an answer and the answers are equal (vote equality), else 0.0."""

    name = "oracle"

    def score_sync(self, pairs: Sequence[TracePair]) -> list[float]:
        from deepprune_agents.answers import answers_equal

        out = []
        for a, b in pairs:
            if a.answer is None or b.answer is None:
                out.append(0.0)
            else:
                out.append(1.0 if answers_equal(a.answer, b.answer) else 0.0)
        return out

    async def ascore(self, pairs: Sequence[TracePair]) -> list[float]:
        return self.score_sync(pairs)
