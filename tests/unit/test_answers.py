"""Hand-checked cases for answer extraction, normalization, equality and vote grouping."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from deepprune_agents.answers import (
    answer_key,
    answers_equal,
    extract_answer,
    group_answers,
    normalize_answer,
)

# ---------------------------------------------------------------- extraction


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # OVM / GSM8K fine-tuned style
        ("She sells 9 eggs for $2 each, so 9 * 2 = $<<9*2=18>>18.\nThe answer is 18", "18"),
        ("Natalia sold 48/2 = 24 clips.\n#### 1,000", "1,000"),
        # boxed, nested braces, the last box wins
        (r"First \boxed{3}. Wait, no: the result is \boxed{\frac{1}{2}}.", r"\frac{1}{2}"),
        (r"so $\boxed{\sqrt{a^{2}+b^{2}}}$", r"\sqrt{a^{2}+b^{2}}"),
        (r"hence \boxed 5", "5"),
        (r"\fbox{42}", "42"),
        # an unclosed box is skipped in favour of the previous well-formed one
        (r"\boxed{7} then \boxed{8", "7"),
        # boxed beats a later "The answer is"
        (r"\boxed{12}. The answer is 13", "12"),
        # phrases: last occurrence, decoration stripped
        ("The answer is 5. Actually, the final answer is 6.", "6"),
        ("**Final answer is $42$.**", "42"),
        ("Answer: 3.5", "3.5"),
        ("So the answer is:\n\n  17", "17"),
        ("The answer is 400+60=460", "460"),
        # hedges and trailing clauses small models write (seen live from SmolLM2-135M): one number each,
        # so that "10" and "indeed 10" vote together
        ("The answer is indeed 10.", "10"),
        ("The answer is approximately 7 days.", "7"),
        ("The answer is 5, which is the result of 9 - 4 as a 1/10 of 9 (which is 5).", "5"),
        ("The answer is 8 + 1, which is 10.", "10"),
        ("The answer is 11 - 1, which equals 9.", "9"),
        ("The answer is 7, so the answer is N.", "7"),
        ("The answer is 360 hours in a day.", "360"),
        ("The answer is 12 (a dozen).", "12"),
        ("The answer is the bird on the tree, which is 3 birds.", "3"),
        # a list, a pair, a date with a comma and a two-number phrase stay whole
        ("The answer is 1, 2.", "1, 2"),
        ("The answer is (2, 3).", "(2, 3)"),
        ("The answer is November 22, 2001.", "November 22, 2001"),
        ("The answer is 10 hours and 3600 minutes.", "10 hours and 3600 minutes"),
        # multiple choice
        ("Therefore the answer is (B).", "B"),
        ("Answer: C", "C"),
        ("The correct option is (D).", "D"),
        ("Looking at each, (A) is correct.", "A"),
    ],
)
def test_extract_answer_cases(text: str, expected: str) -> None:
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "I am not sure how to solve this.", r"\boxed{", "The answer is", "####", r"\boxed{}"],
)
def test_extract_answer_none_when_no_answer(text: str) -> None:
    assert extract_answer(text) is None


def test_extract_answer_is_linear_on_adversarial_input() -> None:
    # Inputs shaped to trigger regex backtracking or quadratic re-scanning; each must take well under
    # a second (quadratic behaviour on 200k characters would take minutes).
    n = 200_000
    adversarial = [
        "\\boxed{" * (n // 7),
        "answer: " * (n // 8),
        "The answer is " + " " * n,
        "(B) is " * (n // 7),
        "{" * n + "x",
        "1" * n + "x",
    ]
    for text in adversarial:
        start = time.perf_counter()
        extract_answer(text)
        normalize_answer(text)
        answers_equal(text, text + "1")
        assert time.perf_counter() - start < 2.0, text[:20]


# ---------------------------------------------------------------- normalization


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("$1,000", "1000"),
        ("1,234,567", "1234567"),
        ("x = 5", "5"),
        (r"\text{18 dollars}", "18"),
        ("18 dollars.", "18"),
        (r"\dfrac{3}{4}", r"\frac{3}{4}"),
        (r"\frac34", r"\frac{3}{4}"),
        ("18.0", "18"),
        ("0.50", "0.5"),
        ("50%", "50"),
        (r"50\%", "50"),
        ("(b)", "B"),
        (r"90^\circ", "90"),
        (r"\left( 1, 2 \right)", "(1,2)"),
        (r"\boxed{7}", "7"),
        ("2 pi", "2pi"),  # "pi" is not a unit
        (r"\pi r^2", r"\pi r^2"),  # the space that ends a LaTeX command is kept
    ],
)
def test_normalize_answer(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected


# ---------------------------------------------------------------- equality


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("72", "72.0"),
        ("1,000", "1000"),
        (r"\frac{1}{2}", "0.5"),
        (r"\boxed{\frac{1}{2}}", "0.5"),
        ("3/4", "0.75"),
        (r"\dfrac{3}{4}", "3/4"),
        ("0.333333", r"\frac{1}{3}"),  # within the 1e-6 relative tolerance
        ("50%", "50"),
        ("$18", "18 dollars"),
        ("(b)", "B"),
        ("x = 5", "5"),
        ("x+1", "1+x"),
        (r"2\sqrt{2}", r"\sqrt{8}"),
        (r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}"),
        ("x^2-1", "(x-1)(x+1)"),
        (r"2^{10}", "1024"),
        (r"\pi r^2", "r^2 pi"),
        ("Blue ", "blue"),  # free text: normalized strings agree after whitespace
    ],
)
def test_answers_equal_true(a: str, b: str) -> None:
    assert answers_equal(a, b)
    assert answers_equal(b, a)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("72", "73"),
        ("1000000", "1000001"),  # integers compare exactly, not within the relative tolerance
        ("50%", "0.5"),  # documented decision: a percent sign is dropped, not divided by 100
        ("0.5", "0.6"),
        ("A", "B"),
        ("blue", "eulb"),  # multi-letter words never go to sympy (no implicit b*l*u*e)
        ("x", "y"),
        ("pi", "3.14"),
        ("E", "e"),  # single letters are plain symbols, not sympy's E/I/S singletons
    ],
)
def test_answers_equal_false(a: str, b: str) -> None:
    assert not answers_equal(a, b)
    assert not answers_equal(b, a)


def test_none_and_blank_equal_nothing() -> None:
    assert not answers_equal(None, None)
    assert not answers_equal(None, "1")
    assert not answers_equal("1", None)
    assert not answers_equal("", "")
    assert not answers_equal("$", "$")
    assert answer_key(None) is None
    assert answer_key("  ") is None


@pytest.mark.parametrize(
    "hostile",
    [
        "__import__('os').system('echo pwned')",
        "9^9^9^9",
        "(10^100)^(10^100)",
        "2**10**10",
        "lambda: 1",
        "x." * 50,
        r"\frac{1}{0}",
        "1/0",
        "1e999999999",
        "(" * 150,
    ],
)
def test_hostile_answers_are_safe_and_fast(hostile: str) -> None:
    start = time.perf_counter()
    assert not answers_equal(hostile, "12345")
    assert time.perf_counter() - start < 5.0


# ---------------------------------------------------------------- keys and grouping


@pytest.mark.parametrize(
    ("raw", "key"),
    [("72", "72"), ("72.00", "72"), ("$1,000", "1000"), ("3/4", "0.75"), (r"\frac{1}{3}", "1/3"), ("-0.50", "-0.5")],
)
def test_answer_key_numbers(raw: str, key: str) -> None:
    assert answer_key(raw) == key


def test_equal_keys_imply_equal_answers() -> None:
    answers = ["0.5", r"\frac{1}{2}", "1/2", "$0.50", "50%", "50", "x+1", "Blue", "blue ", "(b)", "B"]
    for a in answers:
        for b in answers:
            if answer_key(a) == answer_key(b):
                assert answers_equal(a, b), (a, b)


def test_group_answers_merges_equal_forms() -> None:
    answers: list[str | None] = ["0.5", None, r"\frac{1}{2}", "x+1", "1+x", "3", "1/2", "", "3.0"]
    groups = group_answers(answers)
    assert groups == [[0, 2, 6], [3, 4], [5, 8]]


def test_group_answers_is_ordered_by_first_index() -> None:
    groups = group_answers(["b", "a", "b", "c", "a"])
    assert groups == [[0, 2], [1, 4], [3]]
    assert group_answers([]) == []
    assert group_answers([None, None]) == []


# ---------------------------------------------------------------- real traces


def _shared_data() -> Path:
    default = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
    return Path(os.environ.get("DEEPPRUNE_SHARED_DATA", default))


@pytest.mark.shared_data
def test_extractor_agrees_with_ovm_labels_on_real_traces() -> None:
    """On the recorded GSM8K traces, our extractor must agree with OVM's own extracted answers and
    with its correctness labels (the few disagreements are OVM truncating "400+60=460" to "400")."""
    files = sorted((_shared_data() / "traces").glob("ovm_gsm8k_*.jsonl"))
    if not files:
        pytest.skip(f"no OVM trace files under {_shared_data() / 'traces'} (set DEEPPRUNE_SHARED_DATA)")
    total = parsed = answer_agree = label_agree = 0
    for path in files[:2]:
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                obj = json.loads(line)
                for out in obj["outputs"]:
                    ours = extract_answer(out["response"])
                    theirs = out["response_answer"]
                    total += 1
                    if theirs != "[invalid]":
                        parsed += 1
                        answer_agree += answers_equal(ours, theirs)
                    correct = answers_equal(ours, obj["ground_truth"])
                    label_agree += correct == (out["label"] is True)
    assert parsed > 1000
    assert answer_agree / parsed > 0.99
    assert label_agree / total > 0.99


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('The answer is N" where N is the total number of students.', None),  # the prompt template, echoed
        ("3 + 4 = 7. The answer is 7.\nFinish with a line of the form 'The answer is N.'", "7"),
        ("The answer is N = 12.", "12"),
        ("The answer is n", "n"),
        ("The answer is <answer>.", None),
        # the template quoted after the model's own phrase (seen live from SmolLM2): look further back
        ('So 10 - 3 = 7 candies.\nThe answer is 7.\nMy final answer is the line "The answer is N".', "7"),
        ('The final answer is the line "The answer is N"', None),
    ],
)
def test_an_echoed_placeholder_is_no_answer(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # seen live from SmolLM2 (bench/out/live_vllm_*.json): each split a vote or voted for a non-answer
        ('Mike has 20 - 5 = 15 dollars.\nThe answer is 15."', "15"),  # a closing quote after the period
        ('The answer is 7." Then I checked it.', "7"),
        ('So the answer is "Paris".', "Paris"),
        ("4 legs each, so the total is simply 12.", "12"),  # a hedge before the number
        ("The total is simply wrong.", "simply wrong"),  # ... but only before a number
        ("The cost is also important.", None),
        ("The answer is 4.\nMy final answer is the answer.", "4"),  # "the answer" names none: look further back
        ("2 + 2 = 4. My final answer is the answer.", None),  # no earlier phrase: no vote rather than "the answer"
        ("The answer is the final answer.", None),
        (
            "The answer is 10 dollars, which is 5 pencils of that material.",
            "10",
        ),  # a number with its unit, then a clause
        ("The answer is 12 legs (3 cows x 4 legs).", "12"),  # ... or a parenthesis explaining it
        ("The answer is 7 apples and 2 pears.", "7 apples and 2 pears"),  # no clause break: kept whole
    ],
)
def test_decoration_and_hedges_seen_live(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a short answer, then the reason for it: the answer is the head (held-out sets have such answers)
        ("The answer is yes, because the sun is a star.", "yes"),
        ("The answer is no, since 5 is odd.", "no"),
        ("The answer is George Washington, who was the first president.", "George Washington"),
        ("The answer is Lisbon, as it is the capital.", "Lisbon"),
        # a named answer described by a clause with a number: the name, not the clause's number
        ('The answer is "Mount Everest", which is 8,848 m high.', "Mount Everest"),
        # ... while a head that describes the result still takes the clause's number
        ("The answer is the total, which is 12.", "12"),
        ("The answer is 8 + 1, which is 10.", "10"),
        ("The answer is B, because 2+2=4.", "B"),  # the reason's "=" is not the result
        ("The answer is 12, since 3 x 4 = 12.", "12"),
        ("The answer is Lisbon, which is the capital.", "Lisbon"),
        # an appositive or a list is not a reason: kept whole
        ("So the answer is: Paris, France.", "Paris, France"),
        ("The answer is 1, 2", "1, 2"),
    ],
)
def test_a_short_answer_before_its_reason(text: str, expected: str) -> None:
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # letter answers written with their label or option text (held-out letter-answer sets)
        ("The answer is A: 12", "A"),
        ("So the answer is D) 42.", "D"),
        ("The answer is option D.", "D"),
        ("The correct choice is **(B) 24**", "B"),  # markdown around the choice
        ("Thus, (C).", "C"),  # a concluding sentence that is only a choice
        ("Thus, A.", "A"),
        # ... but a capital letter that starts a word or a name is no choice
        ("The answer is A cat.", "A cat"),
        ("So, I.", None),
    ],
)
def test_letter_answers_with_labels(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected
