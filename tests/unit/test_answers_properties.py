"""Property tests: the answer functions are total, symmetric and consistent on arbitrary text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from deepprune_agents.answers import answer_key, answers_equal, extract_answer, group_answers, normalize_answer
from deepprune_agents.truncation import TruncationSpec, reached, simple_tokenize, truncate, truncate_words

FAST = settings(max_examples=200, deadline=None)

# Text that looks like answers, so the interesting branches (numbers, fractions, LaTeX) get exercised
# and not only random unicode.
_ATOMS = st.sampled_from(
    ["1", "2", "0.5", "3/4", "1,000", "%", "$", "x", "y", "+", "-", "^", "(", ")", "{", "}", " ", "\\frac",
     "\\sqrt", "\\boxed", "\\pi", "\\text", "dollars", "B", "(b)", "=", ".", "The answer is ", "#### "]
)  # fmt: skip
answer_like = st.lists(_ATOMS, max_size=12).map("".join)
any_text = st.one_of(st.text(max_size=300), answer_like)
maybe_answer = st.one_of(st.none(), answer_like, st.text(max_size=20))


@FAST
@given(any_text)
def test_extract_answer_never_raises(text: str) -> None:
    found = extract_answer(text)
    assert found is None or (isinstance(found, str) and found == found.strip() and found != "")


@FAST
@given(any_text)
def test_normalize_answer_is_total_and_drops_whitespace(text: str) -> None:
    norm = normalize_answer(text)
    assert isinstance(norm, str)
    assert not any(ch.isspace() and ch != " " for ch in norm)


@FAST
@given(maybe_answer, maybe_answer)
def test_answers_equal_is_symmetric_and_total(a: str | None, b: str | None) -> None:
    assert answers_equal(a, b) == answers_equal(b, a)


@FAST
@given(maybe_answer)
def test_answer_equals_itself_unless_blank(a: str | None) -> None:
    assert answers_equal(a, a) == (answer_key(a) is not None)


@FAST
@given(maybe_answer, maybe_answer)
def test_equal_keys_imply_equal_answers(a: str | None, b: str | None) -> None:
    if answer_key(a) is not None and answer_key(a) == answer_key(b):
        assert answers_equal(a, b)


@FAST
@given(st.lists(maybe_answer, max_size=10))
def test_group_answers_partitions_the_answered_indices(answers: list[str | None]) -> None:
    groups = group_answers(answers)
    flat = [i for group in groups for i in group]
    assert sorted(flat) == [i for i, a in enumerate(answers) if answer_key(a) is not None]
    assert len(flat) == len(set(flat))
    assert [group[0] for group in groups] == sorted(group[0] for group in groups)
    for group in groups:
        assert group == sorted(group)
        rep = answers[group[0]]
        for i in group:
            # i joined by key with some member j that itself equals the representative
            assert any(
                answer_key(answers[j]) == answer_key(answers[i]) and answers_equal(rep, answers[j]) for j in group
            )


@FAST
@given(st.text(max_size=300))
def test_simple_tokenize_round_trips(text: str) -> None:
    pieces = simple_tokenize(text)
    assert "".join(pieces) == text
    assert all(pieces)


@FAST
@given(st.text(max_size=200), st.integers(min_value=1, max_value=40))
def test_truncations_are_prefixes(text: str, k: int) -> None:
    for spec in (TruncationSpec("tokens", k), TruncationSpec("words", k)):
        cut = truncate(text, spec)
        assert text.startswith(cut)
    assert text.startswith(truncate_words(text, k))


@FAST
@given(st.text(alphabet=st.sampled_from(list("so wait then x1,.")), max_size=60), st.integers(1, 4))
def test_truncate_is_final_once_reached(text: str, k: int) -> None:
    for spec in (TruncationSpec("tokens", k), TruncationSpec("words", k)):
        for end in range(len(text) + 1):
            if reached(text[:end], spec):
                assert truncate(text[:end], spec) == truncate(text, spec)
