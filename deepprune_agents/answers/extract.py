"""Final-answer extraction: the answer a reasoning trace states, or None.

Pure and total (no I/O, never raises on a ``str``) and linear-time: braces are matched in one pass, the
loose fallbacks only look at the last sentence, and no pattern has nested quantifiers that could
backtrack catastrophically (``tests/unit/test_answers_properties.py`` fuzzes 200 KB inputs).

The chain, most specific first (the first that finds something wins):

1. the last ``\\boxed{}`` / ``\\fbox{}`` (MATH);
2. the GSM8K ``#### X`` line;
3. the last "The answer is X" / "final answer is X" / "Answer: X";
4. a multiple-choice phrase ("option (B)", "(C) is correct");
5. free-form endings, only in the last sentence: "... is X." / "... as X." / "... was X." (the first
   date in X when X holds one; else X when it is short), a date, a number at the very end
   ("So she has 18 eggs."), the one number of a concluding sentence ("Therefore, Julie needs 48 pages to
   finish."), or a short final line ("Paris."). 5 needs a finished sentence (a final
   ``.`` or ``!``), or a date that ends the text, so a trace cut off mid-sentence by max_tokens gives no
   vote instead of a half-computed one.

``make_extractor`` builds the per-run extractor from a regex or a callable (``answer_pattern`` setting).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Sequence
from typing import TypeAlias

from deepprune_agents.answers.dates import find_dates
from deepprune_agents.errors import ConfigError

__all__ = ["AnswerPattern", "Extractor", "extract_answer", "is_no_answer", "make_extractor"]

log = logging.getLogger(__name__)

#: What every consumer calls on a finished branch's text.
Extractor: TypeAlias = Callable[[str], str | None]
#: The ``answer_pattern`` setting: a regex whose first group (or whole match) is the answer, a callable, or
#: None for the built-in chain.
AnswerPattern: TypeAlias = str | Callable[[str], str | None] | None


_BOX_RE = re.compile(r"\\(?:boxed|fbox)")
_ANSWER_PHRASE_RE = re.compile(r"\banswer\b[ \t]*(?:is\b[ \t]*:?|:)", re.IGNORECASE)
_CHOICE_HEAD_RE = re.compile(r"\(?([A-Ea-e])\)?(?=$|[\s.,:;)])")
_CHOICE_FALLBACK_RES = (
    # "the correct option is (B)", "choice: C", "option B"
    re.compile(r"\b(?:option|choice)\b[ \t]*(?:is\b[ \t]*)?:?[ \t]*\**\(([A-E])\)", re.IGNORECASE),
    re.compile(r"\b(?:option|choice)\b[ \t]*(?:is\b[ \t]*)?:?[ \t]*\**([A-E])\b"),
    # "(B) is correct", "(C) is the right answer"
    re.compile(r"\(([A-E])\)[ \t]+is\b[ \t]+(?:the\b[ \t]+)?(?:correct|right)\b", re.IGNORECASE),
)
_SENTENCE_END_RE = re.compile(r"\.[\"\u201d]?(?=\s)")  # a period, maybe closing a quote, then space
_MAX_CAPTURE = 300  # an answer after "The answer is" longer than this is prose, not an answer
# The default system prompt asks for "The answer is N."; small models echo the template itself
# ('The answer is N" where N is the total'). A placeholder is no answer: look further back instead.
_PLACEHOLDER_RE = re.compile(r"^(?:N|<answer>|\[[A-Za-z ]*\]|\.\.\.)(?=$|[\s\"'.,;:)])")
# ... or quote it after an answer phrase of their own ('the final answer is the line "The answer is N"'): a
# capture that quotes the template with its placeholder is the echo, not an answer.
_TEMPLATE_ECHO_RE = re.compile(r"[\"'\u201c\u2018]\s*the answer is N\b", re.IGNORECASE)
# Words between "the answer is" and the answer itself ("The answer is simply: 12").
# Small models hedge there too ("The answer is indeed 10", "approximately 7 days"): the same filler.
_FILLER_RE = re.compile(
    r"^(?:simply|just|therefore|thus|then|indeed|clearly|exactly|actually|obviously|certainly|definitely|"
    r"approximately|about|roughly|around|now|finally|also|still)\b[ \t]*:?",
    re.IGNORECASE,
)
_QUOTES = '"`\u201c\u201d'
# ... and "the final answer is the answer" (seen live from SmolLM2) names no answer either.
_NO_ANSWER_RE = re.compile(
    r"^(?:n/?a|none given|not applicable|no answer!?|unknown|\[invalid\]|(?:the )?(?:final )?answer)$", re.IGNORECASE
)
# A final sentence that declines to answer ("we cannot determine the date") states no answer, even when
# it mentions a number or a date (that is context, not a result).
_REFUSAL_RE = re.compile(
    r"\b(?:cannot|can't|can not|could not|couldn't|unable|impossible|not possible|insufficient|not enough|"
    r"not sufficient|indeterminate|undetermined)\b|^unknown\b",
    re.IGNORECASE,
)


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
    """Strip the decoration models put around an answer: markdown bold, ``$``, double quotes or backticks
    (``The answer is 10."`` closes a quoted line: without this "10." and "10" split the vote), a final
    period."""
    s = raw.strip()
    for _ in range(3):
        before = s
        s = s.strip().strip("*").strip().strip(_QUOTES).strip()
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
    rest = _FILLER_RE.sub("", rest.lstrip(" \t")).lstrip(" \t")
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
    reason = _REASON_CUT_RE.search(cleaned)
    if reason is not None and reason.start() > 0:  # "B, because 2+2=4" -> B: the reason is not the answer
        cleaned = _clean(cleaned[: reason.start()]) or cleaned
    if "=" in cleaned:  # "The answer is 400+60=460": the result is the last right-hand side
        rhs = _clean(cleaned.rsplit("=", 1)[1])
        if rhs is not None:
            cleaned = rhs
    if (
        _PLACEHOLDER_RE.match(cleaned)
        or _TEMPLATE_ECHO_RE.search(cleaned)
        or _NO_ANSWER_RE.match(cleaned)
        or _REFUSAL_RE.search(cleaned)
    ):
        return None
    if cleaned.split(" ", 1)[0].lower() in _CLAUSE_START:  # "the answer is based on ...": no answer here
        return None
    dates = find_dates(cleaned)
    if dates and (dates[0][0] > 0 or dates[0][1] < len(cleaned)):  # "Today is 03/05/1973": the date
        return cleaned[dates[0][0] : dates[0][1]]
    choice = _CHOICE_HEAD_RE.match(cleaned)
    if choice is not None and (cleaned.startswith("(") or len(cleaned) <= 2):
        return choice.group(1).upper()
    labelled = _CHOICE_LABEL_RE.match(cleaned)  # "A: 12", "D) 42", "option D"
    if labelled is not None:
        return (labelled.group(1) or labelled.group(2)).upper()
    return _stated_result(cleaned)


# "A: 12", "D) 42" (a capital letter and its label mark), "option D", "choice (b)": the letter is the answer.
_CHOICE_LABEL_RE = re.compile(r"^(?:([A-E])(?:\)|:)\s|(?:option|choice)\s+\(?([A-Ea-e])\)?$)", re.IGNORECASE)
# "yes, because ...", "12, since 3 x 4 = 12", "George Washington, who was ...": what follows is the reason
# or a description, not the answer ("which" is left to _stated_result: "8 + 1, which is 10" states the result).
_REASON_CUT_RE = re.compile(
    r"(?:,\s*|\s+)(?:because|since)\b|,\s*(?:as|given|due to|meaning|for|when|while|where|who|whose|whom)\b",
    re.IGNORECASE,
)


# "8 + 1, which is 10": an arithmetic expression whose clause states the result.
_EXPRESSION_RE = re.compile(r"^[\d.\s()]*\d[\d.\s()]*(?:[-+*/×÷x][\d.\s()]+)+$")
_WHICH_IS_RE = re.compile(r"^(?:,\s*|\s+)which\s+(?:is|equals|gives)\b[ \t]*:?[ \t]*(\S+)", re.IGNORECASE)


# A head that describes the result rather than naming it ("the total, which is 12"): the clause holds the answer.
_DESCRIPTION_START = frozenset({"the", "this", "that", "our", "my", "its", "their", "his", "her"})


def _stated_result(cleaned: str) -> str:
    """The result a number-led answer phrase states: ``"5, which is the result of 9 - 4"`` -> ``5``,
    ``"8 + 1, which is 10"`` -> ``10`` (also ``"the total, which is 12"`` -> ``12``), ``"360 hours in a day"``
    -> ``360``, ``"10 dollars, which is 5 pencils"`` -> ``10``, ``"12 legs (3 cows x 4 legs)"`` -> ``12``.
    A short answer before its reason is the answer: ``"yes, because ..."`` -> ``yes``, ``"Mount Everest", which
    is 8,848 m high`` -> ``Mount Everest`` (only a head that *describes* the result, "the total, which is 12",
    takes the clause's number).
    Without that, the same number in two wordings splits the vote ("5" vs "5, which is ...").
    Only a clause break followed by words counts, so a list ("1, 2") or a pair stays whole; any other phrase
    comes back unchanged."""
    cut = _PHRASE_CUT_RE.search(cleaned)
    if cut is None:
        return _number_before_words(cleaned) or cleaned
    rest = cleaned[cut.start() :]
    head = cleaned[: cut.start()].strip()
    # "12 legs (3 cows x 4 legs)": a parenthesis after a number (with its unit) explains it
    number = head if _NUMBER_TOKEN_RE.match(head) else _number_before_words(head)
    if number is not None and cut.group(0).strip() == "(":
        return number
    if not rest.lstrip(" ,;(").split(" ", 1)[0].isalpha():
        return cleaned
    if number is not None:  # "10 dollars, which is 5 pencils of that material" -> 10
        return number
    which = _WHICH_IS_RE.match(rest)
    if which is None:
        return cleaned
    head_words = head.lower().split()
    describes = not any(ch.isdigit() for ch in head) and bool(head_words) and head_words[0] in _DESCRIPTION_START
    if _EXPRESSION_RE.match(head) or describes:
        result = _clean(which.group(1).rstrip(",;:"))
        if result is not None and _NUMBER_TOKEN_RE.match(result):
            return result
    if not describes and 0 < len(head_words) <= _MAX_PHRASE_WORDS:
        # "Mount Everest", which is 8,848 m high -> Mount Everest: the clause describes a named answer
        return _clean(head) or cleaned
    return cleaned


def _number_before_words(phrase: str) -> str | None:
    """``"21 students in the class"`` -> ``"21"``: a number followed by words only is that number (two
    branches saying "21 students" and "21 students in the class" must vote together)."""
    head, _, tail = phrase.partition(" ")
    head = head.rstrip(",;:")
    if tail and _NUMBER_TOKEN_RE.match(head) and all(w.isalpha() for w in tail.split()):
        return head
    return None


# -- free-form endings ------------------------------------------------------------------------------

_TAIL_CHARS = 2000  # the loose fallbacks read at most this much of the end of a trace
_MAX_SENTENCE = 600  # a "last sentence" longer than this is prose: only its end is read
_SENTENCE_BOUNDARY_RE = re.compile(r"[.!?](?=\s)|\n")
_COPULA_RE = re.compile(r"\b(?:is|are|was|were|as|be|equals|becomes)\b[ \t]*:?", re.IGNORECASE)
_PHRASE_CUT_RE = re.compile(r",\s|\s\(|;|\s(?:which|because|since|so|and then)\s", re.IGNORECASE)
# Words that open a clause, not an answer ("... is based on the concept of ...", "... are required to ...").
_CLAUSE_START = frozenset(
    {"based", "calculated", "found", "given", "determined", "obtained", "shown", "written", "expressed",
     "represented", "done", "required", "needed", "used", "in", "on", "at", "of", "for", "to", "by", "from",
     "with", "into"}
)  # fmt: skip
# "... is what she pays", "... is the same", "... can be written as follows": a clause, not an answer.
_NOT_AN_ANSWER_START = frozenset(
    {"what", "which", "that", "how", "why", "when", "where", "because", "not", "also", "equal", "same",
     "correct", "right", "wrong", "incorrect", "unknown", "unclear", "impossible", "as", "follows", "below",
     "above"}
) | _CLAUSE_START  # fmt: skip
_ARTICLES = frozenset({"the", "a", "an"})
_MAX_PHRASE_WORDS = 6
_MAX_PHRASE_CHARS = 80
_NUMBER_START_RE = re.compile(r"[-+$]?\d")
_NUMBER_TOKEN_RE = re.compile(r"^[-+]?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?%?$")


def _last_sentence(text: str) -> tuple[str, bool]:
    """The last sentence of ``text`` (without its final period) and whether it was finished (``.``/``!``)."""
    tail = text[-_TAIL_CHARS:].rstrip()
    tail = tail.rstrip("*\"'`$ \t\n").rstrip()
    finished = tail.endswith((".", "!"))
    body = tail.rstrip(".!").rstrip()
    start = 0
    for m in _SENTENCE_BOUNDARY_RE.finditer(body):
        start = m.end()
    sentence = body[start:].strip()
    if len(sentence) > _MAX_SENTENCE:
        sentence = sentence[-_MAX_SENTENCE:]
    return sentence, finished


def _short_phrase(raw: str) -> str | None:
    """``raw`` cut at its first clause break, cleaned, when it is short enough to be an answer."""
    stripped = raw.lstrip()
    filler = _FILLER_RE.match(stripped)
    if filler is not None and _NUMBER_START_RE.match(stripped[filler.end() :].lstrip()):
        raw = stripped[filler.end() :]  # "The total is simply 12." -> 12 (a hedge before a number only)
    m = _PHRASE_CUT_RE.search(raw)
    phrase = raw[: m.start()] if m is not None else raw
    cleaned = _clean(phrase.strip().strip("'" + _QUOTES))
    if cleaned is not None and "=" in cleaned and _NUMBER_START_RE.match(cleaned):
        # "240 beetles - 18 beetles eaten daily = 128 beetles eaten daily": a computation, judged by its result
        cleaned = _clean(cleaned.rsplit("=", 1)[1])
    if cleaned is None or len(cleaned) > _MAX_PHRASE_CHARS:
        return None
    words = [w.lower().strip("*") for w in cleaned.split()]
    if len(words) > 1 and words[0] in _ARTICLES:
        words = words[1:]
    if len(words) > _MAX_PHRASE_WORDS or words[0] in _NOT_AN_ANSWER_START:
        return None
    if "=" in cleaned:
        cleaned = _clean(cleaned.rsplit("=", 1)[1]) or ""
    if not cleaned or _NO_ANSWER_RE.match(cleaned) or _PLACEHOLDER_RE.match(cleaned):
        return None
    return _number_before_words(cleaned) or cleaned


_TRAILING_RELATIVE_RE = re.compile(r"(?:,\s*|\s+)(?:which|that)$", re.IGNORECASE)
# "The answer for 3 people is Paris", "Step 3 is ...": after a preposition or a label a number is not the subject.
_NOT_BEFORE_SUBJECT = frozenset(
    {"for", "of", "in", "on", "at", "with", "by", "per", "to", "from", "after", "before", "than", "about", "into",
     "over", "under", "step", "day", "week", "page", "year", "#"}
)  # fmt: skip


# Only these link a subject to its description ("2 is the answer"); "can be written", "as", "becomes" do not.
_SUBJECT_COPULA_RE = re.compile(r"(?:is|are|was|were)\b", re.IGNORECASE)
# Words after a number that are not its unit ("2002, which can be ...": the number is not the subject).
_NOT_UNITS = frozenset(
    {"which", "that", "can", "will", "would", "could", "should", "may", "might", "must", "it", "this"}
)


def _subject_number(before: str) -> str | None:
    """The number a copula's subject ends with ("So, 2" / "Therefore, 10 dollars" / "24, which"), unless it
    sits in a prepositional phrase or labels a step ("for 3 people", "Step 3")."""
    words = _TRAILING_RELATIVE_RE.sub("", before.rstrip()).rstrip(" ,").split()
    i = _trailing_number(words)
    if i is None or any(w.lower() in _NOT_UNITS for w in words[i + 1 :]):
        return None
    previous = words[i - 1].lower().strip(",;:") if i > 0 else ""
    return None if previous in _NOT_BEFORE_SUBJECT else _number_token(words[i])


def _number_token(word: str) -> str:
    return word.rstrip(",;:").strip("*")


def _trailing_number(words: Sequence[str]) -> int | None:
    """Index of the number among the last three words when only unit words follow it ("18 eggs"), else None."""
    for back in range(1, min(3, len(words)) + 1):
        if _NUMBER_TOKEN_RE.match(_number_token(words[-back])):
            i = len(words) - back
            return i if all(w.isalpha() for w in words[i + 1 :]) else None
    return None


def _number_at_end(sentence: str) -> str | None:
    """The number that ends a sentence, optionally followed by up to two unit words ("18 eggs")."""
    words = sentence.split()
    i = _trailing_number(words)
    return None if i is None else _number_token(words[i])


# "So, Julie needs 48 pages to finish." / "Therefore, he has 9.23 * 12.33 = 12.42 dollars in change.": a final
# sentence that opens with a conclusion marker states the result even without a copula, when it names one number
# (after its last "=", the right-hand side of a computation).
_CONCLUSION_RE = re.compile(
    r"^(?:so|therefore|thus|hence|in total|in conclusion|in the end|overall|altogether|all in all)\b[ \t]*,?[ \t]*",
    re.IGNORECASE,
)
_LONE_CHOICE_RE = re.compile(r"\(?([A-E])\)?")
_RESULT_NUMBER_RE = re.compile(r"(?<![\w.])[-+]?\$?\d[\d,]*(?:\.\d+)?(?:/\d+)?%?(?![\w/])")


def _concluded_answer(sentence: str) -> str | None:
    """What a concluding sentence states: its one number ("So, James writes 18 pages over a year." -> 18), or
    the choice it consists of ("Thus, (C)." -> C); None when the sentence is not a conclusion, names several
    numbers (which one is the result is then a guess) or neither."""
    marker = _CONCLUSION_RE.match(sentence)
    if marker is None:
        return None
    claim = sentence[marker.end() :]
    numbers = {m.group(0).rstrip(",") for m in _RESULT_NUMBER_RE.finditer(claim.rsplit("=", 1)[-1])}
    if numbers:
        return numbers.pop() if len(numbers) == 1 else None
    letter = _LONE_CHOICE_RE.fullmatch(claim.strip("* "))
    return letter.group(1) if letter is not None else None


def _free_form(text: str) -> str | None:
    """Step 5 of the chain: the answer a final sentence states without any marker."""
    sentence, finished = _last_sentence(text)
    if not sentence or _REFUSAL_RE.search(sentence) or _ANSWER_PHRASE_RE.search(sentence):
        # declined, or "the answer is <placeholder>": step 3 already read this sentence and found nothing
        return None
    dates = find_dates(sentence)
    if not finished:
        # Possibly cut off by max_tokens: only a date that ends the text counts ("... is 11/22/2001").
        return sentence[dates[-1][0] :] if dates and dates[-1][1] == len(sentence) else None
    copulas = list(_COPULA_RE.finditer(sentence))
    for m in reversed(copulas):
        rest = sentence[m.end() :]
        rest_dates = find_dates(rest)
        if rest_dates:
            return rest[rest_dates[0][0] : rest_dates[0][1]]
        phrase = _short_phrase(rest)
        if (phrase is None or not any(ch.isdigit() for ch in phrase)) and _SUBJECT_COPULA_RE.match(m.group(0)):
            # "So, 2 is the answer." / "108 is the number of students in the class." / "24, which is the
            # answer.": a predicate without a number describes the subject, which is the answer.
            subject = _subject_number(sentence[: m.start()])
            if subject is not None:
                return subject
        if phrase is not None:
            return phrase
    if dates:
        return sentence[dates[-1][0] : dates[-1][1]]
    concluded = _number_at_end(sentence) or _concluded_answer(sentence)
    if concluded is not None:
        return concluded
    last_line = text.strip().rsplit("\n", 1)[-1].strip().rstrip(".!").strip()
    if (
        "\n" in text.strip()
        and not copulas
        and last_line == sentence
        and not sentence[:1].islower()  # a lower-case line continues a wrapped sentence ("students\nin the class.")
        and len(sentence.split()) <= _MAX_PHRASE_WORDS
        and not any(ch.isdigit() or ch == "=" for ch in sentence)
    ):
        return _short_phrase(sentence)
    return None


def extract_answer(text: str) -> str | None:
    """The final answer of a reasoning trace, or None when it states none.

    Priority: the last ``\\boxed{}``/``\\fbox{}`` (nested braces are fine), then the GSM8K ``#### X`` line,
    then the last "The answer is X" / "final answer is X" / "Answer: X", then a multiple-choice phrase
    ("option (B)", "(C) is correct"), then a free-form ending (module doc). Choice letters come back
    upper-case without parentheses.
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
    if best is not None:
        return best[1]
    return _free_form(text)


def is_no_answer(answer: str | None) -> bool:
    """Whether a *recorded* answer means "none": None, blank, or a marker sources write instead
    ("No answer!", "[invalid]", "N/A"). Agreement figures count such a record as no answer."""
    if answer is None or not isinstance(answer, str):
        return True
    s = answer.strip()
    return not s or _NO_ANSWER_RE.match(s) is not None


# -- per-run extractors ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(
            f"answer_pattern {pattern!r} is not a valid regular expression ({exc}): fix it (e.g. "
            r"'ANSWER: (\S+)', one group around the answer) or leave answer_pattern unset for the built-in "
            "extractor."
        ) from exc


def make_extractor(pattern: AnswerPattern = None, *, fallback: bool = True) -> Extractor:
    """The extractor of a run: ``extract_answer`` for None; for a regex string, the *last* match's first
    group (or the whole match when the pattern has no group); for a callable, the callable itself.

    With ``fallback`` (the default) the built-in chain answers whenever the regex finds nothing, so a
    task-specific pattern never costs the votes the generic chain would have counted. A callable has the
    last word (it can call ``extract_answer`` itself). The returned function is total: a callable that
    raises or returns a non-string counts as "no answer" (logged),
    so a user's extractor cannot take a run down. A bad regex raises ``ConfigError`` here, at
    configuration time.
    """
    if pattern is None:
        return extract_answer
    if isinstance(pattern, str):
        if not pattern:
            raise ConfigError("answer_pattern is empty: give a regex with one group, or leave it unset (None).")
        compiled = _compile(pattern)

        def by_regex(text: str) -> str | None:
            if not isinstance(text, str):
                return None
            last = None
            for last in compiled.finditer(text):  # noqa: B007 - the last match is the final answer
                pass
            found = None
            if last is not None:
                raw = last.group(1) if compiled.groups else last.group(0)
                found = _clean(raw) if raw is not None else None
            if found is None and fallback:
                return extract_answer(text)
            return found

        return by_regex
    if callable(pattern):
        user = pattern

        def by_callable(text: str) -> str | None:
            try:
                found = user(text)
            except Exception as exc:  # a user's extractor must not take the run down
                log.warning("answer extractor %r raised %s: %s; counted as no answer", user, type(exc).__name__, exc)
                found = None
            if found is not None and not isinstance(found, str):
                log.warning("answer extractor %r returned %s, not str | None; counted as no answer", user, type(found))
                found = None
            found = found.strip() if found is not None else None
            return found or None

        return by_callable
    raise ConfigError(
        f"answer_pattern must be a regex string, a callable str -> str | None, or None (got {type(pattern).__name__})."
    )
