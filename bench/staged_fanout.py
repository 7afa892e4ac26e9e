"""Issue 34's "Done when" table: the staged fan-out policy against the baselines, on every shared trace set.

    .venv/bin/python bench/staged_fanout.py                      # measure every set (about 30 min on 2 cores)
    .venv/bin/python bench/staged_fanout.py --sets mistral,llama # some sets; others keep their JSON
    .venv/bin/python bench/staged_fanout.py --render             # only re-render from bench/out/staged

Cases: every shared set at every N its files allow among 8, 16, 32, 64 (OVM Mistral and Llama: all four;
MATH x8 and dates x10: 8), 10 runs per question, in the offline simulator (proven equal to the engine on
the replay server, staged runs included, by tests/e2e/test_replay_equivalence.py). Methods: cons@N, ESC
(window 5), Adaptive-Consistency, random subsampling cons@N/2 (what blind thinning is), and the policies
``staged`` (numbers and constant judges: the default and its control), ``adaptive`` (constant: the default
before issue 34), ``paper``
and ``periodic`` (numbers judge), each with tokens and wall time (ticks, one token per tick). DeepConf-online
needs log-probabilities, which none of these files records (reported as not measured).

The checks, per case (project defaults otherwise):
* bar: accuracy >= cons@N - 1 point, tokens <= ESC's, wall <= ESC's;
* ahead of ESC: >= 10% fewer tokens or >= 20% less wall time (needed on at least 3 cases);
* the judge pays: the same policy with the ``constant`` judge is >= 10% worse in tokens or in wall on at
  least 3 cases, and on no case better on both by more than 2%.
Every accuracy delta is printed with its paired bootstrap 95% CI over questions and the question count.
Writes bench/out/staged/frontier_<set>.json (+ .tokens.png / .wall.png); rendering rewrites the block between
``<!-- staged:begin -->`` and ``<!-- staged:end -->`` in docs/staged_fanout.md, copies the plots to
docs/staged_fanout_<set>.*.png and writes docs/staged_fanout.json (the verdicts the README quotes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from _common import TRACE_FILES, shared_data, traces_absent
from replay_results import within_a_point

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out" / "staged"
DOC = REPO / "docs" / "staged_fanout.md"
SUMMARY = REPO / "docs" / "staged_fanout.json"
BEGIN, END = "<!-- staged:begin -->", "<!-- staged:end -->"
SETS = {"mistral": "mistral", "llama": "llama", "math": "math", "dates": "dates"}
CANDIDATE_NS = (8, 16, 32, 64)
POLICIES = ("staged", "adaptive", "paper", "periodic")
JUDGES = ("numbers", "constant")
# (policy, judge, from N): combinations left out (not informative, or not the baselines)
SKIP = [("adaptive", "numbers", 0), ("paper", "constant", 0), ("periodic", "constant", 0)]
BEFORE = "adaptive/constant"  # the project default before issue 34


def candidate() -> str:
    """The project default (``policy/judge`` from the settings): the configuration the Done-when checks."""
    from deepprune_agents.evaluation.replay_eval import setting_default

    return f"{setting_default('policy')}/{setting_default('judge')}"


def case_ns(questions: list[Any]) -> list[int]:
    available = min(len(q.traces) for q in questions)
    return [n for n in CANDIDATE_NS if n <= available]


def measure(sets: list[str], runs: int) -> None:
    from deepprune_agents.evaluation.frontier import frontier_async, write_frontier
    from deepprune_agents.evaluation.replay_data import load_replay_questions
    from deepprune_agents.evaluation.replay_eval import EvalConfig

    OUT.mkdir(parents=True, exist_ok=True)
    for label in sets:
        t0 = time.perf_counter()
        questions = load_replay_questions([shared_data() / "traces" / TRACE_FILES[SETS[label]]])
        ns = case_ns(questions)
        report = asyncio.run(
            frontier_async(
                questions,
                EvalConfig(runs=runs),
                ns=ns,
                judges=JUDGES,
                policies=POLICIES,
                skip=SKIP,
                progress=lambda m, label=label: print(f"{label}: {m}", flush=True),
            )
        )
        report["trace_file"] = TRACE_FILES[SETS[label]]
        write_frontier(report, OUT / f"frontier_{label}.json", title=f"{label}: staged fan-out vs baselines")
        print(f"{label}: {time.perf_counter() - t0:.0f} s", flush=True)


def pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def delta_text(m: dict[str, Any]) -> str:
    d = m.get("vs_cons") or {}
    if not d:
        return ""
    lo, hi = d["ci95"]
    return f"{100 * d['delta']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] (q={d['questions']})"


def checks(methods: dict[str, Any], name: str) -> dict[str, Any]:
    """The bar and 'ahead of ESC' for one method at one case."""
    m, cons, esc = methods[name], methods["cons"], methods["esc"]
    acc_ok = within_a_point(m, cons)  # issue 10's accuracy bar, one definition (bench/replay_results.py)
    tok_ok = m["tokens"] <= esc["tokens"] + 1e-9
    wall_ok = m["wall"] <= esc["wall"] + 1e-9
    ahead = m["tokens"] <= 0.9 * esc["tokens"] or m["wall"] <= 0.8 * esc["wall"]
    return {"acc": acc_ok, "tokens": tok_ok, "wall": wall_ok, "bar": acc_ok and tok_ok and wall_ok, "ahead": ahead}


def judge_pays(methods: dict[str, Any], name: str) -> tuple[bool, bool]:
    """(constant judge >= 10% worse in tokens or wall, constant better on both by more than 2%)."""
    policy = name.split("/")[0]
    m, c = methods[name], methods.get(f"{policy}/constant")
    if c is None or name.endswith("/constant"):
        return False, False
    worse = c["tokens"] >= 1.1 * m["tokens"] or c["wall"] >= 1.1 * m["wall"]
    better_both = c["tokens"] < 0.98 * m["tokens"] and c["wall"] < 0.98 * m["wall"]
    return worse, better_both


def load_reports() -> dict[str, dict[str, Any]]:
    return {label: json.loads(p.read_text()) for label in SETS if (p := OUT / f"frontier_{label}.json").exists()}


def verdict_table(reports: dict[str, Any], name: str) -> tuple[list[str], dict[str, int]]:
    lines = [
        f"### `{name}`",
        "",
        "| case | accuracy vs cons@N, points [paired 95% CI] (questions) | tokens (ESC) | wall (ESC) | bar "
        "| ahead of ESC | constant judge worse >= 10% | constant better on both > 2% |",
        "|---|---|---|---|---|---|---|---|",
    ]
    tally = {"cases": 0, "bar": 0, "ahead": 0, "pays": 0, "constant_better": 0}
    for label, r in reports.items():
        for n, methods in r["points"].items():
            if name not in methods:
                continue
            m, esc = methods[name], methods["esc"]
            c = checks(methods, name)
            worse, better = judge_pays(methods, name)
            tally["cases"] += 1
            tally["bar"] += c["bar"]
            tally["ahead"] += c["ahead"]
            tally["pays"] += worse
            tally["constant_better"] += better
            fails = [k for k in ("acc", "tokens", "wall") if not c[k]]
            lines.append(
                f"| {label} N={n} | {delta_text(m)} | {m['tokens']:.0f} ({esc['tokens']:.0f}) | {m['wall']:.0f} "
                f"({esc['wall']:.0f}) | {'pass' if c['bar'] else 'FAIL: ' + ', '.join(fails)} | "
                f"{'yes' if c['ahead'] else 'no'} | {'yes' if worse else 'no'} | {'YES' if better else 'no'} |"
            )
    lines += [
        "",
        f"Bar met on {tally['bar']} of {tally['cases']} cases; ahead of ESC on {tally['ahead']} (needed: 3); the "
        f"constant judge >= 10% worse on {tally['pays']} (needed: 3), better on both by > 2% on "
        f"{tally['constant_better']} (allowed: 0).",
        "",
    ]
    return lines, tally


def methods_table(reports: dict[str, Any]) -> list[str]:
    names = ["cons", "esc", "ac", "cons-half", "staged/numbers", "staged/constant", "adaptive/constant"]
    names += ["paper/numbers", "periodic/numbers"]
    lines = [
        "## Every method, tokens and wall time",
        "",
        "Cell: accuracy (delta vs cons@N in points, paired bootstrap 95% CI, questions) / tokens per question / wall "
        "time in ticks (one token per tick; ESC, AC and DeepConf run their windows one after another).",
        "",
    ]
    for label, r in reports.items():
        lines += [f"### {label} ({r['questions']} questions, {r['runs']} runs)", ""]
        ns = list(r["points"])
        lines.append("| method | " + " | ".join(f"N={n}" for n in ns) + " |")
        lines.append("|---|" + "---|" * len(ns))
        for name in names:
            cells = []
            for n in ns:
                m = r["points"][n].get(name)
                cells.append(
                    ""
                    if m is None
                    else f"{100 * m['accuracy']:.1f} ({delta_text(m)}) / {m['tokens']:.0f} / {m['wall']:.0f}"
                )
            if any(cells):
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
        plots = ", ".join(f"[{axis}](staged_fanout_{label}.{axis}.png)" for axis in ("tokens", "wall"))
        lines += ["", f"Plots (accuracy against tokens, and against wall time, one panel per N): {plots}.", ""]
    return lines


def render(reports: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The generated block of docs/staged_fanout.md and the summary the README quotes."""
    default = candidate()
    head = [
        "<!-- written by bench/staged_fanout.py; edit the script, not this block -->",
        "## The Done-when table",
        "",
        "Command: `PYTHONPATH=$PWD .venv/bin/python bench/staged_fanout.py` (10 runs per question; offline simulator). "
        f"The default is `{default}`; `staged/constant` is the same policy with a judge that carries no information, "
        f"`{BEFORE}` the default before issue 34.",
        "",
    ]
    body: list[str] = []
    tallies: dict[str, dict[str, int]] = {}
    for name in dict.fromkeys((default, "staged/constant", BEFORE)):
        lines, tallies[name] = verdict_table(reports, name)
        body += lines
    summary = {
        "default": default,
        "tallies": tallies,
        "cases": {
            f"{label} N={n}": {
                name: {k: methods[name][k] for k in ("accuracy", "tokens", "wall", "vs_cons")}
                for name in ("cons", "esc", default, "staged/constant", BEFORE)
                if name in methods
            }
            for label, r in reports.items()
            for n, methods in r["points"].items()
        },
    }
    return "\n".join(head + body + methods_table(reports)), summary


def write_doc(block: str) -> None:
    """Replace the generated block of docs/staged_fanout.md (the prose around it is written by hand)."""
    text = DOC.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    DOC.write_text(text[:start] + "\n" + block + "\n" + text[end:])


def copy_plots(reports: dict[str, dict[str, Any]]) -> None:
    for label, r in reports.items():
        for axis, name in r.get("plots", {}).items():
            if (src := OUT / name).is_file():
                shutil.copyfile(src, DOC.parent / f"staged_fanout_{label}.{axis}.png")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default=",".join(SETS), help="sets to measure (default: all)")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--render", action="store_true", help="only render the table from the JSON")
    args = parser.parse_args()
    if not args.render:
        if traces_absent():
            return 2
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        measure([s.strip() for s in args.sets.split(",") if s.strip()], args.runs)
    reports = load_reports()
    if not reports:
        print(f"nothing to render: no frontier_*.json in {OUT} (run without --render first)")
        return 2
    block, summary = render(reports)
    write_doc(block)
    copy_plots(reports)
    SUMMARY.write_text(json.dumps(summary, indent=2) + "\n")
    print(block)
    print(f"wrote {DOC}, {SUMMARY} and the plots beside it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
