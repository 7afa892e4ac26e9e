"""``deepprune traces pack``: a generated trace file -> the gzip file the repository commits.

Why a packed form exists: a corpus costs hours of CPU to sample, and ``bench/out`` (where ``traces generate``
writes) is not committed, so a corpus left there is lost with the machine. The packed file is what lands in
``data/corpus``: gzip-compressed, byte-reproducible (no timestamp in the gzip header), with its provenance
sidecar beside it. It drops each record's ``question`` text and ``ground_truth``: both are copied from the
question file (e.g. GSM8K train in ``../shared``), which is not ours to redistribute. What stays is ours: the
question id (``{file stem}:{index}``, which points back into that file), the model's samples, their
extracted answers and grades, token counts and finish reasons, and the question's ``question_key``
(``traces.question_text_key``: a hash of the normalised text). Judges read only the samples and the answers;
grouped splits and leakage checks need to know when two files hold the same question (our first GSM8K-train
questions are the OVM train files' questions), and the key tells them without the text. So a packed corpus
trains and evaluates judges exactly as the full file does.

To add questions to a packed corpus, ``traces unpack`` it into the plain JSONL (and provenance) that ``traces
generate`` appends to, rerun the same generate command (it skips the question ids already there), then pack again.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from deepprune_agents.corpus.generate import provenance_path
from deepprune_agents.corpus.questions import read_records
from deepprune_agents.errors import ConfigError
from deepprune_agents.traces import question_text_key

#: Fields copied from the question file rather than made by us: dropped from a packed record.
QUESTION_FILE_FIELDS = ("question", "ground_truth")


def strip_record(record: dict[str, Any]) -> dict[str, Any]:
    """One trace record without the fields that come from the question file, with the key of its question text
    in their place (pure). A record unpacked from an earlier pack has no text but keeps its key."""
    if "question_id" not in record or "traces" not in record:
        raise ConfigError("not a trace record of ours (needs question_id and traces); only those can be packed.")
    out = {k: v for k, v in record.items() if k not in QUESTION_FILE_FIELDS and k != "question_key"}
    key = question_text_key(str(record.get("question") or "")) or str(record.get("question_key") or "")
    if not key:
        raise ConfigError(
            f"record {record['question_id']!r} has neither question text nor question_key: a packed record must "
            "say which question it is (leakage checks match questions across files by it)."
        )
    out["question_key"] = key
    return out


def pack(src: str | Path, dst: str | Path) -> dict[str, Any]:
    """Write ``dst`` (gzip JSONL, records stripped, sorted by question index) and ``dst``'s provenance sidecar.

    Records are sorted by question id so that two packs of the same questions are the same bytes whatever
    order the concurrent sampler finished them in. Returns what was written."""
    src_p, dst_p = Path(src), Path(dst)
    if not src_p.is_file():
        raise ConfigError(f"trace file {str(src_p)!r} does not exist.")
    if not dst_p.name.endswith(".jsonl.gz"):
        raise ConfigError(f"the packed file's name must end in .jsonl.gz (got {dst_p.name!r}).")
    records = sorted((strip_record(r) for r in read_records(src_p)), key=lambda r: _id_key(str(r["question_id"])))
    dst_p.parent.mkdir(parents=True, exist_ok=True)
    with dst_p.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        for rec in records:
            gz.write((json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8"))
    side = provenance_path(src_p)
    prov: dict[str, Any] = json.loads(side.read_text(encoding="utf-8")) if side.is_file() else {}
    prov["packed"] = {
        "from": src_p.name,
        "questions": len(records),
        "dropped_fields": list(QUESTION_FILE_FIELDS),
        "added_fields": ["question_key"],
    }
    provenance_path(dst_p).write_text(json.dumps(prov, indent=2) + "\n", encoding="utf-8")
    return {"questions": len(records), "bytes": dst_p.stat().st_size, "out": str(dst_p)}


def unpack(src: str | Path, dst: str | Path) -> int:
    """Packed ``src`` -> plain JSONL ``dst`` plus the provenance ``traces generate`` checks on resume.

    Refuses to overwrite ``dst``: it may hold samples not packed yet. Returns the number of questions."""
    src_p, dst_p = Path(src), Path(dst)
    if not src_p.is_file():
        raise ConfigError(f"packed file {str(src_p)!r} does not exist.")
    if dst_p.exists():
        raise ConfigError(f"{dst_p} exists; unpacking would overwrite it (it may hold samples not packed yet).")
    dst_p.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(src_p, "rt", encoding="utf-8") as fh:
        text = fh.read()
    dst_p.write_text(text, encoding="utf-8")
    side = provenance_path(src_p)
    if side.is_file():
        prov = json.loads(side.read_text(encoding="utf-8"))
        prov.pop("packed", None)
        provenance_path(dst_p).write_text(json.dumps(prov, indent=2) + "\n", encoding="utf-8")
    return sum(1 for line in text.splitlines() if line.strip())


def _id_key(question_id: str) -> tuple[str, int]:
    """'gsm8k_train:12' sorts before 'gsm8k_train:100' (numeric index), other ids by text."""
    stem, _, idx = question_id.rpartition(":")
    return (stem, int(idx)) if idx.isdigit() else (question_id, -1)
