"""Our own trace corpus in the judge comparison: its figures (stats, provenance, throughput by dtype),
what adding it to training does to the learning judges, and the report's note on it."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from deepprune_agents.training.train import TrainConfig, fit_head, head_scores

from .data import TRUNCATION, Dataset, PairTable
from .protocol import blend_and_heuristics, judge_metrics, split_masks, train_only


def corpus_effect(table: PairTable, sets: list[Dataset], seed: int, head: dict[str, Any]) -> dict[str, Any]:
    """What our corpus does to the judges that learn: each split's blend and bi-encoder head refitted with the
    train-only datasets added to training, against the headline's (same splits, same test pairs)."""
    from_corpus = np.isin(table.dataset, list(train_only(sets)))
    cfg = TrainConfig(truncation=TRUNCATION, seed=seed)
    out: dict[str, Any] = {}
    for test in [d.name for d in sets if d.test]:
        tr, te = split_masks(table, test)
        y = table.labels[te]
        _, base = blend_and_heuristics(table, tr, te)
        fitted, _ = fit_head(table.enc.subset(tr), cfg)
        with_corpus = {
            "blend": judge_metrics(y, base["blend"]),
            "trained": judge_metrics(y, head_scores(fitted, table.enc.subset(te))),
        }
        out[test] = {
            "train_pairs_added": int((tr & from_corpus).sum()),
            # corpus questions that are also test questions of this split (our first GSM8K-train questions are
            # the OVM train files'): split_masks leaves them out of training, matched by question_key
            "questions_left_out": int(np.intersect1d(table.group[from_corpus], table.group[te]).size),
            "with": with_corpus,
            "without": {j: head[test]["judges"][j] for j in with_corpus},
        }
        print(f"[{test}] with the corpus: " + ", ".join(f"{j} {m['auroc']:.3f}" for j, m in with_corpus.items()))
    return out


def corpus_report(table: PairTable, sets: list[Dataset], seed: int, head: dict[str, Any]) -> dict[str, Any] | None:
    """The corpus block of the report: per file its stats (``deepprune traces stats``) and provenance (model,
    sampling, what each run made and how fast), then ``corpus_effect``. None when there is no corpus."""
    from deepprune_agents.cli.traces_cmds import trace_stats
    from deepprune_agents.corpus.generate import provenance_path

    files = [f for d in sets if not d.test for f in d.files]
    if not files:
        return None
    out: dict[str, Any] = {"files": {}}
    for f in files:
        side = provenance_path(f)
        prov = json.loads(side.read_text(encoding="utf-8")) if side.is_file() else {}
        timed = [r for r in prov.get("runs", []) if r.get("wall_s")]
        out["files"][f.name] = {
            "stats": trace_stats([str(f)])[f.name],
            "model": prov.get("model"),
            "sampling": prov.get("sampling"),
            "command": prov.get("command"),
            "runs": len(prov.get("runs", [])),
            "timed_runs": _throughput(timed),
            # Per serving dtype: pieces made on different CPUs ran in different dtypes at different speeds.
            "timed_runs_by_dtype": {
                d: _throughput([r for r in timed if _run_dtype(r) == d]) for d in sorted({_run_dtype(r) for r in timed})
            },
        }
    out["effect"] = corpus_effect(table, sets, seed, head)
    return out


def _run_dtype(run: dict[str, Any]) -> str:
    """The dtype a corpus piece was served in, as its provenance records it ("unrecorded" if it does not)."""
    return str((run.get("server") or {}).get("dtype") or "unrecorded")


def _throughput(timed: list[dict[str, Any]]) -> dict[str, Any]:
    """Questions, tokens, hours and tokens per second over timed corpus pieces."""
    tokens, wall = sum(r["sampled_tokens"] for r in timed), sum(r["wall_s"] for r in timed)
    return {
        "runs": len(timed),
        "questions": sum(r["written"] for r in timed),
        "sampled_tokens": tokens,
        "wall_s": wall,
        "tokens_per_s": tokens / wall if wall else None,
        "concurrency": sorted({r["concurrency"] for r in timed}),
    }


CORPUS_COMMAND = (
    "deepprune traces generate --questions ../shared/data/questions/gsm8k_train.jsonl --limit 1000 --n 8 "
    "--max-tokens 256 --concurrency 128 --seed 0 --out bench/out/corpus/gsm8k_train_smollm2_n8.jsonl"
)
PACK_COMMAND = "deepprune traces pack bench/out/corpus/NAME.jsonl --out data/corpus/NAME.jsonl.gz"


def corpus_lines(corpus: dict[str, Any] | None) -> list[str]:
    """The note on our own corpus, every figure from the report's ``corpus`` block."""
    head = (
        "- Our own corpus: `deepprune traces generate` (deepprune_agents/corpus/). Each corpus file is one command "
        f"(the GSM8K one the issue asks for: `{CORPUS_COMMAND}`; each file's own below, from its provenance), "
        "resumable, so it runs in pieces (Ctrl-C keeps every finished question and records the piece's figures in "
        f"the provenance file); `{PACK_COMMAND}` writes the committed form "
        "(gzip, question text and ground truth left out: they belong to the question file). bench/judge_eval.py "
        "reads every `*.jsonl` / `*.jsonl.gz` under data/corpus as train-only data: the tables above never train "
        "on it, and the comparison below refits the learning judges with it added."
    )
    if not corpus:
        return [head + " No corpus was there when this report was made.", ""]
    lines = [head]
    for name, f in corpus["files"].items():
        st, run = f["stats"], f["timed_runs"]
        pairs = st["same_answer_pairs"] + st["different_answer_pairs"]
        acc = "n/a" if st["accuracy"] is None else f"{st['accuracy']:.1%}"
        samp = f.get("sampling") or {}
        lines.append(
            f"  - `{name}` ({f['model']}, T {samp.get('temperature')}, max {samp.get('max_tokens')} tokens, "
            f"seed {samp.get('seed')}; made in {f['runs']} run{'' if f['runs'] == 1 else 's'}): "
            f"{st['questions']:,} questions x "
            f"{st['traces'] // max(st['questions'], 1)} = {st['traces']:,} traces, {acc} correct, "
            f"{st['no_answer']:,} without an answer ({st['no_answer'] / max(st['traces'], 1):.1%}), "
            f"**{st['same_answer_pairs']:,} same-answer pairs of {pairs:,} ({st['same_answer_fraction']:.1%})** "
            f"(`deepprune traces stats data/corpus/{name}`)."
            + (f" Made by `{f['command']}`." if f.get("command") else "")
        )
        if run["runs"]:
            groups = f.get("timed_runs_by_dtype") or {"unrecorded": run}
            cells = [
                f"{'' if d == 'unrecorded' else d + ': '}{g['runs']} timed run(s), {g['questions']:,} questions, "
                f"concurrency {', '.join(map(str, g['concurrency']))}, {g['sampled_tokens']:,} sampled tokens kept "
                f"in {g['wall_s'] / 3600:.2f} h, {g['tokens_per_s']:.0f} tok/s"
                for d, g in groups.items()
            ]
            lines.append(
                f"    Throughput on record, by the dtype the embedded server computed in (float32 on an AVX2 CPU, "
                f"bfloat16 where the CPU has it natively): {'; '.join(cells)} "
                f"({run['sampled_tokens'] / max(run['questions'], 1):,.0f} tokens per question; a piece cut by Ctrl-C "
                "loses its unfinished questions' tokens, which this rate counts as cost)."
            )
    effect = corpus["effect"]
    cells = []
    for test, e in effect.items():
        cells.append(
            f"{test} "
            + ", ".join(f"{j} {e['without'][j]['auroc']:.3f} -> {e['with'][j]['auroc']:.3f}" for j in e["with"])
        )
    better: list[str] = []
    worse: list[str] = []
    for t, e in effect.items():
        for j in e["with"]:
            delta = e["with"][j]["auroc"] - e["without"][j]["auroc"]
            if abs(delta) > 0.005:
                (better if delta > 0 else worse).append(f"{j} on {t}")
    added = max(e["train_pairs_added"] for e in effect.values())
    shared = [f"{e['questions_left_out']} in {t}" for t, e in effect.items() if e.get("questions_left_out")]
    left_out = (
        " Corpus questions that a test set also holds (matched by the question's text, or by the `question_key` a "
        f"packed record carries in its place) are left out of training when that set is tested: {', '.join(shared)}."
        if shared
        else ""
    )
    lines += [
        f"  - With the corpus added to every split's training (up to {added:,} pairs; AUROC without -> with): "
        + "; ".join(cells)
        + f". Better by more than 0.005: {', '.join(better) or 'none'}; worse: {', '.join(worse) or 'none'}."
        + left_out,
        "  - A corpus from a model that is wrong almost every time is almost all different-answer pairs: it "
        "teaches a learning judge that model's habits, not agreement. A stronger model on any OpenAI-compatible "
        "server (`--base-url`) is the useful way to use the command.",
        "",
    ]
    return lines
