"""An OpenAI-compatible server that replays recorded traces, token by token, like vLLM would stream them.

Why: evaluation must exercise the real engine — HTTP streams, the judge node, cancellation by closing
a socket — on traces with known answers, without a GPU. So this is a real ASGI app (Starlette on
uvicorn) speaking vLLM's dialect:

* ``GET /v1/models`` lists one model (``replay`` unless configured); another model name gets vLLM's 404;
* ``POST /v1/chat/completions`` and ``POST /v1/completions``, streaming (SSE chunk objects,
  ``data: [DONE]``, ``stream_options.include_usage`` and ``continuous_usage_stats``) and not;
* the question is found in the last user message / the prompt (whitespace-normalized containment), and
  the trace served is ``replay_data.trace_index(question, seed)``: deterministic by seed, a different
  recorded trace per branch of a run;
* one ``simple_tokenize`` piece per chunk, at ``tokens_per_s`` per stream (0: as fast as possible), or in
  *lockstep* (every stream of one run emits its k-th piece in the same tick, in seed order, ``stagger_s``
  apart): the pace at which the engine becomes deterministic, which is what lets a test prove that the
  offline simulator gives the engine's figures;
* every request is recorded (question, trace, tokens sent, start/end, whether and when the client
  disconnected, the session header it carried: ``session_header``, X-Session-ID by default, so a test
  behind a router sees which run each request belonged to): ``GET /stats``; ``GET /metrics`` exposes
  ``vllm:num_requests_running`` and ``vllm:generation_tokens_total`` so ``backends/metrics.py`` reads it
  like a vLLM server; ``GET /health``;
* a fault mode (``FaultConfig``; at construction, ``--fault-*`` flags or ``POST /admin/faults``): 429/500
  on open (first k requests, or a rate), a stall after t tokens, a malformed SSE chunk after t tokens,
  an abrupt connection drop after t tokens;
* a reasoning mode (``reasoning=``), serving each trace as a reasoning model would: its thinking
  (``backends.reasoning.split_recorded``) in ``delta.reasoning`` (vLLM >= 0.11 with a reasoning parser)
  or ``delta.reasoning_content`` (SGLang, older vLLM) and its answer in ``content``; or inline in
  ``content`` as ``<think>...</think>answer`` (``inline``; the tags fall across several chunks), or
  without the opening tag (``inline-open``: the chat template opened it).

``ReplayServer`` runs it in a background thread on a free port (tests, benchmarks);
``deepprune replay-server`` runs it in the foreground.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, get_args

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from deepprune_agents.asgi_server import ThreadedServer, bind, serve_foreground
from deepprune_agents.backends.reasoning import CLOSE_TAG, OPEN_TAG, split_recorded
from deepprune_agents.errors import ConfigError
from deepprune_agents.evaluation.replay_data import (
    RUN_STRIDE,
    QuestionIndex,
    ReplayQuestion,
    ReplayTrace,
    thinking_pieces,
    trace_index,
)
from deepprune_agents.truncation import simple_tokenize

log = logging.getLogger(__name__)

DEFAULT_MODEL = "replay"
DEFAULT_SESSION_HEADER = "X-Session-ID"
DEFAULT_LOCKSTEP_LEAD_S = 0.5
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


# ------------------------------------------------------------------------------------------------
# configuration
# ------------------------------------------------------------------------------------------------
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


@dataclass
class RequestRecord:
    """What the server did for one completion request."""

    id: str
    endpoint: str
    stream: bool
    question_id: str | None
    trace: int | None
    seed: int | None
    max_tokens: int | None
    t_start: float  # epoch seconds
    tokens_sent: int = 0
    status: int = 200
    t_first_token: float | None = None
    t_end: float | None = None
    finish_reason: str | None = None  # stop / length, None when it did not finish
    disconnected: bool = False  # the client went away before the stream ended
    t_disconnect: float | None = None
    t_last_token: float | None = None
    fault: str | None = None
    session: str | None = None  # the request's session header (its run, for a DeepPrune client), if any

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _DropConnection(Exception):
    """Raised inside the app to make uvicorn close the socket mid-body (the 'drop' fault)."""


class _QuietDrops(logging.Filter):
    """uvicorn logs an application exception with a traceback; an injected drop is not a bug."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, _DropConnection)


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())


# ------------------------------------------------------------------------------------------------
# state shared by the handlers
# ------------------------------------------------------------------------------------------------
class ReplayState:
    """Traces, pacing, faults and records. Handlers run on the server's loop; ``snapshot()`` and
    ``set_faults()`` may be called from any thread (a lock guards the records)."""

    def __init__(
        self,
        questions: Sequence[ReplayQuestion],
        *,
        tokens_per_s: float = 0.0,
        model: str = DEFAULT_MODEL,
        faults: FaultConfig | None = None,
        lockstep: bool = False,
        stagger_s: float = 0.0,
        lockstep_lead_s: float = DEFAULT_LOCKSTEP_LEAD_S,
        reasoning: str | None = None,
        session_header: str = DEFAULT_SESSION_HEADER,
    ) -> None:
        if reasoning is not None and reasoning not in REASONING_MODES:
            raise ConfigError(f"unknown reasoning mode {reasoning!r}: use one of {', '.join(REASONING_MODES)}.")
        self.reasoning = reasoning
        self.session_header = session_header
        if tokens_per_s < 0:
            raise ConfigError(f"tokens_per_s must be >= 0 (0: full speed), got {tokens_per_s}.")
        if lockstep and tokens_per_s <= 0:
            raise ConfigError("lockstep pacing needs tokens_per_s > 0.")
        if stagger_s < 0 or lockstep_lead_s < 0:
            raise ConfigError("stagger_s and lockstep_lead_s must be >= 0.")
        self.index = QuestionIndex(questions)
        self.tokens_per_s = float(tokens_per_s)
        self.model = model
        self.lockstep = lockstep
        self.stagger_s = stagger_s
        self.lockstep_lead_s = lockstep_lead_s
        self.lock = threading.Lock()
        self.records: list[RequestRecord] = []
        self.open: dict[str, RequestRecord] = {}
        self.generation_tokens = 0
        self.prompt_tokens = 0
        self.finished: dict[str, int] = {"stop": 0, "length": 0, "abort": 0, "error": 0}
        self.seedless: dict[str, int] = {}
        self.epochs: dict[tuple[str, int], float] = {}
        self.set_faults(faults or FaultConfig())

    def set_faults(self, faults: FaultConfig) -> None:
        with self.lock:
            self.faults = faults
            self.fault_requests = 0
            self.fault_rng = random.Random(faults.seed)

    def reset(self) -> None:
        """Forget records and counters (open streams stay tracked)."""
        with self.lock:
            self.records = [r for r in self.records if r.id in self.open]
            self.generation_tokens = self.prompt_tokens = 0
            self.finished = dict.fromkeys(self.finished, 0)
            self.seedless.clear()
            self.epochs.clear()

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "model": self.model,
                "tokens_per_s": self.tokens_per_s,
                "lockstep": self.lockstep,
                "reasoning": self.reasoning,
                "open_streams": len(self.open),
                "open": sorted(self.open),
                "generation_tokens_total": self.generation_tokens,
                "finished": dict(self.finished),
                "faults": asdict(self.faults),
                "records": [r.as_dict() for r in self.records],
            }

    def open_fault(self) -> int | None:
        """The status to answer this request with, if an open fault applies."""
        with self.lock:
            f = self.faults
            if f.open_status is None:
                return None
            self.fault_requests += 1
            if f.open_first and self.fault_requests <= f.open_first:
                return f.open_status
            if f.open_rate and self.fault_rng.random() < f.open_rate:
                return f.open_status
            return None

    def seed_for(self, question_id: str, seed: int | None) -> int:
        if seed is not None:
            return int(seed)
        with self.lock:  # seedless clients get branch 0, 1, 2, ... of run 0, in arrival order
            k = self.seedless.get(question_id, 0)
            self.seedless[question_id] = k + 1
            return k

    def epoch_for(self, question_id: str, seed: int, now: float) -> float:
        """Lockstep: every stream of one (question, run) shares the time of its first open plus a lead."""
        key = (question_id, seed // RUN_STRIDE)
        with self.lock:
            if key not in self.epochs:
                self.epochs[key] = now + self.lockstep_lead_s
            return self.epochs[key]

    def metrics_text(self) -> str:
        with self.lock:
            running = len(self.open)
            lines = [
                "# HELP vllm:num_requests_running Number of requests currently streaming.",
                "# TYPE vllm:num_requests_running gauge",
                f'vllm:num_requests_running{{model_name="{self.model}"}} {running}',
                "# HELP vllm:num_requests_waiting Number of requests waiting (always 0 here).",
                "# TYPE vllm:num_requests_waiting gauge",
                f'vllm:num_requests_waiting{{model_name="{self.model}"}} 0',
                "# HELP vllm:generation_tokens_total Number of generation tokens sent.",
                "# TYPE vllm:generation_tokens_total counter",
                f'vllm:generation_tokens_total{{model_name="{self.model}"}} {self.generation_tokens}',
                "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.",
                "# TYPE vllm:prompt_tokens_total counter",
                f'vllm:prompt_tokens_total{{model_name="{self.model}"}} {self.prompt_tokens}',
                "# HELP vllm:request_success_total Count of finished requests by reason.",
                "# TYPE vllm:request_success_total counter",
            ]
            for reason, count in self.finished.items():
                lines.append(
                    f'vllm:request_success_total{{finished_reason="{reason}",model_name="{self.model}"}} {count}'
                )
        return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------
# vLLM-shaped payloads
# ------------------------------------------------------------------------------------------------
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


class _SSEResponse(Response):
    """Streams one trace as SSE and watches for the client going away *while* streaming.

    Starlette's StreamingResponse (ASGI spec >= 2.4) only notices a disconnect when a write fails, which
    never happens during a stall or a slow pace; here a second task waits on ``http.disconnect`` so the
    record holds the moment the client closed the socket (the cancellation latency the benchmarks
    measure), and the producer is stopped at once."""

    media_type = "text/event-stream"

    def __init__(
        self, state: ReplayState, record: RequestRecord, stream: _Stream, usage: bool, continuous: bool, seed: int
    ) -> None:
        # No Response.__init__: it would add ``content-length: 0``; a stream is chunked.
        self.status_code = 200
        self.background = None
        self.raw_headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]
        self.state, self.record, self.stream = state, record, stream
        self.include_usage, self.continuous = usage, continuous
        self.seed = seed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        producer = asyncio.ensure_future(self._produce(send))
        watcher = asyncio.ensure_future(self._watch(receive))
        try:
            done, _ = await asyncio.wait({producer, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if watcher in done and not producer.done():
                producer.cancel()
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await producer
            else:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
                producer.result()  # re-raise _DropConnection so uvicorn closes the socket
        except OSError:
            self._disconnected()
        finally:
            for t in (producer, watcher):
                if not t.done():
                    t.cancel()
            self._close()

    async def _watch(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self._disconnected()
                return

    def _disconnected(self) -> None:
        r = self.record
        if r.finish_reason is None and not r.disconnected:
            r.disconnected = True
            r.t_disconnect = time.time()

    def _close(self) -> None:
        r = self.record
        with self.state.lock:
            r.t_end = time.time()
            self.state.open.pop(r.id, None)
            if r.finish_reason is not None:
                self.state.finished[r.finish_reason] = self.state.finished.get(r.finish_reason, 0) + 1
            elif r.disconnected:
                self.state.finished["abort"] += 1
            else:
                self.state.finished["error"] += 1

    async def _wait_turn(self, k: int, t0: float) -> None:
        """Sleep until piece ``k`` (1-based) is due."""
        state = self.state
        if state.tokens_per_s <= 0:
            if k % 8 == 0:
                await asyncio.sleep(0)  # full speed, but let the loop notice disconnects
            return
        if state.lockstep:
            branch = self.seed % RUN_STRIDE
            due = t0 + (k - 1) / state.tokens_per_s + branch * state.stagger_s
        else:
            due = t0 + k / state.tokens_per_s
        delay = due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _produce(self, send: Send) -> None:
        s, r, state = self.stream, self.record, self.state
        faults = state.faults
        now = time.time()
        t0 = state.epoch_for(str(r.question_id), self.seed, now) if state.lockstep else now
        if state.lockstep and now > t0:
            # A stream opened mid-run (a later wave of a staged run) starts at the next tick, in its seed's
            # slot: the simulator gives a branch launched during tick t its first piece at tick t + 1.
            t0 += (math.floor((now - t0) * state.tokens_per_s) + 1) / state.tokens_per_s

        async def write(data: str) -> None:
            await send({"type": "http.response.body", "body": data.encode("utf-8"), "more_body": True})

        await write(s.chunk(None, None, s.usage(0) if self.continuous else None, role=True))
        for k in range(1, s.limit + 1):
            if faults.stall_after is not None and r.tokens_sent >= faults.stall_after:
                r.fault = "stall"
                await asyncio.Event().wait()  # until the client gives up (the watcher cancels us)
            if faults.malformed_after is not None and r.tokens_sent >= faults.malformed_after:
                r.fault = "malformed"
                await write('data: {"id": "broken", "choices": [{"delta": {"content": "oops"\n\n')
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            if faults.drop_after is not None and r.tokens_sent >= faults.drop_after:
                r.fault = "drop"
                raise _DropConnection("injected connection drop")
            await self._wait_turn(k, t0)
            last = k == s.limit
            usage = s.usage(k) if self.continuous else None
            key, piece = s.parts[k - 1]
            data = s.chunk(piece, s.finish if last else None, usage, key=key)
            if last:  # finish chunk, usage and [DONE] in one write: the client sees the end at once
                r.finish_reason = s.finish
                if self.include_usage:
                    data += s.final_usage_chunk(k)
                data += "data: [DONE]\n\n"
            with state.lock:
                r.tokens_sent = k
                state.generation_tokens += 1
                ts = time.time()
                r.t_last_token = ts
                if r.t_first_token is None:
                    r.t_first_token = ts
            await write(data)
        if s.limit == 0:
            r.finish_reason = s.finish
            tail = s.final_usage_chunk(0) if self.include_usage else ""
            await write(tail + "data: [DONE]\n\n")
        await send({"type": "http.response.body", "body": b"", "more_body": False})


# ------------------------------------------------------------------------------------------------
# the app
# ------------------------------------------------------------------------------------------------
def build_app(state: ReplayState) -> Starlette:
    """The Starlette app over ``state`` (exposed for ASGI test clients and ``uvicorn``)."""

    async def models(request: Request) -> Response:
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"id": state.model, "object": "model", "created": 0, "owned_by": "deepprune-replay", "root": None}
                ],
            }
        )

    async def health(request: Request) -> Response:
        return Response(status_code=200)

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(state.metrics_text(), media_type="text/plain; version=0.0.4")

    async def stats(request: Request) -> Response:
        return JSONResponse(state.snapshot())

    async def faults(request: Request) -> Response:
        if request.method == "POST":
            try:
                body = await request.json()
                state.set_faults(FaultConfig.from_dict(body if isinstance(body, dict) else {}))
            except (ValueError, TypeError, ConfigError) as exc:
                return _error(400, f"invalid faults: {exc}", "BadRequestError")
        return JSONResponse(asdict(state.faults))

    async def reset(request: Request) -> Response:
        state.reset()
        return JSONResponse({"ok": True})

    async def completion(request: Request, endpoint: str) -> Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            prompt = _prompt_of(body, endpoint)
        except (ValueError, TypeError, AttributeError) as exc:
            return _error(400, f"invalid request: {exc}", "BadRequestError")
        model = body.get("model")
        if model != state.model:
            return _error(404, f"The model `{model}` does not exist.", "NotFoundError")
        status = state.open_fault()
        if status is not None:
            return _error(status, f"injected fault: HTTP {status} on open", "ServiceUnavailableError")
        question = state.index.find(prompt)
        if question is None:
            return _error(
                400,
                "no recorded question is contained in this prompt; ask one of the questions in the trace "
                "files given to `deepprune replay-server --traces`.",
                "BadRequestError",
            )
        raw_seed = body.get("seed")
        seed = state.seed_for(question.question_id, int(raw_seed) if raw_seed is not None else None)
        index = trace_index(question.question_id, len(question.traces), seed)
        trace = question.traces[index]
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
        stream = _Stream(
            endpoint, state.model, trace, max_tokens, prompt_tokens=len(prompt.split()), reasoning=state.reasoning
        )
        record = RequestRecord(
            id=stream.id,
            endpoint=endpoint,
            stream=bool(body.get("stream")),
            question_id=question.question_id,
            trace=index,
            seed=seed,
            max_tokens=max_tokens,
            t_start=time.time(),
            session=request.headers.get(state.session_header) if state.session_header else None,
        )
        with state.lock:
            state.records.append(record)
            state.prompt_tokens += stream.prompt_tokens
        if not record.stream:
            record.tokens_sent = stream.limit
            record.finish_reason = stream.finish
            record.t_end = time.time()
            with state.lock:
                state.generation_tokens += stream.limit
                state.finished[stream.finish] += 1
            return JSONResponse(stream.full_response())
        options = body.get("stream_options") or {}
        with state.lock:
            state.open[record.id] = record
        return _SSEResponse(
            state,
            record,
            stream,
            usage=bool(options.get("include_usage")),
            continuous=bool(options.get("continuous_usage_stats")),
            seed=seed,
        )

    async def chat(request: Request) -> Response:
        return await completion(request, "chat")

    async def completions(request: Request) -> Response:
        return await completion(request, "completions")

    routes = [
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/stats", stats, methods=["GET"]),
        Route("/admin/faults", faults, methods=["GET", "POST"]),
        Route("/admin/reset", reset, methods=["POST"]),
    ]
    return Starlette(routes=routes)


class ReplayServer(ThreadedServer):
    """The replay server on 127.0.0.1 in a background thread.

    ``with ReplayServer(questions, tokens_per_s=50) as server: ... server.base_url ... server.stats()``
    """

    def __init__(
        self,
        questions: Sequence[ReplayQuestion],
        *,
        tokens_per_s: float = 0.0,
        faults: FaultConfig | None = None,
        model: str = DEFAULT_MODEL,
        host: str = "127.0.0.1",
        port: int = 0,
        lockstep: bool = False,
        stagger_s: float = 0.0,
        lockstep_lead_s: float = DEFAULT_LOCKSTEP_LEAD_S,
        reasoning: str | None = None,
        session_header: str = DEFAULT_SESSION_HEADER,
    ) -> None:
        self.state = ReplayState(
            questions,
            tokens_per_s=tokens_per_s,
            model=model,
            faults=faults,
            lockstep=lockstep,
            stagger_s=stagger_s,
            lockstep_lead_s=lockstep_lead_s,
            reasoning=reasoning,
            session_header=session_header,
        )
        super().__init__(host=host, port=port)

    label = "replay server"

    def build(self) -> Starlette:
        return build_app(self.state)

    @property
    def model(self) -> str:
        return self.state.model

    # -- inspection / control -----------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Same JSON as ``GET /stats``: ``records``, ``open_streams``, counters, faults."""
        return self.state.snapshot()

    def records(self) -> list[RequestRecord]:
        with self.state.lock:
            return list(self.state.records)

    def open_streams(self) -> int:
        with self.state.lock:
            return len(self.state.open)

    def set_faults(self, faults: FaultConfig | None) -> None:
        self.state.set_faults(faults or FaultConfig())

    def reset(self) -> None:
        self.state.reset()

    def wait_idle(self, timeout_s: float = 5.0) -> bool:
        """Wait until no stream is open (a cancelled client's disconnect can take a moment to land)."""
        deadline = time.monotonic() + timeout_s
        while self.open_streams():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True


def serve_forever(questions: Sequence[ReplayQuestion], *, host: str, port: int, **options: Any) -> None:
    """Run the server in the foreground (the CLI); Ctrl-C stops it."""
    state = ReplayState(questions, **options)
    sock = bind(host, port)
    actual = sock.getsockname()[1]
    print(f"replay server: {len(questions)} questions, model {state.model!r}, http://{host}:{actual}/v1", flush=True)
    serve_foreground(build_app(state), sock)
