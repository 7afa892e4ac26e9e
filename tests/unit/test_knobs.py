"""Policy knobs are declared once (a ``knob()`` field of a policy's knobs class) and every other place
follows: the settings field and its Studio schema, validation, every command's flags, the evaluation's
config, the proxy's per-request options, and the policy object ``make_policy`` builds.

The contract tests iterate over every knob of ``KNOB_CLASSES``, so a knob added to a policy's knobs class
is checked everywhere without editing this file; ``test_a_new_knobs_class_is_picked_up_by_the_derivation``
shows the derivation on a throwaway class declared here, touching no other file."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from typing import Any

import pytest
from pydantic import TypeAdapter

from deepprune_agents.cli import build_parser
from deepprune_agents.cli._eval_parser import add_knob_flags, knob_values
from deepprune_agents.cli.ask_cmd import context_from_args
from deepprune_agents.errors import ConfigError
from deepprune_agents.evaluation.replay_eval import SWEEPABLE, EvalConfig, parse_sweep
from deepprune_agents.pruning import KNOB_CLASSES, ClusteringKnobs, PaperKnobs, default_knobs, make_policy
from deepprune_agents.pruning.knobs import Knobs, KnobSet, KnobSpec, all_specs, knob, knob_settings_fields
from deepprune_agents.server.options import parse_options
from deepprune_agents.settings import DeepPruneContext

SPECS = all_specs(KNOB_CLASSES)
IDS = [s.setting for s in SPECS]


def other_value(spec: KnobSpec) -> Any:
    """A valid value that is not the default."""
    if spec.type is bool:
        return not spec.default
    step = 1 if spec.type is int else (spec.high - spec.default) / 2 if spec.high is not None else 0.5
    if spec.high is not None and spec.default + step > spec.high:
        step = -step
    return spec.default + step if step else spec.default - (spec.default - (spec.low or 0)) / 2


def flag_args(spec: KnobSpec, value: Any) -> list[str]:
    if spec.type is bool:
        return [spec.flag if value else "--no-" + spec.flag[2:]]
    return [spec.flag, str(value)]


def commands_with_policy_flag(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every (sub)command parser that takes ``--policy``, by its command path."""
    found: dict[str, Any] = {}
    for action in parser._actions:
        if "--policy" in action.option_strings:
            found[" ".join(path)] = parser
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(commands_with_policy_flag(sub, (*path, name)))
    return found


POLICY_COMMANDS = commands_with_policy_flag(build_parser())
ARGV = {"ask": ["ask", "q"], "bench live": ["bench", "live"], "eval replay": ["eval", "replay", "--traces", "x"]}


def test_every_command_that_runs_a_policy_is_known() -> None:
    assert set(POLICY_COMMANDS) == {"ask", "bench live", "eval replay", "serve"}


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_the_settings_field_follows_the_declaration(spec: KnobSpec) -> None:
    f = {f.name: f for f in fields(DeepPruneContext)}[spec.setting]
    assert f.default == spec.default == getattr(DeepPruneContext(), spec.setting)
    assert spec.description in f.metadata["description"]
    assert f.type is spec.type
    value = other_value(spec)
    assert DeepPruneContext(**{spec.setting: value}).knobs(spec.owner) == spec.owner(**{spec.name: value})
    assert DeepPruneContext.from_any({spec.setting: value}).replace().knobs(spec.owner) == spec.owner(
        **{spec.name: value}
    )


def test_studio_context_schema_shows_every_knob() -> None:
    from deepprune_agents.graph import build_graph

    props = build_graph().get_context_jsonschema()["properties"]  # what Studio renders as its form
    for spec in SPECS:
        prop = props[spec.setting]
        assert prop["default"] == spec.default
        assert prop["type"] == {int: "integer", float: "number", bool: "boolean"}[spec.type]
        assert spec.description in prop["description"] and spec.range_text() in prop["description"]


@pytest.mark.parametrize("spec", [s for s in SPECS if s.type is not bool], ids=lambda s: s.setting)
def test_out_of_range_values_fail_naming_the_settings_field(spec: KnobSpec) -> None:
    bad = [spec.high + 1] if spec.high is not None else []
    if spec.low is not None:
        bad.append(spec.low if spec.low_open else spec.low - 1)
    bad.append("3")
    for value in bad:
        with pytest.raises(ConfigError, match=spec.setting):
            DeepPruneContext(**{spec.setting: value})


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
@pytest.mark.parametrize("command", sorted(POLICY_COMMANDS))
def test_every_policy_command_has_the_flag_with_the_default(command: str, spec: KnobSpec) -> None:
    parser = POLICY_COMMANDS[command]
    defaults = parser.parse_args([] if command == "serve" else ARGV[command][len(command.split()) :])
    if hasattr(defaults, spec.setting):
        assert getattr(defaults, spec.setting) == spec.default
    else:  # ask / bench live pass only the flags given: the settings layers supply the default
        assert getattr(context_from_args(defaults), spec.setting) == spec.default
    value = other_value(spec)
    args = parser.parse_args(
        [*([] if command == "serve" else ARGV[command][len(command.split()) :]), *flag_args(spec, value)]
    )
    assert getattr(args, spec.setting) == value


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_ask_and_eval_replay_carry_a_flag_to_the_policy(spec: KnobSpec) -> None:
    from deepprune_agents.cli.replay_cmds import POLICIES

    value = other_value(spec)
    ask = build_parser().parse_args([*ARGV["ask"], *flag_args(spec, value)])
    assert getattr(context_from_args(ask), spec.setting) == value
    replay = build_parser().parse_args([*ARGV["eval replay"], *flag_args(spec, value)])
    cfg = EvalConfig(knobs=default_knobs(**knob_values(replay)))
    assert cfg.knobs.get(spec.owner) == spec.owner(**{spec.name: value})
    assert cfg.as_dict()[spec.setting] == value
    for policy in set(spec.owner.policies) & set(POLICIES):
        assert getattr(cfg.context(policy), spec.setting) == value
    if spec.type is not bool:  # a numeric knob can be swept: --sweep NAME=V1,V2
        assert SWEEPABLE[spec.setting] is spec.type
        assert EvalConfig().with_setting(spec.setting, value).knobs.get(spec.owner) == cfg.knobs.get(spec.owner)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_the_proxy_accepts_every_knob_per_request(spec: KnobSpec) -> None:
    value = other_value(spec)
    text = str(value).lower() if spec.type is bool else str(value)
    body = {"model": f"m+deepprune:{spec.setting}={text}", "messages": [{"role": "user", "content": "q"}]}
    opts = parse_options(body, DeepPruneContext(base_urls=["http://upstream:8000/v1"], judge="numbers"))
    assert getattr(opts.context, spec.setting) == value


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_a_knob_set_in_the_settings_reaches_the_policy_object(spec: KnobSpec) -> None:
    value = other_value(spec)
    assert spec.owner.policies, f"{spec.owner.__name__} names no policy that reads it"
    for policy_name in spec.owner.policies:
        policy = make_policy(DeepPruneContext(policy=policy_name, **{spec.setting: value}))
        held = [v for v in vars(policy).values() if isinstance(v, spec.owner)]
        assert held == [spec.owner(**{spec.name: value})], policy_name


def test_the_knob_set_round_trips_and_rejects_unknown_names() -> None:
    knobs = default_knobs(tau=0.3, k2=4)
    assert knobs.get(ClusteringKnobs).tau == 0.3 and knobs.get(PaperKnobs).k2 == 4
    assert knobs.replace(tau=0.7).as_settings() == {**knobs.as_settings(), "tau": 0.7}
    assert EvalConfig(knobs=knobs).with_setting("tau", 0.7).knobs == knobs.replace(tau=0.7)
    assert EvalConfig().with_setting("truncate", "words:5").truncate == "words:5"
    with pytest.raises(ConfigError, match="tua"):
        knobs.replace(tua=0.3)
    assert parse_sweep("k2=5,10") == ("k2", [5, 10])
    with pytest.raises(ConfigError, match="k2 must be >= 1"):
        parse_sweep("k2=0,10")


# --- the derivation is generic: a knobs class declared here is picked up with no other edit ----------------
@dataclass(frozen=True)
class ToyKnobs(Knobs):
    """What a new policy's knobs look like: one class, one field per knob."""

    prefix = "toy_"
    policies = ("toy",)

    depth: int = knob(3, "How many rounds the toy policy judges.", low=1, high=9)
    share: float = knob(0.5, "Share of branches kept.", low=0.0, high=1.0, low_open=True)
    eager: bool = knob(False, "Stop at the first answer.")


@dataclass(kw_only=True)
@knob_settings_fields([ClusteringKnobs, ToyKnobs], after="n")
class ToyContext:
    n: int = 8
    model: str = "m"

    def knobs(self, kind: type[Knobs]) -> Knobs:
        return kind.from_settings(vars(self))


def test_a_new_knobs_class_is_picked_up_by_the_derivation() -> None:
    names = [f.name for f in fields(ToyContext)]
    assert names == [
        "n",
        "tau",
        "k1",
        "max_clusters",
        "stop_when_decided",
        "toy_depth",
        "toy_share",
        "toy_eager",
        "model",
    ]
    ctx = ToyContext(toy_depth=5, toy_eager=True)
    assert ctx.knobs(ToyKnobs) == ToyKnobs(depth=5, eager=True)
    props = TypeAdapter(ToyContext).json_schema()["properties"]
    assert props["toy_share"]["description"] == "toy: Share of branches kept. Range (0, 1]."
    assert props["toy_depth"]["default"] == 3 and props["toy_eager"]["type"] == "boolean"
    with pytest.raises(ConfigError, match=r"toy_share must lie in \(0, 1\]"):
        ToyKnobs.from_settings({"toy_share": 0.0})

    parser = argparse.ArgumentParser()
    add_knob_flags(parser, [ToyKnobs])
    args = parser.parse_args(["--toy-depth", "7", "--toy-eager"])
    assert knob_values(args, [ToyKnobs]) == {"toy_depth": 7, "toy_share": 0.5, "toy_eager": True}
    knobs = KnobSet.from_settings([ClusteringKnobs, ToyKnobs], knob_values(args, [ToyKnobs]))
    assert knobs.get(ToyKnobs) == ToyKnobs(depth=7, eager=True)


def test_declaration_mistakes_fail_at_import_time() -> None:
    @dataclass(frozen=True)
    class Clash(Knobs):
        tau: float = knob(0.5, "Same settings name as ClusteringKnobs.tau.")

    with pytest.raises(TypeError, match="declared twice"):
        all_specs([ClusteringKnobs, Clash])

    @dataclass(frozen=True)
    class Untyped(Knobs):
        label: str = knob(1, "Knobs are int, float or bool.")

    with pytest.raises(TypeError, match="int, float or bool"):
        Untyped.specs()

    with pytest.raises(TypeError, match="by hand"):

        @dataclass
        @knob_settings_fields([ClusteringKnobs])
        class HandWritten:
            tau: float = 0.5
