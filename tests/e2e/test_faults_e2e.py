"""Faults injected into real servers on 127.0.0.1, driven through the whole engine (issue 6).

Each case ends in one of the two allowed ways: the run completes with the remaining branches (the result
marks what failed and keeps every branch's text so far), or it raises one typed error naming the cause
(with every branch's text on the error). Never a hang: every wait below has a deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_replay_server_e2e import QUESTION, RIGHT, WRONG  # tests/e2e is on sys.path (rootdir import mode)

from deepprune_agents.errors import AllBranchesFailedError
from deepprune_agents.evaluation.replay_server import FaultConfig, ReplayServer
from deepprune_agents.reasoner import DeepPruneReasoner
from deepprune_agents.settings import DeepPruneContext


def ctx(*urls: str, **kw: object) -> DeepPruneContext:
    base: dict[str, object] = {"n": 4, "policy": "none", "base_urls": list(urls), "model": "replay", "seed": 0}
    base.update(kw)
    return DeepPruneContext(**base)  # type: ignore[arg-type]


@pytest.fixture
def paced() -> Iterator[ReplayServer]:
    with ReplayServer([QUESTION], tokens_per_s=40) as s:
        yield s
        assert s.wait_idle(5.0), "the replay server still has an open stream after the test"


@pytest.fixture
def subprocess_server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`deepprune replay-server` in its own process, so that the test can kill it mid-stream."""
    traces = tmp_path / "traces.jsonl"
    traces.write_text(
        json.dumps({"question": QUESTION.question, "ground_truth": "7", "traces": [RIGHT, WRONG, RIGHT]}) + "\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "deepprune_agents.cli", "replay-server", "--traces", str(traces), "--port", "0",
         "--tokens-per-s", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        url = None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            if "http://" in line:
                url = line[line.index("http://") :].strip()
        assert url, "the replay server subprocess did not print its URL"
        yield url, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


async def test_a_run_stays_on_one_endpoint_and_spills_at_the_cap() -> None:
    """All N branches open at once: they land on the run's one endpoint (its prompt is computed once
    there), and with a per-endpoint cap the rest spill to the other endpoint."""
    with ReplayServer([QUESTION], tokens_per_s=200) as a, ReplayServer([QUESTION], tokens_per_s=200) as b:
        result = await DeepPruneReasoner(ctx(a.base_url, b.base_url, n=8)).ainvoke(QUESTION.question)
        assert result.finished == 8
        assert sorted([len(a.records()), len(b.records())]) == [0, 8]
        assert len({br.endpoint for br in result.branches}) == 1
        a.reset()
        b.reset()
        result = await DeepPruneReasoner(ctx(a.base_url, b.base_url, n=8, max_streams_per_endpoint=4)).ainvoke(
            QUESTION.question
        )
        assert result.finished == 8
        assert len(a.records()) == 4 and len(b.records()) == 4
        assert {br.endpoint for br in result.branches} == {a.base_url, b.base_url}
        assert len({r.session for r in a.records() + b.records()}) == 1  # one run, one session header


async def test_server_killed_mid_stream_the_other_endpoint_finishes(
    subprocess_server: tuple[str, subprocess.Popen[str]], paced: ReplayServer
) -> None:

    doomed_url, proc = subprocess_server
    reasoner = DeepPruneReasoner(ctx(doomed_url, paced.base_url, max_streams_per_endpoint=2))  # 2 on each
    task = asyncio.create_task(reasoner.ainvoke(QUESTION.question))
    async with httpx.AsyncClient(timeout=5) as client:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # wait until the doomed server has streamed a few tokens
            stats = (await client.get(doomed_url.removesuffix("/v1") + "/stats")).json()
            if stats["open_streams"] == 2 and all(r["tokens_sent"] >= 3 for r in stats["records"]):
                break
            await asyncio.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    result = await asyncio.wait_for(task, 60)

    failed = [b for b in result.branches if b.status == "failed"]
    assert len(failed) == 2 and {b.endpoint for b in failed} == {doomed_url}
    for b in failed:
        assert b.text, "a failed branch lost its text"
        assert b.error and "connection broke mid-stream" in b.error
    assert result.finished == 2 and result.answer is not None


async def test_malformed_chunk_fails_every_branch_with_one_typed_error(paced: ReplayServer) -> None:
    paced.set_faults(FaultConfig(malformed_after=3))
    with pytest.raises(AllBranchesFailedError, match="malformed stream chunk") as info:
        await DeepPruneReasoner(ctx(paced.base_url)).ainvoke(QUESTION.question)
    assert len(info.value.branches) == 4
    assert all(str(b["text"]).strip() and b["tokens"] == 3 for b in info.value.branches)


async def test_stalled_stream_times_out_and_names_the_setting(paced: ReplayServer) -> None:
    paced.set_faults(FaultConfig(stall_after=2))
    started = time.monotonic()
    with pytest.raises(AllBranchesFailedError, match="request_timeout_s"):
        await DeepPruneReasoner(ctx(paced.base_url, request_timeout_s=1.0)).ainvoke(QUESTION.question)
    assert time.monotonic() - started < 15  # a deadline, not a hang


async def test_dropped_connections_on_one_endpoint_keep_the_others(paced: ReplayServer) -> None:
    with ReplayServer([QUESTION], tokens_per_s=40, faults=FaultConfig(drop_after=5)) as dropping:
        result = await DeepPruneReasoner(
            ctx(dropping.base_url, paced.base_url, max_streams_per_endpoint=2)  # two branches on each
        ).ainvoke(QUESTION.question)
        assert dropping.wait_idle(5.0)
    failed = [b for b in result.branches if b.status == "failed"]
    assert len(failed) == 2 and all(b.tokens == 5 and b.text for b in failed)
    assert result.finished == 2 and result.answer is not None
    assert sum(b.voted for b in result.branches) == 2  # failed branches do not vote
