"""``deepprune bench live``: DeepPrune vs cons@N on a live vLLM server (see evaluation/live_bench.py)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from deepprune_agents.cli import _interrupt
from deepprune_agents.cli.ask_cmd import add_run_options, context_from_args


def register(subparsers: Any) -> None:
    bench = subparsers.add_parser("bench", help="benchmarks that print their figures and write JSON")
    sub = bench.add_subparsers(dest="bench_command", metavar="BENCH", required=True)
    p = sub.add_parser("live", help="DeepPrune vs plain cons@N on a live vLLM server (10 questions)")
    add_run_options(p)
    p.set_defaults(n=16)
    p.add_argument("--questions", type=int, default=10, help="how many of the built-in questions")
    p.add_argument("--json", dest="json_out", default="bench/out/live_vllm.json", metavar="OUT")
    p.add_argument("--esc-window", type=int, default=5, help="also run ESC with windows of this size (0: skip)")
    p.set_defaults(func=run_live)


def print_report(report: dict[str, Any]) -> None:
    console = Console()
    table = Table(title=f"live: DeepPrune ({report['policy']}, {report['judge']}) vs cons@{report['n']}")
    table.add_column("figure")
    table.add_column("measured", justify="right")
    table.add_column("target", justify="right")
    targets = report["targets"]

    def fmt(v: Any, pct: bool = False) -> str:
        if v is None:
            return "n/a"
        return f"{v:.1%}" if pct else f"{v:.2f}"

    table.add_row("speedup (cons wall / DP wall)", fmt(report["speedup"]), f">= {targets['speedup']}")
    table.add_row(
        "token reduction (server tokens)",
        fmt(report["token_reduction"], True),
        f">= {targets['token_reduction']:.0%}",
    )
    table.add_row("answer agreement", fmt(report["answer_agreement"], True), "")
    table.add_row("cons branches on the plurality answer", fmt(report["cons_plurality_share"], True), "")
    table.add_row("accuracy cons / DP", f"{report['accuracy_cons']:.0%} / {report['accuracy_deepprune']:.0%}", "")
    table.add_row(
        "cancel latency p99 (client, ms)",
        fmt(report["cancel_latency_p99_ms"]),
        f"<= {targets['cancel_latency_p99_ms']}",
    )
    table.add_row("server abort latency p99 (ms)", fmt(report["server_abort_latency_p99_ms"]), "")
    if "esc_wall_s" in report:
        table.add_row("DP tokens / ESC tokens", fmt(report["deepprune_tokens_vs_esc"]), "<= 1")
        for key, label in (("deepprune_tokens_vs_esc_ci", "DP"), ("cons_tokens_vs_esc_ci", "cons")):
            if key in report:  # paired over the questions: how much of a ratio near 1 sampling alone gives
                lo, hi = report[key]["ci95"]
                table.add_row(f"{label} tokens / ESC tokens, 95% CI", f"[{lo:.2f}, {hi:.2f}]", "")
        table.add_row("DP wall / ESC wall", fmt(report["deepprune_wall_vs_esc"]), "")
        table.add_row("accuracy ESC", f"{report['accuracy_esc']:.0%}", "")
    console.print(table)


def run_live(args: argparse.Namespace) -> int:
    from deepprune_agents.backends.embedded import EmbeddedServer, get_default_server, root_url_of
    from deepprune_agents.evaluation.live_bench import LIVE_QUESTIONS, run_live_bench

    ctx = context_from_args(args)
    server_info: dict[str, Any] = {"embedded": False}
    if not ctx.base_urls:
        server = get_default_server()
        ctx = ctx.replace(base_urls=[server.base_url])
        if isinstance(server, EmbeddedServer):  # the figures depend on it (see embedded.serving_dtype)
            server_info = {"embedded": True, **server.describe()}
    root = root_url_of(ctx.base_urls[0])
    console = Console(stderr=True)

    def progress(row: dict[str, Any]) -> None:
        c, d = row["cons"], row["deepprune"]
        console.print(
            f"{row['question'][:50]!r}: cons {c['answer']!r} {c['wall_s']:.1f}s {c['server_tokens']:.0f} tok"
            f" | DP {d['answer']!r} {d['wall_s']:.1f}s {d['server_tokens']:.0f} tok, {d['cancelled']} cancelled"
        )

    from deepprune_agents.engine import RunRegistry

    runs = RunRegistry()
    report = _interrupt.run_command(
        run_live_bench(
            ctx,
            root_url=root,
            questions=LIVE_QUESTIONS[: args.questions],
            progress=progress,
            runs=runs,
            esc_window=args.esc_window,
        ),
        runs,
    )
    report["server"] = server_info
    report["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")  # docs/live.md's "measured" column
    out = Path(args.json_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print_report(report)
    console.print(f"wrote {out}")
    return 0
