"""Proxy figures: `deepprune serve --upstream` (a real subprocess) in front of the replay server, driven by
the openai client (issue 15).

    .venv/bin/python bench/proxy.py [--runs 5] [--judge trained] [--json bench/out/proxy.json]

Per streamed request: seconds to the first chunk, to the first progress line (``delta.reasoning``), to
"branches started", to the first content delta and to the end; the first request is reported apart (it
loads the judge). Then ``--disconnects`` streams are dropped after "branches started": seconds from
closing the client stream until the upstream has no stream open (the upstream's own records). The
target: first progress chunk within 1 s, 0 streams upstream within 1 s of a disconnect.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import openai

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from test_replay_server_e2e import QUESTION  # noqa: E402

from deepprune_agents.evaluation.replay_server import ReplayServer  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_proxy(upstream: str, judge: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    cmd = [sys.executable, "-m", "deepprune_agents.cli", "serve", "--upstream", upstream, "--port", str(port)]
    cmd += ["--judge", judge, "--max-concurrent", "8"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "loading the" in line:  # the judge warms up first
        line = proc.stdout.readline()
    if "deepprune proxy: http" not in line:
        proc.kill()
        raise SystemExit(f"the proxy did not start: {line}{proc.stdout.read()}")
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # uvicorn is listening once /health answers
        try:
            openai.OpenAI(base_url=base, api_key="x", max_retries=0).models.list()
            return proc, base
        except openai.APIConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the proxy did not answer within 30 s")


def timed_stream(client: openai.OpenAI, n: int) -> dict[str, float]:
    t0 = time.perf_counter()
    marks: dict[str, float] = {}
    stream = client.chat.completions.create(
        model="replay",
        messages=[{"role": "user", "content": QUESTION.question}],
        stream=True,
        extra_body={"deepprune": {"n": n}},
    )
    for chunk in stream:
        now = time.perf_counter() - t0
        marks.setdefault("first_chunk_s", now)
        delta = chunk.choices[0].delta if chunk.choices else None
        reasoning = getattr(delta, "reasoning", None) if delta else None
        if reasoning:
            marks.setdefault("first_progress_s", now)
            if "branches started" in reasoning:
                marks.setdefault("branches_started_s", now)
        if delta is not None and delta.content:
            marks.setdefault("first_content_s", now)
    marks["total_s"] = time.perf_counter() - t0
    return marks


def disconnect_latency(client: openai.OpenAI, server: ReplayServer, n: int) -> float:
    stream = client.chat.completions.create(
        model="replay",
        messages=[{"role": "user", "content": QUESTION.question}],
        stream=True,
        extra_body={"deepprune": {"n": n, "policy": "none"}},
    )
    for chunk in stream:
        if chunk.choices and "branches started" in (getattr(chunk.choices[0].delta, "reasoning", None) or ""):
            break
    deadline = time.monotonic() + 5
    while server.open_streams() < n and time.monotonic() < deadline:
        time.sleep(0.005)
    t_close = time.perf_counter()
    stream.close()
    while server.open_streams() and time.perf_counter() - t_close < 10:
        time.sleep(0.002)
    return time.perf_counter() - t_close


def summarize(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "max": max(values), "min": min(values)}


def main(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"n": args.n, "judge": args.judge, "tokens_per_s": args.tokens_per_s}
    with ReplayServer([QUESTION], tokens_per_s=args.tokens_per_s) as server:
        proc, base = start_proxy(server.base_url, args.judge)
        try:
            client = openai.OpenAI(base_url=base, api_key="unused", max_retries=0)
            runs = [timed_stream(client, args.n) for _ in range(args.runs)]
            report["cold"] = runs[0]
            warm = runs[1:] or runs
            report["warm"] = {k: summarize([r[k] for r in warm if k in r]) for k in runs[0]}
            slow = ReplayServer([QUESTION], tokens_per_s=10).start()
            proc2, base2 = start_proxy(slow.base_url, args.judge)
            try:
                client2 = openai.OpenAI(base_url=base2, api_key="unused", max_retries=0)
                lat = [disconnect_latency(client2, slow, args.n) for _ in range(args.disconnects)]
                report["disconnect_to_upstream_idle_s"] = summarize(lat)
                report["disconnect_samples_s"] = lat
                report["upstream_open_streams_after"] = slow.open_streams()
            finally:
                proc2.terminate()
                proc2.wait(timeout=10)
                slow.stop()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    report["targets_met"] = {
        "first_progress_within_1s": max(r.get("first_progress_s", 99.0) for r in runs) < 1.0,
        "disconnect_idle_within_1s": report["disconnect_to_upstream_idle_s"]["max"] < 1.0,
    }
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--disconnects", type=int, default=5)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--judge", default="trained")
    parser.add_argument("--tokens-per-s", type=float, default=100.0)
    parser.add_argument("--json", default=str(REPO / "bench" / "out" / "proxy.json"))
    args = parser.parse_args()
    report = main(args)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "disconnect_samples_s"}, indent=2))
    print(f"wrote {out}")
