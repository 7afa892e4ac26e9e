"""``DeepPruneReasoner`` as a node of your own LangGraph ``StateGraph``.

    python examples/stategraph_node.py --base-url http://127.0.0.1:8011/v1 --n 4 --budget 96

The reasoner is a Runnable, so it is a node as it is: piped into a small lambda that turns the
``DeepPruneResult`` into a state update (a node must return a dict). The rest of the graph sees the
voted answer and the pruning stats in its state; the reasoner's progress comes out of ``astream_events``
as ``on_custom_event`` events named ``deepprune``.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from typing import Any

from langchain_core.runnables import RunnableLambda
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from typing_extensions import TypedDict

from deepprune_agents.reasoner import DeepPruneReasoner
from deepprune_agents.result import DeepPruneResult


class SolveState(TypedDict, total=False):
    question: str
    answer: str | None
    result: dict[str, Any]
    report: str


def to_update(result: DeepPruneResult) -> dict[str, Any]:
    """A node returns a state update: the answer on its own key, the full result (JSON-safe) beside it."""
    return {"answer": result.answer, "result": result.model_dump(mode="json")}


def report(state: SolveState) -> dict[str, Any]:
    """A downstream node that reads the reasoner's output from the state."""
    r = state["result"]
    verdict = f"answer {state.get('answer')}" if state.get("answer") is not None else "no parsable answer"
    return {
        "report": f"{verdict}: {r['finished']} of {r['n']} branches finished, {r['cancelled']} stopped early, "
        f"{r['tokens_generated']} tokens ({r['token_saving']:.0%} saved vs unpruned)"
    }


def build_solver(reasoner: DeepPruneReasoner) -> CompiledStateGraph[Any, Any, Any, Any]:
    """question -> reason (the DeepPruneReasoner itself) -> report."""
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(SolveState)
    # The reasoner reads the ``question`` key of the state dict it is handed.
    builder.add_node("reason", reasoner | RunnableLambda(to_update, name="to_update"))
    builder.add_node("report", report)
    builder.add_edge(START, "reason")
    builder.add_edge("reason", "report")
    builder.add_edge("report", END)
    return builder.compile(name="solver")


async def amain(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("question", nargs="?", default="A shop sells pens at 3 dollars each. How much do 7 pens cost?")
    parser.add_argument("--base-url", action="append", default=[], help="vLLM base URL; default: embedded server")
    parser.add_argument("--model", help="served model name (default: the first the server lists)")
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--budget", type=int, default=256, help="max tokens per branch")
    args = parser.parse_args(argv)

    reasoner = DeepPruneReasoner(base_urls=args.base_url, model=args.model, n=args.n, max_tokens=args.budget)
    solver = build_solver(reasoner)
    final: dict[str, Any] = {}
    async for event in solver.astream_events({"question": args.question}, version="v2"):
        if event["event"] == "on_custom_event" and event["name"] == "deepprune":
            data: dict[str, Any] = dict(event["data"])
            if data["event"] in ("start", "judge", "result"):
                keys = ("event", "n", "round", "cancelled", "answer")
                print("progress:", {k: v for k, v in data.items() if k in keys})
        elif event["event"] == "on_chain_end" and event["name"] == "solver":
            final = event["data"]["output"]
    print(final.get("report"))


if __name__ == "__main__":
    asyncio.run(amain())
