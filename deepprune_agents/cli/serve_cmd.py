"""``deepprune serve``: run the embedded vLLM server (SmolLM2-135M-Instruct) in the foreground, or with
``--upstream URL`` the OpenAI-compatible DeepPrune proxy in front of any OpenAI-compatible server.

Why a command for the embedded server when ``ask`` starts one by itself: startup costs ~1 min on a small
CPU machine, so anyone running more than one question (or the test suite, via ``DEEPPRUNE_EMBEDDED_URL``)
starts it once here and points everything at the printed URL. Why the proxy: clients that only take a
base URL and a model name (other languages, IDE assistants, chat front ends) get pruned parallel reasoning.
"""

from __future__ import annotations

import argparse
import signal
import threading
from types import FrameType
from typing import Any

from rich.console import Console

from deepprune_agents.backends.embedded import EmbeddedServer, log_tail
from deepprune_agents.cli._eval_parser import add_knob_flags, knob_values
from deepprune_agents.errors import ConfigError, EmbeddedServerError
from deepprune_agents.settings import KNOWN_POLICIES, DeepPruneContext


def register(subparsers: Any) -> None:
    """Add ``serve [--port P] [--upstream URL ...]`` to the main parser."""
    p = subparsers.add_parser(
        "serve",
        help="start the embedded vLLM server, or with --upstream the OpenAI-compatible DeepPrune proxy",
        description="Without --upstream: start a real vLLM OpenAI-compatible server on 127.0.0.1 with "
        "SmolLM2-135M-Instruct. With --upstream URL: serve /v1/chat/completions that answers with N pruned "
        "branches run on URL (repeat it for several replicas). Ctrl-C or SIGTERM stops it cleanly.",
    )
    p.add_argument("--port", type=int, default=None, help="port to listen on (default: a free one; the proxy: 8000)")
    p.add_argument("--startup-timeout", type=float, default=300.0, help="seconds to wait for /health (default 300)")
    proxy = p.add_argument_group("proxy (with --upstream)")
    proxy.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="URL",
        help="OpenAI-compatible base URL (…/v1) the branches run on; repeat for replicas. Its key: $DEEPPRUNE_API_KEY",
    )
    proxy.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    proxy.add_argument("--max-concurrent", type=int, default=4, help="runs at once; more get 429 (default 4)")
    proxy.add_argument(
        "--n", type=int, default=None, help=f"default branches per request (default {DeepPruneContext.n})"
    )
    proxy.add_argument("--judge", default=None, help=f"default judge (default {DeepPruneContext.judge})")
    proxy.add_argument(
        "--policy", default=None, choices=KNOWN_POLICIES, help=f"default policy (default {DeepPruneContext.policy})"
    )
    proxy.add_argument("--model", default=None, help="default upstream model (default: the first one it lists)")
    proxy.add_argument("--ui", action="store_true", help="serve a live page at / that shows each run's branches")
    add_knob_flags(p, title="policy knobs (proxy defaults; a request may override them)")
    p.set_defaults(func=_run_from_args, stops_on_ctrl_c=True)


def _run_from_args(args: argparse.Namespace) -> int:
    if args.upstream:
        return run_proxy(args)
    return run_serve(args.port, startup_timeout_s=args.startup_timeout)


def run_proxy(args: argparse.Namespace) -> int:
    """``deepprune serve --upstream URL``: the proxy in the foreground until Ctrl-C."""
    from deepprune_agents.server import require_server_deps

    require_server_deps()
    from deepprune_agents.server.app import ProxyConfig, serve_forever

    port = 8000 if args.port is None else args.port
    if not 0 <= port < 65536:
        raise ConfigError(f"--port must be between 0 and 65535 (got {port}).")
    given = {"n": args.n, "judge": args.judge, "policy": args.policy, "model": args.model}
    given = {k: v for k, v in given.items() if v is not None}
    defaults = DeepPruneContext(base_urls=list(args.upstream), **given, **knob_values(args))
    config = ProxyConfig(defaults, max_concurrent=args.max_concurrent, ui=args.ui)
    # uvicorn re-raises the signal that stopped it once it has shut down; as KeyboardInterrupt it ends in
    # a clean exit status 0, like the embedded server's.
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if in_main else None
    try:
        serve_forever(config, host=args.host, port=port)
    except KeyboardInterrupt:
        pass
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    return 0


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
