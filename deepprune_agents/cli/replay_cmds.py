"""``deepprune replay-server`` and ``deepprune eval replay``: serve recorded traces over HTTP, and measure
DeepPrune against the baselines on them (see ``deepprune_agents/evaluation``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from deepprune_agents.cli import _interrupt
from deepprune_agents.cli._eval_parser import (
    add_answer_pattern_arg,
    add_knob_flags,
    from_args,
    get_or_add_eval_parser,
    knob_values,
)
from deepprune_agents.errors import ConfigError
from deepprune_agents.extras import require_extra

# The eval's defaults are the settings' (DeepPruneContext), the ones `deepprune ask` and the Runnable use.
POLICIES = ("paper", "periodic", "adaptive", "staged")  # replay_eval.POLICIES (not imported: numpy at start-up)
FRONTIER_NS = (8, 16, 32, 64, 128)
FRONTIER_JUDGES = ("oracle", "numbers", "embedding", "trained", "constant")  # = evaluation.frontier's


def setting_default(name: str) -> Any:
    from dataclasses import fields

    from deepprune_agents.settings import DeepPruneContext

    return next(f.default for f in fields(DeepPruneContext) if f.name == name)


def _n_arg(value: str) -> int | None:
    if value.strip().lower() in ("full", "all"):
        return None
    try:
        n = int(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--n takes an integer or 'full', not {value!r}") from exc
    if n < 1:
        raise argparse.ArgumentTypeError("--n must be >= 1")
    return n


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "replay-server",
        help="an OpenAI-compatible server that streams recorded traces (evaluation, fault injection)",
    )
    p.add_argument("--traces", nargs="+", required=True, metavar="FILE", help="trace files (JSONL)")
    p.add_argument("--tokens-per-s", type=float, default=0.0, help="pace per stream (0: full speed)")
    p.add_argument("--port", type=int, default=8100, help="port (0: any free port)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--model", default="replay", help="the model name it serves")
    p.add_argument(
        "--lockstep",
        action="store_true",
        help="all streams of one run emit their k-th token together, in seed order (deterministic engine)",
    )
    p.add_argument(
        "--reasoning",
        default=None,
        choices=["reasoning", "reasoning_content", "inline", "inline-open"],
        help="serve as a reasoning model: thinking in delta.reasoning / delta.reasoning_content, or inline "
        "<think> tags (inline-open: without the opening tag); the answer in content",
    )
    p.add_argument("--stagger-s", type=float, default=0.0, help="lockstep: delay between streams within a tick")
    p.add_argument("--fault-open-status", type=int, default=None, help="answer opens with this status (429, 500)")
    p.add_argument("--fault-open-first", type=int, default=0, help="... for the first K requests")
    p.add_argument("--fault-open-rate", type=float, default=0.0, help="... or for this fraction of requests")
    p.add_argument("--fault-stall-after", type=int, default=None, help="stall every stream after T tokens")
    p.add_argument("--fault-malformed-after", type=int, default=None, help="send a malformed chunk after T tokens")
    p.add_argument("--fault-drop-after", type=int, default=None, help="drop the connection after T tokens")
    p.set_defaults(func=run_replay_server, stops_on_ctrl_c=True)

    eval_sub = get_or_add_eval_parser(subparsers)
    e = eval_sub.add_parser(
        "replay",
        help="DeepPrune vs cons@N, ESC, DeepConf and the oracle on recorded traces (bootstrap draws)",
    )
    e.add_argument("--traces", nargs="+", required=True, metavar="FILE", help="trace files (JSONL)")
    e.add_argument("--n", type=_n_arg, default=16, help="traces per draw, or 'full' (default 16)")
    e.add_argument(
        "--judge",
        default=setting_default("judge"),
        help="judge: trained, embedding, numbers, oracle, ... (default: the settings')",
    )
    e.add_argument(
        "--policy",
        default=setting_default("policy"),
        choices=list(POLICIES),
        help="the policy reported as deepprune (default: the settings')",
    )
    e.add_argument("--runs", type=int, default=10, help="bootstrap draws per question (default 10)")
    e.add_argument("--json", dest="json_out", default=None, metavar="OUT", help="write the report here")
    e.add_argument("--truncate", default=setting_default("truncate"), help="judge input: tokens:K or words:K")
    add_knob_flags(e)
    e.add_argument("--esc-window", type=int, default=5)
    e.add_argument("--max-tokens", type=int, default=None, help="cap per branch (default: none)")
    e.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="PARAM=V1,V2",
        help="sweep a numeric knob or truncate (e.g. tau=0.3,0.5,0.7, k2=5,10,20, truncate=tokens:16,tokens:32); "
        "writes OUT.sweep-PARAM.png next to the JSON",
    )
    add_answer_pattern_arg(e)
    e.add_argument(
        "--frontier",
        action="store_true",
        help="N in 8..128 (as far as the files go) x policies x judges vs cons@N, ESC, Adaptive-Consistency: "
        "writes OUT (default docs/frontier_<file>.json) and OUT.tokens.png / OUT.wall.png",
    )
    e.add_argument(
        "--frontier-judges",
        default=",".join(FRONTIER_JUDGES),
        help=f"judges measured by --frontier (default {','.join(FRONTIER_JUDGES)})",
    )
    e.add_argument("--frontier-n", default=",".join(map(str, FRONTIER_NS)), help="Ns tried by --frontier")
    e.set_defaults(func=run_eval_replay)


def run_replay_server(args: argparse.Namespace) -> int:
    require_extra("replay", "deepprune replay-server")
    from deepprune_agents.evaluation.replay_data import load_replay_questions
    from deepprune_agents.evaluation.replay_server import FaultConfig, serve_forever

    faults = from_args(FaultConfig, args, prefix="fault_")
    if args.fault_open_status is None and (args.fault_open_first or args.fault_open_rate):
        raise ConfigError("--fault-open-first/--fault-open-rate need --fault-open-status (e.g. 429).")
    questions = load_replay_questions(args.traces)
    serve_forever(
        questions,
        host=args.host,
        port=args.port,
        tokens_per_s=args.tokens_per_s,
        model=args.model,
        faults=faults,
        lockstep=args.lockstep,
        stagger_s=args.stagger_s,
        reasoning=args.reasoning,
    )
    return 0


def delta_text(m: dict[str, Any]) -> str:
    """A method's accuracy delta vs cons@N with its paired bootstrap 95% CI and question count."""
    d = m.get("vs_cons")
    if not d:
        return ""
    lo, hi = d["ci95"]
    return f"{100 * d['delta']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] q={d['questions']}"


def print_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    methods = report["methods"]
    cons = methods["cons"]
    table = Table(
        title=f"replay: N={report['n']}, {report['runs']} runs x {len(report['questions'])} questions, "
        f"judge {report['judge']}, policy {report['policy']}"
    )
    columns = ("method", "accuracy", "95% CI", "vs cons (pts, paired CI)", "tokens", "wall", "reduction", "judge calls")
    for col in (*columns, "of oracle saving"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for name, m in methods.items():
        if name in ("deepprune", "oracle"):
            continue
        lo, hi = m["accuracy_ci95"]
        osf = m["oracle_saving_fraction"]
        table.add_row(
            name,
            f"{m['accuracy']:.1%}",
            f"{lo:.1%}-{hi:.1%}",
            "" if name == "cons" else delta_text(m),
            f"{m['tokens']:.0f}",
            f"{m['wall']:.0f}",
            f"{m['token_reduction']:.1%}",
            f"{m['judge_calls']:.1f}",
            "" if osf is None or name == "cons" else f"{osf:.0%}",
        )
    console = Console(width=max(120, Console().width))
    console.print(table)
    osf = report["oracle_saving_fraction"]
    console.print(
        f"deepprune ({report['policy']}): token reduction {report['token_reduction']:.1%} vs cons@N "
        f"({cons['tokens']:.0f} tokens/question), accuracy vs cons {delta_text(methods['deepprune'])} points, "
        f"oracle saving fraction {'n/a' if osf is None else f'{osf:.0%}'}"
    )


def run_eval_replay(args: argparse.Namespace) -> int:
    from rich.console import Console

    from deepprune_agents.evaluation.replay_data import load_replay_questions
    from deepprune_agents.evaluation.replay_eval import EvalConfig, evaluate, parse_sweep, plot_sweep, sweep_async
    from deepprune_agents.pruning import default_knobs

    err = Console(stderr=True)
    cfg = from_args(EvalConfig, args, knobs=default_knobs(**knob_values(args)))
    cfg.validate()
    if args.frontier:
        return run_frontier(args, cfg)
    sweeps = [parse_sweep(s) for s in args.sweep]
    if sweeps and args.json_out:  # the plots are written next to the JSON: check before the evaluation runs
        require_extra("plots", "eval replay --sweep --json (its plots)")
    questions = load_replay_questions(args.traces)
    report = evaluate(questions, cfg, progress=lambda msg: err.print(msg))
    out = Path(args.json_out) if args.json_out else None
    if sweeps:
        report["sweeps"] = {}
        for param, values in sweeps:
            sweep = _interrupt.run_command(sweep_async(questions, cfg, param, values, progress=err.print))
            sweep.pop("base", None)
            if out is not None:
                png = out.with_name(f"{out.stem}.sweep-{param}.png")
                sweep["plot"] = str(plot_sweep(sweep, png, title=f"N={report['n']}, judge {cfg.judge}: {param}"))
            report["sweeps"][param] = sweep
    print_report(report)
    for warning in report.get("extraction_warnings", []):
        err.print(f"[yellow]warning:[/yellow] {warning}")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, default=str))
        err.print(f"wrote {out}")
    elif sweeps:
        err.print("no --json given: sweep plots are written next to the JSON, so none was written.")
    return 0


def run_frontier(args: argparse.Namespace, cfg: Any) -> int:
    """``--frontier``: the JSON report and its two plots (tokens vs accuracy, wall time vs accuracy)."""
    from rich.console import Console

    from deepprune_agents.evaluation.frontier import frontier_async, write_frontier
    from deepprune_agents.evaluation.replay_data import load_replay_questions

    err = Console(stderr=True)
    try:
        ns = [int(x) for x in args.frontier_n.split(",") if x.strip()]
    except ValueError as exc:
        raise ConfigError(f"--frontier-n takes integers like 8,16,32 (got {args.frontier_n!r}).") from exc
    judges = [j.strip() for j in args.frontier_judges.split(",") if j.strip()]
    questions = load_replay_questions(args.traces)
    report = _interrupt.run_command(frontier_async(questions, cfg, ns=ns, judges=judges, progress=err.print))
    report["trace_files"] = [Path(t).name for t in args.traces]
    out = Path(args.json_out or f"docs/frontier_{Path(args.traces[0]).stem}.json")
    plots = write_frontier(report, out, title=", ".join(report["trace_files"]))
    for n, methods in report["points"].items():
        err.print(f"N={n}")
        for name, m in methods.items():
            acc = f"acc {m['accuracy']:.3f} ({delta_text(m)})"
            err.print(f"  {name:22s} {acc}  tokens {m['tokens']:8.0f}  wall {m['wall']:6.0f}")
    err.print(f"wrote {out}, {plots['tokens']}, {plots['wall']}")
    return 0
