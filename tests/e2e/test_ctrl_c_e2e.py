"""Ctrl-C at every phase of a CLI run exits 130 and leaves no stream open.

The CLI runs in a subprocess against its own replay server (a real socket on a free port, used by this
test alone), and ``sigint_cli.py`` sends SIGINT from inside the CLI at one named phase, so each phase is
hit every time. ``graph_end`` is the window that made the CLI exit 0 with an empty stderr: LangGraph
awaits its cancelled stream waiter under ``suppress(CancelledError)`` when a run ends, which swallowed
the cancel that ``asyncio.run`` uses for Ctrl-C.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from deepprune_agents.evaluation.replay_data import ReplayQuestion, make_trace
from deepprune_agents.evaluation.replay_server import ReplayServer

HARNESS = Path(__file__).with_name("sigint_cli.py")
REPO = Path(__file__).resolve().parents[2]
LONG = "We add 3 and 4 step by step, checking each count twice." + " Counting again we get 7." * 60
QUESTION = ReplayQuestion(
    "ctrl-c",
    "Tom has 3 apples and buys 4 more. How many apples does he have?",
    "7",
    tuple(make_trace(LONG + f" The answer is {a}.") for a in ["7", "7", "8", "7"]),
)
PHASES = ["parse", "fan_out", "streaming", "judge", "vote", "graph_end", "result"]


@pytest.fixture(scope="module")
def server() -> Iterator[ReplayServer]:
    # Paced so that a run lasts seconds: the mid-run phases find branches still streaming.
    with ReplayServer([QUESTION], tokens_per_s=60) as s:
        yield s


@pytest.mark.parametrize("phase", PHASES)
def test_ctrl_c_exits_130_and_closes_every_stream(server: ReplayServer, phase: str) -> None:
    server.reset()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    args = ["ask", QUESTION.question, "--n", "4", "--max-tokens", "400", "--policy", "periodic", "--judge", "numbers"]
    proc = subprocess.run(
        [sys.executable, str(HARNESS), phase, *args, "--base-url", server.base_url, "--json"],
        capture_output=True,
        env=env,
        timeout=180,
    )
    err = proc.stderr.decode()
    assert "phase-reached" in err, f"the run never reached phase {phase!r}:\n{err[-2000:]}"
    assert proc.returncode == 130, f"exit {proc.returncode} after Ctrl-C at {phase!r}:\n{err[-2000:]}"
    assert "interrupted" in err and "cancelled" in err
    assert proc.stdout == b"", "an interrupted run printed a result"
    assert server.wait_idle(5.0), f"{server.open_streams()} stream(s) still open after Ctrl-C at {phase!r}"
    records = [r for r in server.records() if r.stream]
    if phase in ("parse", "fan_out"):
        assert records == [], "branches were opened after Ctrl-C"
    if phase in ("streaming", "judge"):
        assert len(records) == 4
        assert any(r.disconnected for r in records), "Ctrl-C mid-run closed no branch early"
