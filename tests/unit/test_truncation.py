"""Truncation specs, the BPE-like tokenizer and the token / reasoning-word cuts."""

from __future__ import annotations

import pytest

from deepprune_agents.errors import ConfigError
from deepprune_agents.truncation import (
    REASONING_WORDS,
    TruncationSpec,
    count_reasoning_words,
    parse_truncation,
    reached,
    simple_tokenize,
    truncate,
    truncate_tokens,
    truncate_words,
)

TRACE = "Let me compute 16 - 3 = 13. So she has 13 eggs. Wait, she also bakes 4, therefore 9 remain."


# ---------------------------------------------------------------- specs


@pytest.mark.parametrize(
    ("raw", "mode", "k"),
    [("tokens:32", "tokens", 32), ("words:25", "words", 25), (" Words : 3 ", "words", 3), ("TOKENS:1", "tokens", 1)],
)
def test_parse_truncation_accepts_both_forms(raw: str, mode: str, k: int) -> None:
    spec = parse_truncation(raw)
    assert (spec.mode, spec.k) == (mode, k)
    assert parse_truncation(str(spec)) == spec


def test_parse_truncation_passes_specs_through() -> None:
    spec = TruncationSpec(mode="words", k=7)
    assert parse_truncation(spec) is spec


@pytest.mark.parametrize("raw", ["tokens", "tokens:", "tokens:0", "tokens:-3", "words:2.5", "lines:4", "", ":5", "32"])
def test_parse_truncation_rejects_bad_input_with_the_accepted_forms(raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_truncation(raw)
    assert "tokens:K" in str(info.value)
    assert "words:K" in str(info.value)


def test_spec_validates_on_construction() -> None:
    with pytest.raises(ConfigError):
        TruncationSpec(mode="tokens", k=0)
    with pytest.raises(ConfigError):
        TruncationSpec(mode="lines", k=3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        parse_truncation(32)  # type: ignore[arg-type]


# ---------------------------------------------------------------- tokenizer


def test_simple_tokenize_round_trips_and_splits_like_bpe() -> None:
    pieces = simple_tokenize(TRACE)
    assert "".join(pieces) == TRACE
    assert pieces[:4] == ["Let", " me", " compute", " 16"]
    # punctuation is its own piece, numbers are cut in groups of at most three digits
    assert simple_tokenize("x=1234567.") == ["x", "=", "123", "456", "7", "."]
    assert simple_tokenize("") == []


def test_simple_tokenize_keeps_whitespace() -> None:
    text = "a  b\n\n  c\t"
    assert "".join(simple_tokenize(text)) == text
    assert all(piece for piece in simple_tokenize(text))


# ---------------------------------------------------------------- token cuts


def test_truncate_tokens_joins_the_first_k_pieces() -> None:
    pieces = ["The", " cat", " sat", "."]
    assert truncate_tokens(pieces, 2) == "The cat"
    assert truncate_tokens(pieces, 10) == "The cat sat."
    with pytest.raises(ConfigError):
        truncate_tokens(pieces, 0)


def test_truncate_tokens_mode_prefers_server_pieces() -> None:
    spec = TruncationSpec(mode="tokens", k=2)
    server_pieces = ["Let me", " compute"]  # a real tokenizer may merge differently
    assert truncate(TRACE, spec, server_pieces) == "Let me compute"
    assert truncate(TRACE, spec) == "Let me"


# ---------------------------------------------------------------- reasoning-word cuts


def test_reasoning_words_contain_the_paper_keywords() -> None:
    for word in ("wait", "thus", "so", "therefore", "but", "hmm", "alternatively", "however", "verify"):
        assert word in REASONING_WORDS
    assert all(word == word.lower() for word in REASONING_WORDS)


def test_truncate_words_cuts_after_the_kth_reasoning_word() -> None:
    # reasoning words in TRACE: Let, So, Wait, also, therefore
    assert count_reasoning_words(TRACE) == 5
    assert truncate_words(TRACE, 1) == "Let"
    assert truncate_words(TRACE, 2) == "Let me compute 16 - 3 = 13. So"
    assert truncate_words(TRACE, 3).endswith("Wait")
    assert truncate_words(TRACE, 6) == TRACE  # fewer than k: the whole text


def test_truncate_words_matches_whole_words_only() -> None:
    text = "Sooner or later, the thesis holds; then we stop."
    assert count_reasoning_words(text) == 1  # "then"; not "Sooner", not "thesis"
    assert truncate_words(text, 1) == "Sooner or later, the thesis holds; then"


def test_truncate_words_custom_vocabulary_is_case_insensitive() -> None:
    assert truncate_words("alpha BETA gamma beta", 2, words={"Beta"}) == "alpha BETA gamma beta"
    assert count_reasoning_words("alpha BETA gamma beta", words=["BETA"]) == 2


# ---------------------------------------------------------------- reached


def test_reached_tokens_with_pieces() -> None:
    spec = TruncationSpec(mode="tokens", k=3)
    assert not reached("a b", spec, ["a", " b"])
    assert reached("a b c", spec, ["a", " b", " c"])


def test_reached_tokens_without_pieces_waits_for_the_kth_piece_to_close() -> None:
    spec = TruncationSpec(mode="tokens", k=2)
    # " hel" may still grow into " hello": not final yet
    assert not reached("Say hel", spec)
    assert reached("Say hello!", spec)
    assert truncate("Say hello!", spec) == truncate("Say hello! More text", spec)


def test_reached_words_waits_for_the_word_to_end() -> None:
    spec = TruncationSpec(mode="words", k=1)
    assert not reached("We have 3 apples", spec)
    assert not reached("We have 3 apples so", spec)  # "so" could still become "some"
    assert reached("We have 3 apples so ", spec)
    assert reached(TRACE, TruncationSpec(mode="words", k=5))
    assert not reached(TRACE, TruncationSpec(mode="words", k=6))


def test_truncate_is_stable_once_reached() -> None:
    """What the judge reads must not change after ``reached`` says the prefix is final."""
    for spec in (TruncationSpec("tokens", 5), TruncationSpec("words", 2)):
        for end in range(len(TRACE) + 1):
            prefix = TRACE[:end]
            if reached(prefix, spec):
                assert truncate(prefix, spec) == truncate(TRACE, spec), (spec, prefix)
