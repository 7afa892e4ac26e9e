"""How often our answer extraction agrees with the answers recorded in the shared trace files.

Every accuracy figure rests on ``answers.extract_answer``: the vote counts what it extracts. The shared
trace files carry the *source's* own extraction next to each text (OVM ``response_answer``; our format's
``answer``), so agreement with it is a direct measure of the extractor on real model output. Per file:

* ``agree``: branches where ours and the recorded answer are ``answers_equal`` (both absent counts as
  agreement: the source found no answer either; a recorded "No answer!" / "[invalid]" is absent);
* ``unextracted``: branches where we find no answer;
* ``missed`` / ``extra``: recorded but not found by us / found by us but absent in the record;
* ``cons_ours`` / ``cons_recorded``: accuracy of the majority vote over all of a question's traces (file
  order, ``pruning.vote.majority_vote``) with our answers and with the recorded ones (a "No answer!"
  record casts no vote), so a change in extraction shows up as a change in the figure it feeds;
* with ``--math-verify`` (needs the PyPI package ``math-verify``): on the branches where our equality
  and math-verify's ``verify`` disagree about ours-vs-recorded, a count and a few examples. Dev-time
  only: the vote never calls math-verify.

    PYTHONPATH=$PWD .venv/bin/python bench/answers_agreement.py [--out bench/out/answers_agreement.json]
        [--math-verify] [--examples 5] [--label before]

Skips (exit 0, with a message) when ``../shared/data/traces`` is absent (a fresh clone has no data).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import shared_data  # noqa: E402

from deepprune_agents.answers import answers_equal, extract_answer, is_no_answer  # noqa: E402
from deepprune_agents.pruning.vote import majority_vote  # noqa: E402
from deepprune_agents.trace_io import load_traces  # noqa: E402

TRACES = shared_data() / "traces"


def _math_verify() -> Any:
    try:
        import math_verify
    except ImportError:
        return None
    return math_verify


def _mv_equal(mv: Any, a: str, b: str) -> bool | None:
    try:
        return bool(mv.verify(mv.parse(f"${b}$"), mv.parse(f"${a}$")))
    except Exception:
        return None


def measure(path: Path, *, examples: int, mv: Any = None) -> dict[str, Any]:
    """Agreement figures of one trace file (see the module doc)."""
    total = agree = unextracted = missed = extra = recorded_none = 0
    questions = cons_ours = cons_recorded = 0
    mv_checked = mv_disagree = 0
    bad: list[dict[str, Any]] = []
    mv_bad: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for q in load_traces([path]):
        ours_all: list[str | None] = []
        recorded_all: list[str | None] = []
        for t in q.traces:
            total += 1
            ours = extract_answer(t.text)
            rec = None if is_no_answer(t.answer) else t.answer
            ours_all.append(ours)
            recorded_all.append(rec)
            if ours is None:
                unextracted += 1
            if rec is None:
                recorded_none += 1
            ok = (ours is None and rec is None) or answers_equal(ours, rec)
            if ok:
                agree += 1
            else:
                if rec is not None and ours is None:
                    missed += 1
                elif rec is None and ours is not None:
                    extra += 1
                if len(bad) < examples:
                    bad.append({"question_id": q.question_id, "recorded": rec, "ours": ours, "tail": t.text[-200:]})
            if mv is not None and ours is not None and rec is not None:
                verdict = _mv_equal(mv, ours, rec)
                if verdict is not None:
                    mv_checked += 1
                    if verdict != ok:
                        mv_disagree += 1
                        if len(mv_bad) < examples:
                            mv_bad.append({"recorded": rec, "ours": ours, "ours_equal": ok, "math_verify": verdict})
        if q.ground_truth is not None:
            questions += 1
            for answers, counter in ((ours_all, "ours"), (recorded_all, "recorded")):
                voted = majority_vote(list(enumerate(answers))).answer
                hit = voted is not None and answers_equal(voted, q.ground_truth)
                if counter == "ours":
                    cons_ours += hit
                else:
                    cons_recorded += hit
    out: dict[str, Any] = {
        "file": path.name,
        "branches": total,
        "agree": agree / total if total else None,
        "unextracted": unextracted / total if total else None,
        "recorded_none": recorded_none / total if total else None,
        "missed": missed,
        "extra": extra,
        "cons_ours": cons_ours / questions if questions else None,
        "cons_recorded": cons_recorded / questions if questions else None,
        "seconds": round(time.perf_counter() - t0, 2),
        "examples": bad,
    }
    if mv is not None:
        out["math_verify"] = {"checked": mv_checked, "disagree_with_our_equality": mv_disagree, "examples": mv_bad}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--traces", type=Path, default=TRACES, help="folder of trace files (default ../shared/...)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "answers_agreement.json")
    ap.add_argument("--examples", type=int, default=5, help="disagreements kept per file")
    ap.add_argument("--math-verify", action="store_true", help="cross-check equality with math-verify")
    ap.add_argument("--label", default="", help="a tag stored in the JSON (e.g. before / after)")
    args = ap.parse_args(argv)
    if not args.traces.is_dir():
        print(f"skipped: {args.traces} is absent (the shared trace data is not in a fresh clone).")
        return 0
    mv = None
    if args.math_verify:
        mv = _math_verify()
        if mv is None:
            print("math-verify is not installed (pip install math-verify); cross-check skipped.")
    files = sorted(args.traces.glob("*.jsonl"))
    results = [measure(p, examples=args.examples, mv=mv) for p in files]
    print(
        f"{'file':45s} {'branches':>8s} {'agree':>7s} {'unextr.':>7s} {'missed':>6s} {'extra':>6s} "
        f"{'cons ours':>9s} {'cons rec.':>9s}"
    )
    for r in results:
        print(
            f"{r['file']:45s} {r['branches']:8d} {r['agree']:7.1%} {r['unextracted']:7.1%} "
            f"{r['missed']:6d} {r['extra']:6d} {r['cons_ours']:9.3f} {r['cons_recorded']:9.3f}"
            + (f"  math-verify disagrees {r['math_verify']['disagree_with_our_equality']}/"
               f"{r['math_verify']['checked']}" if "math_verify" in r else "")
        )  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"label": args.label, "files": results}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
