"""The ``think_hard`` tool without a server: langchain-tests' standard unit suite, the schema a model
sees, the text it reads, and bad arguments coming back as tool errors that name the fix."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from langchain_core.messages import ToolCall, ToolMessage
from langchain_core.tools import BaseTool
from langchain_tests.unit_tests import ToolsUnitTests
from pydantic import ValidationError

from deepprune_agents.errors import ConfigError
from deepprune_agents.reasoner import DeepPruneReasoner
from deepprune_agents.result import BranchResult, DeepPruneResult
from deepprune_agents.settings import DeepPruneContext
from deepprune_agents.tools import ThinkHardInput, ThinkHardTool, format_content, make_think_hard_tool, think_hard

# Nothing listens on the discard port: a test that reached the network would fail loudly.
UNREACHABLE = "http://127.0.0.1:9/v1"


class TestThinkHardToolStandard(ToolsUnitTests):
    @property
    def tool_constructor(self) -> type[BaseTool]:
        return ThinkHardTool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return {"base_urls": [UNREACHABLE], "model": "m", "n": 4, "max_tokens": 64}

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"question": "What is 17 * 23?", "n": 4, "budget": 64, "judge": "numbers"}


def call(args: dict[str, Any]) -> ToolCall:
    return ToolCall(name="think_hard", args=args, id="call-1", type="tool_call")


def result_with(answer: str | None, statuses: list[tuple[str, str | None]]) -> DeepPruneResult:
    branches = [
        BranchResult(id=i, status=s, tokens=10 * (i + 1), answer=answer, cancel_reason=r)
        for i, (s, r) in enumerate(statuses)
    ]
    tokens = sum(b.tokens for b in branches)
    return DeepPruneResult(
        question="q",
        answer=answer,
        votes={answer: 2.0, "5": 1.0} if answer else {},
        branches=branches,
        n=len(branches),
        policy="periodic",
        judge="numbers",
        model="m",
        tokens_generated=tokens,
        tokens_cons_estimate=2 * tokens,
        token_saving=0.5,
        wall_time_s=1.0,
        finished=sum(s == "finished" for s, _ in statuses),
        cancelled=sum(s == "cancelled" for s, _ in statuses),
    )


def test_schema_exposes_question_and_optional_overrides() -> None:
    schema = think_hard.tool_call_schema.model_json_schema()  # type: ignore[union-attr]
    assert schema["required"] == ["question"]
    assert set(schema["properties"]) == {"question", "n", "budget", "judge"}
    assert "EACH branch" in schema["properties"]["budget"]["description"]
    assert think_hard.response_format == "content_and_artifact"


def test_content_is_the_answer_and_one_line_of_stats() -> None:
    result = result_with("42", [("finished", None), ("cancelled", "pruned"), ("cancelled", "vote-decided")])
    answer, stats = format_content(result).split("\n")
    assert answer == "Answer: 42"
    assert "3 branches" in stats and "1 finished" in stats and "2 stopped early (1 pruned" in stats
    assert f"{result.tokens_generated} tokens" in stats and "50% saved" in stats
    assert stats.index("42: 2") < stats.index("5: 1")  # winner first


def test_content_says_when_no_answer_was_parsed() -> None:
    content = format_content(result_with(None, [("finished", None)]))
    assert content.startswith("No branch reached a parsable answer.")
    assert "votes {none}" in content


def test_import_starts_no_server_and_builds_no_reasoner() -> None:
    code = (
        "import sys, deepprune_agents.tools as t; "
        "assert t.think_hard._built is None; "
        "assert 'deepprune_agents.backends.embedded' not in sys.modules; "
        "assert 'vllm' not in sys.modules; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "ok"


def test_factory_lays_settings_over_the_given_reasoner() -> None:
    base = DeepPruneReasoner(base_urls=[UNREACHABLE], model="m", n=8, judge_every=16)
    tool = make_think_hard_tool(base, n=3, max_tokens=50, name="deep_think", description="d")
    ctx = tool.get_reasoner().context
    assert (ctx.n, ctx.max_tokens, ctx.judge_every, ctx.model) == (3, 50, 16, "m")
    assert tool.name == "deep_think" and tool.description == "d"
    assert tool.get_reasoner() is tool.get_reasoner()  # built once


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"n": 0}, "n must be"), ({"judge": "psychic"}, "unknown judge"), ({"base_urls": ["gpu:8000"]}, "http://")],
)
def test_factory_rejects_bad_settings(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        make_think_hard_tool(**kwargs)


def test_factory_rejects_a_non_reasoner() -> None:
    with pytest.raises(ConfigError, match="DeepPruneReasoner"):
        make_think_hard_tool("not a reasoner")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ({"question": "q", "n": 100_000}, "max_n"),
        ({"question": "q", "judge": "psychic"}, "unknown judge"),
        ({"question": "   "}, "question is empty"),
    ],
)
async def test_bad_arguments_come_back_to_the_model_as_tool_errors(args: dict[str, Any], needle: str) -> None:
    tool = make_think_hard_tool(base_urls=[UNREACHABLE], model="m", judge="numbers")
    for message in (tool.invoke(call(args)), await tool.ainvoke(call(args))):
        assert isinstance(message, ToolMessage)
        assert message.status == "error" and needle in str(message.content)
        assert message.tool_call_id == "call-1"


def test_schema_violations_raise_validation_errors() -> None:
    tool = make_think_hard_tool(base_urls=[UNREACHABLE])
    with pytest.raises(ValidationError):
        tool.invoke(call({"question": "q", "n": 0}))
    with pytest.raises(ValidationError):
        tool.invoke(call({"n": 4}))


def test_errors_raise_when_handling_is_off() -> None:
    tool = make_think_hard_tool(base_urls=[UNREACHABLE], handle_tool_error=False)
    with pytest.raises(Exception, match="max_n"):
        tool.invoke(call({"question": "q", "n": 100_000}))


def test_the_judge_argument_names_the_actual_default() -> None:
    """The model reads this text: it must name the default the settings really have."""
    description = ThinkHardInput.model_fields["judge"].description or ""
    assert f"'{DeepPruneContext.judge}' unless" in description
