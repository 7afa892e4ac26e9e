"""Question files -> ``QuestionItem`` and generated samples -> one trace-file record (pure, no I/O but reading).

Formats (detected from the first record, or forced with explicit field names):

* GSM8K JSONL ``{question, answer: "... #### N"}``: the ground truth is what follows ``####``;
* MATH-500 JSON list ``{problem, answer, unique_id?}``;
* AIME JSONL ``{prompt, answer}``;
* generic JSONL/JSON with configurable ``question_field`` / ``answer_field`` / ``id_field``.

A record is this project's trace format (``trace_io``): ``{question_id, question, ground_truth, source,
traces: [{text, answer, correct, tokens, token_logprobs?, top_logprobs?, reasoning?, finish_reason}]}``,
with answers extracted and graded by ``answers`` so that every consumer (vote, pair labels) agrees.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepprune_agents.errors import ConfigError

#: (question field, answer field) pairs tried in order when none is given.
KNOWN_FIELDS: tuple[tuple[str, str], ...] = (("question", "answer"), ("problem", "answer"), ("prompt", "answer"))


@dataclass(frozen=True, slots=True)
class QuestionItem:
    """One question to sample: a stable id (file stem + index or the file's id field) and its truth."""

    question_id: str
    question: str
    ground_truth: str | None


@dataclass(slots=True)
class Sample:
    """One generated solution, as the server returned it."""

    text: str
    tokens: int | None = None
    finish_reason: str | None = None
    reasoning: str | None = None
    token_logprobs: list[float] | None = None
    top_logprobs: list[dict[str, float]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def gsm8k_truth(answer: str) -> str:
    """'... #### 1,234' -> '1234' (GSM8K writes the final number after ``####``); other text unchanged."""
    if "####" in answer:
        return answer.rsplit("####", 1)[1].strip().replace(",", "")
    return answer.strip()


def read_records(path: Path) -> list[dict[str, Any]]:
    """The objects of a JSONL file (one per non-empty line) or of a JSON list, with the line of a bad one."""
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc.msg}).") from exc
        if not all(isinstance(x, dict) for x in data):
            raise ConfigError(f"{path}: a JSON question file must be a list of objects.")
        return list(data)
    out = []
    for line_no, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{line_no + 1}: not valid JSON ({exc.msg}).") from exc
        if not isinstance(obj, dict):
            raise ConfigError(f"{path}:{line_no + 1}: each line must be a JSON object.")
        out.append(obj)
    return out


def parse_questions(
    records: Sequence[dict[str, Any]],
    source: str,
    *,
    question_field: str | None = None,
    answer_field: str | None = None,
    id_field: str | None = None,
) -> list[QuestionItem]:
    """Records -> QuestionItems. Without field names the first of ``KNOWN_FIELDS`` present is used.

    Ids are ``{source}:{id_field value}`` when ``id_field`` is given, else ``{source}:{index}`` (the
    position in the file), so they stay stable across runs and resumes."""
    if not records:
        return []
    first = records[0]
    if question_field is None:
        found = next((qf for qf, _ in KNOWN_FIELDS if qf in first), None)
        if found is None:
            raise ConfigError(
                f"{source}: no question field among {[qf for qf, _ in KNOWN_FIELDS]} in {sorted(first)}; "
                "pass --question-field (and --answer-field)."
            )
        question_field = found
    if answer_field is None:
        answer_field = "answer"
    items = []
    for i, rec in enumerate(records):
        q = rec.get(question_field)
        if not isinstance(q, str) or not q.strip():
            raise ConfigError(f"{source}: record {i} has no text in field {question_field!r}.")
        raw = rec.get(answer_field)
        truth = None if raw is None else gsm8k_truth(str(raw))
        qid = f"{source}:{rec[id_field]}" if id_field and id_field in rec else f"{source}:{i}"
        items.append(QuestionItem(question_id=qid, question=q, ground_truth=truth or None))
    return items


def load_questions(
    path: str | Path,
    *,
    question_field: str | None = None,
    answer_field: str | None = None,
    id_field: str | None = None,
) -> list[QuestionItem]:
    """Read a question file (see the module docstring for the formats)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"question file {str(p)!r} does not exist.")
    return parse_questions(
        read_records(p), p.stem, question_field=question_field, answer_field=answer_field, id_field=id_field
    )


def trace_entry(sample: Sample, ground_truth: str | None) -> dict[str, Any]:
    """One ``traces[]`` element: text, extracted answer, correctness, token count and the optional extras."""
    from deepprune_agents.answers import answers_equal, extract_answer

    answer = extract_answer(sample.text)
    correct = None if ground_truth is None else (answer is not None and bool(answers_equal(answer, ground_truth)))
    d: dict[str, Any] = {"text": sample.text, "answer": answer, "correct": correct}
    if sample.tokens is not None:
        d["tokens"] = sample.tokens
    if sample.finish_reason is not None:
        d["finish_reason"] = sample.finish_reason
    if sample.reasoning:
        d["reasoning"] = sample.reasoning
    if sample.token_logprobs is not None:
        d["token_logprobs"] = sample.token_logprobs
    if sample.top_logprobs is not None:
        d["top_logprobs"] = sample.top_logprobs
    return d


def question_record(item: QuestionItem, samples: Sequence[Sample], source: str) -> dict[str, Any]:
    """The trace-file line of one question (round-trips through ``trace_io.iter_trace_file``)."""
    return {
        "question_id": item.question_id,
        "question": item.question,
        "ground_truth": item.ground_truth,
        "source": source,
        "traces": [trace_entry(s, item.ground_truth) for s in samples],
    }


def pair_balance(records: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Same-answer vs different-answer pairs over all questions (the judge's label balance).

    A trace without an answer agrees with nothing (``training.pairs.answers_agree``)."""
    from deepprune_agents.training.pairs import answers_agree

    same = diff = 0
    for rec in records:
        answers = [t.get("answer") for t in rec.get("traces", [])]
        for i in range(len(answers)):
            for j in range(i + 1, len(answers)):
                if answers_agree(answers[i], answers[j]):
                    same += 1
                else:
                    diff += 1
    return {"same_answer_pairs": same, "different_answer_pairs": diff}
