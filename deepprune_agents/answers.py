"""Final-answer extraction and answer equality, shared by the vote, the oracle judge and the pair labels.

Everything here is pure (no I/O) and total: model output is arbitrary text, so no function raises on any
``str`` and extraction is linear-time (no regex that can backtrack catastrophically, braces matched in
one pass). Equality is layered from cheap to expensive:

1. normalized strings (``normalize_answer``) are equal;
2. both parse as exact rationals (``72``, ``1,000``, ``0.75``, ``3/4``, ``\\frac{3}{4}``) and are equal
   (integers exactly, non-integers within a relative tolerance of 1e-6, so ``0.333333`` == ``1/3``);
3. both parse as small symbolic expressions and sympy proves their difference is zero.

Percent decision: ``normalize_answer`` *drops* a percent sign, so ``"50%"`` equals ``"50"`` but **not**
``"0.5"``. Benchmarks (GSM8K, MATH) state percentage answers as the number of percent; treating "50%" as
0.5 as well would make equality non-transitive (50% == 50 and 50% == 0.5 but 50 != 0.5), which would
make vote grouping depend on branch order.

Safety: sympy's ``parse_expr`` evaluates Python, so model text only reaches it after a token allowlist
(numbers, operators, parentheses, single-letter symbols, a few function names) and with exponents bounded,
so neither code nor a ``9^9^9^9`` tower can run.
"""

from __future__ import annotations

import functools
import re
import string
import warnings
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

__all__ = ["answer_key", "answers_equal", "extract_answer", "group_answers", "normalize_answer"]

# --------------------------------------------------------------------------------------------------
# extraction
# --------------------------------------------------------------------------------------------------

_BOX_RE = re.compile(r"\\(?:boxed|fbox)")
_ANSWER_PHRASE_RE = re.compile(r"\banswer\b[ \t]*(?:is\b[ \t]*:?|:)", re.IGNORECASE)
_CHOICE_HEAD_RE = re.compile(r"\(?([A-Ea-e])\)?(?=$|[\s.,:;)])")
_CHOICE_FALLBACK_RES = (
    # "the correct option is (B)", "choice: C", "option B"
    re.compile(r"\b(?:option|choice)\b[ \t]*(?:is\b[ \t]*)?:?[ \t]*\(([A-E])\)", re.IGNORECASE),
    re.compile(r"\b(?:option|choice)\b[ \t]*(?:is\b[ \t]*)?:?[ \t]*([A-E])\b"),
    # "(B) is correct", "(C) is the right answer"
    re.compile(r"\(([A-E])\)[ \t]+is\b[ \t]+(?:the\b[ \t]+)?(?:correct|right)\b", re.IGNORECASE),
)
_SENTENCE_END_RE = re.compile(r"\.(?=\s)")
_MAX_CAPTURE = 300  # an answer after "The answer is" longer than this is prose, not an answer
# The default system prompt asks for "The answer is N."; small models echo the template itself
# ('The answer is N" where N is the total'). A placeholder is no answer: look further back instead.
_PLACEHOLDER_RE = re.compile(r"^(?:N|<answer>|\[answer\]|\.\.\.)(?=$|[\s\"'.,;:)])")


def _matching_braces(text: str) -> dict[int, int]:
    """Map each ``{`` index to its matching ``}`` index in one linear pass (unmatched ones are absent)."""
    stack: list[int] = []
    match: dict[int, int] = {}
    for i, ch in enumerate(text):
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            match[stack.pop()] = i
    return match


def _boxed(text: str) -> str | None:
    """Content of the last well-formed ``\\boxed{...}`` / ``\\fbox{...}`` / ``\\boxed 5``."""
    starts = [m.end() for m in _BOX_RE.finditer(text)]
    if not starts:
        return None
    braces: dict[int, int] | None = None
    n = len(text)
    for pos in reversed(starts):
        j = pos
        while j < n and text[j] in " \t":
            j += 1
        if j < n and text[j] == "{":
            if braces is None:
                braces = _matching_braces(text)
            end = braces.get(j)
            if end is None:
                continue
            content = text[j + 1 : end].strip()
            if content:
                return content
        elif j > pos and j < n:
            # "\boxed 5": a single space-delimited token
            k = j
            while k < n and not text[k].isspace() and text[k] not in "$":
                k += 1
            token = text[j:k].strip().rstrip(".,;")
            if token:
                return token
    return None


def _clean(raw: str) -> str | None:
    """Strip the decoration models put around an answer: markdown bold, ``$``, a final period."""
    s = raw.strip()
    for _ in range(3):
        before = s
        s = s.strip().strip("*").strip()
        if s.startswith("\\(") and s.endswith("\\)"):
            s = s[2:-2]
        if s.startswith("\\[") and s.endswith("\\]"):
            s = s[2:-2]
        s = s.strip().strip("$").strip()
        s = s.rstrip(".").rstrip()
        if s == before:
            break
    return s or None


def _after_phrase(text: str, end: int) -> str | None:
    """The answer following a phrase ending at ``end``: the rest of the line (or the next line)."""
    rest = text[end : end + _MAX_CAPTURE + 2]
    rest = rest.lstrip(" \t")
    if rest.startswith("\n"):
        rest = rest.lstrip()
    line = rest.split("\n", 1)[0]
    m = _SENTENCE_END_RE.search(line)
    if m is not None:
        line = line[: m.start()]
    if len(line) > _MAX_CAPTURE:
        return None
    cleaned = _clean(line)
    if cleaned is None:
        return None
    inner = _boxed(cleaned)
    if inner is not None:
        return inner
    if "=" in cleaned:  # "The answer is 400+60=460": the result is the last right-hand side
        rhs = _clean(cleaned.rsplit("=", 1)[1])
        if rhs is not None:
            cleaned = rhs
    if _PLACEHOLDER_RE.match(cleaned):
        return None
    choice = _CHOICE_HEAD_RE.match(cleaned)
    if choice is not None and (cleaned.startswith("(") or len(cleaned) <= 2):
        return choice.group(1).upper()
    return cleaned


def extract_answer(text: str) -> str | None:
    """The final answer of a reasoning trace, or None when it states none.

    Priority: the last ``\\boxed{}``/``\\fbox{}`` (nested braces are fine), then the GSM8K ``#### X`` line,
    then the last "The answer is X" / "final answer is X" / "Answer: X", then a multiple-choice phrase
    ("option (B)", "(C) is correct"). Choice letters come back upper-case without parentheses.
    """
    if not isinstance(text, str) or not text:
        return None
    boxed = _boxed(text)
    if boxed is not None:
        return boxed
    hashes = text.rfind("####")
    if hashes >= 0:
        line = text[hashes:].lstrip("#").split("\n", 1)[0]
        cleaned = _clean(line)
        if cleaned is not None:
            return cleaned
    phrase_ends = [m.end() for m in _ANSWER_PHRASE_RE.finditer(text)]
    for end in reversed(phrase_ends):
        found = _after_phrase(text, end)
        if found is not None:
            return found
    best: tuple[int, str] | None = None
    for pattern in _CHOICE_FALLBACK_RES:
        for m in pattern.finditer(text):
            if best is None or m.start() > best[0]:
                best = (m.start(), m.group(1).upper())
    return best[1] if best is not None else None


# --------------------------------------------------------------------------------------------------
# normalization
# --------------------------------------------------------------------------------------------------

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
_CURRENCY_RE = re.compile(r"^(?:\\\$|\$|usd|rs\.?|€|£)\s*", re.IGNORECASE)


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


def normalize_answer(ans: str) -> str:
    """A canonical string for an answer: what two answers must share to be *trivially* equal.

    Removes presentation only: ``$``, ``\\text{}``, ``\\left``/``\\right``, LaTeX spacing, degree signs,
    a leading ``x =``, unit words after a number ("18 dollars"), thousands separators ("1,000"),
    a percent sign (see the module docstring), trailing zeros after a decimal point ("18.0", "0.50"),
    all whitespace; ``\\dfrac``/``\\tfrac`` become ``\\frac``; a parenthesized choice "(b)" becomes "B";
    a purely alphabetic word of two or more letters is lower-cased (single letters keep their case,
    since they may be choices or variables).
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


# --------------------------------------------------------------------------------------------------
# numbers
# --------------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------------
# symbolic
# --------------------------------------------------------------------------------------------------

_MAX_SYMPY_CHARS = 200
_ALLOWED_NAMES = frozenset({"sqrt", "pi", "sin", "cos", "tan", "log", "ln", "exp"})
_LATEX_NAMES = {
    "\\pi": " pi ",
    "\\cdot": "*",
    "\\times": "*",
    "\\div": "/",
    "\\sin": " sin ",
    "\\cos": " cos ",
    "\\tan": " tan ",
    "\\ln": " log ",
    "\\log": " log ",
    "\\exp": " exp ",
    "\\infty": "",  # not supported: forces a rejection below via the empty-name check
}
_PY_TOKEN_RE = re.compile(r"\s+|\d+(?:\.\d*)?|\.\d+|[A-Za-z]+|\*\*|[-+*/()]")
_CMD_RE = re.compile(r"\\[A-Za-z]+")


class _Reject(Exception):
    """The string is outside the tiny LaTeX subset we hand to sympy."""


def _latex_to_python(s: str) -> str:
    """Convert ``\\frac``, ``\\sqrt``, ``^``, ``\\cdot``, ``\\pi``, braces to Python, or raise _Reject."""
    out: list[str] = []
    i, n = 0, len(s)

    def group(j: int) -> tuple[str, int]:
        while j < n and s[j] == " ":
            j += 1
        if j >= n:
            raise _Reject
        if s[j] == "{":
            depth, k = 0, j
            while k < n:
                if s[k] == "{":
                    depth += 1
                elif s[k] == "}":
                    depth -= 1
                    if depth == 0:
                        return _latex_to_python(s[j + 1 : k]), k + 1
                k += 1
            raise _Reject
        if s[j].isalnum():
            return s[j], j + 1
        if s[j] == "\\":
            m = _CMD_RE.match(s, j)
            if m is not None and m.group(0) in _LATEX_NAMES:
                return _LATEX_NAMES[m.group(0)], m.end()
        raise _Reject

    while i < n:
        ch = s[i]
        if s.startswith("\\frac", i):
            num, i = group(i + 5)
            den, i = group(i)
            out.append(f"(({num})/({den}))")
        elif s.startswith("\\sqrt", i):
            j = i + 5
            if j < n and s[j] == "[":
                k = s.find("]", j)
                if k < 0:
                    raise _Reject
                index = _latex_to_python(s[j + 1 : k])
                rad, i = group(k + 1)
                out.append(f"(({rad})**(1/({index})))")
            else:
                rad, i = group(j)
                out.append(f" sqrt({rad})")
        elif ch == "\\":
            m = _CMD_RE.match(s, i)
            if m is None or m.group(0) not in _LATEX_NAMES or not _LATEX_NAMES[m.group(0)]:
                raise _Reject
            out.append(_LATEX_NAMES[m.group(0)])
            i = m.end()
        elif ch == "^":
            exp, i = group(i + 1)
            out.append(f"**({exp})")
        elif ch == "{":
            inner, i = group(i)
            out.append(f"({inner})")
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _safe_python(expr: str) -> str:
    """Accept only numbers, + - * / ** ( ), single-letter symbols and a few function names.

    The tokens are re-joined with spaces so Python cannot fuse them into other literals ("1e999999999"
    would be a float with a billion-digit exponent, "0x1F" a hex number, "1j" an imaginary one).
    """
    tokens: list[str] = []
    pos = 0
    for m in _PY_TOKEN_RE.finditer(expr):
        if m.start() != pos:
            raise _Reject
        pos = m.end()
        token = m.group(0)
        if token.isspace():
            continue
        if token[0].isalpha() and len(token) > 1 and token not in _ALLOWED_NAMES:
            raise _Reject
        if token[0].isdigit() and len(token) > 30:
            raise _Reject
        tokens.append("log" if token == "ln" else token)
    if pos != len(expr):
        raise _Reject
    return " ".join(tokens)


@functools.lru_cache(maxsize=4096)
def _sympify(norm: str) -> Any:
    """Parse a normalized answer into an unevaluated sympy expression, or None when out of scope."""
    if not norm or len(norm) > _MAX_SYMPY_CHARS:
        return None
    try:
        import sympy
        from sympy.parsing.sympy_parser import (
            convert_xor,
            implicit_multiplication,
            parse_expr,
            standard_transformations,
        )

        code = _safe_python(_latex_to_python(norm))
        if not code.strip():
            return None
        local = {c: sympy.Symbol(c) for c in string.ascii_letters}
        local.update({"sqrt": sympy.sqrt, "pi": sympy.pi, "sin": sympy.sin, "cos": sympy.cos})
        local.update({"tan": sympy.tan, "log": sympy.log, "exp": sympy.exp})
        transformations = (*standard_transformations, implicit_multiplication, convert_xor)
        with warnings.catch_warnings():  # sympy deprecation chatter about odd inputs is not ours to show
            warnings.simplefilter("ignore")
            expr = parse_expr(code, local_dict=local, transformations=transformations, evaluate=False)
        if not isinstance(expr, sympy.Expr):
            return None
        # Bound the work evaluation would do. Innermost powers first, so a tower like 9^9^9^9 is
        # rejected at its lowest too-large exponent and never evaluated.
        pow_nodes = [p for p in sympy.postorder_traversal(expr) if isinstance(p, sympy.Pow)]
        if len(pow_nodes) > 6:
            return None
        for p in pow_nodes:
            if not p.exp.free_symbols and abs(complex(p.exp.evalf(15))) > 1000:
                return None
            if not p.free_symbols:
                magnitude = abs(complex(p.evalf(15)))
                if not magnitude <= 1e300:  # also catches inf / nan
                    return None
        return expr
    except _Reject:
        return None
    except Exception:  # sympy raises anything: TokenError, SyntaxError, TypeError, RecursionError, ...
        return None


def _symbolic_equal(na: str, nb: str) -> bool:
    x, y = _sympify(na), _sympify(nb)
    if x is None or y is None:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _sympy_equal(x, y)


def _sympy_equal(x: Any, y: Any) -> bool:
    try:
        import sympy

        diff = x - y
        if diff == 0:
            return True
        if not x.free_symbols and not y.free_symbols:
            value = complex(sympy.N(diff, 30))
            scale = max(abs(complex(sympy.N(x, 30))), abs(complex(sympy.N(y, 30))), 1e-300)
            return abs(value) <= 1e-9 * scale or abs(value) == 0.0
        # Cheap refutation first: most pairs a vote compares differ, and differ at a generic point;
        # ``simplify`` (slow) only runs on pairs that agree there.
        symbols = sorted(diff.free_symbols, key=str)
        point = {s: sympy.Float(0.5772156649 + 0.3183098862 * i) for i, s in enumerate(symbols)}
        probe = complex(sympy.N(diff.subs(point), 30))
        scale = max(abs(complex(sympy.N(x.subs(point), 30))), abs(complex(sympy.N(y.subs(point), 30))), 1.0)
        if abs(probe) > 1e-6 * scale:
            return False
        return bool(sympy.simplify(diff) == 0)
    except Exception:
        return False


# --------------------------------------------------------------------------------------------------
# equality, keys, grouping
# --------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16384)
def _equal_normalized(na: str, nb: str) -> bool:
    """Equality of two normalized answers; callers pass the pair sorted so the cache is symmetric."""
    if na == nb:
        return True
    x, y = _to_number(na), _to_number(nb)
    if x is not None and y is not None:
        return _numbers_equal(x, y)
    if len(na) > _MAX_SYMPY_CHARS or len(nb) > _MAX_SYMPY_CHARS:
        return False
    return _symbolic_equal(na, nb)


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
