"""Soak figures: 200 sequential pruned runs in one process against the replay server (issue 6).

    .venv/bin/python bench/soak.py [--runs 200] [--json bench/out/soak.json]

Prints open TCP sockets, file descriptors, asyncio tasks, threads, open engine runs and RSS every 10 runs
after a 10-run warm-up, and their growth; ``tests/e2e/test_soak_e2e.py`` asserts the same harness grows
nothing. The served question is the e2e suite's two-answer apples question (8 recorded-style traces).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from test_replay_server_e2e import QUESTION  # noqa: E402

from deepprune_agents.evaluation.replay_server import ReplayServer  # noqa: E402
from deepprune_agents.evaluation.soak import soak  # noqa: E402
from deepprune_agents.settings import DeepPruneContext  # noqa: E402


async def main(args: argparse.Namespace) -> dict[str, object]:
    with ReplayServer([QUESTION], tokens_per_s=args.tokens_per_s) as server:
        ctx = DeepPruneContext(
            n=args.n, policy="paper", judge="numbers", truncate="tokens:12", base_urls=[server.base_url], model="replay"
        )
        report = await soak(
            ctx, QUESTION.question, runs=args.runs, progress=lambda i, s: print(f"run {i}: {s}", flush=True)
        )
        server.wait_idle(5.0)
        report["server_open_streams_after"] = server.open_streams()
        report["tokens_per_s"] = args.tokens_per_s
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--tokens-per-s", type=float, default=400.0)
    parser.add_argument("--json", default=str(REPO / "bench" / "out" / "soak.json"))
    args = parser.parse_args()
    report = asyncio.run(main(args))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=2))
    print(f"wrote {out}")
