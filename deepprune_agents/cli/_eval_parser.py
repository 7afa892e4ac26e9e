"""Parser pieces shared by several commands: the ``deepprune eval`` parser (``eval judge`` and ``eval replay``
live in different modules, and argparse refuses to add the same sub-command twice, so each module asks for
it here), ``--answer-pattern``, and the policy knob flags derived from the knobs declarations."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import fields
from typing import Any, TypeVar

from deepprune_agents.pruning import KNOB_CLASSES
from deepprune_agents.pruning.knobs import Knobs, all_specs

T = TypeVar("T")

_ATTR = "_deepprune_eval_subparsers"


def get_or_add_eval_parser(subparsers: Any) -> Any:
    """The ``_SubParsersAction`` under ``deepprune eval`` (created on first call, reused afterwards).

    Usage in a command module::

        def register(subparsers):
            eval_sub = get_or_add_eval_parser(subparsers)
            p = eval_sub.add_parser("replay", help=...)
    """
    existing = getattr(subparsers, _ATTR, None)
    if existing is not None:
        return existing
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "eval", help="offline evaluations on recorded traces (judge metrics, replays)"
    )
    eval_sub = parser.add_subparsers(dest="eval_command", metavar="EVAL", required=True)
    setattr(subparsers, _ATTR, eval_sub)
    return eval_sub


def add_answer_pattern_arg(parser: argparse.ArgumentParser) -> None:
    """``--answer-pattern REGEX``: the run's answer extractor (``DeepPruneContext.answer_pattern``), shared by
    ``ask``, ``bench live`` and ``eval replay`` so the flag reads the same everywhere."""
    parser.add_argument(
        "--answer-pattern",
        default=None,
        metavar="REGEX",
        help="regex whose first group is a branch's final answer (last match wins; the built-in extractor "
        r"answers when it finds none), e.g. 'ANSWER: (\S+)'. Default: the built-in extractor",
    )


def add_knob_flags(
    parser: argparse.ArgumentParser, classes: Iterable[type[Knobs]] = KNOB_CLASSES, *, title: str = "policy knobs"
) -> None:
    """One flag per knob of ``classes`` (every policy's by default): ``--<prefix>-<name>`` (``--tau``,
    ``--k2``, ``--adaptive-min-keep``), with type, default, help and range from the knob's declaration,
    so a knob is declared once and every command that runs a policy follows it. Bool knobs get
    ``--name`` / ``--no-name``."""
    group = parser.add_argument_group(title)
    for spec in all_specs(classes):
        help_text = f"{spec.settings_description()} (default {spec.default})".replace("%", "%%")
        if spec.type is bool:
            group.add_argument(
                spec.flag, dest=spec.setting, action=argparse.BooleanOptionalAction, default=spec.default,
                help=help_text,
            )  # fmt: skip
        else:
            group.add_argument(spec.flag, dest=spec.setting, type=spec.type, default=spec.default, help=help_text)


def knob_values(args: argparse.Namespace, classes: Iterable[type[Knobs]] = KNOB_CLASSES) -> dict[str, Any]:
    """The values of the flags ``add_knob_flags`` added, keyed by their settings names (``tau``,
    ``adaptive_min_keep``): ready for ``DeepPruneContext(**...)`` or ``KnobSet.from_settings``."""
    return {spec.setting: getattr(args, spec.setting) for spec in all_specs(classes)}


def from_args(cls: type[T], args: argparse.Namespace, *, prefix: str = "", **given: Any) -> T:
    """A config dataclass from the parsed flags whose dest is ``prefix + field name`` (fields without a
    flag keep their defaults; ``given`` sets the rest): a flag and its config field are one name, not a
    line copying one into the other per option."""
    values = {f.name: getattr(args, prefix + f.name) for f in fields(cls) if hasattr(args, prefix + f.name)}  # type: ignore[arg-type]
    return cls(**{**values, **given})
