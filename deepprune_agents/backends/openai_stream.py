"""One streaming request per branch against any OpenAI-compatible server (vLLM first).

Why one request per branch (``n=1``) rather than one request with ``n=N``: a branch can only be stopped
alone if it owns its HTTP stream. Closing that stream makes vLLM abort the request ("Aborted request"),
which is the whole point of pruning.

Retries (tenacity) wrap only the *opening* of a stream: once a token was consumed, retrying would
generate it twice and silently change the sample, so a mid-stream failure fails that branch instead.

Requests go out on the raw httpx2 client; openai is imported only when an error has to be raised with its
types (``_openai``), so a run that meets no error never pays its import (~0.45 s of CPU on every
``deepprune ask``, issue 37).
"""

from __future__ import annotations

import codecs
import functools
import json
import os
import ssl
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

import httpx2

from deepprune_agents.backends.reasoning import (
    ReasoningFormat,
    ThinkSplitter,
    delta_reasoning,
    inline_continuation,
)
from deepprune_agents.errors import (
    BackendRequestError,
    BackendUnavailableError,
    ModelNotFoundError,
    StreamBrokenError,
)

EndpointKind = Literal["chat", "completions"]

SHARDS = 16  # HTTP client pools per endpoint for branch streams
SHARD_STREAMS = 128  # connections each pool keeps alive for reuse

if TYPE_CHECKING:
    from openai import AsyncOpenAI


def _openai() -> ModuleType:
    """The openai module, imported on the error paths only (raising an error with openai's types)."""
    import openai

    return openai


def loaded_types(
    module: str, *names: str, plus: tuple[type[BaseException], ...] = ()
) -> tuple[type[BaseException], ...]:
    """``plus`` and the exception classes ``names`` of ``module`` if it is imported.

    An exception of openai's (or anyio's) types can only exist once its module was imported, so an
    ``except`` or ``isinstance`` over this tuple matches exactly what one naming the classes did, without
    importing the module: a branch pruned or cancelled (GeneratorExit, CancelledError passing through
    ``except`` clauses) is the success path, and must not pay for openai."""
    found = sys.modules.get(module)
    return plus + tuple(getattr(found, name) for name in names) if found is not None else plus


def api_key_from_env() -> str:
    """API keys come from the environment only, so they never travel through state, events or results."""
    return os.environ.get("DEEPPRUNE_API_KEY") or os.environ.get("OPENAI_API_KEY") or "EMPTY"


@dataclass(frozen=True)
class BranchRequest:
    """Everything needed to (re)open one branch's stream. Serializable on purpose."""

    model: str
    messages: list[dict[str, Any]] = field(default_factory=list)  # content: a string or OpenAI's parts
    prompt: str = ""
    endpoint: EndpointKind = "chat"
    max_tokens: int = 512
    temperature: float = 0.8
    top_p: float = 0.95
    seed: int | None = None
    extra_body: dict[str, Any] = field(default_factory=dict)
    # Off by default: routers (vllm-router, sglang-router) drop ``stream_options.continuous_usage_stats``, so
    # token counts come from counted chunks and the final usage chunk (``engine.Branch.apply_parts``), the
    # same way direct and through a router.
    continuous_usage: bool = False
    continuation: str = ""  # text already generated: resume after it instead of starting over
    reasoning_format: ReasoningFormat = "auto"  # how the stream carries thinking (backends/reasoning.py)
    # The run this branch belongs to: sent as the ``session_header`` HTTP header (a router such as vllm-router
    # with ``consistent_hash`` keeps a run's branches on one replica, where the shared prompt's KV cache is
    # computed once) and the key of the client's own placement over several base URLs (``EndpointPool``).
    # The same on every branch of a run, resumed ones included; empty header name: no header is sent.
    session_id: str = ""
    session_header: str = ""

    def resumed(self, text: str, tokens_done: int, reasoning: str = "") -> BranchRequest:
        """The request that continues this branch after ``text`` (resume from a checkpoint).

        A reasoning branch sends its thinking back inline (``<think>...``, still open when it stopped
        mid-thinking): that is what ``continue_final_message`` continues (``inline_continuation``)."""
        return replace(
            self,
            continuation=inline_continuation(reasoning, text),
            max_tokens=max(1, self.max_tokens - tokens_done),
        )


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """One SSE chunk reduced to what the engine needs.

    ``text`` is final content, ``reasoning`` thinking (from the reasoning fields or inline tags);
    ``reclassify``: the content of the earlier chunks was thinking after all (a bare ``</think>``)."""

    text: str
    completion_tokens: int | None
    finish_reason: str | None
    reasoning: str = ""
    reclassify: bool = False


def is_retryable(exc: BaseException) -> bool:
    """Connection problems, 429 and 5xx may pass; every other status is the caller's mistake."""
    if isinstance(exc, loaded_types("openai", "APIConnectionError")):  # includes APITimeoutError
        return True
    if isinstance(exc, loaded_types("openai", "APIStatusError")):
        status: int = getattr(exc, "status_code", 0)
        return status == 429 or status >= 500
    return False


def translate_open_error(exc: BaseException, base_url: str, model: str) -> Exception:
    """Map openai's exceptions to ours, with a message that names the fix."""
    if not loaded_types("openai", "OpenAIError"):  # openai never imported: exc is none of its errors
        return BackendRequestError(f"{base_url}: {type(exc).__name__}: {_short(exc)}")
    openai = _openai()
    if isinstance(exc, openai.NotFoundError):
        return ModelNotFoundError(
            f"{base_url} does not serve model {model!r} (404: {_short(exc)}). Pass --model with a name from "
            f"{base_url}/models, or leave the model unset to take the first one the server lists."
        )
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return BackendRequestError(
            f"{base_url} refused the credentials ({exc.status_code}). Set DEEPPRUNE_API_KEY or OPENAI_API_KEY."
        )
    if isinstance(exc, openai.APIStatusError) and not is_retryable(exc):
        return BackendRequestError(f"{base_url} rejected the request ({exc.status_code}: {_short(exc)}).")
    if isinstance(exc, openai.APIConnectionError):
        return BackendUnavailableError(
            f"cannot reach {base_url} ({type(exc).__name__}: {_short(exc)}). Start a server "
            "(`deepprune serve` or `vllm serve MODEL`) or fix --base-url."
        )
    if isinstance(exc, openai.APIStatusError):
        return BackendUnavailableError(
            f"{base_url} kept failing ({exc.status_code}: {_short(exc)}) after the retries on opening."
        )
    return BackendRequestError(f"{base_url}: {type(exc).__name__}: {_short(exc)}")


def _short(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "…"


class Endpoint:
    """One base URL with its own client; ``inflight`` counts its open streams (``EndpointPool`` placement)."""

    def __init__(self, base_url: str, *, read_timeout_s: float, connect_timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.inflight = 0
        self.failures = 0
        self.down_until = 0.0
        self._timeout = httpx2.Timeout(read_timeout_s, connect=connect_timeout_s)
        self._http = self._new_http_client()
        # Branch streams go through shards of clients: httpcore assigns a request to a connection by scanning
        # its whole pool, so 512 streams opening in one pool cost O(n^2) (~1 s of loop time); pools of at
        # most ~SHARD_STREAMS connections keep every open cheap. Created on first use.
        self._shards: list[httpx2.AsyncClient] = []
        self._opened = 0
        self._headers = {
            "Authorization": f"Bearer {api_key_from_env()}",
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            "Accept-Encoding": "identity",  # the body is read raw (no decoder layer per chunk)
        }
        # Built on the first HTTP error response only, to turn it into openai's typed exception (see
        # ``_status_error``); requests themselves never go through it.
        self._openai_client: AsyncOpenAI | None = None

    def _new_http_client(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(
            verify=ssl_context(),  # loading the CA bundle cost ~20 ms per client, on the event loop
            timeout=self._timeout,
            limits=httpx2.Limits(max_connections=None, max_keepalive_connections=SHARD_STREAMS),
        )

    def _shard(self) -> httpx2.AsyncClient:
        k = self._opened % SHARDS
        self._opened += 1
        while len(self._shards) <= k:
            self._shards.append(self._new_http_client())
        return self._shards[k]

    @property
    def root_url(self) -> str:
        """The server root (…/v1 stripped): where vLLM serves /health and /metrics."""
        return self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url

    async def open(self, req: BranchRequest) -> BranchStream:
        """Open one stream; raises openai's exceptions (classified by the caller).

        The request is built here and sent with the HTTP client directly: openai's request building
        (option models, transforms, headers) cost ~2 ms per open, a second of event-loop time for 512
        branches fanned out at once. Errors keep openai's types, so retries and messages are unchanged."""
        body = request_body(req)
        path = "/chat/completions" if req.endpoint == "chat" else "/completions"
        http = self._shard()
        headers = self._headers
        if req.session_header and req.session_id:  # one header per run, never one per branch (a router hashes it)
            headers = {**headers, req.session_header: req.session_id}
        request = http.build_request("POST", self.base_url + path, content=json.dumps(body), headers=headers)
        try:
            response = await http.send(request, stream=True)
        except httpx2.TimeoutException as exc:
            raise _openai().APITimeoutError(request=request) from exc
        except httpx2.TransportError as exc:
            raise _openai().APIConnectionError(message=f"{type(exc).__name__}: {exc}", request=request) from exc
        if response.status_code >= 400:
            try:
                await response.aread()
            finally:
                await response.aclose()
            raise self._status_error(response)
        # The raw response, not openai's AsyncStream: building a pydantic model per chunk cost ~300 µs, which
        # at 512 branches kept the orchestrator's event loop busy for seconds at a time (bench/scale.py).
        return BranchStream(RawLines(response), req.endpoint, req.reasoning_format)

    def _status_error(self, response: httpx2.Response) -> Exception:
        """openai's typed exception for an HTTP error response (NotFoundError for 404, ...), as its client
        raised it: the message and body parsing are openai's own. max_retries=0: tenacity owns retries."""
        if self._openai_client is None:
            self._openai_client = _openai().AsyncOpenAI(
                base_url=self.base_url, api_key=api_key_from_env(), max_retries=0, http_client=self._http
            )
        error: Exception = self._openai_client._make_status_error_from_response(response)
        return error

    async def list_models(self) -> list[str]:
        """The model ids of GET /models, sent with the HTTP client; failures raise what openai's
        ``client.models.list()`` raised (APITimeoutError, APIConnectionError, the status errors)."""
        headers = {"Authorization": self._headers["Authorization"], "Accept": "application/json"}
        request = self._http.build_request("GET", self.base_url + "/models", headers=headers)
        try:
            response = await self._http.send(request)
        except httpx2.TimeoutException as exc:
            raise _openai().APITimeoutError(request=request) from exc
        except loaded_types("anyio", "EndOfStream", plus=(httpx2.RequestError, ssl.SSLError)) as exc:
            raise _openai().APIConnectionError(request=request) from exc  # openai's own message
        if response.status_code >= 400:
            raise self._status_error(response)
        try:
            return [str(m["id"]) for m in response.json()["data"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise _openai().APIResponseValidationError(
                response, _short(Exception(response.text)), message=f"GET /models returned no model list: {exc!r}"
            ) from exc

    async def aclose(self) -> None:
        await self._http.aclose()  # the openai client, if one was built, shares this HTTP client
        for shard in self._shards:
            await shard.aclose()
        self._shards.clear()


@functools.cache
def ssl_context() -> ssl.SSLContext:
    """One default TLS context (system CA bundle) for every client of the process."""
    return ssl.create_default_context()


def request_body(req: BranchRequest) -> dict[str, Any]:
    """The JSON body of one branch's streaming request (what openai's client would send for it)."""
    stream_options: dict[str, Any] = {"include_usage": True}
    if req.continuous_usage:
        stream_options["continuous_usage_stats"] = True
    body: dict[str, Any] = {
        "model": req.model,
        "max_tokens": req.max_tokens,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "stream": True,
        "stream_options": stream_options,
    }
    if req.seed is not None:
        body["seed"] = req.seed
    if req.endpoint == "chat":
        messages = list(req.messages)
        body["messages"] = messages
        extra = dict(req.extra_body)
        if req.continuation:
            # vLLM continues the final assistant message instead of opening a new turn.
            messages.append({"role": "assistant", "content": req.continuation})
            extra.update(continue_final_message=True, add_generation_prompt=False)
    else:
        body["prompt"] = req.prompt + req.continuation
        extra = dict(req.extra_body)
    body.update(extra)  # openai merges extra_body last, over the named fields
    return body


class RawLines:
    """The two methods ``BranchStream`` uses of a raw response (``iter_lines``, ``close``), over httpx2.

    Lines are split here from the raw body: httpx's ``aiter_lines`` stacks three async generators (bytes,
    text, lines) over the raw one, and those layers were a fifth of the per-chunk cost at 512 streams.
    SSE lines end in LF or CRLF (vLLM and OpenAI send LF); the body is UTF-8, decoded incrementally so a
    character split across two reads is kept whole."""

    __slots__ = ("response",)

    def __init__(self, response: httpx2.Response) -> None:
        self.response = response

    async def iter_lines(self) -> AsyncIterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8")()
        rest = ""
        async for raw in self.response.aiter_raw():
            text = rest + decoder.decode(raw)
            if "\n" not in text:
                rest = text
                continue
            *lines, rest = text.split("\n")
            for line in lines:
                yield line[:-1] if line.endswith("\r") else line
        rest += decoder.decode(b"", final=True)
        if rest:
            yield rest[:-1] if rest.endswith("\r") else rest

    async def close(self) -> None:
        await self.response.aclose()


class BranchStream:
    """Async iterator of StreamChunk over one open SSE stream; ``close()`` makes the server abort it."""

    def __init__(self, raw: Any, kind: EndpointKind, reasoning_format: ReasoningFormat = "auto") -> None:
        self._raw = raw
        self._kind = kind
        self._fields = reasoning_format != "none"
        self._splitter = ThinkSplitter(reasoning_format) if reasoning_format in ("auto", "inline") else None
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[StreamChunk]:
        try:
            async for chunk in self._chunks():
                yield chunk
        except loaded_types("openai", "APITimeoutError", plus=(httpx2.TimeoutException,)) as exc:
            raise StreamBrokenError(
                "the stream stalled: no data within the read timeout (request_timeout_s); the server is "
                "overloaded or hung."
            ) from exc
        except loaded_types("openai", "APIConnectionError", plus=(httpx2.TransportError,)) as exc:
            raise StreamBrokenError(
                f"the connection broke mid-stream ({_short(exc)}): the server was stopped, restarted or crashed."
            ) from exc
        except ValueError as exc:  # json.JSONDecodeError and friends from the SSE parser
            raise StreamBrokenError(f"the server sent a malformed stream chunk ({_short(exc)}).") from exc

    async def _chunks(self) -> AsyncIterator[StreamChunk]:
        """Decode the SSE body: ``data:`` lines up to a blank line make one event; ``[DONE]`` ends it."""
        data: list[str] = []
        async for line in self._raw.iter_lines():
            if line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
                continue
            if line or not data:  # comments, "event:"/"id:" fields, keep-alive blank lines
                continue
            payload = "\n".join(data)
            data = []
            if payload == "[DONE]":
                break
            chunk = self._parse(payload)
            if chunk is not None:
                yield chunk
        else:
            if data and data != ["[DONE]"]:  # a last event without its blank line
                chunk = self._parse("\n".join(data))
                if chunk is not None:
                    yield chunk
        if self._splitter is not None:  # a possible tag start held back by a stream that ended oddly
            reasoning, text = self._splitter.flush()
            if reasoning or text:
                yield StreamChunk(text=text, completion_tokens=None, finish_reason=None, reasoning=reasoning)

    def _parse(self, payload: str) -> StreamChunk | None:
        event = json.loads(payload)
        if not isinstance(event, dict):
            raise ValueError(f"a stream event is not a JSON object: {payload[:80]!r}")
        if event.get("error") is not None:  # vLLM/OpenAI report mid-stream failures as an error event
            err = event["error"]
            message = err.get("message", err) if isinstance(err, dict) else err
            raise StreamBrokenError(f"the server reported an error mid-stream: {_short(Exception(message))}")
        usage = event.get("usage")
        tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
        text, reasoning, finish, reclassify = "", "", None, False
        choices = event.get("choices") or []
        if choices:
            choice = choices[0]
            finish = choice.get("finish_reason")
            if self._kind == "chat":
                delta = choice.get("delta") or {}
                text = delta.get("content") or ""
                # Substring test first: a non-reasoning model's chunks never pay for the field lookups.
                if self._fields and "reasoning" in payload:
                    reasoning = delta_reasoning(delta)
                    marker = event.get("deepprune")  # a DeepPrune proxy's progress line: not the model's thinking
                    if reasoning and isinstance(marker, dict) and marker.get("progress"):
                        reasoning = ""
            else:
                text = choice.get("text") or ""
            splitter = self._splitter
            if splitter is not None:
                if text and not (splitter.verbatim and "<" not in text):  # most chunks skip the call
                    inline, text, reclassify = splitter.feed(text)
                    reasoning += inline
                if finish is not None:
                    held_reasoning, held_text = splitter.flush()
                    reasoning, text = reasoning + held_reasoning, text + held_text
        if not text and not reasoning and finish is None and tokens is None and not reclassify:
            return None
        return StreamChunk(text, tokens, finish, reasoning, reclassify)  # positional: ~0.3 µs less per chunk

    async def close(self) -> None:
        """Close the socket (idempotent). vLLM sees the disconnect and aborts the request."""
        if not self.closed:
            self.closed = True
            await self._raw.close()
