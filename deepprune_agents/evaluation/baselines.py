"""The methods DeepPrune is measured against, as pure functions over one draw of recorded traces.

Every function takes the N traces of one draw in sampling order and returns a ``MethodOutcome``: the
voted answer, the tokens the method generated (in ``simple_tokenize`` pieces, the replay server's unit,
so the figures compare with the simulator's), and its wall time in tokens: when the answer is known, at
equal token speed, the traces of a batch starting together (sequential methods add up their batches).
Answers are the engine's (``extract_answer``).

* ``cons_at_n``: plain self-consistency: all N traces to the end, majority vote.
* ``subsample``: random subsampling, cons@k for k < N: k of the N traces, chosen at random (seeded), to
  the end. What cancelling branches blindly (a quota, whatever they say) amounts to.
* ``esc``: Early-Stopping Self-Consistency (Li et al., ICLR 2024): sample in windows of ``window``
  traces; stop after the first window whose answers are all equal (zero entropy); majority vote over
  everything sampled.
* ``adaptive_consistency``: Adaptive-Consistency (Aggarwal et al., EMNLP 2023): sample one trace at a
  time and stop once the Beta posterior gives the leading answer P(majority) >= ``confidence`` (0.95, the
  paper's; the same rule the ``adaptive`` policy applies to parallel streams, without judge or thinning).
* ``deepconf_online``: DeepConf online (Fu et al. 2025), for trace files with token log-probabilities.
  Warm-up traces run to the end and set a threshold (a percentile of their lowest group confidence);
  each later trace is stopped as soon as the confidence of its last ``window`` tokens falls below it,
  and sampling stops once the confidence-weighted vote reaches ``consensus``. Recorded files carry only
  the sampled token's log-probability, not the top-k the paper averages, so a token's confidence here is
  its log-probability (higher = more confident; the paper's "mean negative top-k log-prob" ranks
  tokens the same way when the sampled token dominates) and a trace's vote weight is
  ``exp(mean log-prob)``. GSM8K traces are ~100 tokens, so the default window is 32 tokens instead
  of the paper's 2048.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from deepprune_agents.answers import group_answers
from deepprune_agents.errors import ConfigError
from deepprune_agents.evaluation.replay_data import ReplayTrace
from deepprune_agents.pruning.vote import majority_vote, weighted_vote


@dataclass(frozen=True)
class MethodOutcome:
    """One method on one draw."""

    answer: str | None
    tokens: int
    traces_started: int
    traces_voting: int
    judge_calls: int = 0
    wall: int = 0


def _lengths(traces: Sequence[ReplayTrace], max_tokens: int | None) -> list[int]:
    return [t.n_tokens if max_tokens is None else min(t.n_tokens, max_tokens) for t in traces]


def cons_at_n(traces: Sequence[ReplayTrace], *, max_tokens: int | None = None) -> MethodOutcome:
    """cons@N: every trace runs to the end and votes once."""
    vote = majority_vote([(i, t.answer) for i, t in enumerate(traces)])
    lengths = _lengths(traces, max_tokens)
    return MethodOutcome(vote.answer, sum(lengths), len(traces), len(vote.voters), wall=max(lengths, default=0))


def subsample(traces: Sequence[ReplayTrace], k: int, *, seed: int = 0, max_tokens: int | None = None) -> MethodOutcome:
    """cons@k over ``k`` traces of the draw chosen at random with ``seed`` (all of them when k >= N)."""
    if k < 1:
        raise ConfigError(f"random subsampling needs k >= 1 (got {k}).")
    import random

    chosen = sorted(random.Random(seed).sample(range(len(traces)), min(k, len(traces))))
    return cons_at_n([traces[i] for i in chosen], max_tokens=max_tokens)


def unanimous(answers: Sequence[str | None]) -> bool:
    """All answers present and equal (one answer class covering every member)."""
    if not answers or any(a is None for a in answers):
        return False
    groups = group_answers(list(answers))
    return len(groups) == 1 and len(groups[0]) == len(answers)


def esc(traces: Sequence[ReplayTrace], *, window: int = 5, max_tokens: int | None = None) -> MethodOutcome:
    """Early-stopping self-consistency over the draw in order, ``window`` traces at a time."""
    if window < 1:
        raise ConfigError(f"the ESC window must be >= 1 (got {window}).")
    lengths = _lengths(traces, max_tokens)
    used = wall = 0
    while used < len(traces):
        chunk = traces[used : used + window]
        wall += max(lengths[used : used + window])  # a window's traces run in parallel, windows in sequence
        used += len(chunk)
        if unanimous([t.answer for t in chunk]):
            break
    vote = majority_vote([(i, t.answer) for i, t in enumerate(traces[:used])])
    return MethodOutcome(vote.answer, sum(lengths[:used]), used, len(vote.voters), wall=wall)


def adaptive_consistency(
    traces: Sequence[ReplayTrace],
    *,
    confidence: float = 0.95,
    min_votes: int = 1,
    batch: int = 1,
    max_tokens: int | None = None,
) -> MethodOutcome:
    """Adaptive-Consistency over the draw in order, ``batch`` traces at a time (the paper: 1), with the
    Beta stopping rule on the answers so far (``pruning.adaptive.stop_is_safe``)."""
    from deepprune_agents.pruning.adaptive import AdaptiveKnobs, stop_is_safe

    if batch < 1:
        raise ConfigError(f"the Adaptive-Consistency batch must be >= 1 (got {batch}).")
    knobs = AdaptiveKnobs(confidence=confidence, min_votes=min_votes)
    lengths = _lengths(traces, max_tokens)
    used = wall = 0
    vote = majority_vote([])
    while used < len(traces):
        wall += max(lengths[used : used + batch])
        used = min(len(traces), used + batch)
        vote = majority_vote([(i, t.answer) for i, t in enumerate(traces[:used])])
        if stop_is_safe(list(vote.counts.values()), knobs):
            break
    return MethodOutcome(vote.answer, sum(lengths[:used]), used, len(vote.voters), wall=wall)


def group_confidences(logprobs: Sequence[float], window: int) -> list[float]:
    """Mean log-probability of every full ``window`` of consecutive tokens (sliding by one); a trace
    shorter than the window has one group, itself."""
    if window < 1:
        raise ConfigError(f"the confidence window must be >= 1 (got {window}).")
    if not logprobs:
        return []
    if len(logprobs) <= window:
        return [float(np.mean(logprobs))]
    csum = np.concatenate([[0.0], np.cumsum(np.asarray(logprobs, dtype=np.float64))])
    return [float(x) for x in (csum[window:] - csum[:-window]) / window]


def stop_position(logprobs: Sequence[float], window: int, threshold: float) -> int | None:
    """Tokens generated when DeepConf stops the trace (the first full window below ``threshold``), or
    None when it runs to the end."""
    if len(logprobs) < window:
        return None
    for start, conf in enumerate(group_confidences(logprobs, window)):
        if conf < threshold:
            return start + window
    return None


def deepconf_warmup(n: int) -> int:
    """Warm-up traces: the paper's 16 (of 512), and half the budget for small N."""
    return max(1, min(16, n // 2))


def deepconf_online(
    traces: Sequence[ReplayTrace],
    *,
    warmup: int | None = None,
    window: int = 32,
    keep_top: float = 0.10,
    consensus: float = 0.95,
    max_tokens: int | None = None,
) -> MethodOutcome:
    """DeepConf-online over the draw in order. ``keep_top`` = 0.10 is DeepConf-low (threshold = the 90th
    percentile of the warm-up traces' lowest group confidence), 0.90 DeepConf-high."""
    if any(t.token_logprobs is None for t in traces):
        raise ConfigError("DeepConf needs token_logprobs on every trace: use a trace file that records them.")
    if not 0.0 < keep_top <= 1.0 or not 0.0 < consensus <= 1.0:
        raise ConfigError("keep_top and consensus must lie in (0, 1].")
    n_warm = min(len(traces), deepconf_warmup(len(traces)) if warmup is None else warmup)
    lengths = _lengths(traces, max_tokens)

    def lp(i: int) -> list[float]:
        logprobs = traces[i].token_logprobs
        assert logprobs is not None
        return list(logprobs[: lengths[i]])

    lowest = [min(group_confidences(lp(i), window) or [0.0]) for i in range(n_warm)]
    threshold = float(np.percentile(lowest, 100.0 * (1.0 - keep_top))) if lowest else -math.inf
    ballots: list[tuple[int, str | None, float]] = []

    def weight(i: int) -> float:
        values = lp(i)
        return math.exp(sum(values) / len(values)) if values else 0.0

    for i in range(n_warm):
        if lowest[i] >= threshold:
            ballots.append((i, traces[i].answer, weight(i)))
    tokens = sum(lengths[:n_warm])
    wall = max(lengths[:n_warm], default=0)  # warm-up in parallel, then one trace at a time
    started = n_warm
    for i in range(n_warm, len(traces)):
        started += 1
        stop = stop_position(lp(i), window, threshold)
        if stop is not None:
            tokens += stop
            wall += stop
            continue
        tokens += lengths[i]
        wall += lengths[i]
        ballots.append((i, traces[i].answer, weight(i)))
        vote = weighted_vote(ballots)
        total = sum(vote.counts.values())
        if vote.answer is not None and total > 0 and vote.counts[vote.answer] / total >= consensus:
            break
    vote = weighted_vote(ballots)
    return MethodOutcome(vote.answer, tokens, started, len(vote.voters), wall=wall)
