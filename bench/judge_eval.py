"""Judge comparison on the unseen-model split of the OVM GSM8K traces (issue 3's README table).

For each truncation (first 32 tokens, first 25 reasoning words) and each direction (train on Llama-2
traces -> test on Mistral traces, and the reverse) it scores:

* ``embedding`` (MiniLM cosine) and ``numbers`` (number-set Jaccard): no training;
* ``llm`` zero-shot on an OpenAI-compatible server (``--llm-base-url``; e.g. the embedded SmolLM2), on a
  random subsample of test pairs because each pair is one request; "not run" without a URL;
* ``trained`` with CE, CE + oversampling, focal + oversampling.

Two protocols: **unseen model** (train on every question of one generator, test on the other; the two
generators answered the *same* 20 GSM8K questions, so question text overlaps) and the strict **unseen
model + unseen question** (5-fold grouped by question: train on generator A's traces of 16 questions,
test on generator B's traces of the other 4; predictions pooled over folds).

    .venv/bin/python bench/judge_eval.py [--llm-base-url http://127.0.0.1:8000/v1 --llm-model NAME]

Writes ``bench/out/judge_eval.json`` and ``docs/judge_results.md`` and prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deepprune_agents.judges import get_judge  # noqa: E402
from deepprune_agents.trace_io import load_traces  # noqa: E402
from deepprune_agents.training.evaluate import evaluate_judge, metrics, score_pairs  # noqa: E402
from deepprune_agents.training.pairs import (  # noqa: E402
    PairExample,
    build_pairs,
    check_no_leakage,
    generator_of,
    question_folds,
)
from deepprune_agents.training.train import EncodedPairs, TrainConfig, encode_pairs, fit_head, head_scores  # noqa: E402

TRUNCATIONS = ("tokens:32", "words:25")
TRAINED_VARIANTS: dict[str, dict[str, Any]] = {
    "trained (CE)": {"loss": "ce", "oversample": None},
    "trained (CE + oversampling)": {"loss": "ce", "oversample": 1.0},
    "trained (focal + oversampling)": {"loss": "focal", "oversample": 1.0},
}


def shared_data() -> Path:
    return Path(os.environ.get("DEEPPRUNE_SHARED_DATA", ROOT / ".." / "shared" / "data")).resolve()


def _fmt(x: float | None, digits: int = 3) -> str:
    return "—" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    traces_dir = shared_data() / "traces"
    files = sorted(traces_dir.glob("ovm_gsm8k_*.jsonl"))
    if not files:
        raise SystemExit(f"no trace files under {traces_dir}: set DEEPPRUNE_SHARED_DATA to the shared data folder.")
    questions = load_traces(files)
    gens = sorted({generator_of(q) for q in questions})
    if len(gens) != 2:
        raise SystemExit(f"expected two generators in {traces_dir}, found {gens}.")
    base_cfg = TrainConfig(seed=args.seed, epochs=args.epochs, max_traces=args.max_traces)
    results: list[dict[str, Any]] = []
    for trunc in TRUNCATIONS:
        t0 = time.perf_counter()
        pairs = build_pairs(questions, trunc, max_traces=args.max_traces, seed=args.seed)
        data = encode_pairs(pairs)
        print(
            f"[{trunc}] {len(pairs)} pairs, {data.emb.shape[0]} distinct texts, encoded in "
            f"{time.perf_counter() - t0:.0f}s",
            flush=True,
        )
        gen_arr = np.array([p.generator for p in pairs])
        grp_arr = np.array([p.group for p in pairs])
        for train_gen, test_gen in ((gens[0], gens[1]), (gens[1], gens[0])):
            direction = f"{train_gen} → {test_gen}"
            tr_mask, te_mask = gen_arr == train_gen, gen_arr == test_gen
            test_pairs = [p for p, m in zip(pairs, te_mask, strict=True) if m]
            check_no_leakage([p for p, m in zip(pairs, tr_mask, strict=True) if m], test_pairs, by=("generator",))
            y_test = data.labels[te_mask]
            folds = question_folds(questions, k=args.folds, seed=args.seed)
            row_base = {"truncation": trunc, "direction": direction, "test_pairs": int(te_mask.sum())}
            # -- untrained judges
            for name in ("embedding", "numbers"):
                judge = get_judge(name)
                scores, _ = await score_pairs(judge, test_pairs, batch_size=64)
                m = metrics(y_test, scores)
                lat = await evaluate_judge(judge, test_pairs[: args.latency_pairs], cold=True)
                results.append(
                    {
                        **row_base,
                        "judge": name,
                        **m,
                        "auroc_unseen_q": m["auroc"],
                        "tnr_unseen_q": m["tnr"],
                        "ms_per_pair": lat["ms_per_pair"],
                        "ms_per_pair_cold": lat["ms_per_pair_cold"],
                    }
                )
            # -- zero-shot LLM
            results.append({**row_base, "judge": "llm (zero-shot)", **(await _llm_row(args, test_pairs))})
            # -- trained variants
            for label, change in TRAINED_VARIANTS.items():
                cfg = replace(base_cfg, truncation=trunc, **change)
                head, hist = fit_head(data.subset(tr_mask), cfg)
                m = metrics(y_test, head_scores(head, data.subset(te_mask)))
                pooled = np.zeros(len(pairs), dtype=np.float64)
                covered = np.zeros(len(pairs), dtype=bool)
                for fold in folds:
                    in_fold = np.isin(grp_arr, fold)
                    f_head, _ = fit_head(data.subset(tr_mask & ~in_fold), cfg)
                    sel = te_mask & in_fold
                    pooled[sel] = head_scores(f_head, data.subset(sel))
                    covered |= sel
                strict = metrics(data.labels[covered], pooled[covered])
                results.append(
                    {
                        **row_base,
                        "judge": label,
                        **m,
                        "auroc_unseen_q": strict["auroc"],
                        "tnr_unseen_q": strict["tnr"],
                        "final_train_loss": hist[-1],
                    }
                )
            print(f"[{trunc}] {direction} done", flush=True)
        # latency of the full trained judge (encoder + features + head), measured once per truncation
        trained_lat = await _trained_latency(args, data, pairs, trunc, base_cfg)
        for r in results:
            if r["truncation"] == trunc and r["judge"].startswith("trained"):
                r["ms_per_pair"], r["ms_per_pair_cold"] = trained_lat
    return {
        "results": results,
        "generators": gens,
        "files": [f.name for f in files],
        "max_traces_per_question": args.max_traces,
        "seed": args.seed,
        "folds": args.folds,
        "latency_pairs": args.latency_pairs,
        "cpu_threads": _threads(),
    }


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())


async def _trained_latency(
    args: argparse.Namespace, data: EncodedPairs, pairs: list[PairExample], trunc: str, cfg: TrainConfig
) -> tuple[float, float | None]:
    import tempfile

    from deepprune_agents.judges.trained import TrainedJudge, save_head

    head, _ = fit_head(data, replace(cfg, truncation=trunc, epochs=1))
    with tempfile.TemporaryDirectory() as tmp:
        save_head(head, tmp, {"truncation": trunc})
        judge = TrainedJudge(weights_dir=tmp)
        out = await evaluate_judge(judge, pairs[: args.latency_pairs], cold=True)
    return out["ms_per_pair"], out["ms_per_pair_cold"]


async def _llm_row(args: argparse.Namespace, test_pairs: list[PairExample]) -> dict[str, Any]:
    if not args.llm_base_url:
        return {"status": "not run (no --llm-base-url)"}
    opts: dict[str, Any] = {"base_url": args.llm_base_url}
    if args.llm_model:
        opts["model"] = args.llm_model
    judge = get_judge("llm", **opts)
    rng = np.random.default_rng(args.seed)
    idx = rng.choice(len(test_pairs), size=min(args.llm_pairs, len(test_pairs)), replace=False)
    sample = [test_pairs[i] for i in idx]
    from deepprune_agents.errors import DeepPruneError

    try:
        out = await evaluate_judge(judge, sample, batch_size=16, cold=False)
    except DeepPruneError as exc:
        return {"status": f"failed: {exc}"}
    return {
        **out,
        "auroc_unseen_q": out["auroc"],
        "tnr_unseen_q": out["tnr"],
        "status": f"subsample of {len(sample)} test pairs",
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Judge results (unseen-model split, OVM GSM8K traces)",
        "",
        "Generated by `.venv/bin/python bench/judge_eval.py` — do not edit by hand.",
        f"Data: {', '.join(report['files'])}; {report['max_traces_per_question']} traces sampled per question, "
        "all pairs of them; label = same final answer (vote equality).",
        "AUROC / TNR@FNR0.2 *unseen model*: train on all questions of one generator, test on the other "
        "(the 20 questions are shared). *unseen model+question*: "
        f"{report['folds']}-fold grouped by question, predictions pooled. TNR@0.5 and acc@0.5: online rule "
        "(same iff score > 0.5), unseen-model protocol. ms/pair: CPU, "
        f"{report['cpu_threads']} threads, batches of 64 over {report['latency_pairs']} test pairs from a cold "
        "cache (texts repeat across pairs as in a real run); cold = 64 pairs with 128 distinct new texts.",
        "",
        "| truncation | train → test | judge | AUROC | TNR@FNR0.2 | AUROC unseen q | TNR unseen q | TNR@0.5 "
        "| acc@0.5 | ms/pair | ms/pair cold |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        if "auroc" not in r:
            lines.append(
                f"| {r['truncation']} | {r['direction']} | {r['judge']} | {r.get('status', '')} | | | | | | | |"
            )
            continue
        lines.append(
            f"| {r['truncation']} | {r['direction']} | {r['judge']} | {_fmt(r['auroc'])} | {_fmt(r['tnr'])} "
            f"| {_fmt(r.get('auroc_unseen_q'))} | {_fmt(r.get('tnr_unseen_q'))} | {_fmt(r['tnr_online'])} "
            f"| {_fmt(r['accuracy_online'])} | {_fmt(r.get('ms_per_pair'), 2)} "
            f"| {_fmt(r.get('ms_per_pair_cold'), 2)} |"
        )
    lines += ["", "## Against the targets (trained, focal + oversampling)", ""]
    lines.append("Targets: AUROC >= 0.90, TNR@FNR0.2 >= 0.82, <= 5 ms/pair (CPU, batches of 64).")
    lines.append("")
    for r in report["results"]:
        if r["judge"] == "trained (focal + oversampling)":
            num = next(
                (
                    x
                    for x in report["results"]
                    if x["judge"] == "numbers"
                    and x["truncation"] == r["truncation"]
                    and x["direction"] == r["direction"]
                ),
                None,
            )
            delta = f" (numbers heuristic: {_fmt(num['auroc'])})" if num else ""
            lines.append(
                f"- {r['truncation']}, {r['direction']}: AUROC {_fmt(r['auroc'])}{delta}, unseen question "
                f"{_fmt(r.get('auroc_unseen_q'))}; TNR {_fmt(r['tnr'])}; {_fmt(r.get('ms_per_pair'), 2)} ms/pair "
                f"amortised, {_fmt(r.get('ms_per_pair_cold'), 2)} ms/pair with every text new."
            )
    lines += [
        "",
        "Notes:",
        "",
        "- 'words:25' cuts at the 25th *reasoning word* (so, because, then, ...). GSM8K traces are short (median "
        "87 pieces) and none of the 10,000 recorded traces has 25 such words: that truncation keeps the *whole* "
        "trace (measured: 100% of traces, 99.4% containing 'The answer is N'), so its AUROC ~1.0 only says the "
        "judge reads a stated answer. It is the paper's best setting on long AIME traces, not a test here. "
        "'tokens:32' (about the first third of a trace; 1.2% contain the answer) is the real test.",
        "- The *unseen model* protocol is the one the issue asks for, but both generators answered the same 20 "
        "questions. With questions held out as well (*unseen q* columns; only 16 training questions per fold), "
        "the trained head does not beat the number-overlap heuristic: with 20 questions of data the head learns "
        "question-specific patterns. More questions (not more samples per question) are what would help.",
        "- The zero-shot `llm` row is the embedded SmolLM2 (small instruct model): its first-token P(yes) is "
        "almost the same for every pair (yes/no both ~20%), i.e. no signal; AUROC < 0.5 on 100 pairs is noise "
        "plus a bias. ms/pair there is one HTTP request per pair to vLLM on CPU with 16 in flight.",
        "- Latency is dominated by the MiniLM forward pass (2 new texts per pair when nothing is cached; CPU "
        "shared with a running vLLM server during these measurements). In a live run each branch prefix is "
        "embedded once and reused across all its comparisons, which is what the amortised column measures.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--llm-base-url", default=None)
    ap.add_argument("--llm-model", default=None)
    ap.add_argument("--llm-pairs", type=int, default=200)
    ap.add_argument("--max-traces", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--latency-pairs", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=str(ROOT / "bench" / "out" / "judge_eval.json"))
    ap.add_argument("--markdown", default=str(ROOT / "docs" / "judge_results.md"))
    ap.add_argument("--from-json", default=None, help="only re-render the markdown from a saved JSON report")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.from_json:
        report = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
        md = markdown(report)
        print(md)
        Path(args.markdown).write_text(md, encoding="utf-8")
        return
    report = asyncio.run(run(args))
    md = markdown(report)
    print(md)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2, default=float) + "\n", encoding="utf-8")
    Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
    Path(args.markdown).write_text(md, encoding="utf-8")


if __name__ == "__main__":
    main()
