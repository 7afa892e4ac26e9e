"""``deepprune traces generate`` (make a trace corpus on any OpenAI-compatible server), ``deepprune traces
pack`` / ``unpack`` (the committed, compressed form of one, and back) and ``deepprune traces stats`` (label
balance of trace files)."""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from deepprune_agents.settings import DEFAULT_SYSTEM_PROMPT


def register(subparsers: argparse._SubParsersAction) -> None:
    traces = subparsers.add_parser("traces", help="make and inspect trace corpora")
    sub = traces.add_subparsers(dest="traces_command", metavar="ACTION", required=True)
    g = sub.add_parser(
        "generate",
        help="sample N solutions per question on an OpenAI-compatible server into a trace file",
        description="Question file (GSM8K/MATH-500/AIME formats or generic JSONL) -> N samples per question "
        "-> this project's trace format (answers extracted and graded). Resumable: rerun the same command "
        "to continue; Ctrl-C keeps every completed question. Writes OUT and OUT.provenance.json.",
    )
    g.add_argument("--questions", required=True, metavar="FILE", help="question file (.jsonl or .json list)")
    g.add_argument("--out", required=True, metavar="FILE", help="output trace file (JSONL; appended to)")
    g.add_argument("--n", type=int, default=8, help="samples per question (default 8)")
    g.add_argument("--limit", type=int, default=None, help="first LIMIT questions (after --offset)")
    g.add_argument("--offset", type=int, default=0, help="skip the first OFFSET questions")
    g.add_argument("--max-tokens", type=int, default=512)
    g.add_argument("--temperature", type=float, default=0.8)
    g.add_argument("--top-p", type=float, default=0.95)
    g.add_argument("--seed", type=int, default=0, help="sample j of every question uses seed SEED+j")
    g.add_argument("--top-logprobs", type=int, default=0, metavar="K", help="record logprobs and top-K (0: off)")
    g.add_argument("--concurrency", type=int, default=32, help="streams open at once (default 32)")
    g.add_argument("--system-prompt", default=DEFAULT_SYSTEM_PROMPT)
    g.add_argument("--endpoint", choices=("chat", "completions"), default="chat")
    g.add_argument(
        "--base-url",
        action="append",
        default=[],
        dest="base_urls",
        metavar="URL",
        help="OpenAI-compatible base URL (…/v1), repeatable. Default: $DEEPPRUNE_BASE_URLS, else the "
        "embedded vLLM server ($DEEPPRUNE_EMBEDDED_URL when set)",
    )
    g.add_argument("--model", default=None, help="model name (default: the first one the server lists)")
    g.add_argument("--source", default=None, help="the records' source label (default: the model name)")
    g.add_argument("--question-field", default=None, help="generic JSONL: field holding the question")
    g.add_argument("--answer-field", default=None, help="generic JSONL: field holding the ground truth")
    g.add_argument("--id-field", default=None, help="generic JSONL: field holding a stable question id")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.set_defaults(func=run_generate)

    pk = sub.add_parser(
        "pack",
        help="a generated trace file -> the gzip file the repository commits (question text left out)",
        description="Write OUT (.jsonl.gz: records sorted by question id, byte-reproducible) and its provenance. "
        "Drops each record's question text and ground truth, which come from the question file; keeps the ids, "
        "samples, answers and grades. See deepprune_agents/corpus/pack.py.",
    )
    pk.add_argument("file", metavar="FILE", help="trace file written by traces generate")
    pk.add_argument("--out", required=True, metavar="OUT", help="packed file (name ends in .jsonl.gz)")
    pk.set_defaults(func=run_pack)
    up = sub.add_parser(
        "unpack",
        help="a packed corpus -> the plain trace file (and provenance) that traces generate resumes",
        description="The way to add questions to a committed corpus: unpack, rerun the same traces generate "
        "command (it skips the questions already there), pack again.",
    )
    up.add_argument("file", metavar="FILE", help="packed file (.jsonl.gz)")
    up.add_argument("--out", required=True, metavar="OUT", help="plain trace file to write (must not exist)")
    up.set_defaults(func=run_unpack)

    s = sub.add_parser("stats", help="questions, traces, accuracy and pair label balance of trace files")
    s.add_argument("files", nargs="+", metavar="FILE")
    s.add_argument("--json", dest="json_out", default=None, metavar="OUT")
    s.set_defaults(func=run_stats)


def _base_urls(given: list[str]) -> tuple[list[str], dict[str, str] | None]:
    """The servers to sample from and, when it is our embedded one, its description for the provenance
    (of another server we know only its URL)."""
    if given:
        return given, None
    from deepprune_agents.settings import DeepPruneContext

    configured = DeepPruneContext().base_urls  # the settings file / $DEEPPRUNE_BASE_URLS, like every command
    if configured:
        return configured, None
    from deepprune_agents.backends.embedded import EmbeddedServer, get_default_server

    server = get_default_server()
    return [server.base_url], server.describe() if isinstance(server, EmbeddedServer) else None


def run_generate(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from deepprune_agents.cli._eval_parser import from_args
    from deepprune_agents.corpus.generate import GenerateConfig, generate, summary_dict
    from deepprune_agents.corpus.questions import load_questions

    items = load_questions(
        args.questions, question_field=args.question_field, answer_field=args.answer_field, id_field=args.id_field
    )
    items = items[args.offset :]
    if args.limit is not None:
        items = items[: args.limit]
    cfg = from_args(GenerateConfig, args)
    cfg.validate()
    urls, server = _base_urls(args.base_urls)
    command = shlex.join(["deepprune", *sys.argv[1:]])
    with Progress(
        TextColumn("generate"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), disable=args.no_progress
    ) as progress:
        task = progress.add_task("questions", total=len(items))
        summary = asyncio.run(
            generate(
                items,
                args.out,
                base_urls=urls,
                model=args.model,
                cfg=cfg,
                source=args.source,
                questions_file=args.questions,
                command=command,
                limit=args.limit,
                on_question=lambda k: progress.advance(task, k),
                server=server,
            )
        )
    d = summary_dict(summary)
    print(
        f"{args.out}: {d['written']} questions written, {d['skipped']} already there, {d['failed']} failed; "
        f"{d['tokens']} tokens in {summary.seconds:.0f}s ({d['tokens_per_s']} tok/s)"
    )
    for err in summary.errors[:5]:
        print(f"  failed: {err}", file=sys.stderr)
    return 1 if summary.failed else 0


def run_pack(args: argparse.Namespace) -> int:
    from deepprune_agents.corpus.pack import pack

    done = pack(args.file, args.out)
    print(f"{done['out']}: {done['questions']} questions, {done['bytes'] / 1e6:.2f} MB")
    return 0


def run_unpack(args: argparse.Namespace) -> int:
    from deepprune_agents.corpus.pack import unpack

    print(f"{args.out}: {unpack(args.file, args.out)} questions")
    return 0


def trace_stats(files: list[str]) -> dict[str, Any]:
    """Questions, traces, single-sample accuracy and same/different-answer pair counts per file."""
    from deepprune_agents.corpus.questions import pair_balance
    from deepprune_agents.trace_io import iter_trace_file, to_json

    out: dict[str, Any] = {}
    for f in files:
        recs = [to_json(q) for q in iter_trace_file(f)]
        traces = [t for r in recs for t in r["traces"]]
        graded = [t["correct"] for t in traces if t["correct"] is not None]
        bal = pair_balance(recs)
        total = bal["same_answer_pairs"] + bal["different_answer_pairs"]
        out[Path(f).name] = {
            "questions": len(recs),
            "traces": len(traces),
            "accuracy": sum(graded) / len(graded) if graded else None,
            "no_answer": sum(t["answer"] is None for t in traces),
            **bal,
            "same_answer_fraction": bal["same_answer_pairs"] / total if total else None,
        }
    return out


def run_stats(args: argparse.Namespace) -> int:
    stats = trace_stats(args.files)
    text = json.dumps(stats, indent=2)
    print(text)
    if args.json_out:
        Path(args.json_out).write_text(text + "\n", encoding="utf-8")
    return 0
