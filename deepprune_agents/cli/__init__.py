"""``deepprune`` command line: thin parsing and rendering around the library.

Each sub-command lives in its own module with a ``register(subparsers)`` function, so the CLI grows by
adding a module (and a line in ``COMMANDS``), not by editing one big file.

Start-up: only the modules of the command being run are imported (``deepprune ask`` never imports the
trainer, ``deepprune --help`` imports none: it lists the commands from ``COMMANDS``). The command modules
import heavy libraries (torch, transformers, numpy, openai, langgraph) inside the functions that need them
or through the library modules they run, so ``deepprune --help`` takes about a bare interpreter's start
(bench/startup.py measures it).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import NamedTuple

from deepprune_agents.cli import _interrupt
from deepprune_agents.errors import DeepPruneError

_CLI = "deepprune_agents.cli."


class Command(NamedTuple):
    """A top-level command: the modules whose ``register`` adds it, and its line in ``deepprune --help``
    (the same help the module registers; a unit test keeps the two equal)."""

    modules: tuple[str, ...]
    help: str


COMMANDS: dict[str, Command] = {
    "ask": Command((_CLI + "ask_cmd",), "answer a question with N pruned branches"),
    "serve": Command(
        (_CLI + "serve_cmd",),
        "start the embedded vLLM server, or with --upstream the OpenAI-compatible DeepPrune proxy",
    ),
    "train-judge": Command((_CLI + "judge_cmds",), "train the pair judge (MiniLM bi-encoder + head) on trace files"),
    "eval": Command(
        (_CLI + "judge_cmds", _CLI + "replay_cmds"),
        "offline evaluations on recorded traces (judge metrics, replays)",
    ),
    "replicas": Command(
        (_CLI + "replicas_cmd",),
        "start N embedded vLLM replicas, optionally behind vllm-router",
    ),
    "bench": Command((_CLI + "bench_cmds",), "benchmarks that print their figures and write JSON"),
    "replay-server": Command(
        (_CLI + "replay_cmds",),
        "an OpenAI-compatible server that streams recorded traces (evaluation, fault injection)",
    ),
    "traces": Command((_CLI + "traces_cmds",), "make and inspect trace corpora"),
}


def command_of(argv: Sequence[str]) -> str | None:
    """The command an argument list runs: its first argument that is not an option (None: none given)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with every command fully registered, or, given ``command``, with only that command's
    modules imported and the other commands listed by name and help (enough for ``--help`` and for
    argparse's error on a misspelt command)."""
    parser = argparse.ArgumentParser(
        prog="deepprune",
        description="Parallel reasoning with DeepPrune: N branches, a judge that prunes redundant ones, a vote.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = list(COMMANDS) if command is None else [command] if command in COMMANDS else []
    modules = dict.fromkeys(module for name in wanted for module in COMMANDS[name].modules)  # each once, in order
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that sub-command is not part of this build
                continue
            raise
        module.register(subparsers)
    for name, entry in COMMANDS.items():
        if name not in wanted and name not in subparsers.choices:
            subparsers.add_parser(name, help=entry.help)
    return parser


def _quiet_model_loading() -> None:
    """Model loaders print progress bars to stderr; a CLI user wants the branch table, not those. The
    variables are read when transformers and huggingface_hub are imported (not here: a command that
    loads no model should not pay for importing transformers); a library already imported is told."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    hf_logging = sys.modules.get("transformers.utils.logging")
    if hf_logging is not None:
        hf_logging.disable_progress_bar()


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status: the command's, 2 for a DeepPruneError, 130 after Ctrl-C (always, see ``_interrupt``),
    except for the servers, whose normal way to stop is Ctrl-C."""
    _interrupt.install()
    args: argparse.Namespace | None = None
    code = 0
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser(command_of(argv) or "")
        args = parser.parse_args(argv)
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
        if not args.verbose:
            _quiet_model_loading()
        code = int(args.func(args) or 0)
    except DeepPruneError as exc:
        if not _interrupt.interrupted():
            print(f"deepprune: error: {exc}", file=sys.stderr)
            return 2
    except KeyboardInterrupt:
        pass
    except BaseException:
        # After Ctrl-C, whatever a layer raised while being torn down (CancelledError out of asyncio.run)
        # is the interrupt, not a crash; without Ctrl-C it is a real error (or argparse's SystemExit).
        if not _interrupt.interrupted():
            raise
    if not _interrupt.interrupted():
        return code
    if getattr(args, "stops_on_ctrl_c", False):
        return code
    print("deepprune: interrupted; every branch was cancelled on the server.", file=sys.stderr)
    return _interrupt.EXIT_INTERRUPTED


def console() -> None:
    """The ``deepprune`` program (console script, ``python -m deepprune_agents.cli``): ``main``, then exit
    without the interpreter's last garbage collections. Those walk every object the imports made
    (openai's and LangChain's thousands of pydantic classes) and took longer than the imports' own
    share of ``deepprune ask`` on 2 cores (bench/startup.py); frozen objects are skipped, while atexit
    handlers and the streams' flushing still run. Not after torch was loaded (a model judge, training):
    its compiler's bindings count the objects left at exit and would print a leak warning for each one
    the freeze keeps, and such a command takes seconds anyway. ``main`` alone, called in a process that
    goes on (tests), freezes nothing."""
    code = main()
    if "torch" not in sys.modules:
        gc.freeze()
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    console()
