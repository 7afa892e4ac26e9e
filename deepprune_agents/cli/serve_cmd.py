"""``deepprune serve``: run the embedded vLLM server (SmolLM2-135M-Instruct) in the foreground, or with
``--upstream URL`` the OpenAI-compatible DeepPrune proxy in front of any OpenAI-compatible server.

Why a command for the embedded server when ``ask`` starts one by itself: startup costs ~1 min on a small
CPU machine, so anyone running more than one question (or the test suite, via ``DEEPPRUNE_EMBEDDED_URL``)
starts it once here and points everything at the printed URL. Why the proxy: clients that only take a
base URL and a model name (other languages, IDE assistants, chat front ends) get pruned parallel reasoning.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import threading
from dataclasses import fields
from typing import Any

from rich.console import Console

from deepprune_agents.backends.child import log_tail
from deepprune_agents.backends.embedded import EmbeddedServer
from deepprune_agents.cli._eval_parser import from_args
from deepprune_agents.cli._interrupt import sigterm_as_interrupt
from deepprune_agents.cli.ask_cmd import add_run_options, context_from_args
from deepprune_agents.errors import ConfigError, EmbeddedServerError
from deepprune_agents.server.options import MODEL_FREE_JUDGES
from deepprune_agents.settings import DeepPruneContext
from deepprune_agents.settings_layers import parse_env_value


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
    proxy.add_argument("--max-concurrent", type=int, default=4, help="runs at once (default 4)")
    proxy.add_argument(
        "--queue", type=int, default=64, dest="queue_size",
        help="requests that wait for a run slot at the cap; more get 429 (default 64)",
    )  # fmt: skip
    proxy.add_argument(
        "--queue-timeout", type=float, default=60.0, dest="queue_timeout_s",
        help="seconds a request waits for a slot before a 503 (default 60)",
    )  # fmt: skip
    proxy.add_argument(
        "--max-body-bytes", type=int, default=8 * 2**20, help="larger request bodies get 413 (default 8 MiB)"
    )
    proxy.add_argument(
        "--cors-origin", action="append", default=[], dest="cors_origins", metavar="ORIGIN",
        help="allow browser pages from ORIGIN (repeat; '*' for any). Default: CORS off",
    )  # fmt: skip
    proxy.add_argument(
        "--allow-judge", action="append", default=[], dest="judges", metavar="JUDGE",
        help="a judge requests may pick (repeat); each is loaded before serving. "
        f"Default: --judge and {', '.join(MODEL_FREE_JUDGES)}",
    )  # fmt: skip
    proxy.add_argument(
        "--grace", type=float, default=20.0, dest="shutdown_grace_s",
        help="on SIGTERM, seconds the open runs may finish before each gets an error (default 20)",
    )  # fmt: skip
    proxy.add_argument(
        "--log-prompts", action="store_true", help="write each request's question in its access-log line"
    )
    proxy.add_argument("--no-access-log", action="store_true", help="no access-log line per request")
    proxy.add_argument("--ui", action="store_true", help="serve a live page at / that shows each run's branches")
    add_run_options(p)  # the proxy's defaults for every run; a request may override some
    add_settings_flags(p.add_argument_group("more run settings (the proxy's defaults)"), p)
    p.set_defaults(func=_run_from_args, stops_on_ctrl_c=True)


# Settings that are not flags of serve: the upstreams are --upstream, the rest are Python objects or JSON.
NOT_FLAGS = {"base_urls", "judge_options", "extra_body", "answer_pattern"}


def add_settings_flags(group: Any, parser: argparse.ArgumentParser) -> None:
    """One flag per settings field that ``add_run_options`` has no flag for (``--max-n``, ``--top-p``,
    ``--run-timeout-s``, ...), typed and explained by the field itself, so a new setting is a flag here
    without a line of its own. Absent flags stay unset (the settings file and environment then apply)."""
    taken = {opt for action in parser._actions for opt in action.option_strings}
    for f in fields(DeepPruneContext):
        flag = "--" + f.name.replace("_", "-")
        if f.name in NOT_FLAGS or flag in taken:
            continue
        group.add_argument(
            flag, dest=f.name, default=argparse.SUPPRESS, metavar=f.name.upper(),
            type=functools.partial(_setting_value, f), help=str(f.metadata.get("description", f.name)),
        )  # fmt: skip


def _setting_value(f: Any, raw: str) -> Any:
    try:
        return parse_env_value(f, raw, "--" + f.name.replace("_", "-"))
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _run_from_args(args: argparse.Namespace) -> int:
    if args.upstream or getattr(args, "base_urls", None):
        return run_proxy(args)
    return run_serve(args.port, startup_timeout_s=args.startup_timeout)


def run_proxy(args: argparse.Namespace) -> int:
    """``deepprune serve --upstream URL``: the proxy in the foreground until SIGTERM or Ctrl-C."""
    from deepprune_agents.server import require_server_deps

    require_server_deps()
    from deepprune_agents.server.app import ProxyConfig, serve_forever

    port = 8000 if args.port is None else args.port
    if not 0 <= port < 65536:
        raise ConfigError(f"--port must be between 0 and 65535 (got {port}).")
    args.base_urls = [*args.upstream, *getattr(args, "base_urls", [])]
    defaults = context_from_args(args)
    config = from_args(ProxyConfig, args, defaults=defaults)
    # uvicorn re-raises the signal that stopped it once it has drained; as KeyboardInterrupt it ends in
    # a clean exit status 0, like the embedded server's.
    with sigterm_as_interrupt(), contextlib.suppress(KeyboardInterrupt):
        serve_forever(config, host=args.host, port=port, access_log=not args.no_access_log)
    return 0


def run_serve(port: int | None = None, *, startup_timeout_s: float = 300.0, console: Console | None = None) -> int:
    """Start, print the URL and model, block until Ctrl-C / SIGTERM, stop. 0 on a clean stop, 1 if the
    server died on its own; start-up failures raise EmbeddedServerError (the CLI prints its message)."""
    if port is not None and not 0 < port < 65536:
        raise EmbeddedServerError(f"--port must be between 1 and 65535 (got {port}).")
    out = console or Console()
    server = EmbeddedServer(port=port, startup_timeout_s=startup_timeout_s)
    with sigterm_as_interrupt():
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
