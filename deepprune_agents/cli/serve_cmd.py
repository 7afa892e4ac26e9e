"""``deepprune serve``: run the embedded vLLM server (SmolLM2-135M-Instruct) in the foreground.

Why a command for it when ``ask`` starts one by itself: startup costs ~1 min on a small CPU machine, so
anyone running more than one question (or the test suite, via ``DEEPPRUNE_EMBEDDED_URL``) starts it
once here and points everything at the printed URL.
"""

from __future__ import annotations

import argparse
import signal
import threading
from types import FrameType
from typing import Any

from rich.console import Console

from deepprune_agents.backends.embedded import EmbeddedServer, log_tail
from deepprune_agents.errors import EmbeddedServerError


def register(subparsers: Any) -> None:
    """Add ``serve [--port P]`` to the main parser."""
    p = subparsers.add_parser(
        "serve",
        help="start the embedded vLLM server (SmolLM2-135M-Instruct) and keep it running",
        description="Start a real vLLM OpenAI-compatible server on 127.0.0.1 with SmolLM2-135M-Instruct; "
        "Ctrl-C or SIGTERM stops it cleanly.",
    )
    p.add_argument("--port", type=int, default=None, help="port to listen on (default: a free one)")
    p.add_argument("--startup-timeout", type=float, default=300.0, help="seconds to wait for /health (default 300)")
    p.set_defaults(func=_run_from_args, stops_on_ctrl_c=True)


def _run_from_args(args: argparse.Namespace) -> int:
    return run_serve(args.port, startup_timeout_s=args.startup_timeout)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_serve(port: int | None = None, *, startup_timeout_s: float = 300.0, console: Console | None = None) -> int:
    """Start, print the URL and model, block until Ctrl-C / SIGTERM, stop. 0 on a clean stop, 1 if the
    server died on its own; start-up failures raise EmbeddedServerError (the CLI prints its message)."""
    if port is not None and not 0 < port < 65536:
        raise EmbeddedServerError(f"--port must be between 1 and 65535 (got {port}).")
    out = console or Console()
    server = EmbeddedServer(port=port, startup_timeout_s=startup_timeout_s)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if in_main else None
    try:
        with out.status("Starting the embedded vLLM server (about a minute on a small CPU machine)..."):
            server.start()
        out.print(f"[bold green]vLLM is serving[/] model [bold]{server.model}[/] at [bold]{server.base_url}[/]")
        out.print(f"  log: {server.log_path}")
        out.print(f'  use it: [cyan]deepprune ask "What is 17*3?" --base-url {server.base_url}[/]')
        out.print(f"      or: [cyan]export DEEPPRUNE_BASE_URL={server.base_url}[/]")
        out.print("  Ctrl-C to stop.")
        while server.running:
            threading.Event().wait(1.0)
        log = server.log_path
        out.print(f"[bold red]the vLLM server exited on its own[/] (log: {log})")
        if log is not None:
            out.print(log_tail(log), markup=False, highlight=False)
        return 1
    except KeyboardInterrupt:
        out.print("Stopping the vLLM server...")
        return 0
    finally:
        server.stop()
        if in_main:
            signal.signal(signal.SIGTERM, previous)
