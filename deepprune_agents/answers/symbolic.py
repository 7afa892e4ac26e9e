"""Symbolic equality of small expressions through sympy, behind a token allowlist.

Safety: sympy's ``parse_expr`` evaluates Python, so model text only reaches it after a token allowlist
(numbers, operators, parentheses, single-letter symbols, a few function names) and with exponents bounded,
so neither code nor a ``9^9^9^9`` tower can run.
"""

from __future__ import annotations

import functools
import re
import string
import warnings
from typing import Any

__all__ = ["MAX_SYMPY_CHARS", "symbolic_equal"]

MAX_SYMPY_CHARS = 200
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
    if not norm or len(norm) > MAX_SYMPY_CHARS:
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


def symbolic_equal(na: str, nb: str) -> bool:
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
