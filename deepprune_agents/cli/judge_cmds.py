"""``deepprune train-judge`` and ``deepprune eval judge``: train the pair judge and measure any judge."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from deepprune_agents.cli import _interrupt
from deepprune_agents.cli._eval_parser import get_or_add_eval_parser
from deepprune_agents.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    t = subparsers.add_parser(
        "train-judge",
        help="train the pair judge (MiniLM bi-encoder + head) on trace files",
        description="Build pairs of traces of the same question (label: same final answer), embed them with "
        "all-MiniLM-L6-v2 and train the head with focal loss and oversampling. Writes head.safetensors, "
        "config.json and provenance.json into --out; use it with --judge trained "
        "--judge-option weights_dir=DIR.",
    )
    t.add_argument("--train", nargs="+", required=True, metavar="FILE", help="trace files (JSONL; OVM files too)")
    t.add_argument("--out", required=True, metavar="DIR", help="output folder for the trained judge")
    t.add_argument("--truncate", default="tokens:32", help="judge input: tokens:K or words:K (default tokens:32)")
    t.add_argument("--loss", choices=("focal", "ce"), default="focal", help="focal (default) or plain ce")
    t.add_argument("--alpha", type=float, default=0.5, help="focal alpha (positive-class weight, default 0.5)")
    t.add_argument("--gamma", type=float, default=2.0, help="focal gamma (default 2)")
    t.add_argument(
        "--oversample",
        type=float,
        default=1.0,
        metavar="RATIO",
        help="oversample the minority class to RATIO x the majority (default 1.0; 0 disables)",
    )
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--epochs", type=int, default=6)
    t.add_argument("--max-traces", type=int, default=100, help="traces sampled per question (default 100)")
    t.add_argument("--eval", nargs="+", default=[], metavar="FILE", help="also evaluate on these trace files")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=run_train_judge)

    eval_sub = get_or_add_eval_parser(subparsers)
    e = eval_sub.add_parser(
        "judge",
        help="AUROC, TNR@FNR0.2, online-threshold metrics and ms/pair of a judge on trace files",
    )
    e.add_argument(
        "--judge",
        default=None,
        help="judge name (blend, embedding, trained, numbers, llm, ...; default: the project's default judge)",
    )
    e.add_argument("--test", nargs="+", required=True, metavar="FILE", help="trace files to build test pairs from")
    e.add_argument("--truncate", default="tokens:32", help="tokens:K or words:K (default tokens:32)")
    e.add_argument("--json", dest="json_out", default=None, metavar="OUT", help="write the metrics JSON here")
    e.add_argument(
        "--judge-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="judge constructor option (repeatable; VALUE parsed as JSON when possible)",
    )
    e.add_argument("--max-traces", type=int, default=100, help="traces sampled per question (default 100)")
    e.add_argument("--max-pairs", type=int, default=None, help="pairs sampled per question (default all)")
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--threshold", type=float, default=0.5, help="the online merge threshold (default 0.5)")
    e.add_argument("--seed", type=int, default=0)
    e.set_defaults(func=run_eval_judge)


def parse_options(items: list[str]) -> dict[str, Any]:
    """``["k=v", ...]`` -> dict; values are JSON when they parse (numbers, true, {...}), else strings."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--judge-option {item!r} must look like KEY=VALUE (e.g. base_url=http://h:8000/v1).")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _command_line() -> str:
    return shlex.join(["deepprune", *sys.argv[1:]])


def run_train_judge(args: argparse.Namespace) -> int:
    from deepprune_agents.training.train import TrainConfig, train_judge, write_provenance

    cfg = TrainConfig(
        truncation=args.truncate,
        loss=args.loss,
        alpha=args.alpha,
        gamma=args.gamma,
        oversample=args.oversample if args.oversample and args.oversample > 0 else None,
        epochs=args.epochs,
        seed=args.seed,
        max_traces=args.max_traces,
    )
    prov = train_judge(args.train, args.out, cfg, progress=not args.no_progress, command=_command_line())
    print(
        f"trained judge -> {args.out}: {prov['pairs']} pairs ({prov['positives']} same-answer), "
        f"loss {prov['loss_per_epoch'][0]:.4f} -> {prov['loss_per_epoch'][-1]:.4f}, "
        f"encode {prov['encode_seconds']}s, train {prov['train_seconds']}s"
    )
    if args.eval:
        from deepprune_agents.judges.trained import TrainedJudge

        result = _evaluate(
            TrainedJudge(weights_dir=args.out), args.eval, args.truncate, args.max_traces, None, 64, 0.5, args.seed
        )
        prov["metrics"] = {k: v for k, v in result.items() if k != "files"} | {
            "eval_files": [Path(f).name for f in args.eval]
        }
        write_provenance(args.out, prov)
        _print_metrics(result)
    return 0


def _evaluate(
    judge: Any,
    files: list[str],
    truncate: str,
    max_traces: int | None,
    max_pairs: int | None,
    batch_size: int,
    threshold: float,
    seed: int,
) -> dict[str, Any]:
    from deepprune_agents.trace_io import load_traces
    from deepprune_agents.training.evaluate import evaluate_judge
    from deepprune_agents.training.pairs import build_pairs
    from deepprune_agents.training.provenance import read_provenance, training_overlap

    by_file = {f: load_traces([f]) for f in files}
    overlap = training_overlap(read_provenance(judge), by_file)
    if overlap:
        _warn_overlap(judge.name, overlap)
    questions = [q for qs in by_file.values() for q in qs]
    pairs = build_pairs(questions, truncate, max_traces=max_traces, max_pairs=max_pairs, seed=seed)
    result = _interrupt.run_command(evaluate_judge(judge, pairs, batch_size=batch_size, threshold=threshold))
    result["truncation"] = truncate
    result["files"] = [Path(f).name for f in files]
    result["training_overlap"] = overlap
    return result


def _warn_overlap(judge: str, overlap: dict[str, Any]) -> None:
    """Loud, on stderr: these figures are in-sample and say nothing about unseen questions."""
    from rich.console import Console

    where = f" (files {', '.join(overlap['files'])} were training files)" if overlap["files"] else ""
    Console(stderr=True).print(
        f"[bold red]WARNING: {overlap['questions']} of {overlap['of']} test questions were in the training data "
        f"of judge {judge!r}{where}. These figures are IN-SAMPLE: they overstate how the judge does on "
        "unseen questions.[/]"
    )


def run_eval_judge(args: argparse.Namespace) -> int:
    from deepprune_agents.judges import get_judge
    from deepprune_agents.settings import DeepPruneContext

    name = args.judge or DeepPruneContext.judge
    judge = get_judge(name, **parse_options(args.judge_option))
    result = _evaluate(
        judge, args.test, args.truncate, args.max_traces, args.max_pairs, args.batch_size, args.threshold, args.seed
    )
    _print_metrics(result)
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


def _print_metrics(r: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"judge {r['judge']} on {r['pairs']} pairs ({r['truncation']})")
    table.add_column("metric")
    table.add_column("value", justify="right")

    def f(v: Any, digits: int = 3) -> str:
        return "n/a" if v is None else f"{v:.{digits}f}"

    table.add_row("AUROC", f(r["auroc"]))
    table.add_row("AUROC within a question", f(r.get("auroc_within_question")))
    table.add_row(f"TNR @ FNR {r['fnr_target']}", f(r["tnr"]))
    table.add_row(f"TNR @ threshold {r['online_threshold']}", f(r["tnr_online"]))
    table.add_row(f"TPR @ threshold {r['online_threshold']}", f(r["tpr_online"]))
    table.add_row(f"accuracy @ threshold {r['online_threshold']}", f(r["accuracy_online"]))
    table.add_row("same-answer pairs", str(r["positives"]))
    table.add_row(f"ms / pair (batches of {r['batch_size']})", f(r["ms_per_pair"], 2))
    table.add_row("ms / pair, all texts new", f(r.get("ms_per_pair_cold"), 2))
    Console().print(table)
