"""Judge metrics: AUROC, TNR at the paper's operating point (FNR = 0.2), TNR/accuracy at the online
threshold, and latency per pair.

TNR at FNR 0.2 is the paper's headline because it is what pruning buys: keep 80% of the pairs that
*would* agree merged (FNR 0.2) and count how many disagreeing pairs are correctly kept apart. Metric code
is numpy, and AUROC is scikit-learn's (tied scores count half, the Mann-Whitney convention).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from deepprune_agents.errors import ConfigError
from deepprune_agents.judges.base import Judge, RunAwareJudge
from deepprune_agents.traces import PartialTrace
from deepprune_agents.training.pairs import PairExample

ArrayLike = Sequence[float] | npt.NDArray[np.floating] | npt.NDArray[np.integer]


def _arrays(labels: ArrayLike, scores: ArrayLike) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    y = np.asarray(labels).astype(np.int64)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ConfigError(f"labels and scores must be 1-D of equal length (got {y.shape} and {s.shape}).")
    return y, s


def auroc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve (scikit-learn's; tied scores count half); NaN when one class is absent."""
    from sklearn.metrics import roc_auc_score  # imported on use: it costs a second at CLI start-up

    y, s = _arrays(labels, scores)
    if np.unique(y).size < 2:  # one class only (or none): sklearn would warn and return NaN anyway
        return float("nan")
    return float(roc_auc_score(y, s))


def tnr_at_fnr(labels: ArrayLike, scores: ArrayLike, fnr: float = 0.2) -> tuple[float, float]:
    """(TNR, threshold) at the highest threshold whose FNR is <= ``fnr`` ("same" iff score >= thr)."""
    y, s = _arrays(labels, scores)
    pos, neg = np.sort(s[y == 1]), s[y == 0]
    if pos.size == 0 or neg.size == 0:
        return float("nan"), float("nan")
    # At most floor(fnr * n_pos) positives may fall strictly below the threshold.
    thr = float(pos[int(np.floor(fnr * pos.size + 1e-9))])
    return float((neg < thr).mean()), thr


def at_threshold(labels: ArrayLike, scores: ArrayLike, threshold: float = 0.5) -> dict[str, float]:
    """TNR, TPR and accuracy when a pair is called "same answer" iff score > threshold (online rule)."""
    y, s = _arrays(labels, scores)
    pred = s > threshold
    tnr = float((~pred[y == 0]).mean()) if (y == 0).any() else float("nan")
    tpr = float(pred[y == 1].mean()) if (y == 1).any() else float("nan")
    acc = float((pred == (y == 1)).mean()) if y.size else float("nan")
    return {"tnr": tnr, "tpr": tpr, "accuracy": acc}


def within_question_auroc(
    labels: ArrayLike, groups: Sequence[str] | npt.NDArray[Any], scores: ArrayLike
) -> float | None:
    """Mean AUROC over the questions (``groups``) whose pairs carry both labels; None when none do.

    What a pruning decision uses: a policy compares branches of *one* run, so knowing how contested each
    question is, which a pooled AUROC rewards, does not tell it which branch to cancel."""
    y, s = _arrays(labels, scores)
    g = np.asarray(groups)
    per = []
    for q in np.unique(g):
        m = g == q
        if 0 < y[m].sum() < m.sum():
            per.append(auroc(y[m], s[m]))
    return float(np.mean(per)) if per else None


def metrics(labels: ArrayLike, scores: ArrayLike, *, threshold: float = 0.5, fnr: float = 0.2) -> dict[str, Any]:
    """All scalar metrics of a scored pair set (``tnr`` is TNR at FNR=``fnr``)."""
    y, s = _arrays(labels, scores)
    tnr, thr = tnr_at_fnr(y, s, fnr)
    online = at_threshold(y, s, threshold)
    return {
        "auroc": auroc(y, s),
        "tnr": tnr,
        "tnr_threshold": thr,
        "fnr_target": fnr,
        "online_threshold": threshold,
        "tnr_online": online["tnr"],
        "tpr_online": online["tpr"],
        "accuracy_online": online["accuracy"],
        "pairs": int(y.size),
        "positives": int(y.sum()),
    }


async def score_pairs(
    judge: Judge, pairs: Sequence[PairExample], batch_size: int = 64
) -> tuple[npt.NDArray[np.float64], float]:
    """Scores of ``judge`` on ``pairs`` in batches, and the wall time in seconds.

    A judge that reads the run (``RunAwareJudge``) is called one question of one generator at a time, with
    that question's traces among ``pairs`` as the run (the traces sampled for it: a run of that many
    branches), so that no batch mixes two questions' contexts."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1 (got {batch_size}).")
    out = np.zeros(len(pairs), dtype=np.float64)
    t0 = time.perf_counter()
    for idx, run in _runs(judge, pairs):
        for s in range(0, len(idx), batch_size):
            rows = idx[s : s + batch_size]
            batch = [pairs[i].pair for i in rows]
            if run is not None and isinstance(judge, RunAwareJudge):
                scores = await judge.ascore_in_run(batch, run)
            else:
                scores = await judge.ascore(batch)
            if len(scores) != len(batch):
                raise ConfigError(f"judge {judge.name!r} returned {len(scores)} scores for {len(batch)} pairs.")
            out[rows] = scores
    return out, time.perf_counter() - t0


def _runs(judge: Judge, pairs: Sequence[PairExample]) -> list[tuple[list[int], list[PartialTrace] | None]]:
    """(pair indices, run) per question and generator for a run-aware judge; one group, no run, otherwise."""
    if not isinstance(judge, RunAwareJudge):
        return [(list(range(len(pairs))), None)]
    rows: dict[tuple[str, str], list[int]] = {}
    members: dict[tuple[str, str], dict[tuple[str, str], PartialTrace]] = {}
    for i, p in enumerate(pairs):
        key = (p.generator, p.group)
        rows.setdefault(key, []).append(i)
        for t in p.pair:
            members.setdefault(key, {}).setdefault((t.trace_id, t.text), t)
    return [(rows[k], list(members[k].values())) for k in rows]


async def cold_latency_ms(judge: Judge, pairs: Sequence[PairExample], batch_size: int = 64) -> float | None:
    """ms/pair on one batch of pairs whose texts are all distinct, with the judge's caches cleared:
    the worst case (every text new), as opposed to the amortised ``ms_per_pair``."""
    seen: set[str] = set()
    batch = []
    for p in pairs:
        if p.a.text not in seen and p.b.text not in seen and p.a.text != p.b.text:
            seen.update((p.a.text, p.b.text))
            batch.append(p.pair)
            if len(batch) == batch_size:
                break
    if not batch:
        return None
    clear = getattr(judge, "clear_cache", None)
    if callable(clear):
        clear()
    t0 = time.perf_counter()
    await judge.ascore(batch)
    return (time.perf_counter() - t0) * 1000.0 / len(batch)


async def evaluate_judge(
    judge: Judge,
    pairs: Sequence[PairExample],
    *,
    batch_size: int = 64,
    threshold: float = 0.5,
    fnr: float = 0.2,
    cold: bool = True,
) -> dict[str, Any]:
    """The evaluation JSON: ``auroc``, ``tnr`` (at FNR=0.2), ``auroc_within_question`` (the mean AUROC over the
    questions whose pairs carry both labels: what a pruning decision uses), online-threshold metrics, ``ms_per_pair``
    (amortised over the test pairs from a cleared cache, batches of ``batch_size``), ``pairs``,
    ``judge``, and ``ms_per_pair_cold`` (all texts new)."""
    if not pairs:
        raise ConfigError("no test pairs: the test files need questions with at least two traces.")
    cold_ms = await cold_latency_ms(judge, pairs, batch_size) if cold else None
    clear = getattr(judge, "clear_cache", None)
    if callable(clear):
        clear()
    scores, seconds = await score_pairs(judge, pairs, batch_size)
    labels = np.fromiter((p.label for p in pairs), dtype=np.int64, count=len(pairs))
    out = {"judge": judge.name, **metrics(labels, scores, threshold=threshold, fnr=fnr)}
    # the ranking a policy uses: branches of one run (one question of one generator) against each other
    out["auroc_within_question"] = within_question_auroc(labels, [f"{p.generator}\x00{p.group}" for p in pairs], scores)
    out["ms_per_pair"] = seconds * 1000.0 / len(pairs)
    out["ms_per_pair_cold"] = cold_ms
    out["batch_size"] = batch_size
    return out
