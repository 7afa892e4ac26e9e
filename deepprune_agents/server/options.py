"""Per-request DeepPrune options: the ``deepprune`` body field, the model-name suffix, and the standard
OpenAI sampling fields, reduced to one validated ``DeepPruneContext`` (pure: no I/O, unit-tested alone).

Why a suffix grammar at all: many clients (IDE assistants, chat front ends, agent builders) take only a
base URL and a model name, so the model name is the one field every client lets a user type. The
grammar is ``MODEL+deepprune:key=value,key=value`` (``+deepprune`` alone is fine, and MODEL may be left
out to take the upstream's first model): no spaces, parentheses or quotes, so it survives clients that
check model names against ``[A-Za-z0-9._:/+=,-]``, and ``+`` never occurs in Hugging Face repository ids.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from deepprune_agents.errors import ConfigError
from deepprune_agents.pruning import KNOB_CLASSES
from deepprune_agents.pruning.knobs import all_specs
from deepprune_agents.server.errors import INVALID_VALUE, UNSUPPORTED_PARAMETER, UNSUPPORTED_VALUE
from deepprune_agents.settings import DeepPruneContext

SUFFIX = "+deepprune"
MODEL_FREE_JUDGES = ("constant", "numbers")  # nothing to load: a proxy allows them beside its default judge
OFFLINE_JUDGES = ("oracle",)  # reads recorded traces' known answers: meaningless on live branches

# What a caller may set per request, and the type each value is read as. Endpoints, timeouts and caps
# (base_urls, max_n, run_timeout_s, ...) are the operator's: a request must not be able to change them.
ALLOWED: dict[str, type] = {
    "n": int,
    "judge": str,
    "policy": str,
    "truncate": str,
    "max_tokens": int,
    "temperature": float,
    "top_p": float,
    "seed": int,
    # every policy knob (tau, k1, max_clusters, stop_when_decided, k2, judge_every, representatives, adaptive_*)
    **{spec.setting: spec.type for spec in all_specs(KNOB_CLASSES)},
}
# Options of the proxy itself (not settings of the run).
PROXY_OPTIONS: dict[str, type] = {"progress": bool, "content": str, "events": bool}
CONTENT_MODES = ("branch", "answer")
# Standard OpenAI body fields that map onto settings (``max_completion_tokens`` is the newer name).
STANDARD_FIELDS = {
    "max_tokens": "max_tokens",
    "max_completion_tokens": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
}


# Sampling fields passed as they are to every branch (through the run's extra_body), with their check.
PASS_THROUGH: dict[str, tuple[Callable[[Any], bool], str]] = {
    "stop": (
        lambda v: isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v)),
        "a string or a list of strings",
    ),
    "presence_penalty": (lambda v: _number(v) and -2.0 <= v <= 2.0, "a number in [-2, 2]"),
    "frequency_penalty": (lambda v: _number(v) and -2.0 <= v <= 2.0, "a number in [-2, 2]"),
    "repetition_penalty": (lambda v: _number(v) and v > 0, "a number > 0"),
    "logit_bias": (
        lambda v: (
            isinstance(v, dict) and all(str(k).isdigit() and _number(x) and -100 <= x <= 100 for k, x in v.items())
        ),
        "an object of token id -> number in [-100, 100]",
    ),
    "user": (lambda v: isinstance(v, str), "a string"),
}


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


class OptionsError(ConfigError):
    """A per-request option is invalid; ``param`` names the offending field (OpenAI's error ``param``) and
    ``code`` is OpenAI's error code for it."""

    def __init__(self, message: str, param: str | None = None, code: str = INVALID_VALUE) -> None:
        super().__init__(message)
        self.param = param
        self.code = code


def refuse_unsupported(body: dict[str, Any]) -> None:
    """Fields of the chat contract this proxy cannot honour get a 400 that says so, rather than a 200
    that silently ignored them (a client asking for tools or JSON would act on plain text)."""
    tools = body.get("tools") or body.get("functions")
    choice = body.get("tool_choice", body.get("function_call"))
    if tools or choice not in (None, "none", "auto"):
        param = "tools" if tools else "tool_choice"
        raise OptionsError(
            "tools are not supported: DeepPrune answers with N reasoning branches and a vote, and cannot call "
            "tools. Send the request without 'tools' and 'tool_choice'.",
            param,
            UNSUPPORTED_PARAMETER,
        )
    fmt = body.get("response_format")
    if fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") == "text"):
        raise OptionsError(
            "response_format is not supported: the reply is the voted branch's text (or, with "
            'deepprune.content "answer", the answer alone). Send the request without response_format.',
            "response_format",
            UNSUPPORTED_PARAMETER,
        )
    if body.get("logprobs") or body.get("top_logprobs"):
        raise OptionsError(
            "logprobs are not supported: the reply is voted from several branches, so no single sequence of "
            "token probabilities belongs to it. Send the request without logprobs.",
            "logprobs",
            UNSUPPORTED_PARAMETER,
        )
    if body.get("n") not in (None, 1):
        raise OptionsError(
            "n (choices) must be 1: the proxy returns one voted answer; ask for branches with deepprune.n.",
            "n",
            UNSUPPORTED_VALUE,
        )


def pass_through(body: dict[str, Any]) -> dict[str, Any]:
    """The sampling fields every branch gets as they are (``stop``, penalties, ``logit_bias``, ``user``)."""
    out: dict[str, Any] = {}
    for name, (ok, wanted) in PASS_THROUGH.items():
        value = body.get(name)
        if value is None:
            continue
        if not ok(value):
            raise OptionsError(f"{name} must be {wanted} (got {value!r}).", name)
        out[name] = value
    return out


@dataclass(frozen=True)
class RequestOptions:
    """What one request asks for: the run's settings and how the proxy should answer."""

    context: DeepPruneContext
    model: str | None  # the upstream model name, None = the upstream's first model
    progress: bool = True  # stream progress lines as delta.reasoning
    content: str = "branch"  # 'branch': the reply of a branch that agrees with the vote; 'answer': the answer only
    events: bool = False  # stream each run event as structured data too (the live page: server/ui.py)


def split_model(name: str | None) -> tuple[str | None, dict[str, str]]:
    """``'Qwen/Qwen3-8B+deepprune:n=16,judge=numbers'`` -> ``('Qwen/Qwen3-8B', {'n': '16', 'judge': 'numbers'})``.

    A name without the suffix is returned unchanged with no options; an empty model part means
    "the upstream's first model"."""
    if not name:
        return None, {}
    head, sep, tail = name.partition(SUFFIX)
    if not sep:
        return name, {}
    if tail and not tail.startswith(":"):
        raise OptionsError(
            f"model {name!r}: after '{SUFFIX}' write ':key=value,key=value' (e.g. 'MODEL{SUFFIX}:n=16,judge=numbers').",
            "model",
        )
    options: dict[str, str] = {}
    for item in filter(None, tail[1:].split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise OptionsError(f"model suffix item {item!r} is not key=value (e.g. 'n=16').", "model")
        options[key.strip()] = value.strip()
    return head or None, options


def _coerce(key: str, value: Any, kind: type, source: str) -> Any:
    """Read ``value`` as ``kind``; strings from the model suffix are parsed, JSON values are checked."""
    where = f"deepprune.{key}" if source == "body" else key
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
                return value.lower() in ("true", "1", "yes", "on")
            raise ValueError
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if not isinstance(value, str) or not value:
            raise ValueError
        return value
    except (TypeError, ValueError):
        wanted = {bool: "a boolean", int: "an integer", float: "a number"}.get(kind, "a non-empty string")
        raise OptionsError(f"{where} must be {wanted} (got {value!r}).", where) from None


def parse_options(
    body: dict[str, Any], defaults: DeepPruneContext, *, fresh_seed: int | None = None, judges: Sequence[str] = ()
) -> RequestOptions:
    """Merge, in rising priority: the server's defaults, the standard OpenAI fields, the model suffix,
    the ``deepprune`` body field. Unknown keys and bad values raise OptionsError naming the fix.

    ``fresh_seed``: the seed of a request that sets none (so "regenerate" samples anew), None to keep the
    server's. ``judges``: the judges a request may pick (empty: every registered judge but ``oracle``)."""
    model, suffix = split_model(body.get("model"))
    raw = body.get("deepprune") or {}
    if not isinstance(raw, dict):
        raise OptionsError(
            'the \'deepprune\' field must be an object, e.g. {"n": 16, "judge": "numbers"}.', "deepprune"
        )
    changes: dict[str, Any] = {}
    for field_name, setting in STANDARD_FIELDS.items():
        if body.get(field_name) is not None:
            changes[setting] = _coerce(field_name, body[field_name], ALLOWED[setting], "standard")
    proxy: dict[str, Any] = {}
    for source, items in (("suffix", suffix), ("body", raw)):
        for key, value in items.items():
            kind = ALLOWED.get(key) or PROXY_OPTIONS.get(key)
            if kind is None:
                known = ", ".join(sorted([*ALLOWED, *PROXY_OPTIONS]))
                raise OptionsError(
                    f"unknown DeepPrune option {key!r}: use one of {known}.",
                    f"deepprune.{key}" if source == "body" else "model",
                )
            target = proxy if key in PROXY_OPTIONS else changes
            target[key] = _coerce(key, value, kind, source)
    refuse_unsupported(body)
    extras = pass_through(body)
    if extras:
        changes["extra_body"] = {**defaults.extra_body, **extras}
    if "seed" not in changes and fresh_seed is not None:
        changes["seed"] = fresh_seed
    if changes.get("n", defaults.n) > defaults.max_n:
        raise OptionsError(f"n={changes['n']} is over this server's limit of {defaults.max_n} branches.", "deepprune.n")
    content = proxy.get("content", "branch")
    if content not in CONTENT_MODES:
        raise OptionsError(
            f"deepprune.content must be one of {', '.join(CONTENT_MODES)} (got {content!r}).", "deepprune.content"
        )
    try:
        context = defaults.replace(**changes) if changes else defaults
    except ConfigError as exc:
        raise OptionsError(str(exc), "deepprune") from exc
    from deepprune_agents.judges import known_judges

    allowed = list(judges) or [j for j in known_judges() if j not in OFFLINE_JUDGES]
    if context.judge not in allowed:
        raise OptionsError(
            f"judge {context.judge!r} is not available here: use one of {', '.join(allowed)}.", "deepprune.judge"
        )
    return RequestOptions(
        context=context,
        model=model,
        progress=proxy.get("progress", True),
        content=content,
        events=proxy.get("events", False),
    )
