"""The ``constant`` judge: the same score for every pair, i.e. a judge that carries no information.

Why ship a judge that knows nothing: it is the control every other judge is measured against on the
replay frontier. "How does accuracy degrade as the judge gets worse" ends here, and a policy's savings
that a constant judge also gets do not come from judging. With the default ``score=1.0`` every pair
clears any ``tau < 1``, so the greedy clustering puts all branches of a run into one cluster: the
``adaptive`` policy's thinning is then plain subsampling (the first ``keep_fraction`` of the branches to
reach the judge input keep running) and its Beta stop does the rest. ``score=0.0`` opens a cluster per
branch (no thinning at all). Costs nothing: no model, no parsing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from deepprune_agents.errors import ConfigError
from deepprune_agents.judges.base import TracePair


class ConstantJudge:
    """``score`` (default 1.0, "every pair agrees") for every pair, whatever the text."""

    name = "constant"
    needs_encoder = False

    def __init__(self, score: float = 1.0) -> None:
        if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
            raise ConfigError(f"the constant judge's score must be a number in [0, 1] (got {score!r}).")
        if not 0.0 <= float(score) <= 1.0:
            raise ConfigError(f"the constant judge's score must be in [0, 1] (got {score}).")
        self.score = float(score)

    def score_sync(self, pairs: Sequence[TracePair]) -> list[float]:
        return [self.score] * len(pairs)

    async def ascore(self, pairs: Sequence[TracePair]) -> list[float]:
        return self.score_sync(pairs)
