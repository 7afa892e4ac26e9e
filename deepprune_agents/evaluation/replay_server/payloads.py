"""vLLM-shaped payloads: error bodies, the prompt of a request, and the chunks of one completion."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from starlette.responses import JSONResponse

from deepprune_agents.evaluation.replay_data import ReplayTrace
from deepprune_agents.evaluation.replay_server.parts import stream_parts


def _error(status: int, message: str, kind: str) -> JSONResponse:
    """vLLM's error body: ``{"error": {"message", "type", "param", "code"}}``."""
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": status}}, status)


def _prompt_of(body: dict[str, Any], endpoint: str) -> str:
    if endpoint == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValueError("messages must be a non-empty list")
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        content = (users or messages)[-1].get("content", "")
        if isinstance(content, list):  # OpenAI content parts
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        return str(content)
    prompt = body.get("prompt", "")
    if isinstance(prompt, list):
        prompt = prompt[0] if prompt else ""
    return str(prompt)


class _Stream:
    """One completion: which trace, how far, how to shape chunks."""

    def __init__(
        self,
        endpoint: str,
        model: str,
        trace: ReplayTrace,
        max_tokens: int | None,
        prompt_tokens: int,
        reasoning: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.model = model
        self.trace = trace
        # The completions endpoint has no reasoning field: a reasoning model's thinking is inline there.
        mode = "inline" if reasoning in ("reasoning", "reasoning_content") and endpoint != "chat" else reasoning
        self.parts = stream_parts(trace.text, trace.pieces, mode)
        n = len(self.parts)
        self.limit = n if max_tokens is None else min(n, max(0, int(max_tokens)))
        self.finish = "stop" if self.limit == n else "length"
        self.prompt_tokens = prompt_tokens
        self.id = ("chatcmpl-" if endpoint == "chat" else "cmpl-") + uuid.uuid4().hex
        self.created = int(time.time())

    def usage(self, completion: int) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "total_tokens": self.prompt_tokens + completion,
            "completion_tokens": completion,
        }

    def chunk(
        self,
        text: str | None,
        finish: str | None,
        usage: dict[str, int] | None,
        *,
        role: bool = False,
        key: str = "content",
    ) -> str:
        if self.endpoint == "chat":
            delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else {key: text}
            choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            obj = "chat.completion.chunk"
        else:
            choice = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish, "stop_reason": None}
            obj = "text_completion"
        payload: dict[str, Any] = {
            "id": self.id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        }
        if usage is not None:
            payload["usage"] = usage
        return "data: " + json.dumps(payload, separators=(",", ":")) + "\n\n"

    def final_usage_chunk(self, completion: int) -> str:
        payload: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk" if self.endpoint == "chat" else "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": self.usage(completion),
        }
        return "data: " + json.dumps(payload, separators=(",", ":")) + "\n\n"

    def full_response(self) -> dict[str, Any]:
        parts = self.parts[: self.limit]
        text = "".join(p for key, p in parts if key == "content")
        if self.endpoint == "chat":
            message: dict[str, Any] = {"role": "assistant", "content": text}
            for key in {k for k, _ in parts if k != "content"}:
                message[key] = "".join(p for k, p in parts if k == key)
            choice: dict[str, Any] = {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": self.finish,
            }
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": self.finish, "stop_reason": None}
            obj = "text_completion"
        return {
            "id": self.id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            "usage": self.usage(self.limit),
        }
