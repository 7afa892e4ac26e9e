"""Load: 512 or 2,048 branches in one process against the replay server at full speed.

    .venv/bin/python bench/scale.py --n 512|2048 [--policy paper] [--judge numbers] --json OUT [--profile]

The replay server runs in its own process (``deepprune replay-server``, full speed), so the figures
below are the orchestrator's alone:

* event-loop lag: a probe task sleeps 5 ms in a loop on the orchestrator's loop; lag = how late it
  wakes (p50/p99/max, and when the worst stall began; target p99 <= 20 ms). ``loop_cpu_lag_ms`` is the
  CPU the loop's thread spent on other callbacks meanwhile: the lag on a core of its own, which the wall
  figure only shows on an idle machine (report ``load_avg_1_5_15`` with every figure);
* fan-out: when the server saw the last branch's request and sent its first token, from the run's start;
* CPU-seconds per 1,000 streamed tokens, and orchestrator / server CPU in cores;
* ``judge_round_cpu_ms``: loop-thread CPU of each judge round (policy step and judge calls; target < 5);
* branches lost (never seen by the server, failed, or not ended) and streams still open afterwards;
* memory: RSS before, peak during (sampled every 50 ms) and after;
* cancellation: for every branch the engine cancelled, server-side stop (the replay server's record of
  the client disconnect) minus the engine's decision time.

``--profile`` runs the run under cProfile, writes the top functions into the JSON and the raw profile
next to it (OUT.prof, for ``pstats``' callers view).

Measured on the 2-core machine shared with four other helpers and a vLLM server (load average 5-9, the
orchestrator got 0.3-0.5 of a core), GSM8K question 0, paper policy, numbers judge, one run each:

| n | code | lag p99 / max ms | CPU lag p99 ms | last opened / its TTFT s | CPU-s / 1k tok | lost | open after |
|---|---|---|---|---|---|---|---|
| 512 | before | 3031 / 3031 | - | 4.47 / 4.69 | 0.074 | 0 | 0 |
| 512 | after | 501 / 501 | 178 | 2.24 / 2.50 | 0.049 | 0 | 0 |
| 2048 | before | 2755 / 9331 | 1153 (max 4883) | 13.0 / 14.1 | 0.117 | 0 | 0 |
| 2048 | after (2 runs) | 1884-2487 / 2049-2576 | 473-495 (max 925-986) | 9.0-9.9 / 10.0-11.3 | 0.060-0.062 | 0 | 0 |

What was cut: opening a stream through openai's client (~2 ms of request building each, 512 at once
stalled the loop for seconds) -> the HTTP client directly, errors still openai's types; one pool for
all streams (httpcore scans its pool per request: O(n^2)) -> 16 pools; a TLS context per client (20 ms
each, on the loop) -> one; three decoding generators per chunk -> lines split from the raw body; opens
spaced 0.5 ms apart; the judge node's O(N) "round due?" check on every loop iteration -> every 20 ms.

Since then (this issue's second step): from 256 branches the streams run in worker processes
(``stream_workers``, backends/shards.py), each sending the orchestrator one batch of chunks per ~10 ms;
large judge rounds with local judges run on a thread (graph.policy_step); views are rebuilt only for
branches that changed. docs/load.md's Load table has the figures of both layouts (``--workers 0``: the
streams on the orchestrator's loop, as below).

What was left in one process, and why it could not reach 20 ms here: (1) with every stream busy, one loop iteration
reads a chunk from each of the N streams (~50 us each through h11/httpcore), so an iteration costs about
25 ms at 512 and 100 ms at 2,048 whatever else is done; (2) the paper policy's round that places every
branch costs ~0.8 s of loop-thread CPU at 512 and ~3.5 s at 2,048 (numbers judge; it yields between
placements, so it is spread, not a single block). Meeting the target needs the streams spread over
worker processes (each <= ~300 streams, reporting text deltas to the orchestrator over a pipe) and the
judge round in a worker thread or process, on a machine with a core per worker; on 2 shared cores
there is no second core to give them.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import os
import pstats
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
from _common import TRACE_FILES, shared_data

from deepprune_agents.evaluation.live_bench import percentile  # nearest rank, as the live benchmark
from deepprune_agents.settings import KNOWN_POLICIES

REPO = Path(__file__).resolve().parents[1]
SHARED = shared_data()
FILES = [TRACE_FILES["llama"], TRACE_FILES["mistral"]]


def merged_trace_file(out_dir: Path) -> tuple[Path, str]:
    """GSM8K test question 0 with the Llama and Mistral samples together (800 traces >= 512 branches)."""
    from deepprune_agents.trace_io import load_traces

    questions = [load_traces([SHARED / "traces" / f])[0] for f in FILES]
    texts = [t.text for q in questions for t in q.traces]
    path = out_dir / "scale_traces.jsonl"
    line = {"question_id": "gsm8k-test-0", "question": questions[0].question, "ground_truth": questions[0].ground_truth}
    path.write_text(json.dumps({**line, "traces": texts}) + "\n")
    return path, questions[0].question


class Server:
    """``deepprune replay-server`` in a subprocess on a free port."""

    def __init__(self, traces: Path, tokens_per_s: float = 0.0, reasoning: str | None = None) -> None:
        cmd = [sys.executable, "-m", "deepprune_agents.cli", "replay-server", "--traces", str(traces), "--port", "0"]
        cmd += ["--tokens-per-s", str(tokens_per_s)]
        if reasoning:
            cmd += ["--reasoning", reasoning]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = re.search(r"(http://[\d.]+:\d+)/v1", line)
        if m is None:
            self.proc.kill()
            raise RuntimeError(f"replay server did not start: {line!r}")
        self.root = m.group(1)
        self.base_url = self.root + "/v1"
        self.ps = psutil.Process(self.proc.pid)

    def stats(self) -> dict[str, Any]:
        return httpx.get(self.root + "/stats", timeout=30).json()

    def reset(self) -> None:
        httpx.post(self.root + "/admin/reset", timeout=10)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _cpu(procs: list[psutil.Process]) -> float:
    """User + system CPU seconds of ``procs`` so far (0 for one that has exited)."""
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


async def one_run(server: Server, question: str, args: argparse.Namespace) -> dict[str, Any]:
    from deepprune_agents.reasoner import DeepPruneReasoner
    from deepprune_agents.settings import DeepPruneContext

    ctx = DeepPruneContext(
        n=args.n,
        max_n=max(512, args.n),
        policy=args.policy,
        judge=args.judge,
        truncate=args.truncate,
        base_urls=[server.base_url],
        model="replay",
        max_tokens=4096,
        seed=args.seed,
        request_timeout_s=120,
        stream_workers=args.workers,
    )
    from deepprune_agents import run_builder

    # Time every judge round on the loop's thread (CPU), without touching engine code: wrap the policy.
    rounds_ms: list[float] = []
    original_make_policy = run_builder.make_policy

    def timed_policy(c: Any) -> Any:
        policy = original_make_policy(c)
        step = policy.step

        async def timed_step(views: Any, judge: Any) -> Any:
            c0 = time.thread_time()
            try:
                return await step(views, judge)
            finally:
                rounds_ms.append((time.thread_time() - c0) * 1000.0)

        policy.step = timed_step
        return policy

    run_builder.make_policy = timed_policy
    reasoner = DeepPruneReasoner(ctx)
    me = psutil.Process()
    lags: list[float] = []
    rss: list[int] = []
    stop = asyncio.Event()

    cpu_lags: list[float] = []
    lag_at: list[float] = []

    async def probe() -> None:
        interval = 0.005
        while not stop.is_set():
            t, c = time.perf_counter(), time.thread_time()
            await asyncio.sleep(interval)
            lags.append((time.perf_counter() - t - interval) * 1000.0)
            lag_at.append(t)
            # CPU the loop's thread spent on other callbacks while the probe slept: the lag this run would
            # show on a core of its own (the wall lag above also counts time the OS gave to other processes).
            cpu_lags.append(max(0.0, time.thread_time() - c - interval) * 1000.0)

    async def memory() -> None:
        while not stop.is_set():
            rss.append(me.memory_info().rss)
            await asyncio.sleep(0.05)

    # warm the judge (model load) outside the measured window
    # ... and start the stream workers the run will use (once per process: ~1 s of imports each)
    t_warm = time.perf_counter()
    await DeepPruneReasoner(ctx.replace(n=2, stream_workers=ctx.workers_for_run())).ainvoke(question)
    warm_s = time.perf_counter() - t_warm
    server.reset()
    rounds_ms.clear()
    rss_before = me.memory_info().rss
    gc_pauses: list[tuple[int, float]] = []  # (generation, ms) of every collection in the measured run
    gc_started: list[float] = []

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_started[:] = [time.perf_counter()]
        elif gc_started:
            gc_pauses.append((int(info["generation"]), (time.perf_counter() - gc_started[0]) * 1000.0))

    gc.callbacks.append(on_gc)
    tasks = [asyncio.create_task(probe()), asyncio.create_task(memory())]
    workers = [c for c in me.children() if c.pid != server.ps.pid]  # stream workers (--workers), started above
    wrk_cpu0 = _cpu(workers)
    cpu0, srv_cpu0, t0, t0_epoch = me.cpu_times(), server.ps.cpu_times(), time.perf_counter(), time.time()
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    result = await reasoner.ainvoke(question)
    if profiler is not None:
        profiler.disable()
    wall = time.perf_counter() - t0
    cpu1, srv_cpu1, wrk_cpu1 = me.cpu_times(), server.ps.cpu_times(), _cpu(workers)
    stop.set()
    gc.callbacks.remove(on_gc)
    await asyncio.gather(*tasks)
    await asyncio.sleep(0.5)  # let the server record the last disconnects
    stats = server.stats()
    by_seed = {r["seed"]: r for r in stats["records"]}
    stop_lat = []
    for b in result.branches:
        if b.status == "cancelled" and b.cancel_decided_at is not None:
            rec = by_seed.get(b.seed)
            # Only streams the server saw the client close: one it had already finished sending before the
            # decision stopped on its own (its t_end precedes the cancel), which is no cancellation latency.
            if rec is not None and rec["disconnected"] and rec["t_disconnect"] is not None:
                stop_lat.append((rec["t_disconnect"] - b.cancel_decided_at) * 1000.0)
    streams = [r for r in stats["records"] if r["stream"]]
    last = max(streams, key=lambda r: r["t_start"]) if streams else None
    worker_cpu_s = wrk_cpu1 - wrk_cpu0
    cpu_s = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system) + worker_cpu_s
    server_tokens = stats["generation_tokens_total"]
    ended = result.finished + result.cancelled + result.failed
    out: dict[str, Any] = {
        "n": args.n,
        "load_avg_1_5_15": list(os.getloadavg()),
        # Fan-out: when the server saw the last branch's request, and its first token, from the run's start.
        "last_branch_opened_s": (last["t_start"] - t0_epoch) if last else None,
        "ttft_last_branch_s": (last["t_first_token"] - t0_epoch) if last and last["t_first_token"] else None,
        "requests_seen": len(streams),
        "cpu_s_per_1k_tokens": cpu_s / (server_tokens / 1000.0) if server_tokens else None,
        # A lost branch: one the server never saw, or one that ended failed (its text is kept, but it did not
        # get to finish or be pruned).
        "branches_lost": (args.n - len(streams)) + result.failed + (args.n - ended),
        "tokens_per_s_per_stream": args.tokens_per_s,
        "policy": args.policy,
        "judge": args.judge,
        "wall_s": wall,
        "answer": result.answer,
        "branches": {"finished": result.finished, "cancelled": result.cancelled, "failed": result.failed},
        "tokens_generated": result.tokens_generated,
        "server_tokens": stats["generation_tokens_total"],
        "open_streams_after": stats["open_streams"],
        "judge_rounds": result.judge_rounds,
        "loop_lag_ms": {
            "p50": percentile(lags, 50),
            "p99": percentile(lags, 99),
            "max": max(lags) if lags else None,
            "samples": len(lags),
            # When the worst stall began, from the run's start (fan-out, streaming, or the final vote).
            "max_at_s": lag_at[lags.index(max(lags))] - t0 if lags else None,
        },
        # Loop-thread CPU of each judge round (policy step incl. judge calls); target < 5 ms.
        "judge_round_cpu_ms": [round(x, 1) for x in rounds_ms],
        "loop_cpu_lag_ms": {
            "p50": percentile(cpu_lags, 50),
            "p99": percentile(cpu_lags, 99),
            "max": max(cpu_lags) if cpu_lags else None,
        },
        "orchestrator_cpu_cores": ((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)) / wall,
        "stream_workers": ctx.workers_for_run(),
        # Python's full (generation 2) collections during the run: the lag's max is usually one of them.
        "gc_full_pauses_ms": [round(ms, 1) for g, ms in gc_pauses if g == 2],
        "warm_up_s": warm_s,  # judge load + worker start, once per process, before the measured run
        "reasoning": args.reasoning,
        "worker_cpu_cores": worker_cpu_s / wall,
        "server_cpu_cores": ((srv_cpu1.user + srv_cpu1.system) - (srv_cpu0.user + srv_cpu0.system)) / wall,
        "rss_mb": {
            "before": rss_before / 2**20,
            "peak": max(rss) / 2**20 if rss else None,
            "after": me.memory_info().rss / 2**20,
        },
        "cancel_stop_ms": {
            "count": len(stop_lat),
            "p50": percentile(stop_lat, 50),
            "p99": percentile(stop_lat, 99),
            "max": max(stop_lat) if stop_lat else None,
            "share_within_50ms": sum(1 for x in stop_lat if x <= 50.0) / len(stop_lat) if stop_lat else None,
        },
        "targets": {"loop_lag_p99_ms": 20, "orchestrator_cpu_cores": 1.0},
    }
    if profiler is not None:
        profiler.dump_stats(str(Path(args.json_out).with_suffix(".prof")))  # for pstats' callers view
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).sort_stats("cumulative").print_stats(35)
        out["profile_top_cumulative"] = buf.getvalue().splitlines()
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).sort_stats("tottime").print_stats(25)
        out["profile_top_self"] = buf.getvalue().splitlines()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--policy", default="paper", choices=KNOWN_POLICIES)
    parser.add_argument("--judge", default="numbers")
    parser.add_argument("--truncate", default="tokens:32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tokens-per-s", type=float, default=0.0, help="server pace per stream (0: full speed)")
    parser.add_argument(
        "--reasoning",
        choices=["reasoning", "reasoning_content", "inline", "inline-open"],
        default=None,
        help="serve as a reasoning model (thinking parsed per chunk, as with R1/Qwen3); default: plain content",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="stream worker processes (stream_workers; 0: streams on the orchestrator's loop; default: the "
        "automatic choice, one per core from 256 branches)",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the run (slower; separate figures)")
    parser.add_argument("--json", dest="json_out", default=str(REPO / "bench" / "out" / "scale.json"))
    args = parser.parse_args()
    if not (SHARED / "traces").is_dir():
        print(f"shared data folder {SHARED} is absent: set DEEPPRUNE_SHARED_DATA (see ../shared/data/README.md).")
        return 2
    out = Path(args.json_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    traces, question = merged_trace_file(out.parent)
    server = Server(traces, args.tokens_per_s, args.reasoning)
    try:
        report = asyncio.run(one_run(server, question, args))
    finally:
        server.stop()
    out.write_text(json.dumps(report, indent=2))
    for key in (
        "wall_s",
        "branches",
        "branches_lost",
        "tokens_generated",
        "server_tokens",
        "open_streams_after",
        "judge_rounds",
        "judge_round_cpu_ms",
        "gc_full_pauses_ms",
        "last_branch_opened_s",
        "ttft_last_branch_s",
        "cpu_s_per_1k_tokens",
        "load_avg_1_5_15",
    ):
        print(f"{key:22s} {report[key]}")
    for key in ("loop_lag_ms", "loop_cpu_lag_ms", "rss_mb", "cancel_stop_ms"):
        print(
            f"{key:22s} "
            + ", ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in report[key].items())
        )
    print(
        f"{'orchestrator_cpu':22s} {report['orchestrator_cpu_cores']:.2f} cores "
        f"(stream workers {report['worker_cpu_cores']:.2f}, server {report['server_cpu_cores']:.2f})"
    )
    if args.profile:
        print("\n".join(report["profile_top_self"][:40]))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
