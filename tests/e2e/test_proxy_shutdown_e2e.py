"""SIGTERM to a real ``deepprune serve --upstream`` process mid-stream (issue 36, "Shutdown"): a run that
ends within the grace period ends normally, the others get an error chunk and ``[DONE]`` (a non-streamed
one a 503), every branch stream upstream is closed, and the process exits 0 without a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
from test_proxy_e2e import MESSAGES, QUESTION

from deepprune_agents.evaluation.replay_server import ReplayServer


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_serve(upstream: str, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """``deepprune serve --upstream`` in a process of its own; returns it and its root URL once /health answers."""
    port = free_port()
    cmd = [sys.executable, "-m", "deepprune_agents.cli", "serve", "--upstream", upstream, "--port", str(port),
           "--judge", "numbers", "--truncate", "tokens:12", *extra]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    root = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if httpx.get(root + "/health", timeout=1).status_code == 200:
                return proc, root
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("serve did not answer /health within 60 s")


def stream_events(root: str, body: dict[str, Any], out: list[str]) -> None:
    """Every ``data:`` payload of one streamed completion, in order (raw SSE, so [DONE] is seen)."""
    try:
        with httpx.stream("POST", root + "/v1/chat/completions", json={**body, "stream": True}, timeout=60) as resp:
            for line in resp.iter_lines():
                if line.startswith("data: "):
                    out.append(line[6:])
    except httpx.HTTPError as exc:
        out.append(f"cut: {type(exc).__name__}")


def test_sigterm_mid_stream_ends_every_client_cleanly_and_exits_0() -> None:
    with ReplayServer([QUESTION], tokens_per_s=10) as slow:  # a whole trace takes ~6 s
        proc, root = start_serve(slow.base_url, "--grace", "2", "--max-concurrent", "4")
        try:
            long_body = {"model": "replay", "messages": MESSAGES, "deepprune": {"n": 3, "policy": "none"}}
            short_body = {**long_body, "max_tokens": 8}  # ~1 s: ends within the grace period
            streams: list[list[str]] = [[], [], []]
            threads = [
                threading.Thread(target=stream_events, args=(root, body, out))
                for body, out in zip((long_body, long_body, short_body), streams, strict=True)
            ]
            plain: dict[str, Any] = {}

            def ask_plain() -> None:
                resp = httpx.post(root + "/v1/chat/completions", json=long_body, timeout=60)
                plain.update(status=resp.status_code, body=resp.json())

            threads.append(threading.Thread(target=ask_plain))
            short_thread = threads.pop(2)
            for t in threads:  # the three long runs first, then the short one: it must still run at the signal
                t.start()
            for t, streaming in ((None, 9), (short_thread, 12)):
                if t is not None:
                    t.start()
                deadline = time.monotonic() + 30
                while slow.open_streams() < streaming and time.monotonic() < deadline:
                    time.sleep(0.01)
                assert slow.open_streams() == streaming, "every branch should stream before the signal"
            threads.append(short_thread)
            proc.send_signal(signal.SIGTERM)
            for t in threads:
                t.join(30)
            code = proc.wait(timeout=30)
            stderr = proc.stderr.read() if proc.stderr else ""
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert slow.wait_idle(5.0), "a branch stream was left open upstream"
    assert code == 0 and "Traceback" not in stderr and "CancelledError" not in stderr, stderr
    for events in streams:
        assert events and events[-1] == "[DONE]", events[-3:]
    *long_ones, short = streams
    for events in long_ones:
        error = json.loads(events[-2])["error"]
        assert error["code"] == "server_shutting_down" and "shutting down" in error["message"]
    assert json.loads(short[-2])["deepprune"]["n"] == 3  # the short run finished within the grace period
    assert plain["status"] == 503 and plain["body"]["error"]["code"] == "server_shutting_down"
