"""What one recorded trace streams, chunk by chunk, in each reasoning mode (pure: no I/O, no Starlette)."""

from __future__ import annotations

import functools
from typing import Literal, get_args

from deepprune_agents.backends.reasoning import CLOSE_TAG, OPEN_TAG, split_recorded
from deepprune_agents.errors import ConfigError
from deepprune_agents.evaluation.replay_data import thinking_pieces
from deepprune_agents.truncation import simple_tokenize

ReasoningMode = Literal["reasoning", "reasoning_content", "inline", "inline-open"]
REASONING_MODES: tuple[str, ...] = get_args(ReasoningMode)


@functools.lru_cache(maxsize=65536)
def stream_parts(text: str, pieces: tuple[str, ...], mode: str | None) -> tuple[tuple[str, str], ...]:
    """``(field, piece)`` per chunk: what one trace streams in ``mode`` (None: content pieces as recorded)."""
    if mode is None:
        return tuple(("content", p) for p in pieces)
    if mode not in REASONING_MODES:
        raise ConfigError(f"unknown reasoning mode {mode!r}: use one of {', '.join(REASONING_MODES)}.")
    if mode in ("inline", "inline-open"):
        thinking, answer = split_recorded(text)
        opening = OPEN_TAG if mode == "inline" else ""
        inline = opening + thinking + CLOSE_TAG + answer if thinking else answer
        return tuple(("content", p) for p in simple_tokenize(inline))
    thinking_p, answer_p = thinking_pieces(text)
    return tuple((mode, p) for p in thinking_p) + tuple(("content", p) for p in answer_p)
