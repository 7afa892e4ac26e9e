"""The OpenAI wire format of the proxy: the request model, chunk and response bodies, error bodies, and
the progress lines streamed as ``delta.reasoning`` (pure functions of results and events).

Progress chunks are marked: each carries a top-level ``"deepprune": {"progress": true, ...}``. A client
that shows thinking shows them; a DeepPrune backend pointed at this proxy (a proxy of a proxy) must skip
reasoning from chunks so marked — they are our bookkeeping, not thinking to judge. Clients that read only
``delta.content`` (DeepPrune's backend today, most agents) never see them at all.

With ``deepprune.events`` on (the live page asks for it), each run event also comes as a chunk with an
empty delta and ``"deepprune": {"progress": true, "event": KIND, "data": {...}}``: the fields of
``EVENT_FIELDS`` only (branch ids, statuses, token counts, text deltas, clusters, the vote), never the
upstream URLs the ``start`` event carries inside the process.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deepprune_agents.result import DeepPruneResult

PROGRESS_PREFIX = "deepprune: "
CONTENT_PIECE_CHARS = 64  # the final answer is streamed in pieces of this size


class ChatMessage(BaseModel):
    """One chat message; content may be a string or OpenAI's list of parts (only text parts are read)."""

    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """What ``POST /v1/chat/completions`` reads; unknown OpenAI fields (tools, logprobs, ...) are tolerated
    and ignored, DeepPrune's own options live in ``deepprune`` (see options.py)."""

    model_config = ConfigDict(extra="allow")
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None


def question_and_system(messages: list[ChatMessage]) -> tuple[str, str]:
    """The question is the last user message; system (and developer) messages are joined into extra
    system text. Earlier turns are not sent upstream: every branch solves the last question afresh."""
    users = [m for m in messages if m.role == "user"]
    question = users[-1].text().strip() if users else ""
    system = "\n\n".join(m.text().strip() for m in messages if m.role in ("system", "developer") and m.text().strip())
    return question, system


def error_body(
    message: str, *, kind: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """OpenAI's error shape: the openai client raises it with ``message`` as the text."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def new_completion_id() -> str:
    return "chatcmpl-dp-" + uuid.uuid4().hex


def chunk(
    cid: str, model: str, created: int, delta: dict[str, Any] | None, *, finish: str | None = None, **top: Any
) -> dict[str, Any]:
    """One ``chat.completion.chunk``; ``delta=None`` gives a chunk without choices (the usage chunk)."""
    body: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    body.update(top)
    return body


def progress_chunk(cid: str, model: str, created: int, line: str, event: str) -> dict[str, Any]:
    return chunk(cid, model, created, {"reasoning": line}, deepprune={"progress": True, "event": event})


# Per run event of graph.py's stream writer: what a client may see of it (clusters are the policy's
# member lists, in the order the run's result numbers them).
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "start": ("n", "model", "policy", "judge"),
    "tokens": ("branches",),  # per branch that moved: id, tokens, status, delta (new text), answer once finished
    "judge": ("round", "cancelled", "vote_decided", "clusters"),
    "result": ("answer", "votes", "tokens_generated", "token_saving"),
}


def event_chunk(cid: str, model: str, created: int, event: dict[str, Any]) -> dict[str, Any] | None:
    """The structured chunk of one run event (None for kinds a client has no use for): an empty delta, so
    clients that read only content or reasoning skip it, and the event's public fields under ``deepprune``."""
    kind = str(event.get("event"))
    keep = EVENT_FIELDS.get(kind)
    if keep is None:
        return None
    data = {k: event[k] for k in keep if k in event}
    return chunk(cid, model, created, {}, deepprune={"progress": True, "event": kind, "data": data})


def content_pieces(text: str, size: int = CONTENT_PIECE_CHARS) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def reply_text(result: DeepPruneResult, mode: str) -> str:
    """The assistant message: in ``branch`` mode the full reply of the lowest-id finished branch that
    voted for the winning answer (a worked solution ending in that answer), in ``answer`` mode the answer
    alone. With no parsable answer, the first finished branch's reply (or nothing)."""
    if mode == "answer":
        return result.answer or ""
    # A reasoning branch cut before its final content has text "" (its answer came from the thinking):
    # such a branch cannot serve as the reply, the answer itself does.
    finished = [b for b in result.branches if b.status == "finished" and b.text.strip()]
    for b in finished:
        if result.answer is not None and b.answer == result.answer and b.voted:
            return b.text
    for b in finished:
        if result.answer is not None and b.answer == result.answer:
            return b.text
    if result.answer is not None:
        return result.answer
    return finished[0].text if finished else ""


def usage(result: DeepPruneResult, prompt_tokens_per_branch: int) -> dict[str, int]:
    """Tokens actually spent: every branch that reached the server read the prompt, and
    ``completion_tokens`` is the sum over all branches, cancelled ones included."""
    opened = sum(1 for b in result.branches if b.status != "failed" or b.tokens > 0)
    prompt = prompt_tokens_per_branch * opened
    completion = sum(b.tokens for b in result.branches)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def deepprune_summary(result: DeepPruneResult, *, prompt_tokens_estimated: bool) -> dict[str, Any]:
    """The top-level ``deepprune`` object: per-branch status and tokens, the vote and the saving (no branch
    texts, no endpoint URLs)."""
    return {
        "answer": result.answer,
        "votes": result.votes,
        "n": result.n,
        "policy": result.policy,
        "judge": result.judge,
        "branches": [
            {"id": b.id, "status": b.status, "tokens": b.tokens, "answer": b.answer, "cancel_reason": b.cancel_reason}
            for b in result.branches
        ],
        "tokens_generated": result.tokens_generated,
        "tokens_cons_estimate": result.tokens_cons_estimate,
        "token_saving": result.token_saving,
        "finished": result.finished,
        "cancelled": result.cancelled,
        "failed": result.failed,
        "judge_rounds": result.judge_rounds,
        "fallback": result.fallback,
        "wall_time_s": result.wall_time_s,
        "prompt_tokens_estimated": prompt_tokens_estimated,
    }


def completion_body(
    cid: str, model: str, created: int, content: str, use: dict[str, int], summary: dict[str, Any]
) -> dict[str, Any]:
    """The non-streamed ``chat.completion``."""
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": use,
        "deepprune": summary,
    }


def now() -> int:
    return int(time.time())


class ProgressLines:
    """Turns the graph's custom events into short progress lines (one state per run: which branches were
    already reported finished or failed)."""

    def __init__(self) -> None:
        self._reported: dict[int, str] = {}

    def lines(self, event: dict[str, Any]) -> list[str]:
        kind = event.get("event")
        if kind == "start":
            return [
                f"{PROGRESS_PREFIX}{event.get('n')} branches started on {event.get('model')} "
                f"({event.get('policy')} policy, {event.get('judge')} judge)\n"
            ]
        if kind == "tokens":
            out = []
            for b in event.get("branches", []):
                status = b.get("status")
                if status in ("finished", "failed") and self._reported.get(b["id"]) != status:
                    self._reported[b["id"]] = status
                    out.append(f"{PROGRESS_PREFIX}branch {b['id']} {status} ({b.get('tokens', 0)} tokens)\n")
            return out
        if kind == "judge":
            out = []
            if event.get("cancelled"):
                ids = ", ".join(str(i) for i in event["cancelled"])
                out.append(
                    f"{PROGRESS_PREFIX}judge round {event.get('round')}: pruned branch(es) {ids} "
                    f"({len(event.get('clusters') or [])} clusters)\n"
                )
            if event.get("vote_decided"):
                ids = ", ".join(str(i) for i in event["vote_decided"])
                out.append(f"{PROGRESS_PREFIX}vote decided: stopped branch(es) {ids}\n")
            return out
        if kind == "judge_error":
            return [f"{PROGRESS_PREFIX}judge error, branches go on unpruned: {str(event.get('error'))[:120]}\n"]
        if kind == "result":
            saving = float(event.get("token_saving") or 0.0)
            return [
                f"{PROGRESS_PREFIX}answer {event.get('answer')} ({event.get('tokens_generated')} tokens, "
                f"{saving:.0%} saved)\n"
            ]
        return []


def accepted_line(n: int, policy: str, judge: str) -> str:
    """The first progress line, sent before the run starts (loading a judge can take seconds)."""
    return f"{PROGRESS_PREFIX}accepted: n={n}, {policy} policy, {judge} judge\n"
