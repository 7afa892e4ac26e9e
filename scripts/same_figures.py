"""Does a refactor change a figure? Run the deterministic evaluations on this checkout and on another one
(e.g. ``git worktree add /tmp/before COMMIT``) and compare their JSON reports.

    python scripts/same_figures.py /tmp/before [--out /tmp/figures]

The runs read the shared traces (../shared/data/traces) with fixed seeds: three replay evaluations (the
adaptive policy with the numbers judge on OVM Mistral, paper + trained on OVM Llama, periodic + constant on
MATH x8) and the trained judge's pair metrics on OVM Mistral. Their reports must be identical but for the
keys that time the run (``elapsed_s``, ``ms_per_pair*``). Exit status 1 when one differs. About 10 minutes
on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TIMING_KEYS = {"elapsed_s", "ms_per_pair", "ms_per_pair_cold"}
RUNS = {
    "replay_adaptive_numbers": "eval replay --traces {d}/ovm_gsm8k_test_n300_mistral7b-ep2.jsonl --n 16 --runs 5 "
    "--policy adaptive --judge numbers",
    "replay_paper_trained": "eval replay --traces {d}/ovm_gsm8k_test_n500_llama7b-2-ep2.jsonl --n 16 --runs 5 "
    "--policy paper --judge trained",
    "replay_periodic_math": "eval replay --traces {d}/qwen25math_math_n8.jsonl --n full --runs 2 "
    "--policy periodic --judge constant",
    "judge_trained": "eval judge --judge trained --test {d}/ovm_gsm8k_test_n300_mistral7b-ep2.jsonl --max-traces 40",
}


def without_timing(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def run_all(tree: Path, out: Path, traces: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    for name, args in RUNS.items():
        cmd = [sys.executable, "-m", "deepprune_agents.cli", *args.format(d=traces).split(), "--json"]
        print(f"{tree.name}: {name}", flush=True)
        subprocess.run([*cmd, str(out / f"{name}.json")], env=env, cwd=tree, check=True, stdout=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="the other checkout (its root folder)")
    parser.add_argument("--out", type=Path, default=None, help="where the reports go (default: a temp folder)")
    parser.add_argument("--traces", type=Path, default=REPO / ".." / "shared" / "data" / "traces")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="same_figures_"))
    trees = {"this": REPO, "other": args.other.resolve()}
    for label, tree in trees.items():
        run_all(tree, out / label, args.traces.resolve())
    differ = 0
    for name in RUNS:
        a, b = (json.loads((out / label / f"{name}.json").read_text()) for label in trees)
        same = without_timing(a) == without_timing(b)
        differ += not same
        print(f"{name}: {'identical' if same else 'DIFFERENT'} (timing keys left out: {sorted(TIMING_KEYS & set(a))})")
    print(f"reports in {out}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
