"""The settings' choice fields are typed as Literal, once, so Studio's context form renders dropdowns and the
lists the CLI, the validation and the judge registry use cannot drift apart."""

from __future__ import annotations

from typing import get_args

from pydantic import TypeAdapter

from deepprune_agents.backends.openai_stream import EndpointKind
from deepprune_agents.backends.reasoning import REASONING_FORMATS
from deepprune_agents.judges import JUDGE_NAMES
from deepprune_agents.settings import KNOWN_POLICIES, DeepPruneContext, JudgeName


def test_the_judge_literal_lists_exactly_the_builtin_judges() -> None:
    assert set(get_args(JudgeName)) == set(JUDGE_NAMES)


def test_studio_context_schema_offers_choices_for_policy_judge_endpoint_and_reasoning_format() -> None:
    props = TypeAdapter(DeepPruneContext).json_schema()["properties"]
    assert set(props["policy"]["enum"]) == set(KNOWN_POLICIES)
    assert set(props["judge"]["enum"]) == set(JUDGE_NAMES)
    assert set(props["endpoint"]["enum"]) == set(get_args(EndpointKind))
    assert set(props["reasoning_format"]["enum"]) == set(REASONING_FORMATS)
    assert props["judge"]["default"] == DeepPruneContext().judge
