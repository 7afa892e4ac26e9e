"""Reading and writing trace files.

Our format (JSONL, one question per line)::

    {"question_id": "gsm8k-test-0", "question": "...", "ground_truth": "72", "source": "...",
     "traces": [{"text": "...", "answer": "72", "correct": true, "tokens": 57,
                 "token_logprobs": [-0.1, ...]}, ...]}

``answer``, ``correct``, ``tokens`` and ``token_logprobs`` are optional. Two other shapes are read too:

* the OVM sample files in ``../shared/data/traces`` (``{idx, question, ground_truth, outputs: [{response,
  response_answer, label}]}``; ``label == "[invalid]"`` means no answer could be parsed: treated as wrong);
* the generic ``{question, ground_truth, traces: ["text", ...]}``: answers are extracted with our extractor.

A ``.gz`` file is read decompressed (the committed corpus, ``corpus/pack.py``); its records carry a
``question_id`` and the ``question_key`` of the question text, but not the text.

Traces whose answer is absent get one from ``answers.extract_answer`` so every consumer (vote, oracle
judge, pair labels) sees answers produced by the same code.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from deepprune_agents.errors import ConfigError
from deepprune_agents.traces import QuestionTraces, Trace


def _extract(text: str) -> str | None:
    from deepprune_agents.answers import extract_answer

    return extract_answer(text)


def _correct(answer: str | None, truth: str | None) -> bool | None:
    if truth is None:
        return None
    if answer is None:
        return False
    from deepprune_agents.answers import answers_equal

    return answers_equal(answer, truth)


def _from_ovm(obj: dict[str, Any], source: str) -> QuestionTraces:
    traces = []
    for out in obj["outputs"]:
        label = out.get("label")
        answer = out.get("response_answer")
        if label == "[invalid]" or answer in ("", "[invalid]"):
            answer = None
        traces.append(Trace(text=out["response"], answer=answer, correct=label is True if label is not None else None))
    return QuestionTraces(
        question_id=f"{source}:{obj.get('idx', '')}",
        question=obj.get("question") or obj.get("input", ""),
        ground_truth=str(obj["ground_truth"]) if obj.get("ground_truth") is not None else None,
        traces=traces,
        source=source,
    )


def _from_ours(obj: dict[str, Any], source: str, line_no: int) -> QuestionTraces:
    truth = obj.get("ground_truth")
    truth = str(truth) if truth is not None else None
    traces = []
    for raw in obj["traces"]:
        if isinstance(raw, str):
            raw = {"text": raw}
        text = raw["text"]
        answer = raw.get("answer")
        if answer is None:
            answer = _extract(text)
        correct = raw.get("correct")
        if correct is None:
            correct = _correct(answer, truth)
        traces.append(
            Trace(
                text=text,
                answer=answer,
                correct=correct,
                tokens=raw.get("tokens"),
                token_logprobs=raw.get("token_logprobs"),
            )
        )
    return QuestionTraces(
        question_id=str(obj.get("question_id", f"{source}:{line_no}")),
        question=obj.get("question", ""),  # absent in a packed corpus (corpus/pack.py)
        ground_truth=truth,
        traces=traces,
        source=obj.get("source", source),
        text_key=str(obj.get("question_key") or ""),  # what a packed corpus carries instead of the text
    )


def iter_trace_file(path: str | Path) -> Iterator[QuestionTraces]:
    """Yield one QuestionTraces per line; the shape (OVM, ours, generic) is detected per line."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"trace file {str(p)!r} does not exist.")
    source = Path(p.name.removesuffix(".gz")).stem
    with gzip.open(p, "rt", encoding="utf-8") if p.name.endswith(".gz") else p.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{p}:{line_no + 1}: not valid JSON ({exc.msg}).") from exc
            if "outputs" in obj:
                yield _from_ovm(obj, source)
            elif "traces" in obj and ("question" in obj or "question_id" in obj):
                yield _from_ours(obj, source, line_no)
            else:
                raise ConfigError(
                    f"{p}:{line_no + 1}: unknown trace format; expected keys question (or question_id) + traces "
                    "(see deepprune_agents/trace_io.py) or an OVM line with outputs."
                )


def load_traces(paths: Iterable[str | Path]) -> list[QuestionTraces]:
    """All questions of all files, in file order."""
    return [q for path in paths for q in iter_trace_file(path)]


def to_json(q: QuestionTraces) -> dict[str, Any]:
    """Our JSONL shape of one question (round-trips through ``iter_trace_file``)."""
    traces = []
    for t in q.traces:
        d: dict[str, Any] = {"text": t.text, "answer": t.answer, "correct": t.correct}
        if t.tokens is not None:
            d["tokens"] = t.tokens
        if t.token_logprobs is not None:
            d["token_logprobs"] = t.token_logprobs
        traces.append(d)
    out: dict[str, Any] = {
        "question_id": q.question_id,
        "question": q.question,
        "ground_truth": q.ground_truth,
        "source": q.source,
        "traces": traces,
    }
    if q.text_key and not q.question:
        out["question_key"] = q.text_key
    return out


def write_traces(path: str | Path, questions: Iterable[QuestionTraces]) -> None:
    with Path(path).open("w", encoding="utf-8") as fh:
        for q in questions:
            fh.write(json.dumps(to_json(q), ensure_ascii=False) + "\n")
