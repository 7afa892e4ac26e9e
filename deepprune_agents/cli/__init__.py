"""``deepprune`` command line: thin parsing and rendering around the library.

Each sub-command lives in its own module with a ``register(subparsers)`` function, so the CLI grows by
adding a module, not by editing one big file.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from deepprune_agents.cli import _interrupt
from deepprune_agents.errors import DeepPruneError

SUBCOMMAND_MODULES = (
    "deepprune_agents.cli.ask_cmd",
    "deepprune_agents.cli.serve_cmd",
    "deepprune_agents.cli.replicas_cmd",
    "deepprune_agents.cli.judge_cmds",
    "deepprune_agents.cli.bench_cmds",
    "deepprune_agents.cli.replay_cmds",
    "deepprune_agents.cli.traces_cmds",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepprune",
        description="Parallel reasoning with DeepPrune: N branches, a judge that prunes redundant ones, a vote.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that sub-command is not part of this build
                continue
            raise
        module.register(subparsers)
    return parser


def _quiet_model_loading() -> None:
    """Model loaders print progress bars to stderr; a CLI user wants the branch table, not those."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover
        return
    hf_logging.disable_progress_bar()


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status: the command's, 2 for a DeepPruneError, 130 after Ctrl-C (always, see ``_interrupt``),
    except for the servers, whose normal way to stop is Ctrl-C."""
    _interrupt.install()
    args: argparse.Namespace | None = None
    code = 0
    try:
        parser = build_parser()
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
