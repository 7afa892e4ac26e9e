"""BranchStream's SSE decoding (the engine reads raw lines, not openai's per-chunk models)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from deepprune_agents.backends.openai_stream import BranchStream, StreamChunk
from deepprune_agents.errors import StreamBrokenError


class Lines:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.closed = False

    async def iter_lines(self) -> AsyncIterator[str]:
        for line in self.lines:
            yield line

    async def close(self) -> None:
        self.closed = True


def event(**body: object) -> list[str]:
    return [f"data: {json.dumps(body)}", ""]


async def chunks(lines: list[str], kind: str = "chat") -> list[StreamChunk]:
    return [c async for c in BranchStream(Lines(lines), kind)]  # type: ignore[arg-type]


async def test_chat_deltas_usage_finish_and_done() -> None:
    lines = [
        ": keep-alive comment",
        *event(choices=[{"delta": {"role": "assistant"}, "finish_reason": None}], usage=None),
        *event(choices=[{"delta": {"content": "3 + 4"}, "finish_reason": None}], usage={"completion_tokens": 2}),
        *event(choices=[{"delta": {"content": " = 7"}, "finish_reason": "stop"}]),
        *event(choices=[], usage={"completion_tokens": 4}),
        "data: [DONE]",
        "",
        *event(choices=[{"delta": {"content": "after DONE is ignored"}}]),
    ]
    got = await chunks(lines)
    assert got == [
        StreamChunk("3 + 4", 2, None),
        StreamChunk(" = 7", None, "stop"),
        StreamChunk("", 4, None),
    ]


async def test_completions_text_multiline_data_and_missing_final_blank_line() -> None:
    # One event over two data lines (SSE joins them with a newline: JSON whitespace between tokens).
    lines = ["event: message", 'data: {"choices":', 'data: [{"text": "The answer is 7.", "finish_reason": "length"}]}']
    assert await chunks(lines, "completions") == [StreamChunk("The answer is 7.", None, "length")]


async def test_malformed_and_error_events_are_typed() -> None:
    with pytest.raises(StreamBrokenError, match="malformed stream chunk"):
        await chunks(['data: {"choices": [', ""])
    with pytest.raises(StreamBrokenError, match="malformed stream chunk"):
        await chunks(["data: [1, 2]", ""])
    with pytest.raises(StreamBrokenError, match="reported an error mid-stream: out of KV cache"):
        await chunks([*event(error={"message": "out of KV cache", "code": 500})])
