"""``deepprune bench live``'s measurement on the real vLLM server, shrunk to one question and four branches:
the server's token counter, the per-question answer histogram and the report's regime figure add up."""

from __future__ import annotations

import asyncio
from typing import Any

from deepprune_agents.evaluation.live_bench import LIVE_QUESTIONS, run_live_bench
from deepprune_agents.pruning.vote import plurality_share
from deepprune_agents.settings import DeepPruneContext

N, MAX_TOKENS = 4, 48


def test_live_bench_counts_server_tokens_and_every_branch_answer(vllm_server: Any) -> None:
    ctx = DeepPruneContext(
        base_urls=[vllm_server.base_url], model=vllm_server.model, n=N, max_tokens=MAX_TOKENS, judge="numbers"
    )
    report = asyncio.run(run_live_bench(ctx, root_url=vllm_server.root_url, questions=LIVE_QUESTIONS[:1]))
    (row,) = report["rows"]
    for method in ("cons", "deepprune"):
        # the server counted what was generated: something, and never more than N branches x the cap
        assert 0 < row[method]["server_tokens"] <= N * MAX_TOKENS
        assert sum(row[method]["answers"].values()) == N  # one histogram entry per branch, "none" included
    cons = row["cons"]
    assert cons["client_tokens"] <= cons["server_tokens"] <= N * MAX_TOKENS
    assert report["cons_plurality_share"] == plurality_share(cons["answers"])
    assert 0.0 <= report["cons_plurality_share"] <= 1.0
    assert report["cons_server_tokens"] == cons["server_tokens"]
    assert report["speedup"] > 0 and report["token_reduction"] < 1.0
    assert report["sampling"] == {"temperature": 0.8, "top_p": 0.95, "max_tokens": MAX_TOKENS, "seed": 0}
