"""Proxy figures: `deepprune serve --upstream` (a real subprocess) in front of the replay server, driven by
the openai client (issues 15 and 36).

    .venv/bin/python bench/proxy.py [--only latency,load,sigterm] [--runs 5] [--judge trained]
                                    [--json bench/out/proxy.json]

``latency``: per streamed request, seconds to the first chunk, to the first progress line
(``delta.reasoning``), to "branches started", to the first content delta and to the end; the first request
is reported apart (it loads the judge). Then ``--disconnects`` streams are dropped after "branches
started": seconds from closing the client stream until the upstream has no stream open (the upstream's
own records). Targets: first progress chunk within 1 s, 0 streams upstream within 1 s of a disconnect.

``load``: ``--clients`` (64) clients at once against a proxy with ``--max-concurrent 8 --queue 64``. Target:
no request refused, every upstream stream closed at the end; reported: the queue wait of each request
(the ``deepprune.queue_wait_s`` of its response) at p50/p99/max, end-to-end latency, wall time.

``sigterm``: the same load, streamed, and SIGTERM to the proxy once every run slot is busy. Target: every
client gets ``[DONE]`` (its run ended within the grace period, or got an error chunk first), or — when it
was still waiting in the queue, so no response had started — a 503 OpenAI error; the process exits 0
without a traceback and no stream is left open upstream.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from test_replay_server_e2e import QUESTION  # noqa: E402

from deepprune_agents.evaluation.replay_server import ReplayServer  # noqa: E402

MESSAGES = [{"role": "user", "content": QUESTION.question}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proxy:
    """``deepprune serve --upstream`` in a subprocess; its output is read on a thread (kept in ``output``)
    so that access-log lines never fill the pipe and block it."""

    def __init__(self, upstream: str, judge: str, *extra: str) -> None:
        port = free_port()
        cmd = [sys.executable, "-m", "deepprune_agents.cli", "serve", "--upstream", upstream, "--port", str(port)]
        cmd += ["--judge", judge, "--max-concurrent", "8", *extra]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        out = subprocess.PIPE
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=env)
        self.output: list[str] = []
        self.base = f"http://127.0.0.1:{port}/v1"
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # uvicorn is listening once /models answers
            if self.proc.poll() is not None:
                raise SystemExit("the proxy did not start:\n" + "".join(self.output))
            try:
                openai.OpenAI(base_url=self.base, api_key="x", max_retries=0).models.list()
                return
            except openai.APIConnectionError:
                time.sleep(0.05)
        self.proc.kill()
        raise SystemExit("the proxy did not answer within 120 s")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout_s)
        self._reader.join(5)
        return code


def timed_stream(client: openai.OpenAI, n: int) -> dict[str, float]:
    t0 = time.perf_counter()
    marks: dict[str, float] = {}
    stream = client.chat.completions.create(
        model="replay",
        messages=MESSAGES,
        stream=True,
        extra_body={"deepprune": {"n": n}},  # type: ignore[arg-type]
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
        messages=MESSAGES,
        stream=True,
        extra_body={"deepprune": {"n": n, "policy": "none"}},  # type: ignore[arg-type]
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
    if not values:
        return {}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"median": statistics.median(values), "p99": p99, "max": max(values), "min": min(values)}


def latency(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {}
    with ReplayServer([QUESTION], tokens_per_s=args.tokens_per_s) as server:
        proxy = Proxy(server.base_url, args.judge)
        try:
            client = openai.OpenAI(base_url=proxy.base, api_key="unused", max_retries=0)
            runs = [timed_stream(client, args.n) for _ in range(args.runs)]
        finally:
            proxy.stop()
    report["cold"] = runs[0]
    warm = runs[1:] or runs
    report["warm"] = {k: summarize([r[k] for r in warm if k in r]) for k in runs[0]}
    with ReplayServer([QUESTION], tokens_per_s=10) as slow:
        proxy = Proxy(slow.base_url, args.judge)
        try:
            client = openai.OpenAI(base_url=proxy.base, api_key="unused", max_retries=0)
            lat = [disconnect_latency(client, slow, args.n) for _ in range(args.disconnects)]
        finally:
            proxy.stop()
        report["disconnect_to_upstream_idle_s"] = summarize(lat)
        report["disconnect_samples_s"] = lat
        report["upstream_open_streams_after"] = slow.open_streams()
    report["targets_met"] = {
        "first_progress_within_1s": max(r.get("first_progress_s", 99.0) for r in runs) < 1.0,
        "disconnect_idle_within_1s": report["disconnect_to_upstream_idle_s"]["max"] < 1.0,
    }
    return report


def load(args: argparse.Namespace) -> dict[str, Any]:
    """``--clients`` non-streamed requests at once; cap 8, queue ``--clients``."""
    with ReplayServer([QUESTION], tokens_per_s=args.tokens_per_s) as server:
        proxy = Proxy(server.base_url, args.judge, "--queue", str(args.clients), "--queue-timeout", "600")
        client = openai.OpenAI(base_url=proxy.base, api_key="x", max_retries=0, timeout=600)

        def ask(_: int) -> dict[str, Any]:
            t0 = time.perf_counter()
            try:
                reply = client.chat.completions.create(
                    model="replay",
                    messages=MESSAGES,
                    extra_body={"deepprune": {"n": args.n}},  # type: ignore[arg-type]
                )
            except openai.APIStatusError as exc:
                return {"status": exc.status_code, "latency_s": time.perf_counter() - t0}
            summary = (reply.model_extra or {})["deepprune"]
            return {"status": 200, "latency_s": time.perf_counter() - t0, "queue_wait_s": summary["queue_wait_s"]}

        t0 = time.perf_counter()
        try:
            with ThreadPoolExecutor(args.clients) as pool:
                results = list(pool.map(ask, range(args.clients)))
            wall = time.perf_counter() - t0
            metrics = httpx.get(proxy.base.removesuffix("/v1") + "/metrics", timeout=10).text
        finally:
            code = proxy.stop()
        idle = server.wait_idle(10.0)
        open_after = server.open_streams()
    refused = [r for r in results if r["status"] != 200]
    waits = [r["queue_wait_s"] for r in results if "queue_wait_s" in r]
    return {
        "clients": args.clients, "max_concurrent": 8, "queue": args.clients, "n": args.n,
        "served": len(results) - len(refused), "refused": len(refused),
        "refused_statuses": sorted({r["status"] for r in refused}),
        "queue_wait_s": summarize(waits), "latency_s": summarize([r["latency_s"] for r in results]),
        "wall_s": wall, "upstream_open_streams_after": open_after, "upstream_idle": idle, "exit_code": code,
        "metrics_runs_ok": _sample(metrics, 'deepprune_proxy_runs_total{outcome="ok"}'),
        "targets_met": {"none_refused": not refused, "upstream_closed": idle and open_after == 0},
    }  # fmt: skip


def _sample(exposition: str, name: str) -> float | None:
    for line in exposition.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def stream_to_end(base: str, n: int, out: dict[str, Any]) -> None:
    """One raw SSE stream: how it ended (``done`` after a result, ``error`` chunk then [DONE], an HTTP
    error before the stream, or ``cut``)."""
    body = {"model": "replay", "messages": MESSAGES, "stream": True, "deepprune": {"n": n, "policy": "none"}}
    events: list[str] = []
    try:
        with httpx.stream("POST", base + "/chat/completions", json=body, timeout=600) as resp:
            if resp.status_code != 200:
                resp.read()
                out.update(end=f"http {resp.status_code}", code=resp.json()["error"]["code"])
                return
            for line in resp.iter_lines():
                if line.startswith("data: "):
                    events.append(line[6:])
    except httpx.HTTPError as exc:
        out.update(end="cut", error=type(exc).__name__)
        return
    if not events or events[-1] != "[DONE]":
        out.update(end="cut")
    elif len(events) > 1 and '"error"' in events[-2]:
        out.update(end="error chunk", code=json.loads(events[-2])["error"]["code"])
    else:
        out.update(end="done")


def sigterm(args: argparse.Namespace) -> dict[str, Any]:
    """``--clients`` streams at once (cap 8, queue ``--clients``), SIGTERM once every slot is busy."""
    with ReplayServer([QUESTION], tokens_per_s=args.tokens_per_s / 4) as server:  # runs long enough to be cut
        proxy = Proxy(server.base_url, args.judge, "--queue", str(args.clients), "--grace", str(args.grace))
        outs: list[dict[str, Any]] = [{} for _ in range(args.clients)]
        threads = [threading.Thread(target=stream_to_end, args=(proxy.base, args.n, o)) for o in outs]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while server.open_streams() < 8 * args.n and time.monotonic() < deadline:
            time.sleep(0.01)
        busy = server.open_streams()
        t_signal = time.perf_counter()
        proxy.proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(120)
        code = proxy.stop(timeout_s=60)
        exit_s = time.perf_counter() - t_signal
        idle = server.wait_idle(10.0)
        open_after = server.open_streams()
    ends: dict[str, int] = {}
    for o in outs:
        key = o.get("end", "none") + (f" ({o['code']})" if "code" in o else "")
        ends[key] = ends.get(key, 0) + 1
    log = "".join(proxy.output)
    answered = all(o.get("end") in ("done", "error chunk") or o.get("code") == "server_shutting_down" for o in outs)
    return {
        "clients": args.clients, "grace_s": args.grace, "upstream_streams_at_signal": busy, "ends": ends,
        "exit_code": code, "signal_to_exit_s": exit_s, "traceback_in_log": "Traceback" in log,
        "upstream_open_streams_after": open_after,
        "targets_met": {"every_client_answered": answered, "exit_0": code == 0, "no_traceback": "Traceback" not in log,
                        "upstream_closed": idle and open_after == 0},
    }  # fmt: skip


SCENARIOS = {"latency": latency, "load": load, "sigterm": sigterm}


def main(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"n": args.n, "judge": args.judge, "tokens_per_s": args.tokens_per_s}
    for name in args.only.split(","):
        report[name] = SCENARIOS[name](args)
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="latency,load,sigterm", help="scenarios, comma-separated")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--disconnects", type=int, default=5)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--grace", type=float, default=2.0, help="the proxy's --grace in the sigterm scenario")
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--judge", default="trained")
    parser.add_argument("--tokens-per-s", type=float, default=100.0)
    parser.add_argument("--json", default=str(REPO / "bench" / "out" / "proxy.json"))
    args = parser.parse_args()
    report = main(args)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    shown = {k: ({kk: vv for kk, vv in v.items() if kk != "disconnect_samples_s"} if isinstance(v, dict) else v)
             for k, v in report.items()}  # fmt: skip
    print(json.dumps(shown, indent=2))
    print(f"wrote {out}")
