"""bench/judge_eval.py's lexical blend: fitted on the same split as the blend, blind to the cosine column."""

from __future__ import annotations

from typing import Any

import numpy as np
from bench_scripts import load_bench  # tests/unit is on sys.path (rootdir import mode)


def _table(je: Any, cosine: np.ndarray) -> Any:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 600)
    x = np.column_stack([y + rng.normal(0, 0.6, 600), y + rng.normal(0, 1.0, 600), cosine]).astype(np.float32)
    ds = np.array(["a"] * 300 + ["b"] * 300)
    return je.PairTable(pairs=[], dataset=ds, group=ds, labels=y, enc=None, x=x)


def test_lexical_scores_ignore_the_cosine_and_the_note_reports_what_it_adds() -> None:
    je = load_bench("judge_eval")
    rng = np.random.default_rng(1)
    t1, t2 = _table(je, rng.normal(0, 1, 600)), _table(je, rng.normal(5, 3, 600))
    tr = t1.dataset == "a"
    _, s1 = je.blend_and_heuristics(t1, tr, ~tr)
    _, s2 = je.blend_and_heuristics(t2, tr, ~tr)
    assert np.array_equal(s1[je.LEXICAL], s2[je.LEXICAL])  # the cosine column never reaches it
    assert not np.array_equal(s1["blend"], s2["blend"])
    report = {
        "headline": {
            "test_sets": {"b": {"judges": {"blend": {"auroc": 0.534}, je.LEXICAL: {"auroc": 0.530}}}},
            "latency": {"blend": {"ms_per_pair": 1.5}, je.LEXICAL: {"ms_per_pair": 0.01}},
        }
    }
    assert (
        je.lexical_note(report) == "The cosine adds (blend minus lexical AUROC): b +0.0040 at 150x the cost per pair."
    )


def test_latency_cells_show_each_thread_count_and_old_reports_still_render() -> None:
    je = load_bench("judge_eval")
    la = {
        "ms_per_pair": 1.5,
        "by_threads": {"1": {"ms_per_pair": 1.5}, "2": {"ms_per_pair": 0.84}},
    }
    assert je._lat_cell(la, "ms_per_pair", ["1", "2"]) == "1.50 / 0.84"
    assert je._lat_cell({"ms_per_pair": 1.62}, "ms_per_pair", ["1", "2"]) == "1.62"  # a report from before
