"""What the judges cost: milliseconds per pair (batched and cold, per thread count), the size of their
weights, and one cross-encoder training step on this CPU."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from deepprune_agents.judges import get_judge
from deepprune_agents.judges._threads import judge_threads, usable_cores
from deepprune_agents.training.evaluate import evaluate_judge

from .data import PairTable
from .protocol import CONTEXT, LEXICAL


# ----------------------------------------------------------------------------------------- latency
async def latency(
    table: PairTable, blend_dir: Path, lexical_dir: Path, context_dir: Path, n_pairs: int, repeats: int = 2
) -> dict[str, dict[str, Any]]:
    """Best of ``repeats`` runs per judge (the CPU is shared: the minimum is the least disturbed), after
    one warm-up call so that no judge's figure includes loading MiniLM. ``ms_per_pair``/``ms_per_pair_cold``
    are at the judges' default thread count (half the cores: a judge shares the machine with its server);
    ``by_threads`` adds every core (a judge with the machine to itself), keyed by thread count. Judges with
    no forward pass (``numbers``, ``context``) take no thread count: one figure for every count. ``context``
    is timed as ``evaluate_judge`` calls it, one question's pairs at a time with its 40 sampled traces as the
    run (the run's context is computed once and reused across its batches, as across a policy step's
    placements); *cold* is one batch whose distinct texts are its run."""
    sel = [p for p, d in zip(table.pairs, table.dataset, strict=True) if d == "OVM Mistral"][:n_pairs]
    default = judge_threads()
    counts = sorted({default, usable_cores()})
    out: dict[str, dict[str, Any]] = {}
    for label, name, opts, threaded in (
        ("numbers", "numbers", {}, False),
        (CONTEXT, "context", {"weights_dir": str(context_dir)}, False),
        ("embedding", "embedding", {}, True),
        ("trained", "trained", {}, True),
        ("blend", "blend", {"weights_dir": str(blend_dir)}, True),
        (LEXICAL, "blend", {"weights_dir": str(lexical_dir)}, True),
    ):
        by_threads: dict[str, dict[str, float | None]] = {}
        for t in counts if threaded else [default]:
            judge = get_judge(name, threads=t, **opts) if threaded else get_judge(name, **opts)
            await judge.ascore([sel[0].pair])  # warm-up: model load, thread pools
            runs = [await evaluate_judge(judge, sel, batch_size=64, cold=True) for _ in range(repeats)]
            by_threads[str(t)] = {
                "ms_per_pair": min(r["ms_per_pair"] for r in runs),
                "ms_per_pair_cold": min(r["ms_per_pair_cold"] for r in runs),
            }
        if not threaded:
            by_threads = {str(t): by_threads[str(default)] for t in counts}
        out[label] = {**by_threads[str(default)], "by_threads": by_threads}
    return out


def sizes(blend_dir: Path, lexical_dir: Path, context_dir: Path) -> dict[str, Any]:
    from deepprune_agents.judges._encoder import default_model_path
    from deepprune_agents.judges.trained import SHIPPED_WEIGHTS

    base = sum(
        f.stat().st_size
        for f in Path(default_model_path()).rglob("*")
        if f.is_file() and f.suffix in (".safetensors", ".bin")
    )
    return {
        "minilm_base_bytes": base,
        "blend_bytes": (blend_dir / "blend.json").stat().st_size,
        "blend_lexical_bytes": (lexical_dir / "blend.json").stat().st_size,
        "context_bytes": (context_dir / "blend.json").stat().st_size,
        "trained_head_bytes": (SHIPPED_WEIGHTS / "head.safetensors").stat().st_size,
        "numbers_bytes": 0,
    }


def cross_encoder_probe(table: PairTable, steps: int = 3, batch: int = 16) -> dict[str, Any]:
    """Seconds per training step of a MiniLM cross-encoder (forward + backward, AdamW) on this CPU."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from deepprune_agents.judges._encoder import default_model_path

    path = default_model_path()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5)
    sel = table.pairs[:batch]
    enc = tok(
        [p.a.text for p in sel],
        [p.b.text for p in sel],
        padding=True,
        truncation=True,
        max_length=128,
        return_tensors="pt",
    )
    y = torch.tensor([float(p.label) for p in sel])
    times = []
    model.train()
    for _ in range(steps):
        t0 = time.perf_counter()
        logits = model(**enc).logits.squeeze(-1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    s_step = float(np.median(times))
    return {
        "batch": batch,
        "seconds_per_step": s_step,
        "threads": torch.get_num_threads(),
        "projected_minutes_4000_pairs_x4_splits": round(4 * (4000 / batch) * s_step / 60, 1),
    }
