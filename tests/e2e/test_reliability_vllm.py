"""Faults against the real vLLM server: a judge that raises or hangs, an endpoint that is down, Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from deepprune_agents.judges import register_judge
from deepprune_agents.judges.base import TracePair
from deepprune_agents.reasoner import DeepPruneReasoner

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have now?"


class RaisingJudge:
    name = "raises"

    async def ascore(self, pairs: Sequence[TracePair]) -> list[float]:
        raise RuntimeError("judge backend exploded")


class HangingJudge:
    name = "hangs"

    async def ascore(self, pairs: Sequence[TracePair]) -> list[float]:
        await asyncio.sleep(3600)
        return []


register_judge("test-raises", RaisingJudge, replace=True)
register_judge("test-hangs", HangingJudge, replace=True)


def kw(server, **extra):  # type: ignore[no-untyped-def]
    base = {"n": 4, "base_urls": [server.base_url], "model": server.model, "max_tokens": 64}
    base.update(extra)
    return base


async def test_a_raising_judge_degrades_to_no_pruning(vllm_server) -> None:  # type: ignore[no-untyped-def]
    result = await DeepPruneReasoner(**kw(vllm_server, judge="test-raises")).ainvoke(QUESTION)
    assert result.judge_errors and "exploded" in result.judge_errors[0]
    assert result.cancelled == 0 and result.finished == 4


async def test_a_hanging_judge_times_out_and_the_run_completes(vllm_server) -> None:  # type: ignore[no-untyped-def]
    t0 = time.monotonic()
    result = await DeepPruneReasoner(**kw(vllm_server, judge="test-hangs", judge_timeout_s=0.5)).ainvoke(QUESTION)
    assert any("did not answer" in e for e in result.judge_errors)
    assert result.finished == 4
    assert time.monotonic() - t0 < 120


async def test_branches_move_off_an_endpoint_that_is_down(vllm_server, refused_base_url: str) -> None:  # type: ignore[no-untyped-def]
    dead = refused_base_url  # connection refused
    reasoner = DeepPruneReasoner(**kw(vllm_server, base_urls=[dead, vllm_server.base_url], policy="none"))
    result = await reasoner.ainvoke(QUESTION)
    assert result.finished == 4
    assert {b.endpoint for b in result.branches} == {vllm_server.base_url}


def test_ctrl_c_in_the_cli_aborts_every_branch(vllm_server) -> None:  # type: ignore[no-untyped-def]
    """Ctrl-C from outside, once the CLI's own four streams are open (the server is shared: its running
    count includes other clients' requests, so the test counts the CLI's own opens in its -v log)."""
    n = 4
    question = "Write a long story about a dragon."
    args = ["ask", question, "--n", str(n), "--max-tokens", "400", "--policy", "none", "--judge", "numbers"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "deepprune_agents.cli", "-v", *args, "--base-url", vllm_server.base_url, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )
    lines: queue.Queue[bytes] = queue.Queue()
    err = bytearray()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in iter(proc.stderr.readline, b"")])
    reader.start()
    opened = 0
    try:
        deadline = time.monotonic() + 120
        open_line = f"POST {vllm_server.base_url}/chat/completions".encode()
        while opened < n:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"the CLI opened {opened} of its {n} streams in 120 s:\n{err.decode()}") from None
            err += line
            opened += open_line in line and b" 200 " in line
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)  # the reader thread drains stderr; stdout (a result, if any) fits the pipe
        out = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(timeout=10)
    while not lines.empty():
        err += lines.get()
    assert proc.returncode == 130, err.decode()[-3000:]
    assert b"cancelled" in err
    assert out == b"", "the run finished before Ctrl-C reached it"
    # The autouse fixture then checks that vllm:num_requests_running is back to 0.
