"""``traces pack``: the committed form of a corpus keeps every sample and answer, drops what the question
file owns, is byte-reproducible, and reads back through ``trace_io`` like the full file."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from deepprune_agents.corpus.generate import PROVENANCE_SUFFIX
from deepprune_agents.corpus.pack import pack, strip_record
from deepprune_agents.corpus.questions import QuestionItem, Sample, question_record
from deepprune_agents.errors import ConfigError
from deepprune_agents.trace_io import iter_trace_file
from deepprune_agents.traces import question_text_key


def _write_corpus(path: Path, order: list[int]) -> None:
    lines = []
    for i in order:
        item = QuestionItem(f"gsm8k_train:{i}", f"How many apples, question {i}?", str(i))
        samples = [Sample(text=f"... so {i} apples.", tokens=5, finish_reason="stop"), Sample(text="no idea")]
        lines.append(json.dumps(question_record(item, samples, "smollm2")))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    Path(str(path) + PROVENANCE_SUFFIX).write_text(json.dumps({"model": "smollm2", "runs": []}), encoding="utf-8")


def test_pack_drops_question_file_fields_and_keeps_samples(tmp_path: Path) -> None:
    src, dst = tmp_path / "c.jsonl", tmp_path / "out" / "c.jsonl.gz"
    _write_corpus(src, [10, 2, 1])
    done = pack(src, dst)
    assert done["questions"] == 3
    with gzip.open(dst, "rt", encoding="utf-8") as fh:
        recs = [json.loads(line) for line in fh]
    # sorted by the numeric question index, not by text or by finishing order
    assert [r["question_id"] for r in recs] == ["gsm8k_train:1", "gsm8k_train:2", "gsm8k_train:10"]
    assert all("question" not in r and "ground_truth" not in r for r in recs)
    assert recs[0]["question_key"] == question_text_key("How many apples, question 1?")
    assert recs[2]["traces"][0] == {
        "text": "... so 10 apples.",
        "answer": "10",
        "correct": True,
        "tokens": 5,
        "finish_reason": "stop",
    }
    prov = json.loads(Path(str(dst) + PROVENANCE_SUFFIX).read_text(encoding="utf-8"))
    assert prov["model"] == "smollm2"
    assert prov["packed"] == {
        "from": "c.jsonl",
        "questions": 3,
        "dropped_fields": ["question", "ground_truth"],
        "added_fields": ["question_key"],
    }


def test_pack_is_byte_reproducible_whatever_the_finishing_order(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    _write_corpus(a, [3, 1, 2])
    _write_corpus(b, [2, 3, 1])
    pack(a, tmp_path / "a.jsonl.gz")
    pack(b, tmp_path / "b.jsonl.gz")
    assert (tmp_path / "a.jsonl.gz").read_bytes() == (tmp_path / "b.jsonl.gz").read_bytes()


def test_packed_file_reads_back_like_the_full_one(tmp_path: Path) -> None:
    src, dst = tmp_path / "c.jsonl", tmp_path / "c.jsonl.gz"
    _write_corpus(src, [0, 1])
    pack(src, dst)
    full = {q.question_id: q for q in iter_trace_file(src)}
    packed = list(iter_trace_file(dst))
    assert [q.question_id for q in packed] == ["gsm8k_train:0", "gsm8k_train:1"]
    for q in packed:
        assert q.question == "" and q.ground_truth is None
        assert q.source == "smollm2"
        assert q.traces == full[q.question_id].traces  # text, answer, correct (kept, not regraded), tokens


def test_pack_refuses_what_it_cannot_pack(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        pack(tmp_path / "missing.jsonl", tmp_path / "x.jsonl.gz")
    src = tmp_path / "c.jsonl"
    _write_corpus(src, [0])
    with pytest.raises(ConfigError, match=r"\.jsonl\.gz"):
        pack(src, tmp_path / "x.jsonl")
    with pytest.raises(ConfigError, match="question_id and traces"):
        strip_record({"idx": 0, "outputs": []})  # an OVM line is not ours to pack
    with pytest.raises(ConfigError, match="neither question text nor question_key"):
        strip_record({"question_id": "q:0", "traces": []})  # nothing would say which question it is


def test_trace_io_names_a_gz_source_by_its_stem(tmp_path: Path) -> None:
    p = tmp_path / "plain.jsonl.gz"
    with gzip.open(p, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"question_id": "q:0", "traces": ["The answer is 4."]}) + "\n")
    (q,) = iter_trace_file(p)
    assert q.source == "plain" and q.traces[0].answer == "4"


def test_packed_questions_keep_one_group_each(tmp_path: Path) -> None:
    """Without question text, grouped splits still see one group per question, not one group for all."""
    from deepprune_agents.training.pairs import question_key

    src, dst = tmp_path / "c.jsonl", tmp_path / "c.jsonl.gz"
    _write_corpus(src, [0, 1, 2])
    pack(src, dst)
    keys = {question_key(q) for q in iter_trace_file(dst)}
    assert len(keys) == 3


def test_unpack_gives_generate_a_file_to_resume(tmp_path: Path) -> None:
    from deepprune_agents.corpus.generate import completed_ids
    from deepprune_agents.corpus.pack import unpack

    src, packed, back = tmp_path / "c.jsonl", tmp_path / "c.jsonl.gz", tmp_path / "again" / "c.jsonl"
    _write_corpus(src, [4, 5])
    pack(src, packed)
    assert unpack(packed, back) == 2
    assert completed_ids(back) == {"gsm8k_train:4", "gsm8k_train:5"}  # what a resumed generate skips
    prov = json.loads(Path(str(back) + PROVENANCE_SUFFIX).read_text(encoding="utf-8"))
    assert prov == {"model": "smollm2", "runs": []}  # the sampling check on resume sees the original
    with pytest.raises(ConfigError, match="overwrite"):
        unpack(packed, back)


def test_a_packed_question_is_the_same_question_in_another_file(tmp_path: Path) -> None:
    """Our first GSM8K-train questions are the OVM train files' questions: without its text, a packed record
    must still land in that question's group, or a leave-one-out split trains on the test questions."""
    from deepprune_agents.training.pairs import question_key

    src, dst = tmp_path / "c.jsonl", tmp_path / "c.jsonl.gz"
    _write_corpus(src, [0, 1])
    pack(src, dst)
    other = tmp_path / "ovm_like.jsonl"  # the same question from another file: other id, other spacing and case
    other.write_text(
        json.dumps({"question": "how many  apples, Question 0?", "ground_truth": "0", "traces": ["0"]}) + "\n",
        encoding="utf-8",
    )
    (theirs,) = iter_trace_file(other)
    packed = {q.question_id: q for q in iter_trace_file(dst)}
    assert question_key(packed["gsm8k_train:0"]) == question_key(theirs)
    assert question_key(packed["gsm8k_train:1"]) != question_key(theirs)


def test_the_key_survives_unpack_generate_pack(tmp_path: Path) -> None:
    """Extending a corpus: unpacked records (no text) and newly generated ones (text) pack to the same keys."""
    from deepprune_agents.corpus.pack import unpack

    src, packed, back = tmp_path / "c.jsonl", tmp_path / "c.jsonl.gz", tmp_path / "again" / "c.jsonl"
    _write_corpus(src, [0, 1])
    pack(src, packed)
    unpack(packed, back)
    new = tmp_path / "new.jsonl"
    _write_corpus(new, [2])
    with back.open("a", encoding="utf-8") as fh:  # what a resumed traces generate appends
        fh.write(new.read_text(encoding="utf-8"))
    repacked = tmp_path / "c2.jsonl.gz"
    pack(back, repacked)
    _write_corpus(src, [0, 1, 2])
    pack(src, packed)
    assert repacked.read_bytes() == packed.read_bytes()


def test_a_packed_question_written_again_keeps_its_key(tmp_path: Path) -> None:
    """``write_traces`` (replay subsets, filtered corpora) of a packed question must not lose its identity."""
    from deepprune_agents.trace_io import to_json, write_traces

    src, dst, again = tmp_path / "c.jsonl", tmp_path / "c.jsonl.gz", tmp_path / "again.jsonl"
    _write_corpus(src, [3])
    pack(src, dst)
    (q,) = iter_trace_file(dst)
    assert q.text_key == question_text_key("How many apples, question 3?")
    write_traces(again, [q])
    (back,) = iter_trace_file(again)
    assert back.text_key == q.text_key and back.question == ""
    full = to_json(next(iter_trace_file(src)))
    assert "question_key" not in full  # a record with its text needs no key
