"""``deepprune eval replay``: DeepPrune against the baselines on recorded traces, by bootstrap draws.

For every question and every run r, the N traces are ``replay_data.draw(question, N, r)``: exactly the
traces the replay server serves to an engine run started with ``seed = run_seed(r)``, so the figures
here are the figures of the real engine against the replay server (the simulator is proven equal to it
in lockstep pacing). Methods on each draw:

* ``deepprune-paper`` / ``deepprune-periodic``: both policies with the chosen judge, in the simulator;
  ``deepprune`` is the one chosen with ``--policy``;
* ``oracle-paper`` / ``oracle-periodic`` (``oracle``): the same policy with the oracle judge (recorded
  answers): the upper bound of the saving for that policy;
* ``cons`` (cons@N), ``esc`` (window 5), ``ac`` (Adaptive-Consistency, one trace at a time, the
  ``adaptive`` policy's confidence), ``deepconf-low`` / ``deepconf-high`` when traces have logprobs.

Every method also reports its wall time in tokens: when its answer is known, all branches of a batch
starting together at equal token speed (``wall``; pruning policies: the longest branch up to the
decision; sequential baselines: the sum of their batches). Defaults (judge, policy, constants) are the
settings' (``DeepPruneContext``), the ones ``deepprune ask`` and the Runnable use.

Accuracy has a 95% CI from a bootstrap over questions (draws of one question are not independent
samples of the accuracy; questions are). ``token_reduction`` = 1 - tokens / cons tokens (totals over all
draws); ``oracle_saving_fraction`` = (cons - deepprune) / (cons - oracle).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, cast

import numpy as np

from deepprune_agents.answers import AnswerPattern, make_extractor
from deepprune_agents.errors import ConfigError
from deepprune_agents.evaluation.baselines import (
    MethodOutcome,
    adaptive_consistency,
    cons_at_n,
    deepconf_online,
    esc,
    subsample,
)
from deepprune_agents.evaluation.replay_data import (
    ReplayQuestion,
    ReplayTrace,
    agreement_warnings,
    draw,
    extraction_agreement,
    with_extractor,
)
from deepprune_agents.evaluation.simulator import simulate
from deepprune_agents.evaluation.stats import bootstrap_ci, paired_delta
from deepprune_agents.judges.base import Judge, RunAwareJudge, TracePair
from deepprune_agents.pruning import KNOB_CLASSES, KnobSet, default_knobs, make_policy
from deepprune_agents.pruning.knobs import all_specs
from deepprune_agents.settings import DeepPruneContext, JudgeName, PolicyName

POLICIES = ("paper", "periodic", "adaptive", "staged")


def setting_default(name: str) -> Any:
    """The default of a ``DeepPruneContext`` field: the one source of defaults for ask, Runnable and eval."""
    f = next(f for f in fields(DeepPruneContext) if f.name == name)
    return f.default


@dataclass
class EvalConfig:
    """What one evaluation runs. ``n`` None: every recorded trace of a question (the full set). Judge,
    policy and the policies' knobs (one ``KnobSet``, typed access ``cfg.knobs.get(PaperKnobs)``) default
    to the settings' defaults."""

    n: int | None = 16
    runs: int = 10
    judge: str = setting_default("judge")
    judge_options: dict[str, Any] = field(default_factory=dict)
    policy: str = setting_default("policy")
    truncate: str = setting_default("truncate")
    knobs: KnobSet = field(default_factory=default_knobs)
    esc_window: int = 5
    deepconf_window: int = 32
    max_tokens: int | None = None
    both_policies: bool = True
    bootstrap: int = 2000
    answer_pattern: AnswerPattern = None  # the runs' answer extractor (see answers.make_extractor)

    def validate(self) -> None:
        if self.n is not None and self.n < 1:
            raise ConfigError(f"--n must be >= 1 or 'full' (got {self.n}).")
        if self.runs < 1:
            raise ConfigError(f"--runs must be >= 1 (got {self.runs}).")
        if self.policy not in POLICIES:
            raise ConfigError(f"--policy must be one of {', '.join(POLICIES)} (got {self.policy!r}).")
        self.context("paper")  # validates truncate and the knobs
        make_extractor(self.answer_pattern)  # a bad regex fails before any run

    def context(self, policy: str) -> DeepPruneContext:
        return DeepPruneContext(
            n=1,
            policy=cast(PolicyName, policy),  # checked by DeepPruneContext.validate
            judge=cast(JudgeName, self.judge),
            truncate=self.truncate,
            max_n=1 << 30,
            **self.knobs.as_settings(),
        )

    def with_setting(self, name: str, value: Any) -> EvalConfig:
        """A copy with one setting changed: a knob (by its settings name, e.g. ``tau``) or a field."""
        if name in self.knobs.as_settings():
            return replace(self, knobs=self.knobs.replace(**{name: value}))
        return replace(self, **{name: value})

    def as_dict(self) -> dict[str, Any]:
        """The report's ``config``: the fields, with the knobs flat under their settings names."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "knobs"}
        return {**copy.deepcopy(out), **self.knobs.as_settings()}


class CachedJudge:
    """Memoizes a deterministic judge per pair of (text, recorded answer): bootstrap draws share most
    prefixes, so an embedding judge encodes each prefix once instead of once per run. Calls the judge's
    blocking ``score_sync`` when it has one (no thread hop per call in an offline loop)."""

    def __init__(self, inner: Judge) -> None:
        self.inner = inner
        self.name = inner.name
        self.cache: dict[tuple[str, str | None, str, str | None], float] = {}
        self.pairs_scored = 0

    async def ascore(self, pairs: Sequence[TracePair]) -> list[float]:
        keys = [(a.text, a.answer, b.text, b.answer) for a, b in pairs]
        missing = [i for i, k in enumerate(keys) if k not in self.cache]
        if missing:
            todo = [pairs[i] for i in missing]
            sync = getattr(self.inner, "score_sync", None)
            scores = sync(todo) if callable(sync) else await self.inner.ascore(todo)
            self.pairs_scored += len(todo)
            for i, s in zip(missing, scores, strict=True):
                self.cache[keys[i]] = float(s)
        return [self.cache[k] for k in keys]


def load_judge(name: str, **options: Any) -> Judge:
    """The judge by name, cached; the shared sentence encoder gets a cache large enough for a sweep. A
    judge that reads the run (``RunAwareJudge``) is not memoized: its score of a pair depends on the run
    (such judges are lexical and cheap)."""
    from deepprune_agents.judges import get_judge

    judge = get_judge(name, **options)
    if name in ("embedding", "trained"):
        from deepprune_agents.judges._encoder import shared_encoder

        enc = shared_encoder()
        enc.cache_size = max(enc.cache_size, 100_000)
    return judge if isinstance(judge, RunAwareJudge) else CachedJudge(judge)


@dataclass
class MethodRows:
    """Per-draw outcomes of one method: rows[q] = list over runs."""

    correct: list[list[float]] = field(default_factory=list)
    tokens: list[list[float]] = field(default_factory=list)
    judge_calls: list[list[float]] = field(default_factory=list)
    wall: list[list[float]] = field(default_factory=list)

    def add(self, q: int, correct: bool, tokens: int, judge_calls: int, wall: int = 0) -> None:
        while len(self.correct) <= q:
            self.correct.append([])
            self.tokens.append([])
            self.judge_calls.append([])
            self.wall.append([])
        self.correct[q].append(1.0 if correct else 0.0)
        self.tokens[q].append(float(tokens))
        self.judge_calls[q].append(float(judge_calls))
        self.wall[q].append(float(wall))


def summarize(rows: dict[str, MethodRows], *, main: str, oracle: str, reps: int) -> dict[str, Any]:
    """The report's ``methods`` map plus the headline figures."""

    def total_of(name: str) -> float:
        return float(sum(sum(r) for r in rows[name].tokens)) if name in rows else math.nan

    cons_tokens = total_of("cons")
    methods: dict[str, Any] = {}
    for name, r in rows.items():
        # DeepPrune with policy P is held against the oracle under the same P.
        ref = "oracle-" + name.split("-", 1)[1] if name.startswith("deepprune-") else oracle
        oracle_tokens = total_of(ref)
        per_q_acc = np.array([np.mean(c) for c in r.correct])
        total = float(sum(sum(t) for t in r.tokens))
        draws = sum(len(t) for t in r.tokens)
        saving = cons_tokens - total
        oracle_saving = cons_tokens - oracle_tokens
        methods[name] = {
            "oracle_reference": ref,
            "accuracy": float(per_q_acc.mean()),
            "accuracy_ci95": bootstrap_ci(per_q_acc, reps),
            "tokens": total / draws,
            "tokens_total": total,
            "token_reduction": 1.0 - total / cons_tokens if cons_tokens else 0.0,
            "judge_calls": float(sum(sum(j) for j in r.judge_calls)) / draws,
            "wall": float(sum(sum(w) for w in r.wall)) / draws,
            "oracle_saving_fraction": saving / oracle_saving if oracle_saving > 0 else None,
            "per_question_accuracy": [float(x) for x in per_q_acc],
            "vs_cons": paired_delta(per_q_acc, np.array([np.mean(c) for c in rows["cons"].correct]), reps)
            if "cons" in rows
            else None,
        }
    dp, cons = methods[main], methods["cons"]
    return {
        "methods": methods,
        "token_reduction": dp["token_reduction"],
        "oracle_saving_fraction": dp["oracle_saving_fraction"],
        "accuracy_delta": dp["accuracy"] - cons["accuracy"],
    }


ProgressFn = Callable[[str], None]


async def policy_run(cfg: EvalConfig, policy: str, judge: Judge, traces: Sequence[ReplayTrace]) -> MethodOutcome:
    """One simulated run; its wall time is the tick its last branch ended (one token per tick; a later
    wave of a staged run starts when launched)."""
    extract = make_extractor(cfg.answer_pattern) if cfg.answer_pattern is not None else None
    result = await simulate(make_policy(cfg.context(policy)), judge, traces, max_tokens=cfg.max_tokens, extract=extract)
    return MethodOutcome(
        result.answer,
        result.tokens,
        len(traces),
        len(result.votes),
        judge_calls=result.judge_calls,
        wall=result.wall,
    )


def baseline_outcomes(cfg: EvalConfig, traces: Sequence[ReplayTrace], logprobs: bool) -> dict[str, MethodOutcome]:
    """cons@N, ESC, Adaptive-Consistency, and DeepConf-online when the traces carry log-probabilities."""
    out = {
        "cons": cons_at_n(traces, max_tokens=cfg.max_tokens),
        "esc": esc(traces, window=cfg.esc_window, max_tokens=cfg.max_tokens),
        "ac": adaptive_consistency(traces, max_tokens=cfg.max_tokens),  # the paper's Beta rule at 0.95
        # blind thinning's equivalent: half of the branches, whatever they say (seeded by the draw's size)
        "cons-half": subsample(traces, max(1, len(traces) // 2), seed=len(traces), max_tokens=cfg.max_tokens),
    }
    if logprobs:
        for label, keep in (("deepconf-low", 0.10), ("deepconf-high", 0.90)):
            out[label] = deepconf_online(traces, window=cfg.deepconf_window, keep_top=keep, max_tokens=cfg.max_tokens)
    return out


def prewarm(judge: Judge, q: ReplayQuestion, n: int, cfg: EvalConfig) -> None:
    """Embed the judge inputs of every drawn trace (paper: the truncated prefix) in large batches up front:
    a sentence encoder costs ~150 ms per call however small the batch, and placements come one branch
    at a time. Judges that do not run the shared encoder (``needs_encoder`` false or absent) are left alone."""
    inner = getattr(judge, "inner", judge)
    if not getattr(inner, "needs_encoder", False):
        return
    from deepprune_agents.judges._encoder import shared_encoder
    from deepprune_agents.truncation import parse_truncation, truncate

    spec = parse_truncation(cfg.truncate)
    ids = sorted({i for r in range(cfg.runs) for i in draw(q.question_id, len(q.traces), n, r)})
    shared_encoder().encode([truncate(q.traces[i].text, spec, q.traces[i].pieces) for i in ids])


async def evaluate_async(
    questions: Sequence[ReplayQuestion],
    cfg: EvalConfig,
    *,
    judge: Judge | None = None,
    oracle_judge: Judge | None = None,
    baselines: bool = True,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Run every method on every (question, run) draw; returns the report (see the module doc)."""
    cfg.validate()
    if not questions:
        raise ConfigError("no question to evaluate: pass trace files with at least one question.")
    if cfg.answer_pattern is not None:
        questions = with_extractor(questions, make_extractor(cfg.answer_pattern))
    agreement = extraction_agreement(questions)
    judge = judge if judge is not None else load_judge(cfg.judge, **cfg.judge_options)
    oracle_judge = oracle_judge if oracle_judge is not None else load_judge("oracle")
    policies = POLICIES if cfg.both_policies else (cfg.policy,)
    logprobs = all(q.has_logprobs for q in questions)
    rows: dict[str, MethodRows] = {}
    t0 = time.perf_counter()
    n_used: list[int] = []
    for qi, q in enumerate(questions):
        m = len(q.traces)
        n = m if cfg.n is None else cfg.n
        if n > m:
            raise ConfigError(
                f"--n {n} exceeds the {m} traces recorded for {q.question_id!r}: lower --n or use 'full'."
            )
        n_used.append(n)
        prewarm(judge, q, n, cfg)
        for r in range(cfg.runs):
            traces = q.drawn(n, r)
            outcomes: dict[str, MethodOutcome] = baseline_outcomes(cfg, traces, logprobs) if baselines else {}
            for policy in policies:
                outcomes[f"oracle-{policy}"] = await policy_run(cfg, policy, oracle_judge, traces)
                if cfg.judge == "oracle":
                    outcomes[f"deepprune-{policy}"] = outcomes[f"oracle-{policy}"]
                else:
                    outcomes[f"deepprune-{policy}"] = await policy_run(cfg, policy, judge, traces)
            for name, o in outcomes.items():
                rows.setdefault(name, MethodRows()).add(qi, q.is_correct(o.answer), o.tokens, o.judge_calls, o.wall)
        if progress is not None:
            progress(f"{q.question_id}: {cfg.runs} runs, N={n_used[-1]} ({time.perf_counter() - t0:.1f} s)")
    for alias, src in (("deepprune", f"deepprune-{cfg.policy}"), ("oracle", f"oracle-{cfg.policy}")):
        rows[alias] = rows[src]
    report: dict[str, Any] = {
        "config": cfg.as_dict(),
        "n": cfg.n if cfg.n is not None else "full",
        "n_per_question": n_used,
        "runs": cfg.runs,
        "judge": cfg.judge,
        "policy": cfg.policy,
        "questions": [q.question_id for q in questions],
        "has_logprobs": logprobs,
        "elapsed_s": time.perf_counter() - t0,
        # per data set: our extraction vs the recorded answers; a warning below replay_data.AGREEMENT_WARN
        "extraction_agreement": agreement,
        "extraction_warnings": agreement_warnings(agreement),
    }
    if baselines:
        report.update(summarize(rows, main="deepprune", oracle="oracle", reps=cfg.bootstrap))
    report["_rows"] = rows
    return report


def evaluate(questions: Sequence[ReplayQuestion], cfg: EvalConfig, **kwargs: Any) -> dict[str, Any]:
    """Blocking wrapper of ``evaluate_async`` (the result has no private ``_rows``)."""
    report = asyncio.run(evaluate_async(questions, cfg, **kwargs))
    report.pop("_rows", None)
    return report


# ------------------------------------------------------------------------------------------------
# sweeps
# ------------------------------------------------------------------------------------------------
# Every numeric policy knob (by its settings name) and the judge's input.
_SWEEPABLE_KNOBS = {s.setting: s for s in all_specs(KNOB_CLASSES) if s.type is not bool}
SWEEPABLE: dict[str, type] = {**{name: s.type for name, s in _SWEEPABLE_KNOBS.items()}, "truncate": str}


def parse_sweep(spec: str) -> tuple[str, list[Any]]:
    """``tau=0.3,0.5,0.7``, ``k2=5,10,20`` (any numeric knob) or ``truncate=tokens:16,tokens:32,words:5``."""
    name, sep, values = spec.partition("=")
    name = name.strip()
    if not sep or name not in SWEEPABLE or not values.strip():
        raise ConfigError(f"invalid sweep {spec!r}: use tau=0.3,0.5,0.7 or truncate=tokens:16,tokens:32.")
    try:
        parsed = [SWEEPABLE[name](v.strip()) for v in values.split(",") if v.strip()]
    except ValueError as exc:
        raise ConfigError(f"invalid value in sweep {spec!r}: {exc}") from exc
    if name in _SWEEPABLE_KNOBS:
        for value in parsed:  # out of range: fail before the evaluation runs, naming the knob's range
            _SWEEPABLE_KNOBS[name].check(value)
    return name, parsed


async def sweep_async(
    questions: Sequence[ReplayQuestion],
    cfg: EvalConfig,
    param: str,
    values: Sequence[Any],
    *,
    esc_windows: Sequence[int] = (2, 3, 5, 8, 10),
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """DeepPrune and the oracle at every value of ``param``; cons, DeepConf, and ESC at several windows
    once (they do not depend on it). Returns curves of (tokens, accuracy) per method."""
    if param not in SWEEPABLE:
        raise ConfigError(f"cannot sweep {param!r}: sweepable are {', '.join(SWEEPABLE)}.")
    judge = load_judge(cfg.judge, **cfg.judge_options)
    oracle = load_judge("oracle")
    base = await evaluate_async(questions, cfg, judge=judge, oracle_judge=oracle)
    curves: dict[str, list[dict[str, Any]]] = {"deepprune": [], "oracle": []}
    for v in values:
        point_cfg = cfg.with_setting(param, v)
        rep = await evaluate_async(questions, point_cfg, judge=judge, oracle_judge=oracle, baselines=False)
        for method in ("deepprune", "oracle"):
            rows = rep["_rows"][method]
            tokens = float(np.mean([t for q in rows.tokens for t in q]))
            acc = float(np.mean([np.mean(c) for c in rows.correct]))
            curves[method].append({param: v, "tokens": tokens, "accuracy": acc})
        if progress is not None:
            progress(f"{param}={v}: deepprune {curves['deepprune'][-1]}")
    curves["esc"] = []
    for w in esc_windows:
        rows_esc = MethodRows()
        for qi, q in enumerate(questions):
            n = len(q.traces) if cfg.n is None else cfg.n
            for r in range(cfg.runs):
                traces = q.drawn(n, r)
                o = esc(traces, window=w, max_tokens=cfg.max_tokens)
                rows_esc.add(qi, q.is_correct(o.answer), o.tokens, 0)
        curves["esc"].append(
            {
                "window": w,
                "tokens": float(np.mean([t for q in rows_esc.tokens for t in q])),
                "accuracy": float(np.mean([np.mean(c) for c in rows_esc.correct])),
            }
        )
    for name in ("cons", "deepconf-low", "deepconf-high"):
        if name in base["methods"]:
            m = base["methods"][name]
            curves[name] = [{"tokens": m["tokens"], "accuracy": m["accuracy"]}]
    base.pop("_rows", None)
    return {
        "param": param,
        "values": list(values),
        "curves": curves,
        "base": base,
        "deepprune_vs_esc_at_equal_tokens": compare_at_equal_tokens(curves["deepprune"], base["methods"]["esc"]),
    }


def compare_at_equal_tokens(curve: Sequence[dict[str, Any]], point: dict[str, Any]) -> dict[str, Any] | None:
    """DeepPrune's accuracy at ``point``'s token count, linearly interpolated along the sweep curve (None
    when the curve does not span that token count)."""
    pts = sorted((p["tokens"], p["accuracy"]) for p in curve)
    x = point["tokens"]
    for (x0, y0), (x1, y1) in itertools.pairwise(pts):
        if x0 <= x <= x1:
            y = y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
            return {
                "tokens": x,
                "deepprune_accuracy": y,
                "esc_accuracy": point["accuracy"],
                "delta": y - point["accuracy"],
            }
    if len(pts) == 1 and pts[0][0] == x:
        return {
            "tokens": x,
            "deepprune_accuracy": pts[0][1],
            "esc_accuracy": point["accuracy"],
            "delta": pts[0][1] - point["accuracy"],
        }
    return None


def plot_sweep(sweep: dict[str, Any], out: str | Path, title: str = "") -> Path:
    """Tokens vs accuracy, one curve per method (PNG, matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = {
        "deepprune": ("o-", "C0"),
        "oracle": ("s--", "C2"),
        "esc": ("^-", "C1"),
        "cons": ("*", "C3"),
        "deepconf-low": ("D", "C4"),
        "deepconf-high": ("d", "C5"),
    }
    for name, pts in sweep["curves"].items():
        if not pts:
            continue
        marker, color = styles.get(name, ("x", "k"))
        pts = sorted(pts, key=lambda p: p["tokens"])
        xs = [p["tokens"] for p in pts]
        ys = [100 * p["accuracy"] for p in pts]
        ax.plot(xs, ys, marker, color=color, label=name, markersize=8 if len(pts) == 1 else 5)
        label_key = sweep["param"] if name in ("deepprune", "oracle") else ("window" if name == "esc" else None)
        if label_key:
            for p, x, y in zip(pts, xs, ys, strict=True):
                ax.annotate(str(p[label_key]), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("generated tokens per question (mean)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title or f"sweep over {sweep['param']}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
