"""Free-form final answers (dates, phrases, numbers at the end), non-numeric equality, and the per-run
extractor (``answer_pattern``)."""

from __future__ import annotations

import logging

import pytest

from deepprune_agents.answers import (
    answer_key,
    answers_equal,
    extract_answer,
    group_answers,
    is_no_answer,
    make_extractor,
)
from deepprune_agents.errors import ConfigError
from deepprune_agents.settings import DeepPruneContext

DATE_TRACE = (
    "#5. (by #2) Step 1: Thanksgiving 2001 falls on November 22.\n\n"
    "#7. (by #4 #6) Step 3: Write the answer in MM/DD/YYYY.\n"
)


@pytest.mark.parametrize(
    ("ending", "expected"),
    [
        ("The date today is 11/22/2001.", "11/22/2001"),
        ("The answer in MM/DD/YYYY format is 12/13/2001.", "12/13/2001"),
        ("The date today is November 22, 2001, which can be written as 11/22/2001.", "11/22/2001"),
        ("The date a month ago is 08/14/2020 (09/13/2020 - 30 days).", "08/14/2020"),
        ("The date tomorrow is 6/20/2019.", "6/20/2019"),
        ("The date 10 days ago is Apr 3, 1985.", "Apr 3, 1985"),
        ("Therefore, 11/22/2001", "11/22/2001"),  # a date needs no final period
        ("The capital of France is Paris.", "Paris"),
        ("So she has 18 eggs.", "18"),
        ("Thus the total is $1,250.", "1,250"),
        ("The answer is simply:\n\nToday is 03/05/1973.", "03/05/1973"),
        # a predicate without a number describes its subject, which is the answer (seen live from SmolLM2)
        ("So, 2 is the answer.", "2"),
        ("8 * 3 = 24, which is the answer.", "24"),
        ("In other words, 108 is the number of students in the class.", "108"),
        ("So, there is only 10 dollars left, which is Mikes final answer.", "10"),
        ("Therefore, 10 dollars are required to buy 1 pencil.", "10"),
        ("You can divide the students by the number of girls, which gives you 9.", "9"),
        # ... but not a number in a prepositional phrase, a step label, or before "which can be"
        ("The answer for 3 people is Paris.", "Paris"),
        ("Day 3 is Monday.", "Monday"),
        ("The date is May 6, 2002, which can be written in the format MM/DD/YYYY.", "May 6, 2002"),
        # a concluding sentence with one number states it, wherever it stands (seen in SmolLM2 traces)
        ("Therefore, Julie needs 48 pages to finish tomorrow's reading.", "48"),
        ("So, James writes a 18 pages over a year.", "18"),
        ("So, there are 1 + 1 = 2 flowers that Mark has in his garden.", "2"),  # the right-hand side
        ("Therefore, he has 9.23 * 12.33 = 12.42 dollars in change.", "12.42"),
        ("Therefore, Albert eats 1/4 of the pizza.", "1/4"),
        ("So, Jasper spends $8.00 on the ingredients.", "$8.00"),
        ("In total, she read 5 books in the 3rd week.", "5"),  # an ordinal is not a number
        # a long computation after the copula is judged by its result
        ("The total number of beetles eaten is 240 beetles - 18 beetles eaten daily = 128 beetles eaten daily.", "128"),
    ],
)
def test_free_form_endings(ending: str, expected: str) -> None:
    assert extract_answer(DATE_TRACE + ending) == expected


@pytest.mark.parametrize(
    "ending",
    [
        "Since we cannot calculate the date of tomorrow, we cannot write it as 11/22/2001.",
        "N/A",
        'Write the answer as "N/A" (Not Applicable).',
        "The date 10 days ago from today is [insert calculated date].",
        "The answer is: Cannot be determined without today's date.",
        "Therefore, the answer is unknown without additional information.",
        "Kylar needs to pay 5 * 16 = $<<5",  # cut off by max_tokens: no half-computed vote
        "Then find the price of the thirteenth glass:",
        "The date today is 11/22/2001 (which",  # cut off after a date: the date was not the result yet
        "Starting from 11/22/2001 we subtract",
        "The total is what she pays.",
        "To find out how many students there are in the class, divide them.",  # "in the class" is no answer
        "Thus the answer is based on the concept of multiplication.",
        "So, after 3 days she had 15 apples in her basket.",  # two numbers: which is the result is a guess
        "Julie needs 48 pages to finish tomorrow's reading.",  # no conclusion marker: a step, not the result
        "So, Julie needs 48 pages to finish",  # cut off by max_tokens
    ],
)
def test_endings_that_state_no_answer(ending: str) -> None:
    assert extract_answer(DATE_TRACE + ending) is None


def test_precedence_is_unchanged_boxed_hashes_phrase_then_free_form() -> None:
    tail = "\nThe date today is 11/22/2001."
    assert extract_answer("so \\boxed{7}." + tail) == "7"
    assert extract_answer("#### 42" + tail) == "42"
    assert extract_answer("We get 3.\nThe answer is 5." + "\nSo 5 it is.") == "5"
    assert extract_answer("option (B) is what I pick." + tail) == "B"


def test_answer_phrase_beats_a_later_free_form_sentence() -> None:
    assert extract_answer("The answer is 5.\nThe date today is 11/22/2001.") == "5"


def test_a_short_final_line_is_an_answer_but_not_a_long_one() -> None:
    assert extract_answer("Let me think about capitals.\nParis.") == "Paris"
    assert extract_answer("Let me think.\nIt depends on many things we do not know yet here.") is None


def test_dates_are_days_not_fractions() -> None:
    assert not answers_equal("11/22/2001", "22/44/2001")  # both are 1/4002 as arithmetic
    assert answers_equal("11/22/2001", "November 22, 2001")
    assert answers_equal("11/22/2001", "22 Nov 2001")
    assert answers_equal("8/10/1997", "08/10/1997")
    assert not answers_equal("11/22/2001", "11/22/2002")
    assert not answers_equal("2001-11-22", "1968")  # 2001 - 11 - 22 as arithmetic
    assert answer_key("November 22, 2001") == answer_key("11/22/2001") == "2001-11-22"


def test_strings_are_compared_after_normalization_numbers_as_before() -> None:
    assert answers_equal("The Eiffel Tower", "eiffel tower.")
    assert not answers_equal("Paris", "London")
    assert answers_equal("3/4", "0.75") and answers_equal("\\frac{1}{2}", "0.5") and answers_equal("x+1", "1+x")
    assert group_answers(["11/22/2001", "Nov 22, 2001", "22/44/2001", None, "11/23/2001"]) == [[0, 1], [2], [4]]


def test_no_answer_markers() -> None:
    for marker in (None, "", "  ", "No answer!", "[invalid]", "N/A", "n/a"):
        assert is_no_answer(marker)
    for answer in ("0", "none of the above", "11/22/2001", "No"):
        assert not is_no_answer(answer)


# -- make_extractor -------------------------------------------------------------------------------


def test_default_extractor_is_the_builtin_chain() -> None:
    assert make_extractor(None) is extract_answer


def test_regex_takes_the_last_match_group_and_falls_back() -> None:
    extract = make_extractor(r"FINAL: (\w+)")
    assert extract("FINAL: cat\n... FINAL: dog.") == "dog"
    assert extract("no marker. The answer is 7.") == "7"  # fallback to the built-in chain
    assert make_extractor(r"FINAL: (\w+)", fallback=False)("The answer is 7.") is None
    assert make_extractor(r"\d{4}")("in 1999 and 2001") == "2001"  # no group: the whole match


def test_callable_has_the_last_word_and_cannot_take_a_run_down(caplog: pytest.LogCaptureFixture) -> None:
    assert make_extractor(lambda t: t.split()[-1])("one two three") == "three"
    assert make_extractor(lambda t: None)("The answer is 7.") is None

    def broken(text: str) -> str | None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.WARNING):
        assert make_extractor(broken)("The answer is 7.") is None
    assert "boom" in caplog.text
    assert make_extractor(lambda t: 42)("x") is None  # type: ignore[arg-type,return-value]


@pytest.mark.parametrize("bad", ["(unclosed", "*", "[a-"])
def test_a_bad_regex_is_a_config_error_naming_the_fix(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"answer_pattern .* not a valid regular expression.*leave answer_pattern"):
        make_extractor(bad)
    with pytest.raises(ConfigError, match="answer_pattern"):
        DeepPruneContext(answer_pattern=bad)


def test_wrong_type_and_empty_pattern_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="answer_pattern must be"):
        make_extractor(3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="empty"):
        make_extractor("")


def test_settings_carry_a_callable_through_replace() -> None:
    def mine(text: str) -> str | None:
        return text[-1:] or None

    ctx = DeepPruneContext(answer_pattern=mine)
    assert ctx.replace(n=4).answer_pattern is mine
    assert DeepPruneContext.from_any({"answer_pattern": r"A: (\d+)"}).answer_pattern == r"A: (\d+)"


def test_a_number_followed_by_words_is_that_number_and_a_wrapped_line_is_no_answer() -> None:
    # Two branches saying "21 students" and "21 students in the class" must vote together.
    assert extract_answer("12 + 9 = 21. There are 21 students in the class.") == "21"
    # The last line continues a sentence wrapped after the number: no guess from "in the class".
    assert extract_answer("12 + 9 = 21. So there are 21 students\nin the class.") is None
    assert extract_answer("We compare the options.\nParis.") == "Paris"
