"""Judges by name: ``get_judge("trained")``, and ``register_judge`` so users can plug in their own.

Built-in judges are imported lazily: ``numbers``/``oracle`` must not pay for torch, and ``llm`` must not
need sentence-transformers.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from importlib import import_module
from typing import Any

from deepprune_agents.errors import ConfigError
from deepprune_agents.judges.base import Judge, RunAwareJudge, TracePair

__all__ = ["JUDGE_NAMES", "Judge", "RunAwareJudge", "TracePair", "get_judge", "known_judges", "register_judge"]

JudgeFactory = Callable[..., Judge]

_BUILTIN: dict[str, str] = {
    "embedding": "deepprune_agents.judges.embedding:EmbeddingJudge",
    "trained": "deepprune_agents.judges.trained:TrainedJudge",
    "llm": "deepprune_agents.judges.llm:LLMJudge",
    "transformers": "deepprune_agents.judges.hf:TransformersJudge",
    "oracle": "deepprune_agents.judges.oracle:OracleJudge",
    "numbers": "deepprune_agents.judges.numbers:NumberOverlapJudge",
    "blend": "deepprune_agents.judges.blend:BlendJudge",
    "context": "deepprune_agents.judges.context:ContextJudge",
    "constant": "deepprune_agents.judges.constant:ConstantJudge",
}

#: Names of the built-in judges (``known_judges()`` adds the ones registered at run time).
JUDGE_NAMES: tuple[str, ...] = tuple(_BUILTIN)

_REGISTRY: dict[str, JudgeFactory] = {}
_LOCK = threading.Lock()


def register_judge(name: str, factory: JudgeFactory, *, replace: bool = False) -> None:
    """Make ``get_judge(name, **options)`` call ``factory(**options)``.

    Registering over an existing name (built-in or not) needs ``replace=True`` so that a typo cannot
    silently shadow the ``trained`` judge.
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("judge name must be a non-empty string.")
    if not callable(factory):
        raise ConfigError(f"judge factory for {name!r} must be callable (a class or a function).")
    with _LOCK:
        if not replace and (name in _BUILTIN or name in _REGISTRY):
            raise ConfigError(f"judge {name!r} is already registered; pass replace=True to override it.")
        _REGISTRY[name] = factory


def known_judges() -> list[str]:
    """Built-in and registered judge names, sorted."""
    with _LOCK:
        return sorted(set(_BUILTIN) | set(_REGISTRY))


def _factory(name: str) -> JudgeFactory:
    with _LOCK:
        if name in _REGISTRY:
            return _REGISTRY[name]
    target = _BUILTIN.get(name)
    if target is None:
        raise ConfigError(
            f"unknown judge {name!r}; known judges: {', '.join(known_judges())} "
            "(or add yours with deepprune_agents.judges.register_judge)."
        )
    module, attr = target.split(":")
    cls: JudgeFactory = getattr(import_module(module), attr)
    return cls


def get_judge(name: str, **options: Any) -> Judge:
    """Instantiate the judge called ``name`` with ``options`` (its constructor's keyword arguments)."""
    factory = _factory(name)
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as exc:
        try:
            accepted = ", ".join(p for p in inspect.signature(factory).parameters if p != "self") or "none"
        except (TypeError, ValueError):  # pragma: no cover - builtins without signature
            accepted = "?"
        raise ConfigError(
            f"invalid options {sorted(options)} for judge {name!r} ({exc}); accepted options: {accepted}."
        ) from exc
    except ValueError:  # pragma: no cover - callables without an introspectable signature
        pass
    judge = factory(**options)
    if not isinstance(judge, Judge):
        raise ConfigError(
            f"the factory of judge {name!r} returned {type(judge).__name__}, which lacks "
            "`name` and `async ascore(pairs)`; see deepprune_agents/judges/base.py."
        )
    return judge
