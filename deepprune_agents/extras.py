"""Optional features and the pip extra that provides each, checked before a command starts its work.

The core install runs the engine; a few commands need more (``deepprune replay-server`` and the proxy
``deepprune serve --upstream``: Starlette and uvicorn; sweep plots: matplotlib). Without them a command
must stop at once with the install line, not with a ModuleNotFoundError after minutes of work.
"""

from __future__ import annotations

from importlib.util import find_spec

from deepprune_agents.errors import ConfigError

# extra name -> modules it provides (the names in pyproject.toml's [project.optional-dependencies])
EXTRAS: dict[str, tuple[str, ...]] = {
    "replay": ("starlette", "uvicorn"),
    "plots": ("matplotlib",),
    "proxy": ("starlette", "uvicorn"),
}


def missing_modules(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here."""
    return [m for m in EXTRAS[extra] if find_spec(m) is None]


def require_extra(extra: str, feature: str) -> None:
    """Raise a ConfigError naming the pip extra when ``feature`` cannot run in this install."""
    missing = missing_modules(extra)
    if missing:
        raise ConfigError(
            f"{feature} needs {', '.join(missing)}, which this install lacks: pip install 'deepprune-agents[{extra}]'."
        )
