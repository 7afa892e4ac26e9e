"""Fault injection (issue 6): what misbehaviour to inject, and the drop that makes uvicorn close a socket."""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from typing import Any

from deepprune_agents.errors import ConfigError


@dataclass
class FaultConfig:
    """Misbehaviour to inject (issue 6). Every field off by default.

    * ``open_status`` (429 or 500, or any 4xx/5xx) answered on opening a completion request, to the first
      ``open_first`` requests after the faults were set, or — when ``open_rate`` > 0 — to that fraction
      of requests (seeded by ``seed``, so a test is reproducible);
    * ``stall_after``: after that many tokens the stream sends nothing more but stays open;
    * ``malformed_after``: after that many tokens one chunk is not valid JSON, then the stream ends;
    * ``drop_after``: after that many tokens the TCP connection is closed without finishing the body.
    """

    open_status: int | None = None
    open_first: int = 0
    open_rate: float = 0.0
    stall_after: int | None = None
    malformed_after: int | None = None
    drop_after: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.open_status is not None and not 400 <= int(self.open_status) <= 599:
            raise ConfigError(f"open_status must be an HTTP error status (4xx/5xx), got {self.open_status}.")
        if self.open_first < 0 or not 0.0 <= self.open_rate <= 1.0:
            raise ConfigError("open_first must be >= 0 and open_rate in [0, 1].")
        for name in ("stall_after", "malformed_after", "drop_after"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ConfigError(f"{name} must be an integer >= 0 (tokens before the fault), got {value!r}.")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown fault field(s) {sorted(unknown)}; known: {sorted(known)}.")
        return cls(**data)

    @property
    def active(self) -> bool:
        return any(
            (
                self.open_status is not None and (self.open_first > 0 or self.open_rate > 0),
                self.stall_after is not None,
                self.malformed_after is not None,
                self.drop_after is not None,
            )
        )


class _DropConnection(Exception):
    """Raised inside the app to make uvicorn close the socket mid-body (the 'drop' fault)."""


class _QuietDrops(logging.Filter):
    """uvicorn logs an application exception with a traceback; an injected drop is not a bug."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, _DropConnection)


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())
