"""Property tests for free-form extraction, dates and the per-run extractor: total on any text, linear on
adversarial inputs, and dates compared as days whatever their written form."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from deepprune_agents.answers import answers_equal, canonical_date, extract_answer, make_extractor, normalize_answer

FAST = settings(max_examples=200, deadline=None)
# 200 KB inputs: few examples, and no deadline (the property is "it finishes", not a timing).
LONG = settings(max_examples=12, deadline=None)

_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]  # fmt: skip
days = st.dates(min_value=dt.date(1000, 1, 1), max_value=dt.date(9999, 12, 31))


def _forms(d: dt.date) -> list[str]:
    month = _MONTHS[d.month - 1]
    return [
        f"{d.month:02d}/{d.day:02d}/{d.year}",
        f"{d.month}/{d.day}/{d.year}",
        d.isoformat(),
        f"{month} {d.day}, {d.year}",
        f"{month[:3]} {d.day}, {d.year}",
        f"{d.day} {month[:3]} {d.year}",
        f"{d.day} {month} {d.year}",
    ]


@FAST
@given(days, st.data())
def test_every_form_of_a_day_is_the_same_answer(d: dt.date, data: st.DataObject) -> None:
    forms = _forms(d)
    a = data.draw(st.sampled_from(forms))
    b = data.draw(st.sampled_from(forms))
    assert canonical_date(a) == d.isoformat()
    assert answers_equal(a, b)


@FAST
@given(days, days)
def test_different_days_are_different_answers(d1: dt.date, d2: dt.date) -> None:
    if d1 != d2:
        assert not answers_equal(_forms(d1)[0], _forms(d2)[3])
        assert not answers_equal(_forms(d1)[0], _forms(d2)[0])


@FAST
@given(st.integers(1, 99), st.integers(1, 99), st.integers(1000, 9999))
def test_a_date_shaped_string_is_never_arithmetic(a: int, b: int, year: int) -> None:
    text = f"{a}/{b}/{year}"
    value = Fraction(a, b) / year
    assert not answers_equal(text, f"{value.numerator}/{value.denominator}")
    assert not answers_equal(text, f"{float(value):.12f}")


@FAST
@given(days, st.sampled_from(["The date today is {}.", "It can be written as {}.", "Therefore, {}", "So: {}."]))
def test_a_stated_date_is_extracted(d: dt.date, template: str) -> None:
    for form in _forms(d):
        found = extract_answer("Step 1: think.\nStep 2: " + template.format(form))
        assert found is not None and answers_equal(found, form)


words = st.from_regex(r"[a-z]{2,8}( [a-z]{2,8}){0,3}", fullmatch=True)


@FAST
@given(words)
def test_free_text_ignores_case_punctuation_and_a_leading_article(phrase: str) -> None:
    assume(phrase.split()[0] not in ("the", "an"))  # one leading article is dropped, not two
    assert answers_equal(phrase, "The " + phrase.upper() + ".")
    assert normalize_answer(phrase) == normalize_answer(phrase.title() + "!")


_ADVERSARIAL = st.sampled_from(
    ["is ", "as ", "1/", "11/22/", "November 1, ", "answer is ", "The answer is ", "\\boxed{", "}", "{", "#",
     "(B) ", "option ", ". ", "\n", " ", "$", "=", "1,", "0.", "a", "**", "cannot ", "Step 2."]
)  # fmt: skip


@LONG
@given(st.lists(_ADVERSARIAL, min_size=1, max_size=4), st.text(max_size=20))
def test_extraction_finishes_on_200kb_adversarial_input(atoms: list[str], end: str) -> None:
    unit = "".join(atoms)
    text = unit * (200_000 // len(unit) + 1) + end
    found = extract_answer(text)
    assert found is None or (isinstance(found, str) and found.strip() == found and found)
    by_regex = make_extractor(r"answer is (\S+)")(text)
    assert by_regex is None or (isinstance(by_regex, str) and by_regex)
    regex_found = make_extractor(r"FINAL: (\w+)", fallback=False)(text + " FINAL: done")
    assert regex_found == "done"


@FAST
@given(st.text(max_size=400))
def test_regex_and_callable_extractors_are_total(text: str) -> None:
    for extract in (make_extractor(r"(?i)answer\W+(\w+)"), make_extractor(lambda t: t[:3])):
        found = extract(text)
        assert found is None or (isinstance(found, str) and found.strip() == found and found)
