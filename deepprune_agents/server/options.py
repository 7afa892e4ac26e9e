"""Per-request DeepPrune options: the ``deepprune`` body field, the model-name suffix, and the standard
OpenAI sampling fields, reduced to one validated ``DeepPruneContext`` (pure: no I/O, unit-tested alone).

Why a suffix grammar at all: many clients (IDE assistants, chat front ends, agent builders) take only a
base URL and a model name, so the model name is the one field every client lets a user type. The
grammar is ``MODEL+deepprune:key=value,key=value`` (``+deepprune`` alone is fine, and MODEL may be left
out to take the upstream's first model): no spaces, parentheses or quotes, so it survives clients that
check model names against ``[A-Za-z0-9._:/+=,-]``, and ``+`` never occurs in Hugging Face repository ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deepprune_agents.errors import ConfigError
from deepprune_agents.pruning import KNOB_CLASSES
from deepprune_agents.pruning.knobs import all_specs
from deepprune_agents.settings import DeepPruneContext

SUFFIX = "+deepprune"

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


class OptionsError(ConfigError):
    """A per-request option is invalid; ``param`` names the offending field (OpenAI's error ``param``)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


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


def parse_options(body: dict[str, Any], defaults: DeepPruneContext) -> RequestOptions:
    """Merge, in rising priority: the server's defaults, the standard OpenAI fields, the model suffix,
    the ``deepprune`` body field. Unknown keys and bad values raise OptionsError naming the fix."""
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
    if body.get("n") not in (None, 1):
        raise OptionsError(
            "n (choices) must be 1: the proxy returns one voted answer; ask for branches with deepprune.n.", "n"
        )
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

    if context.judge not in known_judges():
        raise OptionsError(
            f"unknown judge {context.judge!r}: use one of {', '.join(known_judges())}.", "deepprune.judge"
        )
    return RequestOptions(
        context=context,
        model=model,
        progress=proxy.get("progress", True),
        content=content,
        events=proxy.get("events", False),
    )
