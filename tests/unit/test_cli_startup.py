"""The CLI imports only what the command it runs needs (bench/startup.py times it; these tests hold the
structure that makes it fast, without timing anything): ``deepprune --help`` imports no command module and
no heavy library, ``deepprune ask`` neither torch, transformers, numpy nor scikit-learn, and the help that
``--help`` lists without importing a command is the help the command registers."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deepprune_agents.cli import COMMANDS, build_parser, command_of

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "numpy", "sklearn", "scipy", "sentence_transformers", "langgraph", "openai")


def modules_after(code: str) -> set[str]:
    """The top-level packages imported by a fresh interpreter that runs ``code``."""
    probe = f"import sys\n{code}\nimport json; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", probe], env=env, check=True, capture_output=True, text=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_help_imports_no_command_module_and_no_heavy_library() -> None:
    loaded = modules_after("from deepprune_agents.cli import build_parser\nbuild_parser('')")
    assert "deepprune_agents" in loaded
    assert not loaded & {*HEAVY, "rich", "pydantic"}, sorted(loaded & {*HEAVY, "rich", "pydantic"})


def test_help_lists_every_command_without_importing_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser("").parse_args(["--help"])
    assert exc.value.code == 0
    listed = capsys.readouterr().out
    for name in COMMANDS:
        assert f"    {name}" in listed


def test_ask_loads_no_model_library() -> None:
    loaded = modules_after("from deepprune_agents.cli import build_parser\nbuild_parser('ask')")
    assert not loaded & {"torch", "transformers", "numpy", "sklearn", "scipy", "rich"}


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _help_lines(parser: argparse.ArgumentParser) -> dict[str, str | None]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {choice.dest: choice.help for choice in action._choices_actions}


def test_the_listed_help_is_the_registered_help() -> None:
    registered = _help_lines(build_parser())  # every command module imported
    assert registered == {name: entry.help for name, entry in COMMANDS.items()}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_a_command_gets_its_real_parser(name: str) -> None:
    real = _subcommands(build_parser(name))[name]
    assert real._actions[1:], f"{name}: only a placeholder was registered"  # more than -h


def test_the_command_is_the_first_argument_that_is_not_an_option() -> None:
    assert command_of(["-v", "ask", "--n", "4"]) == "ask"
    assert command_of(["--help"]) is None
    assert command_of([]) is None
