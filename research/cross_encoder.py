"""The MiniLM cross-encoder (issue 11, item 3) against the other judges on unseen questions of an unseen generator.

    PYTHONPATH=$PWD .venv/bin/python research/cross_encoder.py [--steps 150] [--test-pairs 1000] [--json OUT]

Same data, pairs, truncation (first 32 tokens) and leave-one-dataset-out splits as ``bench/judge_eval.py``
(imported from it): for each test set the cross-encoder is fine-tuned (focal loss, class-balanced
oversampling, top MiniLM layer + classifier; ``deepprune_agents/training/cross_encoder.py``) on pairs of the
*other* data sets with the test questions removed, then scored on a seeded sample of ``--test-pairs`` test
pairs, on which the blend (fitted on the same split), numbers and embedding are scored too, so every judge
in a column sees the same pairs. Also measured: seconds per training step, milliseconds per pair when
scoring (a forward pass per pair and order: nothing can be cached per text), trainable bytes.

Writes ``bench/out/cross_encoder.json``; ``bench/judge_eval.py`` quotes it in docs/judge_results.md.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]  # the package, and bench/'s shared modules

from _common import REPO, write_report  # noqa: E402
from _judge_eval import data, protocol  # noqa: E402

from deepprune_agents.training.cross_encoder import CrossEncoderConfig, fit_cross_encoder  # noqa: E402

OUT = REPO / "bench" / "out" / "cross_encoder.json"


def test_sample(te: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A seeded sample of ``n`` test-pair indices (all of them when there are fewer), in index order."""
    idx = np.flatnonzero(te)
    if idx.size <= n:
        return idx
    return np.sort(np.random.default_rng(seed).choice(idx, size=n, replace=False))


def run_split(table: Any, test: str, cfg: CrossEncoderConfig, test_pairs: int) -> dict[str, Any]:
    tr, te = protocol.split_masks(table, test)
    tr_idx = np.flatnonzero(tr)
    pairs = [(table.pairs[i].a.text, table.pairs[i].b.text) for i in tr_idx]
    t_last = [time.perf_counter()]

    def progress(step: int, loss: float) -> None:
        if step % 25 == 0 or step == cfg.steps:
            now = time.perf_counter()
            print(f"[{test}] step {step}/{cfg.steps} loss {loss:.4f} ({now - t_last[0]:.0f} s)", flush=True)
            t_last[0] = now

    model, stats = fit_cross_encoder(pairs, table.labels[tr_idx], cfg, progress=progress)
    sel = test_sample(te, test_pairs, cfg.seed)
    test_texts = [(table.pairs[i].a.text, table.pairs[i].b.text) for i in sel]
    t0 = time.perf_counter()
    ce_scores = model.predict(test_texts)
    ms_per_pair = 1000 * (time.perf_counter() - t0) / max(len(sel), 1)
    _, base = protocol.blend_and_heuristics(table, tr, sel)
    y = table.labels[sel]
    scores = {"cross-encoder": ce_scores, **base}
    row = {
        "test_pairs": int(sel.size),
        "test_positives": int(y.sum()),
        "train_pool_pairs": int(tr.sum()),
        "train_datasets": sorted(set(table.dataset[tr].tolist())),
        "judges": {k: protocol.judge_metrics(y, s) for k, s in scores.items()},
        "fit": {
            "steps": stats.steps,
            "pairs_seen": stats.pairs_seen,
            "seconds": round(stats.seconds, 1),
            "seconds_per_step": round(stats.seconds_per_step, 3),
            "final_loss": stats.final_loss,
        },
        "ms_per_pair_scoring": round(ms_per_pair, 2),
        "trainable_bytes": stats.trainable_bytes,
    }
    j = row["judges"]
    print(f"[{test}] " + ", ".join(f"{k} {j[k]['auroc']:.3f}" for k in j), flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=150, help="training steps per split (batch --batch)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--trainable-layers", type=int, default=1)
    ap.add_argument("--test-pairs", type=int, default=1000, help="test pairs scored per test set (seeded sample)")
    ap.add_argument("--sets", default=",".join(data.TEST_SETS), help="test sets (default: all four)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=str(OUT))
    ap.add_argument("--cache", default=str(REPO / "bench" / "out" / "emb_cache" / "minilm_tokens32.npz"))
    args = ap.parse_args(argv)
    if args.steps < 1 or args.batch < 1 or args.test_pairs < 10:
        ap.error("--steps and --batch must be >= 1 and --test-pairs >= 10")
    sets_wanted = [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = set(sets_wanted) - set(data.TEST_SETS)
    if unknown:
        ap.error(f"unknown sets {sorted(unknown)}: use {', '.join(data.TEST_SETS)}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cfg = CrossEncoderConfig(
        steps=args.steps, batch_size=args.batch, trainable_layers=args.trainable_layers, seed=args.seed
    )
    sets = data.datasets(None)  # the four shared sets only: the same splits as the judge_eval headline
    table, _ = data.build_table(sets, data.DiskEmbeddings(Path(args.cache)), args.seed)
    rows = {test: run_split(table, test, cfg, args.test_pairs) for test in sets_wanted}
    import torch

    given = sys.argv[1:] if argv is None else argv
    report = {
        "truncation": data.TRUNCATION,
        "protocol": "leave one dataset out (as bench/judge_eval.py); every judge scored on the same test sample",
        "config": {**cfg.__dict__},
        "test_sets": rows,
        "cpu_threads": int(torch.get_num_threads()),
        "command": shlex.join([".venv/bin/python", "research/cross_encoder.py", *given]),
    }
    write_report(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
