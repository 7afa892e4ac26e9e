"""A ``deepprune ask`` that meets no error never imports openai (issue 37: its import was ~0.45 s of CPU on
every run). Requests go out on httpx2; openai is imported only to raise its typed errors. Each run is a
real ``ask`` in a fresh interpreter against the replay server: the plain run bench/startup.py times, and
one that prunes branches (closing streams mid-way sends GeneratorExit/CancelledError through the stream's
``except`` clauses, which must not import openai to test them either)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_replay_server_e2e import QUESTION  # its right/wrong branches: the numbers judge prunes the wrong ones

from deepprune_agents.evaluation.replay_server import ReplayServer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    with ReplayServer([QUESTION], tokens_per_s=100) as s:
        yield s
        assert s.wait_idle(5.0), "the replay server still has an open stream after the test"


def ask_in_fresh_interpreter(args: list[str]) -> tuple[dict[str, object], list[str]]:
    """Run ``deepprune ask ARGS --json`` via ``cli.main`` in a new process: (its result, openai modules loaded)."""
    probe = (
        "import json, sys\n"
        "from deepprune_agents.cli import main\n"
        f"code = main({['ask', *args, '--json']!r})\n"
        "assert code == 0, code\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'openai' or m.startswith('openai.'))))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", probe], env=env, check=True, capture_output=True, text=True)
    *result_lines, modules_line = out.stdout.strip().splitlines()
    result: dict[str, object] = json.loads("\n".join(result_lines))
    modules: list[str] = json.loads(modules_line)
    return result, modules


def test_a_plain_ask_run_never_imports_openai(server: ReplayServer) -> None:
    result, modules = ask_in_fresh_interpreter([QUESTION.question, "--base-url", server.base_url, "--n", "4"])
    assert result["answer"] == "7" and result["failed"] == 0
    assert modules == []


def test_a_run_that_prunes_branches_never_imports_openai(server: ReplayServer) -> None:
    args = [QUESTION.question, "--base-url", server.base_url, "--n", "8", "--policy", "paper", "--judge", "numbers"]
    result, modules = ask_in_fresh_interpreter([*args, "--truncate", "tokens:12", "--tau", "0.5"])
    assert result["answer"] == "7" and result["failed"] == 0
    assert isinstance(result["cancelled"], int) and result["cancelled"] > 0, "no branch was pruned"
    assert modules == []
