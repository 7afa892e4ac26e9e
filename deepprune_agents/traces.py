"""Trace types shared by the live engine, the judges and the offline evaluation.

A *partial trace* is what a judge sees: the text a branch has produced so far (already truncated by the
policy) plus what is known about it. Judges never see branches, streams or graphs, so the same judge
scores live branches and recorded traces alike.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any


def question_text_key(text: str) -> str:
    """One question's identity across files and models: sha1 of its case- and space-normalised text, 16 hex
    digits ("" for empty text).

    The same GSM8K question arrives under different ids from different files (OVM's ``idx``, our
    ``gsm8k_train:{index}``), so grouped splits and leakage checks key questions by text. A packed corpus
    (``corpus/pack.py``) may not carry the text, which is not ours to redistribute, so it carries this key.
    """
    norm = " ".join(text.lower().split())
    return hashlib.sha1(norm.encode("utf-8")).hexdigest()[:16] if norm else ""


@dataclass(frozen=True, slots=True)
class PartialTrace:
    """A prefix of one reasoning trace, as handed to a judge.

    ``answer`` is the *recorded* final answer of the full trace when it is known (offline traces); only
    the oracle judge may look at it. ``tokens`` is the number of generated tokens the text stands for.
    """

    text: str
    tokens: int = 0
    trace_id: str = ""
    finished: bool = False
    answer: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(slots=True)
class Trace:
    """One complete recorded sampled solution."""

    text: str
    answer: str | None = None
    correct: bool | None = None
    tokens: int | None = None
    token_logprobs: list[float] | None = None


@dataclass(slots=True)
class QuestionTraces:
    """All recorded traces of one question (one line of a trace file)."""

    question_id: str
    question: str
    ground_truth: str | None
    traces: list[Trace]
    source: str = ""
    #: ``question_text_key`` of the question, read from a record that has the key but not the text (a packed
    #: corpus); empty otherwise.
    text_key: str = ""
