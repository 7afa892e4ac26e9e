"""Run ``deepprune`` with a Ctrl-C delivered at one named phase of the run (for the Ctrl-C tests).

``python tests/e2e/sigint_cli.py PHASE ask QUESTION --base-url ...`` sends SIGINT to this very process
from inside the CLI at PHASE, so the signal lands at the same point of the run every time instead of
whenever a test's sleep happens to end:

- ``parse``: while the command line is parsed (before any event loop exists);
- ``fan_out``: in the fan_out node, before any branch exists;
- ``streaming``: when the first tokens are reported (branches open and generating);
- ``judge``: inside a judge round (the policy is scoring);
- ``vote``: inside the vote node (every branch has ended);
- ``graph_end``: while LangGraph tears a finished run down (it cancels its stream waiter, and awaits
  it under ``suppress(CancelledError)``);
- ``result``: after the result is built, before the command returns.

The script prints ``phase-reached`` on stderr when it sends the signal, so a test can tell "the signal
came too late" from "the signal was ignored".
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import sys
from typing import Any

PHASES = ("parse", "fan_out", "streaming", "judge", "vote", "graph_end", "result")


def _ctrl_c() -> None:
    global _sent
    if not _sent:
        _sent = True
        print("phase-reached", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGINT)


_sent = False


def _arm(phase: str) -> None:
    import deepprune_agents.cli as cli
    from deepprune_agents import graph, run_builder
    from deepprune_agents.cli import ask_cmd

    if phase == "parse":
        original_build = cli.build_parser

        def build_parser(*args: Any) -> Any:
            _ctrl_c()
            return original_build(*args)

        cli.build_parser = build_parser  # type: ignore[assignment]
    elif phase == "fan_out":
        original_judge = run_builder.cached_judge

        async def cached_judge(ctx: Any) -> Any:
            _ctrl_c()
            return await original_judge(ctx)

        run_builder.cached_judge = cached_judge  # type: ignore[assignment]
    elif phase == "streaming":
        original_events = graph._progress_events

        def progress_events(run: Any) -> Any:
            event = original_events(run)
            if event and any(b["delta"] for b in event["branches"]):
                _ctrl_c()
            return event

        graph._progress_events = progress_events  # type: ignore[assignment]
    elif phase == "judge":
        original_policy = run_builder.make_policy

        def make_policy(ctx: Any) -> Any:
            policy = original_policy(ctx)
            original_step = policy.step

            @functools.wraps(original_step)
            async def step(views: Any, judge: Any) -> Any:
                _ctrl_c()
                return await original_step(views, judge)

            policy.step = step
            return policy

        run_builder.make_policy = make_policy  # type: ignore[assignment]
    elif phase == "vote":
        original_vote = graph.vote

        async def vote(state: Any, runtime: Any, runs: Any) -> Any:
            _ctrl_c()
            return await original_vote(state, runtime, runs)

        graph.vote = vote  # type: ignore[assignment]
    elif phase == "graph_end":
        from langgraph._internal._queue import AsyncQueue

        original_wait = AsyncQueue.wait
        voted = False
        original_vote = graph.vote

        async def vote_then_arm(state: Any, runtime: Any, runs: Any) -> Any:
            nonlocal voted
            out = await original_vote(state, runtime, runs)
            voted = True
            return out

        async def wait(self: Any) -> Any:
            try:
                return await original_wait(self)
            except asyncio.CancelledError:
                if voted:  # the finished run's waiter is being cancelled: Ctrl-C right now
                    _ctrl_c()
                raise

        graph.vote = vote_then_arm  # type: ignore[assignment]
        AsyncQueue.wait = wait  # type: ignore[method-assign]
    elif phase == "result":
        original_finish = ask_cmd._Board.finish

        def finish(self: Any, result: Any) -> None:
            original_finish(self, result)
            _ctrl_c()

        ask_cmd._Board.finish = finish  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown phase {phase!r}; one of {PHASES}")


def main() -> int:
    phase, argv = sys.argv[1], sys.argv[2:]
    _arm(phase)
    from deepprune_agents.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
