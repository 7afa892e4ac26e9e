"""``deepprune eval replay --frontier``: every policy with every judge against the baselines, at every N.

For each N in ``FRONTIER_NS`` that the trace files can serve (plus the full set when it is smaller than
the largest N, e.g. 10 samples per question), each (question, run) draw is replayed once per method:
the baselines (cons@N, ESC, Adaptive-Consistency; DeepConf-online only with log-probabilities), and each
pruning policy with each judge, all in the offline simulator under the same parallel streaming clock.
Per method: mean accuracy (95% CI over questions), tokens per question, and wall time in tokens (see
``replay_eval``). The judges and their pair caches are loaded once and shared by every N, policy and
run, so a prefix is embedded once for the whole frontier.

Deterministic: draws depend only on (question, N, run), policies are seeded by the settings' seed, and
the judges are deterministic.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from deepprune_agents.errors import ConfigError
from deepprune_agents.evaluation.replay_data import ReplayQuestion
from deepprune_agents.evaluation.replay_eval import (
    POLICIES,
    EvalConfig,
    MethodRows,
    ProgressFn,
    baseline_outcomes,
    load_judge,
    policy_run,
    prewarm,
)
from deepprune_agents.evaluation.stats import bootstrap_ci, paired_delta
from deepprune_agents.judges.base import Judge
from deepprune_agents.pruning import AdaptiveKnobs, ClusteringKnobs, PaperKnobs, PeriodicKnobs
from deepprune_agents.pruning.vote import answer_histogram, plurality_share

FRONTIER_NS = (8, 16, 32, 64, 128)
# ``constant`` scores every pair the same (no information): the control a judge's share of the savings is
# measured against (free: no model).
FRONTIER_JUDGES = ("oracle", "numbers", "embedding", "trained", "constant")
BASELINES = ("cons", "esc", "ac", "cons-half")
NOT_MEASURED = {
    "llm": "the llm judge asks a chat model per pair (seconds per call on these CPUs); a frontier of "
    "thousands of placements would take hours, so it is left out",
}


def frontier_ns(questions: Sequence[ReplayQuestion], ns: Sequence[int] = FRONTIER_NS) -> list[int]:
    """The Ns the files can serve to every question, plus the full set when it is below the largest N."""
    available = min(len(q.traces) for q in questions)
    out = [n for n in ns if n <= available]
    if available < max(ns) and available not in out:
        out.append(available)
    return sorted(out)


def set_plurality_share(questions: Sequence[ReplayQuestion]) -> float:
    """Mean over questions of ``vote.plurality_share`` of their recorded traces: the regime a set is in,
    measured as ``bench live`` measures a live question."""
    shares = [plurality_share(answer_histogram(t.answer for t in q.traces)) for q in questions]
    return float(np.mean(shares)) if shares else 0.0


def method_stats(rows: MethodRows, cons: MethodRows | None, reps: int) -> dict[str, Any]:
    """Accuracy (mean over questions of the mean over runs, with its CI), tokens and wall per question."""
    per_q = np.array([np.mean(c) for c in rows.correct])
    cons_q = np.array([np.mean(c) for c in cons.correct]) if cons is not None else None
    draws = sum(len(t) for t in rows.tokens)
    tokens = float(sum(sum(t) for t in rows.tokens))
    cons_tokens = float(sum(sum(t) for t in cons.tokens)) if cons is not None else 0.0
    return {
        "accuracy": float(per_q.mean()),
        "accuracy_ci95": bootstrap_ci(per_q, reps),
        "tokens": tokens / draws,
        "wall": float(sum(sum(w) for w in rows.wall)) / draws,
        "token_reduction": 1.0 - tokens / cons_tokens if cons_tokens else 0.0,
        "judge_calls": float(sum(sum(j) for j in rows.judge_calls)) / draws,
        "vs_cons": paired_delta(per_q, cons_q, reps) if cons_q is not None else None,
    }


def frontier_config(cfg: EvalConfig) -> dict[str, Any]:
    """The report's ``config`` in the shape docs/frontier_*.json were written with: bench/replay_eval.py
    renders it and merges new Ns into a stored report only when the two are equal."""
    knobs = cfg.knobs
    return {
        "tau": knobs.get(ClusteringKnobs).tau,
        "truncate": cfg.truncate,
        "k2": knobs.get(PaperKnobs).k2,
        "judge_every": knobs.get(PeriodicKnobs).judge_every,
        "esc_window": cfg.esc_window,
        "adaptive": knobs.get(AdaptiveKnobs).as_settings(),
    }


async def frontier_async(
    questions: Sequence[ReplayQuestion],
    cfg: EvalConfig,
    *,
    ns: Sequence[int] = FRONTIER_NS,
    judges: Sequence[str] = FRONTIER_JUDGES,
    policies: Sequence[str] = POLICIES,
    skip: Sequence[tuple[str, str, int]] = (),
    judge_specs: Mapping[str, tuple[str, dict[str, Any]]] | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """The frontier report: ``points[str(N)][method]`` with method ``cons``, ``esc``, ``ac`` or
    ``policy/judge``. ``skip`` lists (policy, judge, min N) left out from that N on (cost), reported.
    ``judge_specs`` maps a label in ``judges`` to (judge name, options), e.g. ``"blend-heldout": ("blend",
    {"weights_dir": ...})`` for weights fitted without this data set; other labels are judge names."""
    if not questions:
        raise ConfigError("no question to evaluate: pass trace files with at least one question.")
    unknown = set(policies) - set(POLICIES)
    if unknown:
        raise ConfigError(f"unknown policies {sorted(unknown)}: use {', '.join(POLICIES)}.")
    cfg.validate()
    specs = dict(judge_specs or {})
    loaded: dict[str, Judge] = {
        j: load_judge(specs[j][0], **specs[j][1])
        if j in specs
        else load_judge(j, **(cfg.judge_options if j == cfg.judge else {}))
        for j in judges
    }
    logprobs = all(q.has_logprobs for q in questions)
    points: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    for n in frontier_ns(questions, ns):
        c = replace(cfg, n=n)
        rows: dict[str, MethodRows] = {}
        todo = [
            (p, j) for p in policies for j in judges if not any(p == sp and j == sj and n >= sn for sp, sj, sn in skip)
        ]
        skipped += [f"{p}/{j} at N={n}" for p in policies for j in judges if (p, j) not in todo]
        for qi, q in enumerate(questions):
            for j in judges:
                prewarm(loaded[j], q, n, c)  # a no-op for judges without the shared encoder
            for r in range(c.runs):
                traces = q.drawn(n, r)
                outcomes = baseline_outcomes(c, traces, logprobs)
                for policy, judge in todo:
                    start = time.perf_counter()
                    outcomes[f"{policy}/{judge}"] = await policy_run(c, policy, loaded[judge], traces)
                    key = f"N={n} {policy}/{judge}"
                    timings[key] = timings.get(key, 0.0) + time.perf_counter() - start
                for name, o in outcomes.items():
                    rows.setdefault(name, MethodRows()).add(qi, q.is_correct(o.answer), o.tokens, o.judge_calls, o.wall)
        points[str(n)] = {name: method_stats(r, rows.get("cons"), c.bootstrap) for name, r in rows.items()}
        if progress is not None:
            progress(f"N={n}: {len(rows)} methods ({time.perf_counter() - t0:.0f} s)")
    not_measured = dict(NOT_MEASURED)
    if not logprobs:
        not_measured["deepconf"] = (
            "DeepConf-online needs per-token log-probabilities; these trace files record none, so it is skipped"
        )
    return {
        "questions": len(questions),
        "plurality_share": set_plurality_share(questions),
        "runs": cfg.runs,
        "ns": [int(n) for n in points],
        "judges": list(judges),
        "judge_specs": {label: {"judge": name, "options": opts} for label, (name, opts) in specs.items()},
        "policies": list(policies),
        "config": frontier_config(cfg),
        "points": points,
        "skipped": skipped,
        "not_measured": not_measured,
        "seconds_per_method": {k: round(v, 1) for k, v in sorted(timings.items())},
        "elapsed_s": time.perf_counter() - t0,
    }


STYLE = {
    "paper": "C0",
    "periodic": "C2",
    "adaptive": "C3",
    "staged": "C6",
    "cons": "k",
    "esc": "C1",
    "ac": "C4",
    "cons-half": "C7",
}
MARKER = {
    "oracle": "*",
    "numbers": "s",
    "embedding": "o",
    "trained": "D",
    "blend": "v",
    "blend-heldout": "v",
    "context-heldout": "P",
    "context": "P",
    "constant": "X",
}


def plot_frontier(report: dict[str, Any], out: str | Path, *, axis: str, title: str = "") -> Path:
    """Accuracy against ``axis`` ('tokens' or 'wall') per question, one panel per N (PNG, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = list(report["points"])
    fig, axes = plt.subplots(1, len(ns), figsize=(4.2 * len(ns), 4.2), squeeze=False)
    for ax, n in zip(axes[0], ns, strict=True):
        for name, m in report["points"][n].items():
            policy, _, judge = name.partition("/")
            color = STYLE.get(policy, "0.5")
            marker = MARKER.get(judge, "^" if name in BASELINES else "P")
            ax.scatter(m[axis], 100 * m["accuracy"], c=color, marker=marker, s=60 if judge else 80,
                       label=name, edgecolors="k", linewidths=0.4)  # fmt: skip
        ax.set_title(f"N = {n}")
        ax.set_xlabel("tokens per question" if axis == "tokens" else "wall time (tokens, parallel branches)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy (%)")
    handles, labels = axes[0][-1].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="center right", ncol=1)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 0.86, 1))
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_frontier(report: dict[str, Any], json_out: str | Path, title: str = "") -> dict[str, str]:
    """The JSON report and its two plots, ``<stem>.tokens.png`` and ``<stem>.wall.png`` next to it; the
    report names them relative to its own folder. Returns the plots' paths."""
    import json

    out = Path(json_out)
    plots = {
        axis: str(plot_frontier(report, out.with_name(f"{out.stem}.{axis}.png"), axis=axis, title=title))
        for axis in ("tokens", "wall")
    }
    report["plots"] = {axis: Path(p).name for axis, p in plots.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    return plots
