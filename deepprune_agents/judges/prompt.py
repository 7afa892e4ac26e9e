"""The yes/no prompt shared by the LLM-based judges (``llm`` over HTTP, ``transformers`` locally), and
the reduction of first-token log-probabilities to P(yes).

Both judges read P(yes) off the *first generated token* instead of parsing a sampled answer: one token
per pair is cheap, and a probability (not a hard yes/no) is what the greedy clustering thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from deepprune_agents.errors import ConfigError

DEFAULT_TEMPLATE = (
    "Below are the beginnings of two independent attempts at solving the same problem. Both attempts "
    "are cut off before they finish.\n\n"
    "### Attempt A\n{a}\n\n"
    "### Attempt B\n{b}\n\n"
    "If both attempts are continued to the end, will they reach the same final answer? "
    "Answer with a single word: yes or no."
)

YES_WORDS = frozenset({"yes", "y", "true", "same"})
NO_WORDS = frozenset({"no", "n", "false", "different"})


def render_prompt(a: str, b: str, template: str = DEFAULT_TEMPLATE) -> str:
    """Fill the template (placeholders ``{a}`` and ``{b}``) with the two partial traces, verbatim."""
    if "{a}" not in template or "{b}" not in template:
        raise ConfigError("the judge prompt template must contain the placeholders {a} and {b}.")
    return template.replace("{a}", a).replace("{b}", b)


def _norm_token(token: str) -> str:
    # "Ġyes", "▁Yes", " YES", "yes." -> "yes"
    return token.replace("Ġ", " ").replace("▁", " ").strip().strip(".,:!\"'*").lower()


def p_yes_from_logprobs(top: Iterable[tuple[str, float]], fallback_token: str | None = None) -> float:
    """P(yes) normalised over the yes/no variants among the first token's top log-probabilities.

    When neither a yes- nor a no-like token is in the top list, fall back to the sampled token
    (yes -> 1, no -> 0) and otherwise to 0.5: the judge knows nothing, and 0.5 neither merges nor
    keeps apart aggressively.
    """
    p_yes = p_no = 0.0
    for token, logprob in top:
        if logprob is None or not math.isfinite(logprob):
            continue
        word = _norm_token(token)
        if word in YES_WORDS:
            p_yes += math.exp(logprob)
        elif word in NO_WORDS:
            p_no += math.exp(logprob)
    if p_yes + p_no > 0.0:
        return p_yes / (p_yes + p_no)
    if fallback_token is not None:
        word = _norm_token(fallback_token)
        if word in YES_WORDS:
            return 1.0
        if word in NO_WORDS:
            return 0.0
    return 0.5
