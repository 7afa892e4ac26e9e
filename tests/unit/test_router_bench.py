"""bench/router.py's pure part: the per-mode summary of its runs (the runs themselves need two vLLM servers)."""

from __future__ import annotations

import pytest
from bench_scripts import load_bench  # tests/unit is on sys.path (rootdir import mode)

bench = load_bench("router")


def figures(mode: str, queries: int, hits: int, prompt: int, **kw: object) -> object:
    base: dict[str, object] = {
        "mode": mode, "run": 0, "prompt_tokens": prompt, "queries": queries, "hits": hits,
        "computed": queries - hits, "replicas_used": 1, "replica_prompt": [queries, 0], "wall_s": 10.0,
        "ttft_s": [1.0, 2.0, 3.0],
    }  # fmt: skip
    base.update(kw)
    return bench.RunFigures(**base)


def test_summary_pools_hits_over_prompt_tokens_and_counts_prompts_computed() -> None:
    # affinity: 16 branches x 2,050 prompt tokens, the first computes 2,050 and 15 hit 2,048 each
    one = figures("affinity", 16 * 2050, 15 * 2048, 2050, cancelled=8, aborted=8)
    # spreading: two replicas compute the prompt once each
    two = figures("spreading", 16 * 2050, 14 * 2048, 2050, replicas_used=2, wall_s=12.0, ttft_s=[4.0])
    s = bench.summary([one])
    assert s["hit_rate"] == pytest.approx(15 * 2048 / (16 * 2050))
    assert s["prompts_computed_per_run"] == pytest.approx((16 * 2050 - 15 * 2048) / 2050)
    assert s["ttft_median_s"] == pytest.approx(2.0) and s["cancelled"] == s["aborted"] == 8
    both = bench.summary([one, two])
    assert both["hit_rate"] == pytest.approx((15 + 14) * 2048 / (32 * 2050))
    assert both["wall_mean_s"] == pytest.approx(11.0) and both["replicas_per_run"] == pytest.approx(1.5)
    assert one.hit_rate == pytest.approx(15 * 2048 / (16 * 2050))
