"""Judge comparison on unseen questions of an unseen generator (issue 11's headline).

Datasets (from ``../shared/data/traces`` and our own committed corpus under ``data/corpus``):

* ``OVM Mistral`` / ``OVM Llama``: 20 GSM8K questions each, the *same* 20 questions (OVM files);
* ``MATH``: 100 MATH questions x 8, Qwen2.5-Math (``qwen25math_math_n8.jsonl``);
* ``dates``: 369 date questions x 10, gpt-3.5 (``verifycot_date_chatgpt35_n10.jsonl``; labels from the
  recorded answers by string equality: a numeric equality would read 'MM/DD/YYYY' as a fraction);
* ``SmolLM2 corpus`` (train only): ``deepprune traces generate`` output, any ``*.jsonl`` or packed
  ``*.jsonl.gz`` (``deepprune traces pack``) in ``--corpus``.

Protocol (leave one dataset out): for each test set, train on every *other* dataset minus every
question that occurs in the test set (by question text, so testing on OVM Mistral also removes OVM
Llama, which answered the same 20 questions). Everything at the first 32 tokens (``tokens:32``).

Judges: ``blend`` (logistic regression over task-agnostic features, judges/blend.py), ``context`` (the
same fit over number and word overlap plus the run's context, judges/context.py: each question's sampled
traces are its run), ``trained``
(the bi-encoder head retrained on the same split), ``trained (shipped)`` (the head in
judges/weights/trained, trained on all four OVM files: in-sample on OVM), ``numbers``, ``embedding``;
``llm`` is cited from the previous measurement (one HTTP request per pair, too slow to rerun).

    .venv/bin/python bench/judge_eval.py [--json OUT] [--ship]

Writes the JSON (``headline`` block first) and ``docs/judge_results.md``. The work is in
``bench/_judge_eval/`` (data -> protocol -> corpus, cost -> report); this script keeps the command line,
``--ship`` and the report. MiniLM embeddings are cached on disk under ``bench/out/emb_cache`` (git-ignored) so
reruns take seconds. ``--ship`` refits the blend on every dataset and writes
``deepprune_agents/judges/weights/blend`` (weights + provenance), but only when the blend beats numbers and
embedding on every test set; the same for ``context`` and ``deepprune_agents/judges/weights/context``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _judge_eval.corpus import corpus_report  # noqa: E402
from _judge_eval.cost import cross_encoder_probe, latency, sizes  # noqa: E402
from _judge_eval.data import TRUNCATION, Dataset, DiskEmbeddings, PairTable, build_table, datasets  # noqa: E402
from _judge_eval.protocol import (  # noqa: E402
    CONTEXT,
    LEXICAL,
    LEXICAL_EXCLUDE,
    beats_baselines,
    context_variants,
    fit_all,
    fit_context,
    headline,
    train_only,
)
from _judge_eval.report import CROSS_ENCODER_HEAD, carried_section, markdown  # noqa: E402

from deepprune_agents.judges._threads import judge_threads, usable_cores  # noqa: E402
from deepprune_agents.judges.blend import save_blend  # noqa: E402
from deepprune_agents.traces import QuestionTraces  # noqa: E402
from deepprune_agents.training.pairs import question_key  # noqa: E402


# -------------------------------------------------------------------------------------------- ship
def ship(
    table: PairTable,
    sets: list[Dataset],
    questions: dict[str, list[QuestionTraces]],
    out_dir: Path,
    head: dict[str, Any],
    command: str,
    judge: str = "blend",
) -> dict[str, Any]:
    """Fit ``judge`` (``blend`` or ``context``) on every shared data set and write its weights and provenance."""
    from deepprune_agents.training.train import file_digest

    if judge == CONTEXT:
        m = ~np.isin(table.dataset, list(train_only(sets)))
        model = fit_context(table, m)
    else:
        model = fit_all(table, datasets=train_only(sets))
    sets = [d for d in sets if d.test]
    shared = np.isin(table.dataset, [d.name for d in sets])
    prov = {
        "judge": judge,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "truncation": TRUNCATION,
        "label": "same final answer (answers_equal; exact string equality for dates)",
        "pairs": int(shared.sum()),
        "positives": int(table.labels[shared].sum()),
        "data": [
            {
                "dataset": d.name,
                "files": [{"file": f.name, "sha256": file_digest(f)} for f in d.files],
                "max_traces_per_question": d.max_traces,
                "question_ids": [q.question_id for q in questions[d.name]],
                "question_keys": sorted({question_key(q) for q in questions[d.name]}),
            }
            for d in sets
        ],
        "headline_unseen": {t: {k: round(v["auroc"], 4) for k, v in r["judges"].items()} for t, r in head.items()},
    }
    save_blend(model, out_dir, prov)
    return prov


# -------------------------------------------------------------------------------------------- main
def ship_or_say(
    table: PairTable,
    sets: list[Dataset],
    questions: dict[str, list[QuestionTraces]],
    head: dict[str, Any],
    command: str,
    judge: str,
    wins: bool,
    ship_asked: bool,
) -> str:
    """Ship ``judge``'s weights when asked and it beats both baselines everywhere; the verdict's sentence."""
    where = f"deepprune_agents/judges/weights/{judge}"
    shipped_dir = ROOT / where
    if ship_asked and wins:
        ship(table, sets, questions, shipped_dir, head, command, judge)
        return f"yes ({where}, fitted on every dataset above)"
    if (shipped_dir / "provenance.json").is_file():
        date = json.loads((shipped_dir / "provenance.json").read_text(encoding="utf-8")).get("date", "?")[:10]
        return f"not refitted by this run (the weights in {where} date from {date}" + (
            ")" if wins else f"; `--ship` refuses to refit them while {judge} does not beat both baselines everywhere)"
        )
    return "no (--ship not given)" if wins else "no (it does not beat both baselines everywhere)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", default=str(ROOT / "bench" / "out" / "judge_eval.json"))
    ap.add_argument("--markdown", default=str(ROOT / "docs" / "judge_results.md"))
    ap.add_argument("--corpus", default=str(ROOT / "data" / "corpus"), help="folder of our own trace files")
    ap.add_argument("--cache", default=str(ROOT / "bench" / "out" / "emb_cache" / "minilm_tokens32.npz"))
    ap.add_argument("--latency-pairs", type=int, default=2048)
    ap.add_argument("--no-cross-encoder-probe", action="store_true")
    ap.add_argument(
        "--ship",
        action="store_true",
        help="write judges/weights/blend (judges/weights/context) when the blend (context) judge wins everywhere",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--heldout-out",
        default=str(ROOT / "bench" / "out" / "blend-heldout"),
        help="save each leave-one-dataset-out blend here (one folder per test set; read by the replay frontier)",
    )
    ap.add_argument(
        "--context-heldout-out",
        default=str(ROOT / "bench" / "out" / "context-heldout"),
        help="the same for the context judge (the replay frontier's context-heldout)",
    )
    ap.add_argument("--from-json", default=None, help="only re-render the markdown from a saved JSON report")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.from_json:
        md = markdown(json.loads(Path(args.from_json).read_text(encoding="utf-8")))
        Path(args.markdown).write_text(md, encoding="utf-8")
        print(md)
        return
    sets = datasets(Path(args.corpus) if args.corpus else None)
    table, questions = build_table(sets, DiskEmbeddings(Path(args.cache)), args.seed)
    head = headline(
        table,
        sets,
        args.seed,
        Path(args.heldout_out) if args.heldout_out else None,
        Path(args.context_heldout_out) if args.context_heldout_out else None,
    )
    corpus = corpus_report(table, sets, args.seed, head)
    command = shlex.join([".venv/bin/python", "bench/judge_eval.py", *sys.argv[1:]])
    wins = beats_baselines(head)
    context_wins = beats_baselines(head, CONTEXT)
    shipped = ship_or_say(table, sets, questions, head, command, "blend", wins, args.ship)
    context_shipped = ship_or_say(table, sets, questions, head, command, CONTEXT, context_wins, args.ship)
    with tempfile.TemporaryDirectory() as tmp:
        blend_dir, lexical_dir, context_dir = Path(tmp) / "blend", Path(tmp) / "lexical", Path(tmp) / "context"
        save_blend(fit_all(table, datasets=train_only(sets)), blend_dir)
        save_blend(fit_all(table, LEXICAL_EXCLUDE, train_only(sets)), lexical_dir)
        save_blend(fit_context(table, ~np.isin(table.dataset, list(train_only(sets)))), context_dir)
        lat = asyncio.run(latency(table, blend_dir, lexical_dir, context_dir, args.latency_pairs))
        size = sizes(blend_dir, lexical_dir, context_dir)
    cross_json = ROOT / "bench" / "out" / "cross_encoder.json"  # research/cross_encoder.py, when it was run
    cross = json.loads(cross_json.read_text(encoding="utf-8")) if cross_json.is_file() else None
    old_md = Path(args.markdown)
    carried = None if cross or not old_md.is_file() else carried_section(old_md.read_text("utf-8"), CROSS_ENCODER_HEAD)
    ce = None if args.no_cross_encoder_probe or cross or carried else cross_encoder_probe(table)
    variants = context_variants(table, sets)
    report = {
        "headline": {
            "truncation": TRUNCATION,
            "protocol": "leave one dataset out; test questions removed from training by question text",
            "test_sets": head,
            "latency": lat,
            "sizes": size,
        },
        "verdict": {
            "blend_beats_baselines": wins,
            "lexical_beats_baselines": beats_baselines(head, LEXICAL),
            "shipped": shipped,
            "context_beats_baselines": context_wins,
            "context_shipped": context_shipped,
        },
        "datasets": [
            {
                "name": d.name,
                "files": [f.name for f in d.files],
                "questions": len(questions[d.name]),
                "pairs": int((table.dataset == d.name).sum()),
                "same_fraction": float(table.labels[table.dataset == d.name].mean()),
                "max_traces": d.max_traces,
            }
            for d in sets
        ],
        "corpus": corpus,
        "context_variants": variants,
        "cross_encoder_probe": ce,
        "cross_encoder": cross,
        # the note of an earlier research/cross_encoder.py run, kept from the markdown when its JSON is not here
        "cross_encoder_carried": carried,
        "latency_pairs": args.latency_pairs,
        "judge_threads": judge_threads(),
        "cpu_cores": usable_cores(),
        "seed": args.seed,
        "command": command,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2, default=float) + "\n", encoding="utf-8")
    md = markdown(report)
    Path(args.markdown).write_text(md, encoding="utf-8")
    print(md)


if __name__ == "__main__":
    main()
