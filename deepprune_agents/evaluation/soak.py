"""Soak: many sequential pruned runs in one process, watching for leaks (issue 6).

A reasoning tool inside a long-lived agent process runs thousands of times. Whatever one run leaks — a
socket its HTTP client did not close, a task nobody awaited, a run left in the engine's registry, a
cache that only grows — shows up here as a figure that climbs with the run count. ``soak()`` runs the
real graph ``runs`` times against one OpenAI-compatible server and samples the process every
``sample_every`` runs: open TCP sockets, file descriptors, asyncio tasks, threads, open engine runs
and resident memory.

``growth`` compares the last sample with the first one taken after ``warmup`` runs (imports, the
judge's caches and the first connections settle during warm-up, and are not leaks).
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

from deepprune_agents.engine import RunRegistry
from deepprune_agents.reasoner import DeepPruneReasoner
from deepprune_agents.settings import DeepPruneContext


def _pooled(thread: threading.Thread) -> bool:
    return thread.name.startswith(("asyncio_", "ThreadPoolExecutor-"))


def resources(runs: RunRegistry) -> dict[str, float]:
    """What one process holds right now (the figures a leak would grow); ``runs``: the soaked graph's runs."""
    gc.collect()
    proc = psutil.Process(os.getpid())
    return {
        "tcp_sockets": float(len(proc.net_connections(kind="tcp"))),
        "fds": float(proc.num_fds()) if hasattr(proc, "num_fds") else float("nan"),
        "asyncio_tasks": float(len(asyncio.all_tasks())),
        # Pool workers (the loop's default executor runs judge rounds and builds; its threads are named
        # asyncio_N) start on demand up to the pool's fixed bound, so their count may rise once under load
        # without leaking: a leak is a thread outside any pool, which is what "threads" counts.
        "threads": float(sum(not _pooled(t) for t in threading.enumerate())),
        "pool_threads": float(sum(_pooled(t) for t in threading.enumerate())),
        "open_runs": float(len(runs)),
        "rss_mb": proc.memory_info().rss / 2**20,
    }


async def soak(
    ctx: DeepPruneContext,
    question: str,
    *,
    runs: int = 200,
    warmup: int = 10,
    sample_every: int = 10,
    progress: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Run the graph ``runs`` times in sequence; return the samples, the growth and the run figures."""
    if runs < warmup + 1:
        raise ValueError(f"runs ({runs}) must exceed warmup ({warmup}).")
    reasoner = DeepPruneReasoner(ctx)
    samples: list[dict[str, float]] = []
    baseline: dict[str, float] | None = None
    cancelled = tokens = 0
    t0 = time.perf_counter()
    for i in range(1, runs + 1):
        result = await reasoner.ainvoke(question)
        cancelled += result.cancelled
        tokens += result.tokens_generated
        if i == warmup:
            baseline = {"run": float(i), **resources(reasoner.runs)}
            samples.append(baseline)
        elif i > warmup and (i % sample_every == 0 or i == runs):
            sample = {"run": float(i), **resources(reasoner.runs)}
            samples.append(sample)
            if progress is not None:
                progress(i, sample)
    assert baseline is not None
    last = samples[-1]
    return {
        "runs": runs,
        "warmup": warmup,
        "n": ctx.n,
        "policy": ctx.policy,
        "judge": ctx.judge,
        "wall_s": time.perf_counter() - t0,
        "branches_cancelled": cancelled,
        "tokens_generated": tokens,
        "samples": samples,
        "growth": {k: last[k] - baseline[k] for k in baseline if k != "run"},
    }
