"""Which knobs for the default ``staged`` policy? Its neighbours on issue 34's Done-when cases, every set at once.

    PYTHONPATH=$PWD .venv/bin/python research/staged_knobs.py [--sets mistral,llama,math,dates] [--runs 10]

The default (``staged`` + ``numbers``: first wave 4, split below 0.45, 30% of the launched branches answered
before a Beta stop) was chosen on all ten cases together (OVM Mistral and Llama at N = 8, 16, 32, 64, MATH x8
and dates x10 at N = 8), never on one set. This script measures it beside the settings one knob away, each with
the ``numbers`` judge and with the ``constant`` control, and prints, per setting, how many cases meet the bar
(accuracy >= cons@N - 1 point, tokens and wall time <= ESC's, in the offline simulator) and on how many the
judge pays (the constant judge >= 10% worse in tokens or wall time). ``split_tau`` 0.5001 is the split line of
the first version (a mean at or below 0.5: the lexical judges' frequent tie at 0.5 read as split). Writes
bench/out/staged_knobs.json. About 15 min on 2 cores, dates x10 most of it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from _common import TRACE_FILES, shared_data, traces_absent, write_report

CASES = {"mistral": (8, 16, 32, 64), "llama": (8, 16, 32, 64), "math": (8,), "dates": (8,)}
DEFAULT = {"staged_first_wave": 4, "staged_split_tau": 0.45, "staged_min_vote_share": 0.3}
NEIGHBOURS = {
    "default": {},
    "first wave 5": {"staged_first_wave": 5},
    "split at <= 0.5": {"staged_split_tau": 0.5001},
    "vote share 0.1": {"staged_min_vote_share": 0.1},
    "first version (5, <= 0.5, 0.1)": {
        "staged_first_wave": 5,
        "staged_split_tau": 0.5001,
        "staged_min_vote_share": 0.1,
    },
}


def verdicts(cases: dict[str, dict[str, dict[str, float]]]) -> dict[str, int]:
    """Bar and judge-pays tallies over cases, each case a map of method -> {accuracy, tokens, wall}; the rules
    are bench/staged_fanout.py's (one definition of issue 34's Done-when)."""
    import staged_fanout

    bar = pays = better = 0
    for m in cases.values():
        methods = {"cons": m["cons"], "esc": m["esc"], "staged/numbers": m["numbers"], "staged/constant": m["constant"]}
        bar += staged_fanout.checks(methods, "staged/numbers")["bar"]
        worse, both = staged_fanout.judge_pays(methods, "staged/numbers")
        pays += worse
        better += both
    return {"cases": len(cases), "bar": bar, "pays": pays, "constant_better_on_both": better}


async def measure(sets: list[str], runs: int) -> dict[str, Any]:
    from deepprune_agents.evaluation.replay_data import load_replay_questions
    from deepprune_agents.evaluation.replay_eval import EvalConfig, baseline_outcomes, load_judge, policy_run

    judges = {j: load_judge(j) for j in ("numbers", "constant")}
    out: dict[str, Any] = {name: {} for name in NEIGHBOURS}
    for label in sets:
        questions = load_replay_questions([shared_data() / "traces" / TRACE_FILES[label]])
        for n in CASES[label]:
            t0 = time.perf_counter()
            sums: dict[str, dict[str, dict[str, float]]] = {name: {} for name in NEIGHBOURS}
            base_cfg = EvalConfig(n=n, runs=runs)
            configs = {}
            for name, change in NEIGHBOURS.items():
                configs[name] = base_cfg
                for setting, value in {**DEFAULT, **change}.items():
                    configs[name] = configs[name].with_setting(setting, value)
            draws = 0
            for q in questions:
                for r in range(runs):
                    traces = q.drawn(n, r)
                    draws += 1
                    base = baseline_outcomes(base_cfg, traces, False)
                    outcomes = {k: base[k] for k in ("cons", "esc")}
                    for name, cfg in configs.items():
                        for j, judge in judges.items():
                            o = await policy_run(cfg, "staged", judge, traces)
                            acc = sums[name].setdefault(j, {"accuracy": 0.0, "tokens": 0.0, "wall": 0.0})
                            acc["accuracy"] += q.is_correct(o.answer)
                            acc["tokens"] += o.tokens
                            acc["wall"] += o.wall
                        for k, o in outcomes.items():
                            acc = sums[name].setdefault(k, {"accuracy": 0.0, "tokens": 0.0, "wall": 0.0})
                            acc["accuracy"] += q.is_correct(o.answer)
                            acc["tokens"] += o.tokens
                            acc["wall"] += o.wall
            for name in NEIGHBOURS:
                out[name][f"{label} N={n}"] = {k: {f: v / draws for f, v in m.items()} for k, m in sums[name].items()}
            print(f"{label} N={n}: {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default=",".join(CASES))
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", default="bench/out/staged_knobs.json")
    args = parser.parse_args()
    if traces_absent():
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    cases = asyncio.run(measure(sets, args.runs))
    report = {"default": DEFAULT, "neighbours": NEIGHBOURS, "runs": args.runs, "cases": cases}
    report["verdicts"] = {name: verdicts(c) for name, c in cases.items()}
    print("| setting | bar met | the judge pays | constant better on both |")
    print("|---|---|---|---|")
    for name, v in report["verdicts"].items():
        print(f"| {name} | {v['bar']} of {v['cases']} | {v['pays']} | {v['constant_better_on_both']} |")
    write_report(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
