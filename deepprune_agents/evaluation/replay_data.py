"""Recorded traces prepared for replay: token pieces, answers, and which trace a seed stands for.

The replay server and the offline simulator must agree on everything a run depends on, so both read
it from here:

* the token pieces of a trace (``simple_tokenize``: what the server streams, one piece per chunk, and
  what the simulator advances by one per tick);
* the answer of a full trace as the engine would extract it (``extract_answer`` on the text, or the
  run's ``answer_pattern`` extractor: the same call the engine makes when a stream finishes), next to the
  answer recorded in the file (what the oracle judge reads), and how often the two agree per data set
  (``extraction_agreement``: an accuracy figure resting on an extractor that disagrees with the
  source's own extraction is suspect, so the evaluation warns below ``AGREEMENT_WARN``);
* ``trace_index(question_id, n_traces, seed)``: the recorded trace a request with ``seed`` is served.
  A seed is read as ``run * RUN_STRIDE + i``: run ``r`` is a seeded permutation of the question's traces
  and branch ``i`` takes its ``i``-th element. The engine gives branch ``i`` the seed ``ctx.seed + i``, so a
  run started with ``ctx.seed = run_seed(r)`` draws N *distinct* traces (N <= the number recorded), and
  different runs draw different subsets: exactly the bootstrap draw of the evaluation.

Pure: no I/O beyond ``load_replay_questions``, which only reads trace files.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepprune_agents.answers import Extractor, answers_equal, extract_answer, is_no_answer
from deepprune_agents.errors import ConfigError
from deepprune_agents.trace_io import load_traces
from deepprune_agents.traces import QuestionTraces
from deepprune_agents.truncation import simple_tokenize

log = logging.getLogger(__name__)

#: Below this share of branches agreeing with the recorded answers, an evaluation warns.
AGREEMENT_WARN = 0.95

#: Seeds ``run * RUN_STRIDE + i`` address branch ``i`` of bootstrap run ``run``.
RUN_STRIDE = 1 << 20

_WS = re.compile(r"\s+")


def normalize_ws(text: str) -> str:
    """Collapse every whitespace run to one space and strip (question matching ignores layout)."""
    return _WS.sub(" ", text).strip()


def run_seed(run: int) -> int:
    """The base seed (``DeepPruneContext.seed``) of bootstrap run ``run``."""
    if run < 0:
        raise ConfigError(f"run must be >= 0 (got {run}).")
    return run * RUN_STRIDE


@functools.lru_cache(maxsize=4096)
def _permutation(question_id: str, n_traces: int, run: int) -> tuple[int, ...]:
    order = list(range(n_traces))
    random.Random(f"deepprune-replay/{question_id}/{run}").shuffle(order)
    return tuple(order)


def trace_index(question_id: str, n_traces: int, seed: int) -> int:
    """The recorded trace served for ``seed`` (deterministic; distinct for the branches of one run)."""
    if n_traces < 1:
        raise ConfigError(f"question {question_id!r} has no recorded trace to replay.")
    run, i = divmod(int(seed), RUN_STRIDE)
    return _permutation(question_id, n_traces, run)[i % n_traces]


def draw(question_id: str, n_traces: int, n: int, run: int) -> list[int]:
    """Trace indices of the ``n`` branches of bootstrap run ``run`` (what the engine is served)."""
    base = run_seed(run)
    return [trace_index(question_id, n_traces, base + i) for i in range(n)]


@dataclass(frozen=True)
class ReplayTrace:
    """One recorded trace, cut into the pieces the server streams."""

    text: str
    pieces: tuple[str, ...]
    answer: str | None  # the run's extractor on text (extract_answer by default): what the engine votes with
    recorded_answer: str | None  # the file's answer: what the oracle judge reads
    correct: bool | None
    token_logprobs: tuple[float, ...] | None = None
    offsets: tuple[int, ...] = field(default=(), repr=False)  # offsets[t] = len("".join(pieces[:t]))

    @property
    def n_tokens(self) -> int:
        return len(self.pieces)

    def prefix(self, tokens: int) -> str:
        """The text of the first ``tokens`` pieces."""
        return self.text[: self.offsets[min(tokens, len(self.pieces))]]


def make_trace(
    text: str,
    *,
    recorded_answer: str | None = None,
    correct: bool | None = None,
    token_logprobs: Sequence[float] | None = None,
    extract: Extractor = extract_answer,
) -> ReplayTrace:
    pieces = tuple(simple_tokenize(text))
    offsets = [0]
    for p in pieces:
        offsets.append(offsets[-1] + len(p))
    answer = extract(text)
    return ReplayTrace(
        text=text,
        pieces=pieces,
        answer=answer,
        recorded_answer=recorded_answer if recorded_answer is not None else answer,
        correct=correct,
        token_logprobs=tuple(token_logprobs) if token_logprobs is not None else None,
        offsets=tuple(offsets),
    )


@dataclass(frozen=True)
class ReplayQuestion:
    """A question with its recorded traces, ready to be served or simulated."""

    question_id: str
    question: str
    ground_truth: str | None
    traces: tuple[ReplayTrace, ...]
    source: str = ""

    @property
    def has_logprobs(self) -> bool:
        return bool(self.traces) and all(t.token_logprobs is not None for t in self.traces)

    def is_correct(self, answer: str | None) -> bool:
        """Whether a voted answer matches the ground truth (False without one)."""
        return self.ground_truth is not None and answer is not None and answers_equal(answer, self.ground_truth)

    def drawn(self, n: int, run: int) -> list[ReplayTrace]:
        """The ``n`` traces of bootstrap run ``run`` (``draw``): what every method of that run is served."""
        return [self.traces[i] for i in draw(self.question_id, len(self.traces), n, run)]


def from_question_traces(q: QuestionTraces, extract: Extractor = extract_answer) -> ReplayQuestion:
    traces = tuple(
        make_trace(
            t.text, recorded_answer=t.answer, correct=t.correct, token_logprobs=t.token_logprobs, extract=extract
        )
        for t in q.traces
    )
    return ReplayQuestion(q.question_id, q.question, q.ground_truth, traces, q.source)


def with_extractor(questions: Sequence[ReplayQuestion], extract: Extractor) -> list[ReplayQuestion]:
    """The same questions with every trace's ``answer`` re-extracted by ``extract`` (a run's
    ``answer_pattern``); recorded answers are kept."""
    return [
        dataclasses.replace(q, traces=tuple(dataclasses.replace(t, answer=extract(t.text)) for t in q.traces))
        for q in questions
    ]


def extraction_agreement(questions: Sequence[ReplayQuestion]) -> dict[str, dict[str, Any]]:
    """Per data set (``source``): how often the extracted answer (``ReplayTrace.answer``) agrees with the
    recorded one. A recorded "No answer!" / "[invalid]" counts as no answer, and both absent agree.
    Where a file records no answers the loader filled them with the built-in extractor, so agreement
    there only measures a custom ``answer_pattern`` against the built-in chain."""
    tally: dict[str, list[int]] = {}
    for q in questions:
        row = tally.setdefault(q.source or "?", [0, 0, 0])
        for t in q.traces:
            recorded = None if is_no_answer(t.recorded_answer) else t.recorded_answer
            row[0] += 1
            row[1] += (t.answer is None and recorded is None) or answers_equal(t.answer, recorded)
            row[2] += t.answer is None
    return {
        source: {"branches": n, "agree": agree / n, "unextracted": none / n, "ok": agree / n >= AGREEMENT_WARN}
        for source, (n, agree, none) in tally.items()
        if n
    }


def agreement_warnings(agreement: dict[str, dict[str, Any]]) -> list[str]:
    """A warning (also logged) for every data set whose agreement is below ``AGREEMENT_WARN``."""
    warnings = [
        f"answer extraction agrees with the recorded answers on only {row['agree']:.1%} of {row['branches']} "
        f"branches of {source!r} (< {AGREEMENT_WARN:.0%}): accuracy figures on it rest on a doubtful extractor; "
        "check answers.extract_answer on its traces or pass an answer_pattern."
        for source, row in agreement.items()
        if not row["ok"]
    ]
    for w in warnings:
        log.warning(w)
    return warnings


def load_replay_questions(paths: Iterable[str | Path], *, extract: Extractor = extract_answer) -> list[ReplayQuestion]:
    """Read trace files (every format ``trace_io`` knows) and prepare them for replay; ``extract`` is the
    run's answer extractor (``answers.make_extractor(answer_pattern)``)."""
    questions = [from_question_traces(q, extract) for q in load_traces(paths)]
    if not questions:
        raise ConfigError("the trace files hold no question: pass JSONL files with one question per line.")
    seen: set[str] = set()
    for q in questions:
        if q.question_id in seen:
            raise ConfigError(f"question id {q.question_id!r} occurs twice: give each line a distinct question_id.")
        seen.add(q.question_id)
        if not q.traces:
            raise ConfigError(f"question {q.question_id!r} has no trace: every line needs at least one.")
    return questions


class QuestionIndex:
    """Finds the recorded question a prompt asks, by whitespace-normalized containment.

    The prompt (last user message or completions prompt) usually wraps the question in a template, so
    we look for the recorded question *inside* it; the longest match wins (a question that is a prefix
    of another must not shadow it)."""

    def __init__(self, questions: Sequence[ReplayQuestion]) -> None:
        self.questions = list(questions)
        self._norm = sorted(((normalize_ws(q.question), q) for q in self.questions), key=lambda p: -len(p[0]))
        self._exact = {n: q for n, q in self._norm}

    def find(self, prompt: str) -> ReplayQuestion | None:
        norm = normalize_ws(prompt)
        hit = self._exact.get(norm)
        if hit is not None:
            return hit
        for qn, q in self._norm:
            if qn and qn in norm:
                return q
        return None


@functools.lru_cache(maxsize=65536)
def thinking_pieces(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A trace served as a reasoning model: the pieces of its thinking, then those of its answer
    (``split_recorded``); what the replay server streams in its reasoning mode and the simulator replays."""
    from deepprune_agents.backends.reasoning import split_recorded

    thinking, answer = split_recorded(text)
    return tuple(simple_tokenize(thinking)), tuple(simple_tokenize(answer))


def as_reasoning_trace(trace: ReplayTrace) -> tuple[ReplayTrace, int]:
    """``trace`` as a reasoning model streams it (tags dropped; thinking, then answer) and how many of its
    pieces are thinking. The answer is the engine's: from the content, or the thinking when it has none."""
    from deepprune_agents.engine import branch_answer

    thinking, answer = thinking_pieces(trace.text)
    pieces = thinking + answer
    offsets = [0]
    for p in pieces:
        offsets.append(offsets[-1] + len(p))
    reasoning_text, content = "".join(thinking), "".join(answer)
    logprobs = trace.token_logprobs if trace.token_logprobs and len(trace.token_logprobs) == len(pieces) else None
    converted = ReplayTrace(
        text=reasoning_text + content,
        pieces=pieces,
        answer=branch_answer(content, reasoning_text, "stop"),
        recorded_answer=trace.recorded_answer,
        correct=trace.correct,
        token_logprobs=logprobs,
        offsets=tuple(offsets),
    )
    return converted, len(thinking)
