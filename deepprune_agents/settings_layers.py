"""Where a setting's value comes from: defaults < settings file < environment < the call.

One rule for every field of ``DeepPruneContext``, so a deployment can set anything once (a file in the
image, or ``DEEPPRUNE_<FIELD>`` variables) and every entry point (CLI, Runnable, tool, Studio, proxy)
sees it, while whatever a call passes explicitly always wins:

1. the field's default (settings.py);
2. the settings file named by ``$DEEPPRUNE_SETTINGS`` (TOML or JSON, keys = field names);
3. environment variables ``DEEPPRUNE_<FIELD>`` (``DEEPPRUNE_N=16``, ``DEEPPRUNE_POLICY=paper``; lists
   and objects as JSON, ``base_urls`` also comma-separated; ``DEEPPRUNE_BASE_URL`` is an alias);
4. the call: constructor keywords, CLI flags, ``configurable`` keys, Studio's context form, the proxy's
   model suffix.

Pure parsing here (the environment is passed in), so the rule is testable without touching ``os.environ``.
API keys are never settings: they stay in their own variables and are read only by the backends.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import MISSING, Field
from pathlib import Path
from typing import Any

from deepprune_agents.errors import ConfigError

ENV_PREFIX = "DEEPPRUNE_"
ENV_SETTINGS_FILE = "DEEPPRUNE_SETTINGS"
ALIASES = {"DEEPPRUNE_BASE_URL": "base_urls"}  # the singular spelling users type for one server
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def env_name(field_name: str) -> str:
    return f"{ENV_PREFIX}{field_name.upper()}"


def _default_of(f: Field[Any]) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None


def parse_env_value(f: Field[Any], raw: str, source: str) -> Any:
    """The typed value of ``raw`` for field ``f``, by the kind of the field's default (and its type text
    for fields that default to None); ConfigError names the variable and the expected form."""
    default = _default_of(f)
    kind = str(f.type)
    text = raw.strip()
    try:
        if isinstance(default, bool) or (default is None and "bool" in kind):
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            if default is None and text.lower() in ("", "none", "null"):
                return None
            raise ValueError("expected true or false")
        if default is None and text.lower() in ("", "none", "null"):
            return None
        if isinstance(default, int) or (default is None and "int" in kind):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, list):
            if text.startswith("["):
                value = json.loads(text)
                if not isinstance(value, list):
                    raise ValueError("expected a JSON list")
                return value
            return [part for part in text.replace(" ", ",").split(",") if part]
        if isinstance(default, dict):
            value = json.loads(text or "{}")
            if not isinstance(value, dict):
                raise ValueError("expected a JSON object")
            return value
    except (ValueError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{source}={raw!r} is not a valid value for {f.name}: {exc}.") from exc
    if default is None and text.lower() in ("", "none", "null"):
        return None
    return raw


def read_settings_file(path: str | Path) -> dict[str, Any]:
    """A TOML or JSON file of settings (keys = field names); ConfigError when it cannot be read."""
    p = Path(path).expanduser()
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"${ENV_SETTINGS_FILE}={str(path)!r}: cannot read it ({exc.strerror}).") from exc
    try:
        data: Any = json.loads(raw) if p.suffix == ".json" else tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"${ENV_SETTINGS_FILE}={str(path)!r} is not valid {p.suffix[1:] or 'TOML'}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"${ENV_SETTINGS_FILE}={str(path)!r} must hold a table/object of settings.")
    return data


def layered_values(fields_: tuple[Field[Any], ...], environ: Mapping[str, str]) -> dict[str, Any]:
    """The values the settings file and the environment give (environment over file), by field name.
    Unknown keys in the file raise ConfigError; unrelated ``DEEPPRUNE_*`` variables (API keys, judge
    threads) are not settings and are ignored."""
    by_name = {f.name: f for f in fields_}
    values: dict[str, Any] = {}
    path = environ.get(ENV_SETTINGS_FILE)
    if path:
        data = read_settings_file(path)
        unknown = sorted(set(data) - set(by_name))
        if unknown:
            raise ConfigError(f"${ENV_SETTINGS_FILE}={path!r}: unknown setting(s) {unknown}; known: {sorted(by_name)}.")
        values.update(data)
    for alias, name in ALIASES.items():
        if environ.get(alias):
            values[name] = parse_env_value(by_name[name], environ[alias], alias)
    for name, f in by_name.items():
        raw = environ.get(env_name(name))
        if raw is not None and (raw.strip() or isinstance(_default_of(f), str)):
            values[name] = parse_env_value(f, raw, env_name(name))
    return values
