"""The examples end to end: a ``create_agent`` loop whose (scripted) model delegates to ``think_hard``,
which runs the real graph on the real vLLM server; and the reasoner as a node of a user's StateGraph."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from deepprune_agents.reasoner import DeepPruneReasoner
from deepprune_agents.tools import make_think_hard_tool

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have now?"


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def test_agent_loop_delegates_to_think_hard(vllm_server: Any) -> None:
    example = load_example("agent_think_hard")
    tool = make_think_hard_tool(base_urls=[vllm_server.base_url], model=vllm_server.model, judge="numbers")
    agent = example.build_agent(example.DelegatingChatModel(n=4, budget=64), tool)
    custom: list[dict[str, Any]] = []
    state: dict[str, Any] = {}
    async for event in agent.astream_events({"messages": [HumanMessage(QUESTION)]}, version="v2"):
        if event["event"] == "on_custom_event" and event["name"] == "deepprune":
            custom.append(event["data"])
        elif event["event"] == "on_chain_end" and event["name"] == "think_hard_agent":
            state = event["data"]["output"]
    messages = state["messages"]
    assert [type(m) for m in messages] == [HumanMessage, AIMessage, ToolMessage, AIMessage]
    call = messages[1].tool_calls[0]
    assert call["name"] == "think_hard" and call["args"] == {"question": QUESTION, "n": 4, "budget": 64}

    tool_message = messages[2]
    assert tool_message.tool_call_id == call["id"] and tool_message.status == "success"
    result = tool_message.artifact
    # The voted answer is what the model reads, and the pruning stats ride along.
    voted = f"Answer: {result['answer']}" if result["answer"] is not None else "No branch reached a parsable answer."
    content_lines = str(tool_message.content).split("\n")
    assert content_lines[0] == voted
    assert f"{result['cancelled']} stopped early" in content_lines[1]
    assert result["n"] == 4 and result["finished"] + result["cancelled"] + result["failed"] == 4
    assert result["tokens_generated"] == sum(b["tokens"] for b in result["branches"]) > 0
    assert result["tokens_cons_estimate"] >= result["tokens_generated"]
    assert result["judge"] == "numbers" and result["judge_rounds"] >= 1
    assert example.tool_results(messages) == [result]
    # The model's final reply is built on the tool's answer.
    assert messages[3].text == f"After thinking hard: {voted}"
    # Progress of the nested graph surfaces in the agent's event stream.
    kinds = [e["event"] for e in custom]
    assert kinds[0] == "start" and kinds[-1] == "result" and "judge" in kinds


async def test_stategraph_with_the_reasoner_as_a_node(vllm_server: Any) -> None:
    example = load_example("stategraph_node")
    reasoner = DeepPruneReasoner(
        base_urls=[vllm_server.base_url], model=vllm_server.model, n=4, max_tokens=64, judge="numbers"
    )
    solver = example.build_solver(reasoner)
    assert set(solver.get_graph().nodes) == {"__start__", "reason", "report", "__end__"}
    final = await solver.ainvoke({"question": QUESTION})
    result = final["result"]
    assert result["question"] == QUESTION and result["n"] == 4 and len(result["branches"]) == 4
    assert final["answer"] == result["answer"]
    assert f"{result['finished']} of 4 branches finished" in final["report"]
    assert f"{result['tokens_generated']} tokens" in final["report"]


def test_agent_example_main_runs_offline(vllm_server: Any, capsys: Any) -> None:
    example = load_example("agent_think_hard")
    example.main([QUESTION, "--base-url", vllm_server.base_url, "--n", "2", "--budget", "48"])
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("After thinking hard: ")
    assert '"tokens_generated"' in out[1]
