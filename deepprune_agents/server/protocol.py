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
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deepprune_agents.result import BranchRecord, DeepPruneResult
from deepprune_agents.server.errors import first_sentence

PROGRESS_PREFIX = "deepprune: "
CONTENT_PIECE_CHARS = 64  # the final answer is streamed in pieces of this size


CONTENT_PARTS = ("text", "image_url")  # passed to every branch; the model server says whether it takes images
CONVERSATION_ROLES = ("user", "assistant")
SYSTEM_ROLES = ("system", "developer")


class ChatMessage(BaseModel):
    """One chat message; content may be a string or OpenAI's list of parts (text and images)."""

    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")
        return self.content or ""

    def has_images(self) -> bool:
        return isinstance(self.content, list) and any(p.get("type") == "image_url" for p in self.content)


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


@dataclass(frozen=True)
class Conversation:
    """A request's messages as the branches get them: the client's system text (appended to the
    operator's system prompt), the turns in order ending in the user's question, and that question."""

    system: str
    turns: list[dict[str, Any]]
    question: str
    has_images: bool


class ConversationError(ValueError):
    """The messages cannot be sent as they are; the text names the fix."""


def conversation(messages: list[ChatMessage]) -> Conversation:
    """Every turn goes to every branch (a follow-up is read with what it follows); system and developer
    messages are joined into system text (chat templates take one system message, first)."""
    system = "\n\n".join(m.text().strip() for m in messages if m.role in SYSTEM_ROLES and m.text().strip())
    turns: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        if m.role in SYSTEM_ROLES:
            continue
        if m.role not in CONVERSATION_ROLES:
            raise ConversationError(
                f"messages.{i}: role {m.role!r} is not supported: tools are not, so send user, assistant and "
                "system messages only."
            )
        if isinstance(m.content, list):
            for part in m.content:
                if part.get("type") not in CONTENT_PARTS:
                    raise ConversationError(
                        f"messages.{i}: content part type {part.get('type')!r} is not supported: use "
                        f"{' or '.join(CONTENT_PARTS)} parts."
                    )
        turn: dict[str, Any] = {"role": m.role, "content": m.content if m.content is not None else ""}
        if isinstance(m.model_extra, dict) and isinstance(m.model_extra.get("name"), str):
            turn["name"] = m.model_extra["name"]
        turns.append(turn)
    if not turns or turns[-1]["role"] != "user":
        raise ConversationError(
            "the conversation must end with a user message: the last user message is the question to solve."
        )
    question = next(m for m in reversed(messages) if m.role == "user").text().strip()
    if not question:
        raise ConversationError("the last user message has no text: the last user message is the question to solve.")
    images = any(m.has_images() for m in messages)
    return Conversation(system, turns, question, images)


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
    "launch": ("branches", "why"),  # staged fan-out: which branches start now, and why (first wave, judge-split, ...)
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
    """``text`` in pieces of ``size`` characters (at least one piece, maybe empty)."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


@dataclass(frozen=True)
class Reply:
    """The assistant message: its content, the reasoning of the branch it comes from (vLLM's ``reasoning``
    field), and why it ended (``length`` when the branches that made it were cut)."""

    content: str
    reasoning: str
    finish_reason: str


def reply_branch(result: DeepPruneResult) -> BranchRecord | None:
    """The lowest-id finished branch with text that voted for the winning answer (else one that gave it,
    else the first finished one when there is no answer). A reasoning branch cut before its final content
    has text "" (its answer came from the thinking): it cannot serve as the reply."""
    finished = [b for b in result.branches if b.status == "finished" and b.text.strip()]
    for b in finished:
        if result.answer is not None and b.answer == result.answer and b.voted:
            return b
    for b in finished:
        if result.answer is not None and b.answer == result.answer:
            return b
    return finished[0] if finished and result.answer is None else None


def reply(result: DeepPruneResult, mode: str, max_tokens: int) -> Reply:
    """``branch`` mode: the reply branch's full text (a worked solution ending in the answer), else the
    answer; ``answer`` mode: the answer alone. When no branch answered, a message that says why, never an
    empty reply."""
    branch = reply_branch(result)
    voters = [b for b in result.branches if b.voted]
    finished = [b for b in result.branches if b.status == "finished"]
    cut = bool(finished) and all(b.finish_reason == "length" for b in finished)
    content = branch.text if branch is not None and mode != "answer" else (result.answer or "")
    length = (branch is not None and branch.finish_reason == "length") or (
        bool(voters) and all(b.finish_reason == "length" for b in voters)
    )
    if not content.strip():
        if cut:
            content = (
                f"No answer: all {len(finished)} branches that finished were cut at max_tokens={max_tokens} "
                "before they answered; raise max_tokens."
            )
            length = True
        elif not finished:
            content = (
                f"No answer: no branch finished ({result.cancelled} cancelled, {result.failed} failed"
                f"{result.not_started()})."
            )
        else:
            content = f"No answer: none of the {len(finished)} branches that finished stated one."
    reasoning = branch.reasoning if branch is not None else ""
    return Reply(content, reasoning, "length" if length else "stop")


def usage(result: DeepPruneResult, prompt_tokens_per_branch: int) -> dict[str, int]:
    """Tokens actually spent: every branch that reached the server read the prompt (not one a staged run
    never started, nor one that failed before a token), and ``completion_tokens`` is the sum over all
    branches, cancelled ones included."""
    opened = sum(1 for b in result.branches if b.status != "unstarted" and (b.status != "failed" or b.tokens > 0))
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
        "unstarted": result.unstarted,
        "judge_rounds": result.judge_rounds,
        "fallback": result.fallback,
        "wall_time_s": result.wall_time_s,
        "prompt_tokens_estimated": prompt_tokens_estimated,
    }


def completion_body(
    cid: str, model: str, created: int, answer: Reply, use: dict[str, int], summary: dict[str, Any]
) -> dict[str, Any]:
    """The non-streamed ``chat.completion`` (``reasoning`` only when the reply branch thought aloud)."""
    message: dict[str, Any] = {"role": "assistant", "content": answer.content}
    if answer.reasoning:
        message["reasoning"] = answer.reasoning
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": answer.finish_reason,
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
        if kind == "launch" and event.get("branches"):
            ids = event["branches"]
            shown = (
                f"{ids[0]}-{ids[-1]}"
                if len(ids) > 2 and ids == list(range(ids[0], ids[-1] + 1))
                else (", ".join(str(i) for i in ids))
            )
            return [f"{PROGRESS_PREFIX}started branch(es) {shown} ({str(event.get('why', '')).replace('-', ' ')})\n"]
        if kind == "judge_error":
            error = first_sentence(str(event.get("error")))[:120]
            return [f"{PROGRESS_PREFIX}judge error, branches go on unpruned: {error}\n"]
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
