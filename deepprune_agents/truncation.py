"""How much of a branch the judge reads: the first K tokens, or the text up to the K-th reasoning word.

DeepPrune judges *partial* traces: the judge decides early, from a prefix, whether two branches will end
at the same answer. The prefix is cut either by tokens (``tokens:K``; live streams hand us the server's
token pieces, recorded traces are cut with ``simple_tokenize``) or by reasoning words (``words:K``:
up to and including the K-th of "wait", "so", "therefore", ..., the words at which a chain of thought
commits to or revises a step, which the paper found to be where traces diverge).

Everything here is pure and deterministic, so recorded and live traces are cut by the same rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, cast

from deepprune_agents.errors import ConfigError

__all__ = [
    "REASONING_WORDS",
    "TruncationSpec",
    "count_reasoning_words",
    "parse_truncation",
    "reached",
    "simple_tokenize",
    "truncate",
    "truncate_tokens",
    "truncate_words",
]

#: Discourse markers at which a reasoning trace takes, checks or revises a step (DeepPrune's
#: reasoning-word truncation). Lower-case; matched case-insensitively as whole words.
REASONING_WORDS: frozenset[str] = frozenset(
    {
        "wait",
        "thus",
        "since",
        "so",
        "therefore",
        "but",
        "hmm",
        "alternatively",
        "however",
        "then",
        "because",
        "hence",
        "first",
        "second",
        "next",
        "finally",
        "let",
        "now",
        "check",
        "verify",
        "maybe",
        "perhaps",
        "actually",
        "consider",
        "suppose",
        "recall",
        "notice",
        "note",
        "also",
    }
)

_MODES: tuple[str, ...] = ("tokens", "words")
_FORMS = "'tokens:K' (the first K tokens) or 'words:K' (up to the K-th reasoning word), K an integer >= 1"
_WORD_RE = re.compile(r"[^\W\d_]+")
# GPT-2-style pre-tokenization: letters, digit groups of at most 3, punctuation runs, each with at most
# one leading space; remaining whitespace becomes its own pieces. Every character falls in exactly one
# alternative, so the pieces always re-join to the input.
_TOKEN_RE = re.compile(r" ?[^\W\d_]+| ?\d{1,3}| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+")


@dataclass(frozen=True)
class TruncationSpec:
    """``mode`` 'tokens' or 'words' and the count ``k`` (>= 1). Validated on construction."""

    mode: Literal["tokens", "words"]
    k: int

    def __post_init__(self) -> None:
        if self.mode not in _MODES:
            raise ConfigError(f"truncation mode {self.mode!r} is unknown: use {_FORMS}.")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ConfigError(f"truncation count k must be an integer >= 1 (got {self.k!r}): use {_FORMS}.")

    def __str__(self) -> str:
        return f"{self.mode}:{self.k}"


def parse_truncation(spec: str | TruncationSpec) -> TruncationSpec:
    """Parse ``'tokens:32'`` / ``'words:25'`` (case and spaces ignored); a TruncationSpec passes through."""
    if isinstance(spec, TruncationSpec):
        return spec
    if not isinstance(spec, str):
        got = type(spec).__name__
        raise ConfigError(f"truncation must be a string (got {got}): use {_FORMS}.")
    mode, sep, count = spec.strip().partition(":")
    mode = mode.strip().lower()
    count = count.strip()
    if not sep or mode not in _MODES or not count.isascii() or not count.isdigit():
        raise ConfigError(f"invalid truncation {spec!r}: use {_FORMS}, e.g. 'tokens:32' or 'words:25'.")
    return TruncationSpec(mode=cast(Literal["tokens", "words"], mode), k=int(count))


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k must be an integer >= 1 (got {k!r}).")


def truncate_tokens(pieces: Sequence[str], k: int) -> str:
    """The text of the first ``k`` token pieces (all of them when there are fewer)."""
    _check_k(k)
    return "".join(pieces[:k])


def simple_tokenize(text: str) -> list[str]:
    """Split ``text`` into BPE-like pieces, for recorded traces that carry no server tokens.

    Words, digit groups of up to three digits and punctuation runs, each keeping one leading space;
    ``"".join(simple_tokenize(t)) == t`` for every ``t``. Counts land close to a real BPE tokenizer on
    English math text, which is all 'tokens:K' needs to cut a recorded trace comparably to a live one.
    """
    return _TOKEN_RE.findall(text)


def _word_ends(text: str, words: Iterable[str]) -> Iterable[int]:
    """End offsets of the reasoning words in ``text``, in order."""
    vocab = REASONING_WORDS if words is REASONING_WORDS else frozenset(w.lower() for w in words)
    for m in _WORD_RE.finditer(text):
        if m.group(0).lower() in vocab:
            yield m.end()


def truncate_words(text: str, k: int, words: Iterable[str] = REASONING_WORDS) -> str:
    """``text`` up to and including the ``k``-th reasoning word (whole words, any case); all of it when
    fewer than ``k`` occur."""
    _check_k(k)
    for seen, end in enumerate(_word_ends(text, words), start=1):
        if seen == k:
            return text[:end]
    return text


def count_reasoning_words(text: str, words: Iterable[str] = REASONING_WORDS) -> int:
    """How many reasoning words ``text`` contains (whole words, any case)."""
    return sum(1 for _ in _word_ends(text, words))


def truncate(text: str, spec: TruncationSpec, pieces: Sequence[str] | None = None) -> str:
    """Cut ``text`` by ``spec``; in tokens mode the server's ``pieces`` are used when given."""
    if spec.mode == "tokens":
        return truncate_tokens(pieces if pieces is not None else simple_tokenize(text), spec.k)
    return truncate_words(text, spec.k)


def reached(text: str, spec: TruncationSpec, pieces: Sequence[str] | None = None) -> bool:
    """Whether the trace is long enough that ``truncate`` is final: growing the text cannot change it.

    * tokens, server ``pieces``: ``len(pieces) >= k`` (emitted pieces never change);
    * tokens, no pieces: ``simple_tokenize`` must yield *more* than ``k`` pieces, because the last
      piece of a growing text may still grow ("hel" -> "hello");
    * words: the ``k``-th reasoning word must be followed by a character, for the same reason
      ("so" -> "some").

    A finished trace is final whatever this says; callers check that separately.
    """
    if spec.mode == "tokens":
        if pieces is not None:
            return len(pieces) >= spec.k
        return len(simple_tokenize(text)) > spec.k
    for seen, end in enumerate(_word_ends(text, REASONING_WORDS), start=1):
        if seen >= spec.k:
            return end < len(text)
    return False
