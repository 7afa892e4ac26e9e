"""Which test questions a shipped or user-trained judge has already seen (from its provenance.json).

A judge scored on its own training questions looks far better than it is (the OVM-trained head: AUROC
0.95 in-sample, 0.64 on unseen questions), so ``deepprune eval judge`` checks every test question
against the judge's provenance and warns loudly. Two provenance shapes are understood:

* ``trained``: ``data: [{file, sha256}]`` — a test file with the same digest was used whole;
* ``blend``: ``data: [{files: [{file, sha256}], question_ids, question_keys}]`` — exact questions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deepprune_agents.traces import QuestionTraces


def read_provenance(judge: Any) -> dict[str, Any] | None:
    """The judge's provenance.json (next to its weights), or None for judges without weights."""
    weights_dir = getattr(judge, "weights_dir", None)
    if weights_dir is None:
        return None
    path = Path(weights_dir) / "provenance.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _training_digests_and_keys(prov: dict[str, Any]) -> tuple[set[str], set[str], set[str]]:
    digests: set[str] = set()
    keys: set[str] = set()
    ids: set[str] = set()
    for entry in prov.get("data") or []:
        if not isinstance(entry, dict):
            continue
        if entry.get("sha256"):
            digests.add(str(entry["sha256"]))
        for f in entry.get("files") or []:
            if isinstance(f, dict) and f.get("sha256"):
                digests.add(str(f["sha256"]))
        keys.update(str(k) for k in entry.get("question_keys") or [])
        ids.update(str(i) for i in entry.get("question_ids") or [])
    return digests, keys, ids


def training_overlap(
    prov: dict[str, Any] | None, questions_by_file: Mapping[str, Sequence[QuestionTraces]]
) -> dict[str, Any] | None:
    """``{"files": [...], "questions": k, "of": n}`` when test questions were in the judge's training
    data (a whole test file with a training file's digest, or a question by id or text), else None."""
    if not prov:
        return None
    from deepprune_agents.training.pairs import question_key
    from deepprune_agents.training.train import file_digest

    digests, keys, ids = _training_digests_and_keys(prov)
    same_files: list[str] = []
    seen = total = 0
    for path, questions in questions_by_file.items():
        total += len(questions)
        if Path(path).is_file() and file_digest(path) in digests:
            same_files.append(Path(path).name)
            seen += len(questions)
            continue
        seen += sum(1 for q in questions if question_key(q) in keys or q.question_id in ids)
    if not seen:
        return None
    return {"files": same_files, "questions": seen, "of": total}
