"""Would the adaptive policy meet the policy bar if it thinned by how contested each question is? An upper
bound, with the oracle's contest.

The `context` judge's pooled AUROC gain over the lexical judges comes from knowing how contested a run is;
within a question it ranks pairs no better than `numbers` (docs/judge_results.md). The one way a policy
could spend that knowledge is to thin less on contested runs and more on agreeing ones. This measures that
lever directly, without any judge. For every draw of issue 10's five targets and of the 20-question OVM
sets (their test and train questions together), the adaptive policy's outcome is recorded at several keep
fractions with the `constant` judge (judge-blind thinning: one cluster, thinned at random). A rule then
picks, per draw, the keep fraction from a *contest statistic* of that draw:

* ``oracle``: the draw's true plurality share (``vote.plurality_share`` of its answers): the best any
  estimate of the contest could do;
* ``numbers`` / ``words``: the run's mean number / word overlap of the truncated prefixes
  (``judges.run_context``, what the `context` judge reads).

A contested draw (statistic below the threshold) keeps the larger fraction, the others keep 0.5 (the
default). Thresholds are quantiles of each statistic over all draws of all cases (pooled, so the rule
has seen the test draws: an upper bound again). A case passes at accuracy >= cons@N - 1 point and tokens
<= ESC, issue 10's bar.

    PYTHONPATH=$PWD .venv/bin/python research/contest_thinning.py [--runs 10] [--json bench/out/contest_thinning.json]

About 5 minutes on 2 cores. Skips (exit 0) when ``../shared/data/traces`` is absent.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]  # the package, and bench/'s shared modules

from _common import TRACE_FILES, shared_data, traces_absent, write_report  # noqa: E402
from replay_results import meets_target  # noqa: E402

from deepprune_agents.evaluation.baselines import MethodOutcome  # noqa: E402
from deepprune_agents.evaluation.replay_data import ReplayQuestion, load_replay_questions  # noqa: E402
from deepprune_agents.evaluation.replay_eval import (  # noqa: E402
    EvalConfig,
    MethodRows,
    baseline_outcomes,
    load_judge,
    policy_run,
)
from deepprune_agents.judges.run_context import run_context  # noqa: E402
from deepprune_agents.pruning.vote import answer_histogram, plurality_share  # noqa: E402
from deepprune_agents.truncation import parse_truncation, truncate  # noqa: E402

TRACES = shared_data() / "traces"
# (label, files, N): issue 10's five targets, then the 20-question OVM sets at the same Ns.
CASES: list[tuple[str, tuple[str, ...], int]] = [
    ("Mistral N=16", ("mistral",), 16),
    ("Mistral N=64", ("mistral",), 64),
    ("Llama N=16", ("llama",), 16),
    ("MATH N=8", ("math",), 8),
    ("dates N=10", ("dates",), 10),
    ("Mistral 20q N=16", ("mistral", "mistral-train"), 16),
    ("Llama 20q N=16", ("llama", "llama-train"), 16),
    ("Mistral 20q N=64", ("mistral", "mistral-train"), 64),
    ("Llama 20q N=64", ("llama", "llama-train"), 64),
]
KEEPS = (0.5, 0.75, 1.0)
BASE_KEEP = 0.5
STATISTICS = ("oracle", "numbers", "words")
QUANTILES = (0.1, 0.2, 0.3)


@dataclass
class CaseRecord:
    """Per-draw outcomes of one case: ``outcomes[keep] = (correct[q][r], tokens[q][r])``; ``stats[q][r]``
    the draw's contest statistics; cons@N's accuracy and ESC's tokens per draw, the bar's two sides."""

    cons_accuracy: float
    esc_tokens: float
    outcomes: dict[float, tuple[list[list[float]], list[list[float]]]] = field(default_factory=dict)
    stats: list[list[dict[str, float]]] = field(default_factory=list)


def accuracy(correct: Sequence[Sequence[float]]) -> float:
    """Mean over questions of the mean over draws (the replay evaluation's accuracy)."""
    return float(np.mean([np.mean(c) for c in correct]))


def mean_tokens(tokens: Sequence[Sequence[float]]) -> float:
    return float(np.mean([t for row in tokens for t in row]))


Pick = Callable[[dict[str, float]], float]


def apply_rule(rec: CaseRecord, pick: Pick) -> tuple[float, float]:
    """Accuracy and tokens per draw when each draw runs at the keep fraction ``pick`` chooses from its
    statistics (every outcome was recorded, so this replays nothing)."""
    correct: list[list[float]] = []
    tokens: list[list[float]] = []
    for qi, row in enumerate(rec.stats):
        picked = [(rec.outcomes[pick(s)], r) for r, s in enumerate(row)]
        correct.append([outcome[0][qi][r] for outcome, r in picked])
        tokens.append([outcome[1][qi][r] for outcome, r in picked])
    return accuracy(correct), mean_tokens(tokens)


def passes(rec: CaseRecord, acc: float, tokens: float) -> bool:
    """Issue 10's bar (``replay_results.meets_target``): within 1 point of cons@N, no more tokens than ESC."""
    method = {"accuracy": acc, "tokens": tokens}
    return meets_target(method, {"accuracy": rec.cons_accuracy}, {"tokens": rec.esc_tokens})


def fixed(keep: float) -> Pick:
    """Every draw at ``keep``."""
    return lambda _stats: keep


def contested_keep(stat: str, threshold: float, high: float) -> Pick:
    """``high`` for a draw whose ``stat`` is below ``threshold`` (contested), the default keep otherwise."""
    return lambda stats: high if stats[stat] < threshold else BASE_KEEP


def rules(records: Sequence[CaseRecord]) -> list[tuple[str, Pick]]:
    """Fixed keep fractions, then per statistic and pooled quantile: contested draws keep 0.75 or 1.0."""
    out: list[tuple[str, Pick]] = [(f"keep {k}", fixed(k)) for k in KEEPS]
    for stat in STATISTICS:
        pooled = np.array([s[stat] for rec in records for row in rec.stats for s in row])
        for q in QUANTILES:
            th = float(np.quantile(pooled, q))
            for high in KEEPS[1:]:
                out.append((f"{stat} < {th:.2f} (q{q:.1f}) keeps {high}", contested_keep(stat, th, high)))
    return out


def draw_stats(q: ReplayQuestion, n: int, run: int, spec: str) -> dict[str, float]:
    """The contest statistics of one draw (see the module doc)."""
    traces = q.drawn(n, run)
    trunc = parse_truncation(spec)
    ctx = run_context([truncate(t.text, trunc, t.pieces) for t in traces])
    numbers, words = ctx.mean if ctx.mean is not None else (1.0, 1.0)
    return {"oracle": plurality_share(answer_histogram(t.answer for t in traces)), "numbers": numbers, "words": words}


async def record_case(questions: list[ReplayQuestion], n: int, runs: int) -> CaseRecord:
    """Every draw's outcome at each keep fraction, the baselines once per draw (they do not depend on it)."""
    judge = load_judge("constant")
    cfg = EvalConfig(n=n, runs=runs, judge="constant")
    keep_cfgs = {keep: cfg.with_setting("adaptive_keep_fraction", keep) for keep in KEEPS}
    rows: dict[str | float, MethodRows] = defaultdict(MethodRows)
    for qi, q in enumerate(questions):
        for r in range(runs):
            traces = q.drawn(n, r)
            base = baseline_outcomes(cfg, traces, logprobs=False)
            found: dict[str | float, MethodOutcome] = {"cons": base["cons"], "esc": base["esc"]}
            for keep, keep_cfg in keep_cfgs.items():
                found[keep] = await policy_run(keep_cfg, "adaptive", judge, traces)
            for key, o in found.items():
                rows[key].add(qi, q.is_correct(o.answer), o.tokens, o.judge_calls)
    rec = CaseRecord(accuracy(rows["cons"].correct), mean_tokens(rows["esc"].tokens))
    rec.outcomes = {keep: (rows[keep].correct, rows[keep].tokens) for keep in KEEPS}
    rec.stats = [[draw_stats(q, n, r, cfg.truncate) for r in range(runs)] for q in questions]
    return rec


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="bootstrap draws per question (default 10)")
    parser.add_argument("--json", dest="json_out", default="bench/out/contest_thinning.json", metavar="OUT")
    args = parser.parse_args()
    if traces_absent():
        return 0
    loaded: dict[tuple[str, ...], list[ReplayQuestion]] = {}
    records: dict[str, CaseRecord] = {}
    for label, keys, n in CASES:
        if keys not in loaded:
            loaded[keys] = load_replay_questions([TRACES / TRACE_FILES[k] for k in keys])
        records[label] = asyncio.run(record_case(loaded[keys], n, args.runs))
        print(f"recorded {label}", flush=True)
    report: dict[str, Any] = {"runs": args.runs, "cases": {}, "rules": []}
    for label, rec in records.items():
        report["cases"][label] = {"cons_accuracy": rec.cons_accuracy, "esc_tokens": rec.esc_tokens}
    for name, pick in rules(list(records.values())):
        row: dict[str, Any] = {"rule": name, "cases": {}}
        for label, rec in records.items():
            acc, tok = apply_rule(rec, pick)
            row["cases"][label] = {"accuracy": acc, "tokens": tok, "passes": passes(rec, acc, tok)}
        row["passed"] = sum(c["passes"] for c in row["cases"].values())
        report["rules"].append(row)
        cells = "  ".join(
            f"{label}: {'ok' if c['passes'] else '--'} {c['accuracy']:.1%} {c['tokens']:.0f}"
            for label, c in row["cases"].items()
        )
        print(f"{name}: passes {row['passed']}/{len(CASES)} | {cells}")
    cases = report["cases"]
    bars = "  ".join(f"{k}: cons {v['cons_accuracy']:.1%}, ESC {v['esc_tokens']:.0f}" for k, v in cases.items())
    print(f"bar: {bars}")
    best = max(report["rules"], key=lambda r: r["passed"])
    print(f"most cases passed by one rule: {best['passed']}/{len(CASES)} ({best['rule']})")
    write_report(report, args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
