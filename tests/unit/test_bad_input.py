"""Bad input gets a typed error that names the fix, before any server work."""

from __future__ import annotations

import pytest

from deepprune_agents.errors import BackendUnavailableError, ConfigError
from deepprune_agents.graph import validate_question
from deepprune_agents.reasoner import DeepPruneReasoner, question_of
from deepprune_agents.settings import DeepPruneContext


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"n": 0}, "n must be"),
        ({"n": 10_000}, "max_n"),
        ({"policy": "fancy"}, "unknown policy"),
        ({"tau": 1.5}, "tau"),
        ({"truncate": "chars:10"}, "tokens"),
        ({"base_urls": ["localhost:8000"]}, "http://"),
        ({"k2": 0}, "k2"),
        ({"endpoint": "responses"}, "endpoint"),
    ],
)
def test_invalid_settings_raise_config_error(changes: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        DeepPruneContext(**changes)  # type: ignore[arg-type]


def test_unknown_setting_is_named() -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        DeepPruneContext().replace(temprature=0.3)


@pytest.mark.parametrize("question", ["", "   ", b"\xff\xfe"])
def test_empty_or_undecodable_question(question: object) -> None:
    with pytest.raises(ConfigError):
        validate_question(question, DeepPruneContext())


def test_huge_question_is_refused() -> None:
    with pytest.raises(ConfigError, match="max_question_chars"):
        validate_question("x" * 30_000, DeepPruneContext())


def test_lone_surrogates_are_replaced_not_fatal() -> None:
    cleaned = validate_question("2+2=\ud800?", DeepPruneContext())
    assert cleaned == "2+2=??"
    cleaned.encode("utf-8")  # sendable


def test_question_shapes() -> None:
    from langchain_core.messages import AIMessage, HumanMessage
    from langchain_core.prompts import ChatPromptTemplate

    assert question_of("q") == "q"
    assert question_of({"question": "q"}) == "q"
    assert question_of([HumanMessage("a"), AIMessage("b"), HumanMessage("c")]) == "c"
    prompt = ChatPromptTemplate.from_messages([("system", "s"), ("human", "solve {x}")]).invoke({"x": "1+1"})
    assert question_of(prompt) == "solve 1+1"
    with pytest.raises(ConfigError):
        question_of(42)


async def test_unreachable_server_names_the_fix(refused_base_url: str) -> None:
    # Real HTTP to a closed port on loopback: connection refused, retried, then a typed error.
    reasoner = DeepPruneReasoner(n=2, base_urls=[refused_base_url], judge="numbers", open_retries=1)
    with pytest.raises(BackendUnavailableError, match="deepprune serve"):
        await reasoner.ainvoke("What is 1 + 1?")
