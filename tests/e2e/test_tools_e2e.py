"""The ``think_hard`` tool running the real graph on the real vLLM server: langchain-tests' standard
integration suite, per-call overrides, and progress events nested under the tool run."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import ToolCall, ToolMessage
from langchain_core.tools import BaseTool
from langchain_tests.integration_tests import ToolsIntegrationTests

from deepprune_agents.tools import ThinkHardTool, make_think_hard_tool

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have now?"


class TestThinkHardToolIntegration(ToolsIntegrationTests):
    @property
    def tool_constructor(self) -> type[BaseTool]:
        return ThinkHardTool

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"question": QUESTION, "n": 4, "budget": 64}

    @pytest.fixture
    def tool(self, vllm_server: Any) -> BaseTool:
        # The standard suite builds the tool from this fixture; it needs the session's server URL.
        return make_think_hard_tool(base_urls=[vllm_server.base_url], model=vllm_server.model, n=4, max_tokens=64)


def assert_consistent(message: ToolMessage) -> dict[str, Any]:
    """Content and artifact tell the same story: the voted answer and the pruning stats."""
    artifact = message.artifact
    assert isinstance(artifact, dict) and message.status == "success"
    first, stats = str(message.content).split("\n")
    if artifact["answer"] is None:
        assert first == "No branch reached a parsable answer."
    else:
        assert first == f"Answer: {artifact['answer']}"
        assert artifact["votes"][artifact["answer"]] == max(artifact["votes"].values())
    assert f"{artifact['n']} branches" in stats and f"{artifact['tokens_generated']} tokens" in stats
    assert f"{artifact['finished']} finished" in stats and f"{artifact['cancelled']} stopped early" in stats
    assert artifact["tokens_generated"] == sum(b["tokens"] for b in artifact["branches"]) > 0
    return artifact


async def test_call_arguments_override_n_and_budget_and_events_nest_under_the_tool(vllm_server: Any) -> None:
    tool = make_think_hard_tool(
        base_urls=[vllm_server.base_url], model=vllm_server.model, n=8, max_tokens=256, judge="numbers"
    )
    call = ToolCall(name="think_hard", args={"question": QUESTION, "n": 3, "budget": 40}, id="c1", type="tool_call")
    tool_run_id = None
    custom: list[dict[str, Any]] = []
    message = None
    async for event in tool.astream_events(call, version="v2"):
        if event["event"] == "on_tool_start":
            tool_run_id = event["run_id"]
        elif event["event"] == "on_custom_event" and event["name"] == "deepprune":
            assert tool_run_id in event["parent_ids"]  # the reasoner's events belong to this tool call
            custom.append(dict(event["data"]))
        elif event["event"] == "on_tool_end":
            message = event["data"]["output"]
    assert isinstance(message, ToolMessage) and message.tool_call_id == "c1"
    artifact = assert_consistent(message)
    assert artifact["n"] == 3 and len(artifact["branches"]) == 3
    # budget is the per-branch cap
    assert all(b["tokens"] <= 40 for b in artifact["branches"])
    assert artifact["judge"] == "numbers"
    kinds = [e["event"] for e in custom]
    assert kinds[0] == "start" and kinds[-1] == "result" and custom[0]["n"] == 3
