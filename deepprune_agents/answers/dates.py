"""Calendar dates in answers: recognise them in the forms models write and map them to one canonical form.

A date answer is *not* arithmetic: ``11/22/2001`` is November 22, 2001, not 11 / 22 / 2001, so two dates
are the same answer exactly when they name the same day. Recognised (case-insensitive, an optional
weekday in front, "st/nd/rd/th" and "of" allowed)::

    11/22/2001   8/10/1997   22/11/2001 (day first when the first part exceeds 12)
    2001-11-22   2001/11/22  11-22-2001
    November 22, 2001   Nov. 22nd 2001   22 Nov 2001   22nd of November, 2001   Thursday, November 22, 2001

The canonical form is ISO ``YYYY-MM-DD``. A string that merely *looks* like a date but names no real day
(``22/44/2001``) is still date-shaped (``is_date_shaped``): equality then compares it as a string and
never as a fraction. Two-digit years are left alone (the century is a guess).

All patterns are linear: alternatives are disjoint and no quantified group contains another quantifier.
"""

from __future__ import annotations

import datetime as _dt
import re

__all__ = ["canonical_date", "find_dates", "is_date_shaped", "parse_date"]

_MONTHS = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7, "august": 8,
    "september": 9, "october": 10, "november": 11, "december": 12,
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "sept": 9, "oct": 10,
    "nov": 11, "dec": 12,
}  # fmt: skip
_MONTH = "(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_WEEKDAY = r"(?:mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)(?:day|nesday|sday|urday)?\.?,?\s+"
_ORD = r"(?:st|nd|rd|th)?"

_NUMERIC_RE = re.compile(r"(?<![\d/.-])(\d{1,4})([/-])(\d{1,2})\2(\d{1,4})(?![\d/]|-\d|\.\d)")
_MONTH_FIRST_RE = re.compile(rf"\b{_MONTH}\s+(\d{{1,2}}){_ORD},?\s+(\d{{4}})\b", re.IGNORECASE)
_DAY_FIRST_RE = re.compile(rf"\b(\d{{1,2}}){_ORD}\s+(?:of\s+)?{_MONTH},?\s+(\d{{4}})\b", re.IGNORECASE)
_WEEKDAY_PREFIX_RE = re.compile(rf"^{_WEEKDAY}", re.IGNORECASE)
_SHAPED_RE = re.compile(r"\d{1,2}/\d{1,2}/(?:\d{4}|\d{2})|\d{4}[/-]\d{1,2}[/-]\d{1,2}|\d{1,2}-\d{1,2}-\d{4}")


def _day(year: int, month: int, day: int) -> _dt.date | None:
    try:
        return _dt.date(year, month, day)
    except ValueError:
        return None


def _numeric(a: str, sep: str, b: str, c: str) -> _dt.date | None:
    """``a<sep>b<sep>c`` as a date: ISO order when ``a`` has four digits, else US order (day first when
    the month cannot be the first part). The year must have four digits."""
    if len(a) == 4:
        return _day(int(a), int(b), int(c))
    if len(c) != 4 or len(a) > 2:
        return None
    first, second, year = int(a), int(b), int(c)
    if first <= 12:
        return _day(year, first, second)
    return _day(year, second, first)


def find_dates(text: str) -> list[tuple[int, int, _dt.date]]:
    """Every date mention in ``text`` as ``(start, end, date)``, ordered by start (overlaps dropped)."""
    found: list[tuple[int, int, _dt.date]] = []
    for m in _NUMERIC_RE.finditer(text):
        d = _numeric(m.group(1), m.group(2), m.group(3), m.group(4))
        if d is not None:
            found.append((m.start(), m.end(), d))
    for m in _MONTH_FIRST_RE.finditer(text):
        d = _day(int(m.group(3)), _MONTHS[m.group(1).lower()], int(m.group(2)))
        if d is not None:
            found.append((m.start(), m.end(), d))
    for m in _DAY_FIRST_RE.finditer(text):
        d = _day(int(m.group(3)), _MONTHS[m.group(2).lower()], int(m.group(1)))
        if d is not None:
            found.append((m.start(), m.end(), d))
    found.sort(key=lambda t: (t[0], -t[1]))
    out: list[tuple[int, int, _dt.date]] = []
    for item in found:
        if not out or item[0] >= out[-1][1]:
            out.append(item)
    return out


def parse_date(s: str) -> _dt.date | None:
    """The day ``s`` names when the whole of ``s`` is one date (a weekday and a final period allowed)."""
    if not isinstance(s, str) or len(s) > 80:
        return None
    t = s.strip().rstrip(".").strip()
    t = _WEEKDAY_PREFIX_RE.sub("", t)
    dates = find_dates(t)
    if len(dates) == 1 and dates[0][0] == 0 and dates[0][1] == len(t):
        return dates[0][2]
    return None


def canonical_date(s: str) -> str | None:
    """ISO ``YYYY-MM-DD`` of a string that is one date, else None."""
    d = parse_date(s)
    return d.isoformat() if d is not None else None


def is_date_shaped(s: str) -> bool:
    """Whether ``s`` is written like a numeric date (valid or not): such strings are never arithmetic."""
    return isinstance(s, str) and len(s) <= 20 and _SHAPED_RE.fullmatch(s) is not None
