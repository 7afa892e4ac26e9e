"""Runnable plumbing of ``DeepPruneReasoner`` that needs no server: how settings flow in from the
constructor, ``with_config`` and ``configurable``; which inputs LCEL may hand it; the recursion limit."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableSequence

from deepprune_agents.errors import ConfigError
from deepprune_agents.graph import RECURSION_LIMIT, build_graph
from deepprune_agents.reasoner import DeepPruneReasoner, question_of
from deepprune_agents.result import DeepPruneResult

URL = "http://127.0.0.1:9/v1"


def test_configurable_overrides_constructor_settings_and_ignores_foreign_keys() -> None:
    reasoner = DeepPruneReasoner(base_urls=[URL], n=8, judge="numbers")
    ctx = reasoner.context_for({"configurable": {"n": 3, "thread_id": "t1", "user": "x"}})
    assert (ctx.n, ctx.judge, ctx.base_urls) == (3, "numbers", [URL])
    assert reasoner.context_for(None) is reasoner.context  # no overrides: the constructor's settings


def test_with_config_binding_carries_the_overrides() -> None:
    reasoner = DeepPruneReasoner(base_urls=[URL], n=8)
    bound = reasoner.with_config(configurable={"n": 2, "policy": "paper"}, tags=["t"])
    ctx = reasoner.context_for(bound.config)  # type: ignore[attr-defined]
    assert (ctx.n, ctx.policy) == (2, "paper")
    assert bound.config["tags"] == ["t"]  # type: ignore[attr-defined]


def test_a_bad_configurable_value_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="n must be"):
        DeepPruneReasoner(base_urls=[URL]).context_for({"configurable": {"n": 0}})


def test_lcel_hands_prompt_values_and_messages_and_the_question_is_the_last_human_turn() -> None:
    prompt = ChatPromptTemplate.from_messages([("system", "be brief"), ("human", "Solve: {p}")])
    assert question_of(prompt.invoke({"p": "2+2"})) == "Solve: 2+2"
    history = [HumanMessage("first"), AIMessage("?"), HumanMessage("second"), SystemMessage("s")]
    assert question_of(history) == "second"
    assert question_of({"question": "q", "other": 1}) == "q"


def test_composes_in_lcel_with_typed_output() -> None:
    reasoner = DeepPruneReasoner(base_urls=[URL])
    chain = ChatPromptTemplate.from_messages([("human", "{p}")]) | reasoner
    assert isinstance(chain, RunnableSequence) and chain.last is reasoner
    assert reasoner.OutputType is DeepPruneResult


def test_graph_recursion_limit_is_far_above_the_default() -> None:
    assert RECURSION_LIMIT > 1000
    assert build_graph().config["recursion_limit"] == RECURSION_LIMIT  # type: ignore[index]
