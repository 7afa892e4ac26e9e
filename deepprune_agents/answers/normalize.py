"""Answer normalization: the canonical string two answers must share to be *trivially* equal.

Pure (no I/O) and total: any ``str`` gives a ``str``. It removes presentation only, so it can be tested
on its own (``tests/unit/test_answers_normalize.py``) and reused by a task-specific pipeline:

* LaTeX: ``$``, ``\\text{}``, ``\\left``/``\\right``, spacing commands, ``\\dfrac`` -> ``\\frac``, a whole-string
  ``\\boxed{}``, degree signs;
* numbers: thousands separators, trailing zeros after a decimal point, a leading ``+``, unit words after
  a number ("18 dollars"), currency signs, a percent sign (see ``deepprune_agents.answers`` on why);
* dates: every form ``dates.parse_date`` reads becomes ISO ``YYYY-MM-DD`` ("11/22/2001",
  "November 22, 2001" and "22 Nov 2001" all give ``2001-11-22``);
* numbers in words: "two", "twenty-five apples", "one hundred and five" become numerals (a spoken
  fraction or decimal, "two thirds", stays words);
* free text (letters, spaces, ``' . , ! ? ; :`` only): lower-cased, punctuation dropped, a leading
  article ("the", "a", "an") dropped, so "The Eiffel Tower." == "eiffel tower". Single letters keep
  their case: they are choices or variables;
* whitespace: removed (except the one that ends a LaTeX command before a letter).
"""

from __future__ import annotations

import re

from deepprune_agents.answers.dates import canonical_date
from deepprune_agents.answers.extract import _BOX_RE, _matching_braces

__all__ = ["normalize_answer"]

_TEXT_CMD_RE = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_SPACING_RE = re.compile(r"\\[,;:! ]|\\quad|\\qquad|~")
_DEGREE_RE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°")
_VAR_ASSIGN_RE = re.compile(r"^[A-Za-z]\s*=\s*(?=\S)")
_THOUSANDS_RE = re.compile(r"(?<![\d.])\d{1,3}(?:,\d{3})+(?![\d,])")
_LATEX_THOUSANDS_RE = re.compile(r"(?<=\d)\{,\}(?=\d{3})")
_NUMBER_RE = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_PAREN_CHOICE_RE = re.compile(r"^\(\s*([A-Ea-e])\s*\)$")
_FRAC_SHORT_RE = re.compile(r"\\frac\s*(\d)\s*(\d)")
_SQRT_SHORT_RE = re.compile(r"\\sqrt\s*(\d)")
# Words must be whitespace-separated so the pattern has one way to match (no backtracking blow-up).
_UNIT_TAIL_RE = re.compile(r"([-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*([A-Za-z]{2,}(?:\.?\s+[A-Za-z]{2,}){0,2}\.?)")
_NOT_UNITS = frozenset({"pi", "sqrt", "and", "or", "to", "of", "times", "plus", "minus", "over", "by", "divided"})
# A currency sign or word only before an amount: the words "usd"/"rs" alone (or "RS", a name) are answers.
_CURRENCY_RE = re.compile(r"^(?:\\\$|\$|usd|rs\.?|€|£)\s*(?=[-+]?[\d.])", re.IGNORECASE)


def _unwrap_boxed(s: str) -> str:
    """``\\boxed{X}`` -> ``X`` when the box spans the whole string (a ground truth written boxed)."""
    m = _BOX_RE.match(s)
    if m is None:
        return s
    j = m.end()
    while j < len(s) and s[j] in " \t":
        j += 1
    if j < len(s) and s[j] == "{" and _matching_braces(s).get(j) == len(s) - 1:
        return s[j + 1 : -1].strip()
    return s


_WS_RE = re.compile(r"(\\[A-Za-z]+)?\s+")


def _drop_whitespace(s: str) -> str:
    """Remove whitespace, except one space that ends a LaTeX command before a letter ("\\pi r")."""

    def repl(m: re.Match[str]) -> str:
        cmd = m.group(1) or ""
        if cmd and m.end() < len(s) and s[m.end()].isalpha():
            return cmd + " "
        return cmd

    return _WS_RE.sub(repl, s)


_TEXT_PUNCT_RE = re.compile(r"[.,!?;:\"`]")
_WORDS_RE = re.compile(r"[A-Za-z]+(?: [A-Za-z]+)*")
_ARTICLES = frozenset({"the", "a", "an"})


def _free_text(s: str) -> str | None:
    """Canonical form of a free-text answer (words only), or None when ``s`` is not one.

    Needs a word of two letters or more, so math like "x y" or choices like "B" are left to the rest of
    the normalizer."""
    if len(s) > 300:
        return None
    t = " ".join(_TEXT_PUNCT_RE.sub(" ", s.replace("'", "").replace("\u2019", "")).split())
    if not t or _WORDS_RE.fullmatch(t) is None:
        return None
    words = t.lower().split()
    if max(len(w) for w in words) < 2:
        return None
    if len(words) > 1 and words[0] in _ARTICLES:
        words = words[1:]
    return "".join(words)


_SMALL_NUMBERS = {
    w: i
    for i, w in enumerate(
        ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
    )
}  # fmt: skip
_TENS = {
    w: 10 * i
    for i, w in enumerate(("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"), start=2)
}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_MAX_UNIT_WORDS = 2
_SPOKEN_RE = re.compile(r"[A-Za-z][A-Za-z \-.,!]{0,120}")
# "two thirds", "three point five", "one half": fractions and decimals spoken, not a count with its unit.
_NOT_NUMBER_UNITS = frozenset(
    {"half", "halves", "third", "thirds", "quarter", "quarters", "fourth", "fourths", "fifth", "fifths", "sixth",
     "sixths", "seventh", "sevenths", "eighth", "eighths", "ninth", "ninths", "tenth", "tenths", "point",
     "percent", "hundredth", "hundredths", "thousandth", "thousandths"}
)  # fmt: skip
_NOT_A_COUNT_UNIT = _NOT_UNITS | _NOT_NUMBER_UNITS | frozenset(_SCALES)


def _number_words(s: str) -> str | None:
    """``"twenty-five"`` -> ``"25"``, ``"three apples"`` -> ``"3"``, ``"one hundred and five"`` -> ``"105"``: a
    number written in words, optionally followed by up to two unit words (as "18 dollars" is 18), or None.

    Branches write the same count both ways ("The answer is two." / "The answer is 2."); without this the
    vote splits. Only a phrase that *starts* with a number word counts, and "a"/"an" never stands for one
    ("a dozen" stays words)."""
    words = _TEXT_PUNCT_RE.sub(" ", s.lower().replace("-", " ")).split()
    total = current = 0
    last = ""  # the kind of the previous word: "small", "tens", "scale" or "and"
    used = 0
    for i, w in enumerate(words):
        if w in _SMALL_NUMBERS:
            value = _SMALL_NUMBERS[w]
            if last == "small" or (last == "tens" and value >= 10):
                return None  # "two twenty", "twenty twelve": not one number
            current, last = current + value, "small"
        elif w in _TENS:
            if last in ("small", "tens"):
                return None
            current, last = current + _TENS[w], "tens"
        elif w in _SCALES and (last in ("small", "tens") or (last == "scale" and current and _SCALES[w] > 100)):
            if _SCALES[w] == 100:
                current = current * 100
            else:
                total, current = total + current * _SCALES[w], 0
            last = "scale"
        elif w == "and" and last == "scale":  # "one hundred and five" (not "seven and eight")
            last = "and"
            continue
        else:
            break
        used = i + 1
    rest = words[used:]
    if not used or len(rest) > _MAX_UNIT_WORDS or any(w in _NOT_A_COUNT_UNIT for w in rest):
        return None
    return str(total + current)


def normalize_answer(ans: str) -> str:
    """A canonical string for an answer: what two answers must share to be *trivially* equal.

    Removes presentation only: ``$``, ``\\text{}``, ``\\left``/``\\right``, LaTeX spacing, degree signs,
    a leading ``x =``, unit words after a number ("18 dollars"), thousands separators ("1,000"),
    a percent sign (see the module docstring), trailing zeros after a decimal point ("18.0", "0.50"),
    all whitespace; ``\\dfrac``/``\\tfrac`` become ``\\frac``; a parenthesized choice "(b)" becomes "B";
    a purely alphabetic word of two or more letters is lower-cased (single letters keep their case,
    since they may be choices or variables); a date becomes ISO ``YYYY-MM-DD``; free text is lower-cased
    without punctuation or a leading article (module doc).
    """
    if not isinstance(ans, str):
        return ""
    s = ans.strip()
    if len(s) > 10_000:  # not an answer; keep normalization cheap
        return "".join(s.split())
    s = _unwrap_boxed(s)
    s = s.replace("\u2212", "-").replace("\u2013", "-")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = s.replace("\\left", "").replace("\\right", "").replace("\\displaystyle", "")
    for _ in range(3):
        s2 = _TEXT_CMD_RE.sub(r"\1", s)
        if s2 == s:
            break
        s = s2
    s = _SPACING_RE.sub(" ", s)
    s = s.replace("\\(", "").replace("\\)", "").replace("\\[", "").replace("\\]", "")
    s = s.replace("\\$", "$").replace("$", "")
    s = _DEGREE_RE.sub("", s)
    s = s.replace("\\%", "%").strip()
    s = s.strip("*").strip()
    s = s.rstrip(".").strip()
    date = canonical_date(s)
    if date is not None:
        return date
    s = s.rstrip("%").strip()
    s = _CURRENCY_RE.sub("", s)
    s = _VAR_ASSIGN_RE.sub("", s)
    s = _LATEX_THOUSANDS_RE.sub("", s)
    s = _THOUSANDS_RE.sub(lambda m: m.group(0).replace(",", ""), s)
    unit = _UNIT_TAIL_RE.fullmatch(s) if len(s) <= 200 else None
    if unit is not None:
        words = unit.group(2).lower().replace(".", " ").split()
        if not any(w in _NOT_UNITS for w in words):
            s = unit.group(1)
    s = s.rstrip("%").strip()
    s = _FRAC_SHORT_RE.sub(r"\\frac{\1}{\2}", s)
    s = _SQRT_SHORT_RE.sub(r"\\sqrt{\1}", s)
    spoken = _number_words(s) if _SPOKEN_RE.fullmatch(s) else None
    if spoken is not None:
        return spoken
    text = _free_text(s)
    if text is not None:
        return text
    s = _drop_whitespace(s)
    choice = _PAREN_CHOICE_RE.match(s)
    if choice is not None:
        return choice.group(1).upper()
    if _NUMBER_RE.fullmatch(s) and "e" not in s.lower() and "." in s:
        s = s.rstrip("0").rstrip(".") or "0"
        if s in ("-", "+", "-0", "+0"):
            s = "0"
    if s.startswith("+") and len(s) > 1:
        s = s[1:]
    if len(s) > 1 and s.isalpha():  # a free-text word ("Blue", "Monday"); single letters keep case
        s = s.lower()
    return s
