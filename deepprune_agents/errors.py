"""Typed errors. Each message says what went wrong *and* what to change, because the people who
read them are calling us from inside an agent loop and need the fix, not a stack trace."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class DeepPruneError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(DeepPruneError, ValueError):
    """A setting or an argument is invalid (N < 1, unknown judge, tau outside [0, 1], ...)."""


class BackendError(DeepPruneError):
    """The OpenAI-compatible server could not serve a branch."""


class BackendUnavailableError(BackendError):
    """No endpoint answered (connection refused, DNS, timeouts) after the retries on opening."""


class ModelNotFoundError(BackendError):
    """The server does not serve the requested model name."""


class BackendRequestError(BackendError):
    """The server rejected the request itself (4xx other than 404/429): retrying would not help."""


class StreamBrokenError(BackendError):
    """A branch's stream broke after it opened (stall, dropped connection, malformed chunk). Never
    retried: tokens were already consumed. The branch keeps its text so far and is marked failed."""


class AllBranchesFailedError(BackendError):
    """Every branch failed: there is nothing to vote on. ``branches`` keeps each branch's text so far, as
    the JSON records of ``result.BranchRecordDict`` (typed as plain mappings here: this module is the
    bottom layer that every other imports, so it names no type from above it)."""

    def __init__(self, message: str, branches: Sequence[Mapping[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.branches: list[Mapping[str, Any]] = list(branches or [])


class EmbeddedServerError(DeepPruneError):
    """The embedded vLLM server could not be prepared or started."""


class JudgeError(DeepPruneError):
    """A judge raised or timed out."""
