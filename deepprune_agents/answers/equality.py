"""Answer equality, grouping keys and vote classes, layered from cheap to expensive.

1. normalized strings (``normalize_answer``) are equal;
2. both parse as exact rationals (``72``, ``1,000``, ``0.75``, ``3/4``, ``\\frac{3}{4}``) and are equal
   (integers exactly, non-integers within a relative tolerance of 1e-6, so ``0.333333`` == ``1/3``);
3. both parse as small symbolic expressions and sympy proves their difference is zero.

Dates and other non-numbers are compared as normalized strings only: a date-shaped string
(``11/22/2001``, ``2001-11-22``) never reaches 2 or 3, so ``11/22/2001`` is a day, not 11 / 22 / 2001,
and ``11/22/2001`` != ``22/44/2001`` although both are 1/4002 as arithmetic.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from fractions import Fraction

from deepprune_agents.answers.dates import is_date_shaped
from deepprune_agents.answers.normalize import _NUMBER_RE, normalize_answer
from deepprune_agents.answers.symbolic import MAX_SYMPY_CHARS, symbolic_equal

__all__ = ["answer_key", "answers_equal", "group_answers"]

_MAX_EXPONENT = 1000  # Fraction("1e999999999") would build a billion-digit integer
_PLAIN_FRACTION_RE = re.compile(r"([-+]?)(\d{1,60})/(\d{1,60})")
_LATEX_FRACTION_RE = re.compile(r"([-+]?)(\d{1,60})?\\frac\{([-+]?\d{1,60})\}\{([-+]?\d{1,60})\}")
_REL_TOL = Fraction(1, 10**6)


def _parse_decimal(s: str) -> Fraction | None:
    if len(s) > 200 or not _NUMBER_RE.fullmatch(s):
        return None
    _, _, exponent = s.lower().partition("e")
    if exponent and abs(int(exponent)) > _MAX_EXPONENT:
        return None
    try:
        return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None


def _to_number(norm: str) -> Fraction | None:
    """The exact rational a *normalized* answer denotes, or None (``"3/4"``, ``"1\\frac{1}{2}"`` = 3/2)."""
    if not norm or len(norm) > 200:
        return None
    value = _parse_decimal(norm)
    if value is not None:
        return value
    m = _PLAIN_FRACTION_RE.fullmatch(norm)
    if m is not None:
        den = int(m.group(3))
        if den == 0:
            return None
        value = Fraction(int(m.group(2)), den)
        return -value if m.group(1) == "-" else value
    m = _LATEX_FRACTION_RE.fullmatch(norm)
    if m is not None:
        den = int(m.group(4))
        if den == 0:
            return None
        value = Fraction(int(m.group(3)), den)
        if m.group(2):  # mixed number "1\frac{1}{2}"
            if value < 0:
                return None
            value += int(m.group(2))
        return -value if m.group(1) == "-" else value
    return None


def _numbers_equal(x: Fraction, y: Fraction) -> bool:
    """Integers compare exactly (GSM8K answers reach millions: 1000000 != 1000001); others within 1e-6."""
    if x == y:
        return True
    if x.denominator == 1 and y.denominator == 1:
        return False
    return abs(x - y) <= _REL_TOL * max(abs(x), abs(y))


def _number_key(x: Fraction) -> str:
    """Canonical numeral: "72", "-0.75", or "1/3" when the decimal expansion does not terminate."""
    if x.denominator == 1:
        return str(x.numerator)
    den = x.denominator
    twos = fives = 0
    while den % 2 == 0:
        den //= 2
        twos += 1
    while den % 5 == 0:
        den //= 5
        fives += 1
    if den != 1:
        return f"{x.numerator}/{x.denominator}"
    digits = max(twos, fives)
    scaled = abs(x.numerator) * 10**digits // x.denominator
    whole, frac = divmod(scaled, 10**digits)
    sign = "-" if x < 0 else ""
    return f"{sign}{whole}.{str(frac).rjust(digits, '0').rstrip('0')}"


@functools.lru_cache(maxsize=16384)
def _equal_normalized(na: str, nb: str) -> bool:
    """Equality of two normalized answers; callers pass the pair sorted so the cache is symmetric."""
    if na == nb:
        return True
    if is_date_shaped(na) or is_date_shaped(nb):  # a day is not a fraction: strings only
        return False
    x, y = _to_number(na), _to_number(nb)
    if x is not None and y is not None:
        return _numbers_equal(x, y)
    if len(na) > MAX_SYMPY_CHARS or len(nb) > MAX_SYMPY_CHARS:
        return False
    return symbolic_equal(na, nb)


@functools.lru_cache(maxsize=16384)
def _normalize_cached(ans: str) -> str:
    return normalize_answer(ans)


def answers_equal(a: str | None, b: str | None) -> bool:
    """Whether two final answers are the same for voting and scoring. Symmetric; never raises.

    ``None`` (no answer) equals nothing, not even ``None``; neither does an answer that normalizes to
    the empty string.
    """
    if a is None or b is None or not isinstance(a, str) or not isinstance(b, str):
        return False
    try:
        na, nb = _normalize_cached(a), _normalize_cached(b)
        if not na or not nb:
            return False
        if nb < na:
            na, nb = nb, na
        return _equal_normalized(na, nb)
    except Exception:  # last line of defence: equality must never take a run down
        return False


def answer_key(ans: str | None) -> str | None:
    """A hashable key for grouping votes: numbers map to a canonical numeral ("72", "0.75", "1/3"),
    anything else to its normalized string. Equal keys imply ``answers_equal``; the converse does not
    hold (``group_answers`` merges such classes). None for None or a blank answer.
    """
    if ans is None or not isinstance(ans, str):
        return None
    norm = _normalize_cached(ans)
    if not norm:
        return None
    value = _to_number(norm)
    return _number_key(value) if value is not None else norm


def group_answers(answers: Sequence[str | None]) -> list[list[int]]:
    """Indices of ``answers`` grouped into equivalence classes, ordered by their first index.

    Answers without a key (None, blank) are left out. Classes are first formed by ``answer_key``; then
    a class joins the earliest previous class whose representative (its first member) it
    ``answers_equal``s, so "0.5" and "\\frac{1}{2}" (which both key to "0.5") and "x+1" and "1+x" (found by
    sympy) vote together. Deterministic: the result depends only on the sequence.
    """
    by_key: dict[str, list[int]] = {}
    for i, ans in enumerate(answers):
        key = answer_key(ans)
        if key is not None:
            by_key.setdefault(key, []).append(i)
    merged: list[list[int]] = []
    for members in by_key.values():  # dict order = order of first index
        rep = answers[members[0]]
        for group in merged:
            if answers_equal(answers[group[0]], rep):
                group.extend(members)
                break
        else:
            merged.append(list(members))
    for group in merged:
        group.sort()
    return merged
