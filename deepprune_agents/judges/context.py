"""The ``context`` judge: the lexical blend plus the run's context (no MiniLM, microseconds per pair).

Why: two 32-token prefixes alone say little about whether their branches will agree; the run's other
branches say how contested the question is and which branches are outliers (``judges/run_context.py``).
The judge is the ``blend`` judge's calibrated non-negative logistic regression over
``CONTEXT_FEATURES``: number and word overlap of the pair, the run's mean of each, and the less central
member's centrality for each. Measured by ``bench/judge_eval.py`` (docs/judge_results.md).

Weights: ``weights/context/blend.json`` (+ ``provenance.json`` naming every training file and question),
written by ``python bench/judge_eval.py --ship``.

The policies pass the run (``RunAwareJudge.ascore_in_run``): every branch judged so far, at the pairs'
truncation. Plain ``ascore`` (a caller outside a policy) takes the distinct branches of its batch as the
run, so score one run's pairs per call there.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from deepprune_agents.errors import JudgeError
from deepprune_agents.judges.base import TracePair
from deepprune_agents.judges.blend import BlendModel, load_blend
from deepprune_agents.judges.features import TextInfo
from deepprune_agents.judges.run_context import CONTEXT_FEATURES, RunContext, context_features, run_context
from deepprune_agents.traces import PartialTrace

SHIPPED_WEIGHTS = Path(__file__).resolve().parent / "weights" / "context"
#: Runs above this many branches get their context computed off the event loop (O(N x CONTEXT_CAP)).
_THREAD_ABOVE = 256


class ContextJudge:
    """P(same final answer) from the pair's lexical overlap and its place in the run."""

    name = "context"
    INFO_CACHE = 8192  # per-text parses kept between calls (cleared when full)

    def __init__(self, weights_dir: str | None = None) -> None:
        self.weights_dir = Path(weights_dir) if weights_dir else SHIPPED_WEIGHTS
        self.model: BlendModel = load_blend(self.weights_dir, CONTEXT_FEATURES)
        self._info: dict[str, TextInfo] = {}
        self._last: tuple[tuple[str, ...], RunContext] | None = None
        self._lock = threading.Lock()

    @property
    def truncation(self) -> str | None:
        return self.model.truncation

    def _context(self, texts: tuple[str, ...]) -> RunContext:
        """The run's context, computed once per run: every placement of a policy step passes the same run."""
        last = self._last
        if last is not None and last[0] == texts:
            return last[1]
        ctx = run_context(texts, self._info)
        self._last = (texts, ctx)
        return ctx

    def score_in_run(self, pairs: Sequence[TracePair], run: Sequence[PartialTrace]) -> list[float]:
        """Blocking scorer of ``pairs`` in ``run`` (the pairs' own branches are added when missing)."""
        if not pairs:
            return []
        probs = self.model.predict(self.features_in_run(pairs, run))
        if not np.all(np.isfinite(probs)):
            raise JudgeError("the context judge produced non-finite scores; its weights are corrupt.")
        return [float(p) for p in probs]

    def features_in_run(self, pairs: Sequence[TracePair], run: Sequence[PartialTrace]) -> npt.NDArray[np.float64]:
        """The model's input rows of ``pairs`` in ``run``: ``CONTEXT_FEATURES`` (a variant judge measured by a
        bench appends its own columns here)."""
        seen = {(t.trace_id, t.text) for t in run}
        texts = [t.text for t in run]
        for pair in pairs:
            for t in pair:
                if (t.trace_id, t.text) not in seen:
                    seen.add((t.trace_id, t.text))
                    texts.append(t.text)
        with self._lock:
            if len(self._info) > self.INFO_CACHE:
                self._info.clear()
            ctx = self._context(tuple(texts))
            return context_features([(a.text, b.text) for a, b in pairs], ctx, self._info)

    def score_sync(self, pairs: Sequence[TracePair]) -> list[float]:
        """Blocking scorer with the batch's distinct branches as the run (see the module doc)."""
        return self.score_in_run(pairs, [])

    async def ascore(self, pairs: Sequence[TracePair]) -> list[float]:
        return self.score_sync(pairs)

    async def ascore_in_run(self, pairs: Sequence[TracePair], run: Sequence[PartialTrace]) -> list[float]:
        if len(run) > _THREAD_ABOVE:
            return await asyncio.to_thread(self.score_in_run, pairs, run)
        return self.score_in_run(pairs, run)
