"""defaults < settings file < environment < call, for every setting (settings_layers.py)."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest

from deepprune_agents.errors import ConfigError
from deepprune_agents.settings import DeepPruneContext
from deepprune_agents.settings_layers import env_name, layered_values, parse_env_value

FIELDS = fields(DeepPruneContext)
BY_NAME = {f.name: f for f in FIELDS}


def test_each_kind_of_field_parses_from_its_variable() -> None:
    env = {
        "DEEPPRUNE_N": "32",
        "DEEPPRUNE_TAU": "0.7",
        "DEEPPRUNE_STOP_WHEN_DECIDED": "false",
        "DEEPPRUNE_POLICY": "paper",
        "DEEPPRUNE_BASE_URLS": "http://a:8000/v1, http://b:8000/v1",
        "DEEPPRUNE_EXTRA_BODY": '{"top_k": 20}',
        "DEEPPRUNE_INCLUDE_REASONING": "no",
        "DEEPPRUNE_MODEL": "m",
        "DEEPPRUNE_STREAM_WORKERS": "2",
        "DEEPPRUNE_API_KEY": "sk-not-a-setting",  # other DEEPPRUNE_ variables are not settings
    }
    values = layered_values(FIELDS, env)
    assert values == {
        "n": 32,
        "tau": 0.7,
        "stop_when_decided": False,
        "policy": "paper",
        "base_urls": ["http://a:8000/v1", "http://b:8000/v1"],
        "extra_body": {"top_k": 20},
        "include_reasoning": False,
        "model": "m",
        "stream_workers": 2,
    }


def test_a_bad_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="DEEPPRUNE_N='many'"):
        layered_values(FIELDS, {"DEEPPRUNE_N": "many"})
    with pytest.raises(ConfigError, match="JSON object"):
        parse_env_value(BY_NAME["extra_body"], "[1]", "DEEPPRUNE_EXTRA_BODY")


def test_the_file_is_under_the_environment(tmp_path: Path) -> None:
    toml = tmp_path / "deepprune.toml"
    toml.write_text('n = 12\npolicy = "periodic"\njudge_every = 64\n')
    values = layered_values(FIELDS, {"DEEPPRUNE_SETTINGS": str(toml), "DEEPPRUNE_N": "20"})
    assert values == {"n": 20, "policy": "periodic", "judge_every": 64}
    js = tmp_path / "s.json"
    js.write_text(json.dumps({"n": 5}))
    assert layered_values(FIELDS, {"DEEPPRUNE_SETTINGS": str(js)}) == {"n": 5}


def test_a_bad_file_fails_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "s.toml"
    bad.write_text("nn = 3\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        layered_values(FIELDS, {"DEEPPRUNE_SETTINGS": str(bad)})
    with pytest.raises(ConfigError, match="cannot read"):
        layered_values(FIELDS, {"DEEPPRUNE_SETTINGS": str(tmp_path / "missing.toml")})


def test_construction_applies_the_layers_and_the_call_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    toml = tmp_path / "deepprune.toml"
    toml.write_text('n = 12\njudge = "numbers"\n')
    monkeypatch.setenv("DEEPPRUNE_SETTINGS", str(toml))
    monkeypatch.setenv("DEEPPRUNE_N", "20")
    assert DeepPruneContext().n == 20  # environment over file
    assert DeepPruneContext().judge == "numbers"  # file over default
    assert DeepPruneContext(n=8).n == 8  # the call wins, even when it passes the default value
    assert DeepPruneContext.from_any({"judge": "embedding"}).judge == "embedding"
    assert DeepPruneContext().replace(n=3).n == 3


def test_every_setting_has_a_variable() -> None:
    names = {env_name(f.name) for f in FIELDS}
    assert {"DEEPPRUNE_BASE_URLS", "DEEPPRUNE_MODEL", "DEEPPRUNE_N", "DEEPPRUNE_POLICY"} <= names


def test_the_cli_passes_only_the_flags_given(monkeypatch: pytest.MonkeyPatch) -> None:
    from deepprune_agents.cli import build_parser
    from deepprune_agents.cli.ask_cmd import context_from_args
    from deepprune_agents.evaluation.replay_eval import setting_default

    monkeypatch.setenv("DEEPPRUNE_N", "16")
    monkeypatch.setenv("DEEPPRUNE_BASE_URLS", "http://gpu:8000/v1")
    parser = build_parser()
    unset = context_from_args(parser.parse_args(["ask", "q"]))
    assert unset.n == 16 and unset.base_urls == ["http://gpu:8000/v1"] and unset.policy == setting_default("policy")
    given = context_from_args(parser.parse_args(["ask", "q", "--n", "8", "--base-url", "http://x:1/v1"]))
    assert given.n == 8 and given.base_urls == ["http://x:1/v1"]
