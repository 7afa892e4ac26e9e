"""The normalizer and the date parser on their own: pure functions, tested without extraction or equality."""

from __future__ import annotations

import datetime as dt

import pytest

from deepprune_agents.answers import canonical_date, normalize_answer, parse_date
from deepprune_agents.answers.dates import find_dates, is_date_shaped


@pytest.mark.parametrize(
    "text",
    [
        "11/22/2001",
        "11/22/2001.",
        "2001-11-22",
        "2001/11/22",
        "11-22-2001",
        "22/11/2001",
        "November 22, 2001",
        "november 22 2001",
        "Nov 22, 2001",
        "Nov. 22nd, 2001",
        "22 Nov 2001",
        "22 November 2001",
        "22nd of November, 2001",
        "Thursday, November 22, 2001",
        "$11/22/2001$",
        "**11/22/2001**",
    ],
)
def test_every_written_form_of_a_day_normalizes_to_iso(text: str) -> None:
    assert normalize_answer(text) == "2001-11-22"


def test_unpadded_dates_are_the_same_day() -> None:
    assert canonical_date("8/1/1997") == canonical_date("08/01/1997") == "1997-08-01"


@pytest.mark.parametrize("text", ["22/44/2001", "02/30/2020", "13/13/2001", "2001-13-01", "3/4", "1/2/3", "2001"])
def test_strings_that_name_no_day_are_not_dates(text: str) -> None:
    assert parse_date(text) is None


def test_leap_days_follow_the_calendar() -> None:
    assert parse_date("02/29/2020") == dt.date(2020, 2, 29)
    assert parse_date("02/29/2019") is None


def test_date_shape_is_about_the_writing_not_validity() -> None:
    assert is_date_shaped("22/44/2001") and is_date_shaped("11/22/01") and is_date_shaped("2001-11-22")
    assert not is_date_shaped("3/4") and not is_date_shaped("1/2/3") and not is_date_shaped("November 22, 2001")


def test_find_dates_reports_positions_in_order_without_overlaps() -> None:
    text = "The date today is November 22, 2001, which can be written as 11/22/2001."
    found = find_dates(text)
    assert [text[a:b] for a, b, _ in found] == ["November 22, 2001", "11/22/2001"]
    assert {d for _, _, d in found} == {dt.date(2001, 11, 22)}


def test_numbers_inside_longer_numerals_are_not_dates() -> None:
    assert find_dates("1.11/22/2001") == []  # a decimal before the slash is not a month
    assert find_dates("x = 111/22/2001") == []
    assert find_dates("11/22/2001/5") == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("The Eiffel Tower.", "eiffeltower"),
        ("eiffel tower", "eiffeltower"),
        ("  Yes!  ", "yes"),
        ("an apple", "apple"),
        ("Newton's", "newtons"),
        ("B", "B"),  # a choice keeps its case
        ("x", "x"),  # so does a variable
        ("a", "a"),  # an article alone is the answer
        ("(b)", "B"),
    ],
)
def test_free_text_drops_case_punctuation_and_articles(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("18 dollars", "18"),
        ("$1,000", "1000"),
        ("50\\%", "50"),
        ("\\text{18 cm}", "18"),
        ("\\dfrac{3}{4}", "\\frac{3}{4}"),
        ("\\frac34", "\\frac{3}{4}"),
        ("x = 5", "5"),
        ("18.50", "18.5"),
        ("90^\\circ", "90"),
        ("\\boxed{7}", "7"),
    ],
)
def test_units_and_latex_forms_are_presentation(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected


def test_normalizer_is_idempotent_on_examples() -> None:
    for raw in ["The Eiffel Tower.", "November 22, 2001", "18 dollars", "\\dfrac{3}{4}", "(b)", "x+1"]:
        once = normalize_answer(raw)
        assert normalize_answer(once) == once


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("two", "2"),
        ("Two.", "2"),
        ("zero", "0"),
        ("twenty-five", "25"),
        ("Forty two", "42"),
        ("three apples", "3"),  # a unit after the number, as "18 dollars" is 18
        ("one hundred and five", "105"),
        ("two hundred fifty thousand", "250000"),
        ("one thousand two hundred", "1200"),
    ],
)
def test_numbers_written_in_words_are_numerals(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "two thirds",  # a spoken fraction, not a count of "thirds"
        "two-thirds",
        "three point five",
        "one half",
        "two twenty",  # not one number
        "seven and eight",  # "and" only joins after a scale word
        "a dozen",  # "a" never stands for one
        "one of them",
        "hundred",
        "ten dollars and five cents",
    ],
)
def test_word_phrases_that_are_not_one_number_stay_words(raw: str) -> None:
    assert not normalize_answer(raw).isdigit()


def test_a_count_in_words_votes_with_its_numeral() -> None:
    from deepprune_agents.answers import answers_equal, group_answers

    assert answers_equal("two", "2")
    assert answers_equal("Twenty-five apples", "25")
    assert not answers_equal("two thirds", "2")
    assert group_answers(["2", "two", "Two.", "3"]) == [[0, 1, 2], [3]]
