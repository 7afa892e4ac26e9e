"""Why a pair judge at 32 tokens stays far from AUROC 0.85 on OVM, and how much the *other* branches of
the run add: the measurement behind issue 11's open headline.

A pooled AUROC ranks pairs of *all* questions together, so it rewards knowing how contested each question
is (most pairs of an easy question agree, few of a split one) as much as telling two branches of one
question apart. Per data set, on ``--n`` traces drawn per question (the run's N) and all their pairs, at
the headline truncation (first 32 tokens), this prints and writes:

* ``numbers``: the Jaccard-of-numbers judge, pooled AUROC and the mean AUROC *within* one question
  (questions whose pairs carry both labels);
* ``oracle_question_rate``: a judge that knows only each question's true agreement rate (the recorded
  answers), and ``numbers_plus_oracle_rate``: that rate plus the numbers score. These use the answers,
  so they are ceilings, not judges;
* set context, computed from the run's own prefixes only (no answers, no training, so nothing can leak
  from test questions): ``question_mean`` (mean numbers score over the run's pairs), ``min_centrality``
  (of the two branches, the smaller mean numbers score to the run's other branches: an outlier is less
  likely to share the answer) and ``numbers_plus_context`` (numbers + question_mean + min_centrality).

    PYTHONPATH=$PWD .venv/bin/python research/judge_context.py [--n 16] [--draws 5] [--json OUT]

Skips (exit 0, with a message) when ``../shared/data/traces`` is absent (a fresh clone has no data).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]  # the package, and bench/'s shared modules

from _common import traces_absent, write_report  # noqa: E402
from _judge_eval.data import TRUNCATION, datasets  # noqa: E402

from deepprune_agents.judges.numbers import jaccard, number_set  # noqa: E402
from deepprune_agents.trace_io import load_traces  # noqa: E402
from deepprune_agents.training.evaluate import auroc, within_question_auroc  # noqa: E402
from deepprune_agents.training.pairs import PairExample, build_pairs  # noqa: E402

Floats = npt.NDArray[np.float64]


def context_scores(pairs: list[PairExample]) -> dict[str, Floats]:
    """The pair scores of the module doc for the pairs of one draw (each question's pairs are one run)."""
    nums: dict[str, frozenset[str]] = {}
    for p in pairs:
        for t in (p.a, p.b):
            if t.trace_id not in nums:
                nums[t.trace_id] = number_set(t.text)
    sim = np.array([jaccard(nums[p.a.trace_id], nums[p.b.trace_id]) for p in pairs], dtype=np.float64)
    total: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    q_total: dict[str, float] = defaultdict(float)
    q_count: dict[str, int] = defaultdict(int)
    for p, s in zip(pairs, sim, strict=True):
        for tid in (p.a.trace_id, p.b.trace_id):
            total[tid] += s
            count[tid] += 1
        q_total[p.group] += s
        q_count[p.group] += 1
    centrality = {tid: total[tid] / count[tid] for tid in total}
    q_mean = np.array([q_total[p.group] / q_count[p.group] for p in pairs])
    min_c = np.array([min(centrality[p.a.trace_id], centrality[p.b.trace_id]) for p in pairs])
    return {
        "numbers": sim,
        "question_mean": q_mean,
        "min_centrality": min_c,
        "numbers_plus_context": sim + q_mean + min_c,
    }


def measure(pairs: list[PairExample]) -> dict[str, Any]:
    """Every figure of the module doc for one draw."""
    labels = np.array([p.label for p in pairs], dtype=np.int64)
    groups = np.array([p.group for p in pairs])
    scores = context_scores(pairs)
    rate = {g: float(labels[groups == g].mean()) for g in np.unique(groups)}
    oracle = np.array([rate[g] for g in groups])
    out: dict[str, Any] = {f"{k}_auroc": auroc(labels, s) for k, s in scores.items()}
    out["numbers_within_question_auroc"] = within_question_auroc(labels, groups, scores["numbers"])
    out["oracle_question_rate_auroc"] = auroc(labels, oracle)
    out["numbers_plus_oracle_rate_auroc"] = auroc(labels, scores["numbers"] + oracle)
    out["pairs"] = len(pairs)
    out["same_share"] = float(labels.mean())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=16, help="traces drawn per question: the run's N (default 16)")
    parser.add_argument("--draws", type=int, default=5, help="independent draws averaged (default 5)")
    parser.add_argument("--json", dest="json_out", default=None, metavar="OUT")
    args = parser.parse_args()
    if args.n < 2 or args.draws < 1:
        parser.error("--n must be >= 2 (a pair needs two traces) and --draws >= 1")
    if traces_absent():
        return 0
    report: dict[str, Any] = {"truncation": TRUNCATION, "n": args.n, "draws": args.draws, "sets": {}}
    for d in datasets(None):
        questions = load_traces(d.files)
        runs = [
            measure(build_pairs(questions, TRUNCATION, max_traces=args.n, seed=draw, agree=d.agree))
            for draw in range(args.draws)
        ]
        figures = {
            k: (None if any(r[k] is None for r in runs) else float(np.mean([r[k] for r in runs]))) for k in runs[0]
        }
        report["sets"][d.name] = {"files": [f.name for f in d.files], "questions": len(questions), **figures}
        shown = ", ".join(
            f"{k.removesuffix('_auroc')} {v:.3f}" for k, v in figures.items() if k.endswith("_auroc") and v is not None
        )
        print(f"{d.name} ({len(questions)} questions, {figures['same_share']:.0%} same-answer pairs): {shown}")
    if args.json_out:
        write_report(report, args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
