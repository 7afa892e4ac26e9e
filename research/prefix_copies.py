"""How often two traces of one question open with word-for-word the same judge input, and whether such
*copies* agree on the answer more often than any two traces: the measurement behind the adaptive policy's
``copy_keep_fraction`` (a cluster made mostly of copies is thinned less, see ``pruning/adaptive.py``).

A judge cannot tell identical inputs apart, so when copies agree hardly more often than the base rate, a
merge of them is a prior, not evidence, and thinning them is random subsampling. Per data set, over every
pair of a question's traces (the first ``--cap`` traces; OVM files hold hundreds per question):

* ``same``: share of pairs whose extracted answers are equal (``answers_equal``, no answer never equal);
* ``copies``: share of pairs whose truncated prefixes are equal once whitespace is normalized;
* ``same_given_copy``: ``same`` among the copies.

    PYTHONPATH=$PWD .venv/bin/python research/prefix_copies.py [--truncate tokens:32] [--json OUT]

Skips (exit 0, with a message) when ``../shared/data/traces`` is absent (a fresh clone has no data).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]  # the package, and bench/'s shared modules

from _common import TRACE_FILES, shared_data, traces_absent, write_report  # noqa: E402

from deepprune_agents.answers import answers_equal  # noqa: E402
from deepprune_agents.evaluation.replay_data import ReplayQuestion, load_replay_questions  # noqa: E402
from deepprune_agents.truncation import parse_truncation, truncate  # noqa: E402

TRACES = shared_data() / "traces"
SETS = {
    "OVM Mistral": TRACE_FILES["mistral"],
    "OVM Llama": TRACE_FILES["llama"],
    "MATH x8": TRACE_FILES["math"],
    "dates x10": TRACE_FILES["dates"],
}


def copy_stats(questions: list[ReplayQuestion], spec: str, cap: int) -> dict[str, Any]:
    """Pair counts over every question's first ``cap`` traces (see the module doc)."""
    trunc = parse_truncation(spec)
    pairs = same = copies = same_copies = 0
    for q in questions:
        traces = q.traces[:cap]
        prefixes = [" ".join(truncate(t.text, trunc, t.pieces).split()) for t in traces]
        for (a, pa), (b, pb) in itertools.combinations(zip(traces, prefixes, strict=True), 2):
            agree = a.answer is not None and b.answer is not None and answers_equal(a.answer, b.answer)
            pairs += 1
            same += agree
            if pa == pb:
                copies += 1
                same_copies += agree
    return {
        "questions": len(questions),
        "pairs": pairs,
        "same": same / pairs if pairs else None,
        "copies": copies / pairs if pairs else None,
        "same_given_copy": same_copies / copies if copies else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--truncate", default="tokens:32", help="judge input (default tokens:32)")
    parser.add_argument("--cap", type=int, default=40, help="traces per question (default 40)")
    parser.add_argument("--json", dest="json_out", default=None, metavar="OUT")
    args = parser.parse_args()
    if traces_absent():
        return 0
    report: dict[str, Any] = {"truncate": args.truncate, "cap": args.cap, "sets": {}}
    for label, fname in SETS.items():
        stats = copy_stats(load_replay_questions([TRACES / fname]), args.truncate, args.cap)
        report["sets"][label] = {"file": fname, **stats}
        given = stats["same_given_copy"]
        print(
            f"{label}: {stats['pairs']} pairs, copies {stats['copies']:.1%}, same answer {stats['same']:.1%}, "
            f"same answer among copies {'n/a' if given is None else f'{given:.1%}'}"
        )
    if args.json_out:
        write_report(report, args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
