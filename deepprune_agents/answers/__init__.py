"""Final answers: extraction, normalization and equality, shared by the vote, the oracle judge, the pair
labels and every accuracy figure.

Everything here is pure (no I/O) and total: model output is arbitrary text, so no function raises on
any ``str``, and extraction is linear-time. The package is split by concern:

* ``extract``: the extraction chain (``extract_answer``) and the per-run extractor (``make_extractor``,
  from the ``answer_pattern`` setting: a regex or a callable);
* ``normalize``: ``normalize_answer``, presentation removed (LaTeX, units, case, articles, dates);
* ``dates``: date recognition and the canonical ISO form;
* ``equality``: ``answers_equal``, ``answer_key`` and ``group_answers`` (numbers exactly, expressions
  through ``symbolic``, dates and free text as normalized strings, never as arithmetic).

Percent decision: ``normalize_answer`` *drops* a percent sign, so ``"50%"`` equals ``"50"`` but **not**
``"0.5"``. Benchmarks (GSM8K, MATH) state percentage answers as the number of percent; treating "50%" as
0.5 as well would make equality non-transitive (50% == 50 and 50% == 0.5 but 50 != 0.5), which would
make vote grouping depend on branch order.
"""

from __future__ import annotations

from deepprune_agents.answers.dates import canonical_date, parse_date
from deepprune_agents.answers.equality import answer_key, answers_equal, group_answers
from deepprune_agents.answers.extract import AnswerPattern, Extractor, extract_answer, is_no_answer, make_extractor
from deepprune_agents.answers.normalize import normalize_answer

__all__ = [
    "AnswerPattern",
    "Extractor",
    "answer_key",
    "answers_equal",
    "canonical_date",
    "extract_answer",
    "group_answers",
    "is_no_answer",
    "make_extractor",
    "normalize_answer",
    "parse_date",
]
