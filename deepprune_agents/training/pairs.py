"""Pair building and leakage-free splits for training and evaluating judges.

A pair is two traces *of the same question*, truncated the way the live policy truncates them; its
label is whether the two full traces end on the same answer, using the vote's equality
(``answers.answers_equal``). A trace without an answer (unparseable) agrees with nothing, not even
another unparseable trace: the vote cannot count it either.

Splits group by question *text* (the same GSM8K question appears in the Llama-2 and in the Mistral
files under different ids) and by generating model, so "unseen model" really means unseen model, and
"unseen question" cannot be defeated by the same question arriving from another file.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from deepprune_agents.errors import ConfigError
from deepprune_agents.traces import PartialTrace, QuestionTraces, question_text_key

_OVM_GENERATOR = re.compile(r"_n\d+_(?P<gen>.+)$")


@dataclass(frozen=True, slots=True)
class PairExample:
    """Two truncated traces of one question and whether their full traces reach the same answer."""

    a: PartialTrace
    b: PartialTrace
    label: int
    group: str  # question key (see ``question_key``)
    generator: str

    @property
    def pair(self) -> tuple[PartialTrace, PartialTrace]:
        return (self.a, self.b)


def question_key(q: QuestionTraces) -> str:
    """A stable id of the question *text* (case/space-insensitive), shared across files and models.

    A record without question text is keyed by the text's key it carries (a packed corpus, ``corpus/pack.py``),
    so it still meets the same question from another file; with neither, by its question id, so its questions
    stay apart from each other rather than collapsing into one group of empty text."""
    key = text_identity(q)
    if key:
        return key
    return hashlib.sha1(f"\x00id:{q.question_id}".encode()).hexdigest()[:16]


def text_identity(q: QuestionTraces) -> str:
    """The key of the question's text, or the one a packed record carries in its place; "" when it has neither
    (then only its id names it, and no other file's copy of the question can be recognised)."""
    return question_text_key(q.question) or q.text_key


def generator_of(q: QuestionTraces) -> str:
    """The generating model: parsed from OVM file stems (``..._n500_llama7b-2-ep2``), else ``source``."""
    m = _OVM_GENERATOR.search(q.source)
    return m.group("gen") if m else (q.source or "unknown")


def answers_agree(a: str | None, b: str | None) -> bool:
    """The pair label: equal final answers under the vote's equality; ``None`` agrees with nothing."""
    if a is None or b is None:
        return False
    from deepprune_agents.answers import answers_equal

    return bool(answers_equal(a, b))


def exact_agree(a: str | None, b: str | None) -> bool:
    """String equality of the recorded answers (whitespace-trimmed); ``None`` agrees with nothing.
    For non-numeric answers such as 'MM/DD/YYYY' dates, which a numeric equality reads as fractions."""
    return a is not None and b is not None and a.strip() == b.strip()


def truncated_traces(q: QuestionTraces, truncation: str | None = None) -> list[PartialTrace]:
    """The traces of ``q`` as PartialTraces cut by ``truncation`` ('tokens:K', 'words:K' or None = full).

    Recorded traces have no server token ids, so 'tokens:K' counts ``truncation.simple_tokenize``
    pieces; the policy does the same on replays, so train and use-time inputs match.
    """
    from deepprune_agents.truncation import simple_tokenize

    cut: Callable[[str], str]
    if truncation is None:
        cut = _identity
    else:
        from deepprune_agents.truncation import parse_truncation, truncate

        spec = parse_truncation(truncation)

        def cut(text: str) -> str:
            return str(truncate(text, spec))

    key, gen = question_key(q), generator_of(q)
    out = []
    for i, t in enumerate(q.traces):
        text = cut(t.text)
        out.append(
            PartialTrace(
                text=text,
                tokens=len(simple_tokenize(text)),
                trace_id=f"{q.question_id}#{i}",
                finished=text == t.text,
                answer=t.answer,
                meta={"question_key": key, "generator": gen},
            )
        )
    return out


def _identity(text: str) -> str:
    return text


def build_pairs(
    questions: Iterable[QuestionTraces],
    truncation: str | None = None,
    max_traces: int | None = None,
    max_pairs: int | None = None,
    seed: int = 0,
    agree: Callable[[str | None, str | None], bool] | None = None,
) -> list[PairExample]:
    """All pairs of traces of each question (``i < j``), optionally on a sample.

    ``max_traces`` samples that many traces per question first (C(n, 2) grows fast: 500 traces give
    124,750 pairs); ``max_pairs`` then samples that many pairs per question. Deterministic per seed.
    ``agree`` labels a pair from the two recorded answers (default ``answers_agree``; ``exact_agree``
    for sets whose answers are strings such as dates, which a numeric equality would misread).
    """
    label_of = agree or answers_agree
    if max_traces is not None and max_traces < 2:
        raise ConfigError(f"max_traces must be >= 2 to form a pair (got {max_traces}).")
    if max_pairs is not None and max_pairs < 1:
        raise ConfigError(f"max_pairs must be >= 1 (got {max_pairs}).")
    rng = np.random.default_rng(seed)
    pairs: list[PairExample] = []
    for q in questions:
        traces = truncated_traces(q, truncation)
        idx = np.arange(len(traces))
        if max_traces is not None and len(traces) > max_traces:
            idx = np.sort(rng.choice(idx, size=max_traces, replace=False))
        combos = list(combinations(idx.tolist(), 2))
        if max_pairs is not None and len(combos) > max_pairs:
            keep = np.sort(rng.choice(len(combos), size=max_pairs, replace=False))
            combos = [combos[k] for k in keep]
        agree_cache: dict[tuple[str | None, str | None], bool] = {}
        for i, j in combos:
            a, b = traces[i], traces[j]
            key = (a.answer, b.answer)
            if key not in agree_cache:
                agree_cache[key] = label_of(a.answer, b.answer)
            pairs.append(
                PairExample(
                    a=a,
                    b=b,
                    label=int(agree_cache[key]),
                    group=str(a.meta["question_key"]),
                    generator=str(a.meta["generator"]),
                )
            )
    return pairs


def generators(questions: Iterable[QuestionTraces]) -> list[str]:
    """Distinct generators in first-seen order."""
    return list(dict.fromkeys(generator_of(q) for q in questions))


def split_questions(
    questions: Sequence[QuestionTraces],
    test_generators: Iterable[str] = (),
    test_questions: Iterable[str] | None = None,
) -> tuple[list[QuestionTraces], list[QuestionTraces]]:
    """(train, test) with no generator and no question shared between them.

    Test = traces of ``test_generators`` (if given) on ``test_questions`` keys (if given; else all
    questions). Train = traces of the other generators on the *other* questions. Everything that would
    leak (a test question from a train generator, a train question from a test generator) is dropped.
    """
    test_gens = set(test_generators)
    test_keys = set(test_questions) if test_questions is not None else None
    if not test_gens and test_keys is None:
        raise ConfigError("split_questions needs test_generators and/or test_questions.")
    train, test = [], []
    for q in questions:
        in_gen = not test_gens or generator_of(q) in test_gens
        in_q = test_keys is None or question_key(q) in test_keys
        if in_gen and in_q:
            test.append(q)
        elif (not test_gens or not in_gen) and (test_keys is None or not in_q):
            train.append(q)
    return train, test


def question_folds(questions: Iterable[QuestionTraces], k: int, seed: int = 0) -> list[list[str]]:
    """Question keys dealt into ``k`` folds (shuffled by seed) for grouped cross-validation."""
    keys = sorted({question_key(q) for q in questions})
    if not 1 < k <= len(keys):
        raise ConfigError(f"k must lie in [2, number of distinct questions = {len(keys)}] (got {k}).")
    order = np.random.default_rng(seed).permutation(len(keys))
    return [[keys[i] for i in order[f::k]] for f in range(k)]


def check_no_leakage(
    train: Iterable[PairExample], test: Iterable[PairExample], by: Sequence[str] = ("group", "generator")
) -> None:
    """Raise ConfigError if a question (``group``) or a generator occurs on both sides."""
    train_l, test_l = list(train), list(test)
    for attr in by:
        if attr not in ("group", "generator"):
            raise ConfigError(f"check_no_leakage: unknown key {attr!r}; use 'group' and/or 'generator'.")
        shared = {getattr(p, attr) for p in train_l} & {getattr(p, attr) for p in test_l}
        if shared:
            raise ConfigError(
                f"{len(shared)} {attr} value(s) occur in both train and test pairs (e.g. "
                f"{sorted(shared)[0]!r}): split with split_questions before building pairs."
            )


def labels_of(pairs: Sequence[PairExample]) -> np.ndarray:
    return np.fromiter((p.label for p in pairs), dtype=np.int64, count=len(pairs))
