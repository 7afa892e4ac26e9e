"""Start-up figures of the CLI: how long ``deepprune --help`` takes, and what ``deepprune ask`` costs on top
of the run itself (issue 37: at most 0.5 s and 1.5 s on 2 cores).

    .venv/bin/python bench/startup.py [--runs 7] [--json bench/out/startup.json] [--baseline DIR]

``--help`` is timed from process start to exit. ``ask`` runs a real ``deepprune ask ... --json`` in a
subprocess against the replay server (started here, on a free port, full speed: the upstream costs next
to nothing), and its overhead is the process's wall time minus the run's own ``wall_time_s`` from the
JSON it prints: interpreter start, imports, settings, building the graph, printing. A bare ``python -c
pass`` is timed too: the floor no CLI can go under. Each figure is the median of ``--runs`` runs.

Wall time is what the targets are about, and on a machine shared with other work it grows with the load.
So the CPU time of each process (user + system, from ``getrusage``) is reported beside it: the commands
run on one thread, so on idle cores their wall time is about their CPU time.

``--baseline DIR`` times another checkout of the package as well (e.g. ``git worktree add /tmp/old
COMMIT``), interleaved with this one run by run, so both see the same load on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import REPO, write_report

from deepprune_agents.evaluation.replay_data import ReplayQuestion, make_trace
from deepprune_agents.evaluation.replay_server import ReplayServer

HELP_TARGET_S = 0.5
ASK_OVERHEAD_TARGET_S = 1.5
QUESTION = ReplayQuestion(
    "apples-startup",
    "Tom has 3 apples and buys 4 more. How many apples does he have now?",
    "7",
    tuple(make_trace(t) for t in ["3 + 4 = 7. The answer is 7."] * 4),
)


def _command(tree: Path, args: list[str]) -> tuple[list[str], dict[str, str]]:
    """``deepprune ARGS`` as the console script runs it, with the package imported from ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return [sys.executable, "-m", "deepprune_agents.cli", *args], env


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[str, float, float]:
    """Run ``cmd`` to its end: (stdout, wall seconds, CPU seconds of the process)."""
    cpu0, t0 = _children_cpu_s(), time.perf_counter()
    proc = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, cwd=cwd)
    return proc.stdout, time.perf_counter() - t0, _children_cpu_s() - cpu0


def time_help(tree: Path) -> dict[str, float]:
    _, wall, cpu = run_timed(*_command(tree, ["--help"]), tree)
    return {"s": wall, "cpu_s": cpu}


def time_ask(tree: Path, base_url: str) -> dict[str, float]:
    """One ``deepprune ask`` with the default policy and judge: total seconds, the run's own, the rest."""
    args = ["ask", QUESTION.question, "--base-url", base_url, "--n", "4", "--json"]
    out, total, cpu = run_timed(*_command(tree, args), tree)
    result = json.loads(out)
    if result["answer"] != QUESTION.ground_truth:
        raise SystemExit(f"deepprune ask answered {result['answer']!r}, not {QUESTION.ground_truth!r}")
    run_s = result["wall_time_s"]
    return {"total_s": total, "run_s": run_s, "overhead_s": total - run_s, "cpu_s": cpu}


def time_python() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - t0


def summary(samples: dict[str, list[float]]) -> dict[str, Any]:
    return {key: {"median": statistics.median(v), "min": min(v), "max": max(v)} for key, v in samples.items()}


def measure(trees: dict[str, Path], runs: int, base_url: str) -> dict[str, dict[str, list[float]]]:
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in trees}
    for tree in trees.values():  # one untimed pass each: the first run also writes .pyc files
        time_help(tree)
        time_ask(tree, base_url)
    for _ in range(runs):
        for name, tree in trees.items():
            s = samples[name]
            for prefix, figures in (("help_", time_help(tree)), ("ask_", time_ask(tree, base_url))):
                for key, value in figures.items():
                    s.setdefault(prefix + key, []).append(value)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per figure (default 7)")
    parser.add_argument("--json", default=str(REPO / "bench" / "out" / "startup.json"), metavar="OUT")
    parser.add_argument("--baseline", type=Path, default=None, metavar="DIR", help="another checkout to time too")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    trees = {"this": REPO}
    if args.baseline is not None:
        trees["baseline"] = args.baseline.resolve()
    with ReplayServer([QUESTION]) as server:
        samples = measure(trees, args.runs, server.base_url)
    python_s = statistics.median(time_python() for _ in range(args.runs))
    report: dict[str, Any] = {
        "runs": args.runs,
        "cpus": os.cpu_count(),
        "python_startup_s": python_s,
        "targets": {"help_s": HELP_TARGET_S, "ask_overhead_s": ASK_OVERHEAD_TARGET_S},
        "trees": {name: str(tree) for name, tree in trees.items()},
    }
    for name, s in samples.items():
        figures = summary(s)
        help_s, overhead_s = figures["help_s"]["median"], figures["ask_overhead_s"]["median"]
        figures["meets_targets"] = help_s <= HELP_TARGET_S and overhead_s <= ASK_OVERHEAD_TARGET_S
        report[name] = figures
        print(
            f"{name:8s} --help {help_s:.2f} s (CPU {figures['help_cpu_s']['median']:.2f} s; target {HELP_TARGET_S}); "
            f"ask: {figures['ask_total_s']['median']:.2f} s (CPU {figures['ask_cpu_s']['median']:.2f} s) for a "
            f"{figures['ask_run_s']['median']:.3f} s run, overhead {overhead_s:.2f} s "
            f"(target {ASK_OVERHEAD_TARGET_S}); python -c pass {python_s:.2f} s"
        )
    write_report(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
