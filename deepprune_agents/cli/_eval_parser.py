"""The shared ``deepprune eval`` parser: ``eval judge`` and ``eval replay`` live in different modules,
and argparse refuses to add the same sub-command twice, so each module asks for it here."""

from __future__ import annotations

import argparse
from dataclasses import MISSING, fields
from typing import Any

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


def add_knob_flags(parser: argparse.ArgumentParser, knobs: type, *, prefix: str) -> None:
    """One ``--<prefix>-<field>`` flag per field of the dataclass ``knobs`` (type, default, help and range
    from the field), so a knob is declared once and the command line follows it."""
    for f in fields(knobs):
        kind = int if f.type in ("int", int) else float
        default = f.default if f.default is not MISSING else None
        meta = f.metadata
        parser.add_argument(
            f"--{prefix}-{f.name.replace('_', '-')}",
            dest=f"{prefix}_{f.name}",
            type=kind,
            default=default,
            help=f"{prefix}: {meta.get('description', '')} [{meta.get('low')}, {meta.get('high')}] (default {default})",
        )


def knob_values(args: argparse.Namespace, knobs: type, *, prefix: str) -> dict[str, Any]:
    """The values of the flags ``add_knob_flags`` added, keyed by the dataclass field names."""
    return {f.name: getattr(args, f"{prefix}_{f.name}") for f in fields(knobs)}
