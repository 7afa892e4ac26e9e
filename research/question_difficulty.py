"""Would knowing how hard a *question* is bring the `context` judge to issue 11's AUROC bar, and would it pay?

`research/judge_context.py` shows that most of a pooled AUROC on OVM is knowing which question is contested
(a judge told each question's true agreement rate scores 0.876 / 0.882), and the run's prefixes carry
only part of that. The question itself carries more: the count of distinct numbers in its text (a word
problem with more quantities has more steps to get wrong) ranks pairs by agreement, on its own, better
than the number overlap of the two prefixes on OVM Mistral and MATH. A judge could read it: the engine
knows the prompt. This measures both halves of the question before anyone wires the prompt into the judge
interface:

* **headline**: the `context` judge's fit (judges/context.py, its shipped feature set) with and without a
  ``question_numerals`` column (``-log(1 + count)``: non-negative weights need a similarity-like sign),
  on bench/judge_eval.py's leave-one-dataset-out splits and pairs (first 32 tokens), at L2 0.1 (the
  shipped penalty) and 1.0. AUROC / TNR at FNR 0.2 per test set; the column alone too. Within one question
  the column is a constant, so it cannot change which branch of a run a judge picks.
* **policies** (``--policies``): the two fits at L2 1.0 as judges of the paper and adaptive policies on
  the OVM cases of research/contest_thinning.py (issue 10's OVM targets and the 20-question sets), each
  split's fit on the set it never saw, 10 runs; the bench hands the judge each question's count before
  replaying it (the engine passes no prompt to a judge). Issue 10's bar per case: accuracy >= cons@N - 1
  point and tokens <= ESC.

    PYTHONPATH=$PWD .venv/bin/python research/question_difficulty.py [--policies] [--runs 10] [--json OUT]

Writes bench/out/question_difficulty.json unless ``--json`` says otherwise. The headline takes seconds,
``--policies`` about 10 minutes on 2 cores. Skips (exit 0) when ``../shared/data/traces`` is absent.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]  # the package, and bench/'s shared modules

from _common import TRACE_FILES, shared_data, traces_absent, write_report  # noqa: E402
from _judge_eval.data import TRUNCATION, context_table, datasets  # noqa: E402
from _judge_eval.protocol import leave_one_out  # noqa: E402
from contest_thinning import CASES  # noqa: E402
from replay_results import meets_target  # noqa: E402

from deepprune_agents.evaluation.baselines import MethodOutcome  # noqa: E402
from deepprune_agents.evaluation.replay_data import ReplayQuestion, load_replay_questions  # noqa: E402
from deepprune_agents.evaluation.replay_eval import EvalConfig, MethodRows, baseline_outcomes, policy_run  # noqa: E402
from deepprune_agents.judges.base import TracePair  # noqa: E402
from deepprune_agents.judges.blend import BlendModel  # noqa: E402
from deepprune_agents.judges.context import ContextJudge  # noqa: E402
from deepprune_agents.judges.numbers import number_set  # noqa: E402
from deepprune_agents.judges.run_context import CONTEXT_EXCLUDE, CONTEXT_FEATURES  # noqa: E402
from deepprune_agents.trace_io import load_traces  # noqa: E402
from deepprune_agents.traces import PartialTrace  # noqa: E402
from deepprune_agents.training.blend import balanced_weights, fit_blend  # noqa: E402
from deepprune_agents.training.evaluate import metrics  # noqa: E402
from deepprune_agents.training.pairs import build_pairs, question_key  # noqa: E402

QUESTION = "question_numerals"
FEATURES = (*CONTEXT_FEATURES, QUESTION)
#: The two judges compared: the shipped design, and the same plus the question's column.
DESIGNS: dict[str, tuple[str, ...]] = {
    "context": (*CONTEXT_EXCLUDE, QUESTION),
    "context + question": CONTEXT_EXCLUDE,
}
PENALTIES = (0.1, 1.0)
POLICY_L2 = 1.0
POLICIES = ("paper", "adaptive")
#: bench/judge_eval.py's test set whose split never saw a case's traces.
HELDOUT_SET = {"mistral": "OVM Mistral", "llama": "OVM Llama"}

Floats = npt.NDArray[np.float64]
DEFAULT_JSON = ROOT / "bench" / "out" / "question_difficulty.json"


def question_column(question: str) -> float:
    """The ``question_numerals`` feature: ``-log(1 + distinct numbers in the question text)``, so that, like
    every column the fit weighs non-negatively, a larger value means "more likely to agree"."""
    return -float(np.log1p(len(number_set(question))))


# ------------------------------------------------------------------------------------------- headline
class Table:
    """Every data set's pairs (bench/judge_eval.py's draw): ``FEATURES`` rows, labels, set and question."""

    def __init__(self) -> None:
        xs: list[Floats] = []
        labels: list[int] = []
        names: list[str] = []
        groups: list[str] = []
        info: dict[str, Any] = {}
        for d in datasets(None):
            questions = load_traces(d.files)
            column = {question_key(q): question_column(q.question or "") for q in questions}
            pairs = build_pairs(questions, TRUNCATION, max_traces=d.max_traces, seed=0, agree=d.agree)
            q = np.array([[column[p.group]] for p in pairs], dtype=np.float64)
            xs.append(np.concatenate([context_table(pairs, info), q], axis=1))
            labels += [p.label for p in pairs]
            names += [d.name] * len(pairs)
            groups += [p.group for p in pairs]
        self.x = np.concatenate(xs)
        self.y = np.array(labels, dtype=np.int64)
        self.dataset = np.array(names)
        self.group = np.array(groups)
        self.sets = list(dict.fromkeys(names))

    def split(self, test: str) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """bench/judge_eval.py's leave-one-dataset-out split of these pairs."""
        return leave_one_out(self.dataset, self.group, test)

    def fit(self, test: str, design: str, l2: float) -> BlendModel:
        tr, _ = self.split(test)
        w = balanced_weights(self.dataset[tr].tolist(), self.y[tr])
        return fit_blend(
            self.x[tr], self.y[tr], w, l2=l2, truncation=TRUNCATION, features=FEATURES, exclude=DESIGNS[design]
        )


def headline(table: Table) -> dict[str, Any]:
    """AUROC / TNR per test set of the column alone and of each design at each penalty."""
    out: dict[str, Any] = {}
    for test in table.sets:
        _, te = table.split(test)
        y = table.y[te]
        row: dict[str, dict[str, Any]] = {"alone": _figures(y, table.x[te, FEATURES.index(QUESTION)])}
        for design in DESIGNS:
            for l2 in PENALTIES:
                model = table.fit(test, design, l2)
                row[f"{design}, L2 {l2}"] = {
                    **_figures(y, model.predict(table.x[te])),
                    "coef": dict(zip(model.features, (round(float(c), 3) for c in model.coef), strict=True)),
                }
        out[test] = row
    return out


def _figures(y: npt.NDArray[np.int64], scores: Floats) -> dict[str, float]:
    m = metrics(y, scores)
    return {"auroc": float(m["auroc"]), "tnr": float(m["tnr"])}


# ------------------------------------------------------------------------------------------- policies
class QuestionAwareJudge(ContextJudge):
    """The `context` judge with a fitted model of ``FEATURES``: the question's column is set per question by
    the caller (``question``) and appended to every row."""

    def __init__(self, model: BlendModel) -> None:
        super().__init__()
        self.model = model
        self.question = ""

    def features_in_run(self, pairs: Sequence[TracePair], run: Sequence[PartialTrace]) -> Floats:
        rows = super().features_in_run(pairs, run)
        return np.concatenate([rows, np.full((len(pairs), 1), question_column(self.question))], axis=1)


def policies(table: Table, runs: int) -> dict[str, Any]:
    """Per OVM case and design, each policy's accuracy and tokens beside cons@N and ESC, and the bar."""
    traces = shared_data() / "traces"
    out: dict[str, Any] = {}
    for label, files, n in CASES:
        if files[0] not in HELDOUT_SET:
            continue
        questions = load_replay_questions([traces / TRACE_FILES[f] for f in files])
        judges = {d: QuestionAwareJudge(table.fit(HELDOUT_SET[files[0]], d, POLICY_L2)) for d in DESIGNS}
        rows = asyncio.run(replay(questions, n, runs, judges))
        # every question has ``runs`` draws, so the mean over all draws is the replay evaluation's mean
        m = {k: {"accuracy": float(np.mean(v.correct)), "tokens": float(np.mean(v.tokens))} for k, v in rows.items()}
        case: dict[str, Any] = {"cons": m.pop("cons"), "esc": m.pop("esc")}
        for method, figures in m.items():
            case[method] = {**figures, "meets_bar": meets_target(figures, case["cons"], case["esc"])}
        out[label] = case
        print(_case_line(label, case), flush=True)
    return out


async def replay(
    questions: Sequence[ReplayQuestion], n: int, runs: int, judges: dict[str, QuestionAwareJudge]
) -> dict[str, MethodRows]:
    """Per method (``cons``, ``esc``, then ``policy/design``), every draw's outcome: the baselines once per
    draw, every policy with every design's judge on the same draw. The judges are told each question before
    its draws are replayed."""
    cfg = EvalConfig(n=n, runs=runs, judge="context")
    rows: dict[str, MethodRows] = defaultdict(MethodRows)
    for qi, q in enumerate(questions):
        for judge in judges.values():
            judge.question = q.question or ""
        for r in range(runs):
            traces = q.drawn(n, r)
            base = baseline_outcomes(cfg, traces, logprobs=False)
            found: dict[str, MethodOutcome] = {"cons": base["cons"], "esc": base["esc"]}
            for design, judge in judges.items():
                for policy in POLICIES:
                    found[f"{policy}/{design}"] = await policy_run(cfg, policy, judge, traces)
            for method, o in found.items():
                rows[method].add(qi, q.is_correct(o.answer), o.tokens, o.judge_calls)
    return rows


def _case_line(label: str, case: dict[str, Any]) -> str:
    cells = [f"cons {case['cons']['accuracy']:.1%} / {case['cons']['tokens']:.0f}", f"ESC {case['esc']['tokens']:.0f}"]
    for k, v in case.items():
        if "/" in k:
            cells.append(f"{k} {v['accuracy']:.1%} / {v['tokens']:.0f}{' (bar)' if v['meets_bar'] else ''}")
    return f"{label}: " + ", ".join(cells)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policies", action="store_true", help="also replay the paper and adaptive policies")
    parser.add_argument("--runs", type=int, default=10, help="draws per question for --policies (default 10)")
    parser.add_argument("--json", dest="json_out", default=str(DEFAULT_JSON), metavar="OUT")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    if traces_absent():
        return 0
    table = Table()
    report: dict[str, Any] = {"truncation": TRUNCATION, "feature": QUESTION, "headline": headline(table)}
    for test, row in report["headline"].items():
        print(f"{test}: " + ", ".join(f"{k} {v['auroc']:.3f} / {v['tnr']:.3f}" for k, v in row.items()))
    if args.policies:
        report["policies"] = {"runs": args.runs, "l2": POLICY_L2, "cases": policies(table, args.runs)}
    write_report(report, args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
