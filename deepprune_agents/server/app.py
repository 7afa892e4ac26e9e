"""The Starlette app of ``deepprune serve --upstream``: auth, limits, routes, and the run of one request.

It calls ``DeepPruneReasoner`` like any other user and knows nothing of pruning. Each completion is an
ASGI response that first waits for a run slot (``queue.RunSlots``), then runs the reasoner in one task
and watches the connection in another: when the client disconnects, the run task is cancelled, and the
reasoner's ``finally`` closes every branch stream — so the upstream aborts them all. When the proxy
stops, ``ProxyState.drain`` lets the open runs finish up to the grace period, then ends each one with an
error (its branches closed the same way).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from deepprune_agents.asgi_server import ThreadedServer, bind, serve_foreground
from deepprune_agents.backends.openai_stream import api_key_from_env
from deepprune_agents.errors import AllBranchesFailedError, ConfigError, DeepPruneError
from deepprune_agents.graph import validate_question
from deepprune_agents.reasoner import DeepPruneReasoner
from deepprune_agents.result import DeepPruneResult
from deepprune_agents.server import errors as err
from deepprune_agents.server import protocol as wire
from deepprune_agents.server.access_log import INFO, AccessLog
from deepprune_agents.server.errors import ClientError, ShuttingDown
from deepprune_agents.server.metrics import CONTENT_TYPE, ProxyMetrics
from deepprune_agents.server.options import (
    MODEL_FREE_JUDGES,
    OFFLINE_JUDGES,
    SUFFIX,
    OptionsError,
    RequestOptions,
    parse_options,
)
from deepprune_agents.server.queue import QueueClosed, QueueFull, QueueTimeout, RunSlots
from deepprune_agents.server.upstream import Upstreams
from deepprune_agents.settings import DeepPruneContext

log = logging.getLogger(__name__)

ENV_PROXY_API_KEY = "DEEPPRUNE_PROXY_API_KEY"
TOKENIZE_TIMEOUT_S = 2.0
KEEPALIVE_S = 15.0  # an SSE comment after this long without a chunk keeps idle-timeout proxies from cutting us
SEED_RANGE = 2**31 - 2**16  # a fresh seed per request; seed + i (i < max_n) stays a positive int32
REASONING_PIECE_CHARS = 512


@dataclass
class ProxyConfig:
    """The operator's settings: default run settings (with the upstream URLs), limits and the proxy key.

    ``api_key`` defaults to ``$DEEPPRUNE_PROXY_API_KEY``; the upstream key stays ``$DEEPPRUNE_API_KEY``
    and is read only by the backend, so the two can never be mixed. ``seed``: None gives every request
    that sets no seed a fresh one (so "regenerate" samples anew); an int makes runs reproducible.
    ``judges``: the judges a request may pick, all warmed at start (empty: the default judge and the
    model-free ones)."""

    defaults: DeepPruneContext
    max_concurrent: int = 4
    queue_size: int = 64
    queue_timeout_s: float = 60.0
    retry_after_s: int = 1
    api_key: str | None = field(default_factory=lambda: os.environ.get(ENV_PROXY_API_KEY) or None)
    max_body_bytes: int = 8 * 2**20
    cors_origins: list[str] = field(default_factory=list)
    judges: list[str] = field(default_factory=list)
    seed: int | None = None
    shutdown_grace_s: float = 20.0
    log_prompts: bool = False

    def __post_init__(self) -> None:
        if not self.defaults.base_urls:
            raise ConfigError("the proxy needs at least one upstream: pass --upstream http://HOST:PORT/v1.")
        if self.max_concurrent < 1:
            raise ConfigError(f"max_concurrent must be >= 1 (got {self.max_concurrent}).")
        if self.queue_size < 0 or self.queue_timeout_s <= 0:
            raise ConfigError("queue_size must be >= 0 and queue_timeout_s > 0.")
        if self.max_body_bytes < 1024 or self.shutdown_grace_s < 0:
            raise ConfigError("max_body_bytes must be >= 1024 and shutdown_grace_s >= 0.")
        from deepprune_agents.judges import known_judges

        for name in self.allowed_judges():
            if name not in known_judges() or name in OFFLINE_JUDGES:
                live = [j for j in known_judges() if j not in OFFLINE_JUDGES]
                raise ConfigError(f"judge {name!r} cannot serve live requests: use one of {', '.join(live)}.")

    def allowed_judges(self) -> list[str]:
        names = self.judges or [self.defaults.judge, *MODEL_FREE_JUDGES]
        return list(dict.fromkeys([self.defaults.judge, *names]))


def scrub(text: str, upstreams: Sequence[str] = ()) -> str:
    """Never let the upstream key reach a client or a log line, whatever an error message quotes. With
    ``upstreams``, their URLs are replaced by ``upstream #i`` too (for what goes to clients: the
    operator's network layout is not theirs to see)."""
    key = api_key_from_env()
    if key and key != "EMPTY" and len(key) >= 4:
        text = text.replace(key, "***")
    return err.scrub_urls(text, upstreams)


def _error(e: ClientError, upstreams: Sequence[str] = ()) -> JSONResponse:
    payload = err.body(scrub(e.message, upstreams), e.kind, e.code, e.param)
    return JSONResponse(payload, status_code=e.status, headers=e.headers or None)


async def _prompt_tokens(
    client: httpx.AsyncClient, ctx: DeepPruneContext, model: str, messages: list[dict[str, Any]]
) -> tuple[int, bool]:
    """Prompt tokens of one branch, from vLLM's ``/tokenize`` (the same chat template the branches get);
    servers without it (the replay server, SGLang) get a whitespace estimate, flagged as such."""
    base = ctx.base_urls[0].rstrip("/")
    root = base[: -len("/v1")] if base.endswith("/v1") else base
    try:
        resp = await client.post(
            root + "/tokenize",
            json={"model": model, "messages": messages},
            headers={"Authorization": f"Bearer {api_key_from_env()}"},
            timeout=TOKENIZE_TIMEOUT_S,
        )
        if resp.status_code == 200 and isinstance(resp.json().get("count"), int):
            return int(resp.json()["count"]), False
    except (httpx.HTTPError, ValueError):
        pass
    return sum(len(wire.ChatMessage.model_validate(m).text().split()) for m in messages), True


class ProxyState:
    """What the routes share: the reasoner, the run slots, the metrics, the upstreams, the open runs."""

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.reasoner = DeepPruneReasoner(config.defaults)
        self.slots = RunSlots(config.max_concurrent, config.queue_size, config.queue_timeout_s)
        self.metrics = ProxyMetrics()
        self.upstreams = Upstreams(config.defaults.base_urls)
        self.open: set[_RunResponse] = set()
        self.idle = asyncio.Event()  # set while no run is open
        self.idle.set()
        self.draining = False

    async def drain(self) -> None:
        """Shutting down: no new run; the open ones may finish for ``shutdown_grace_s``, then each gets an
        error (an error chunk and ``[DONE]`` when streamed) and its branches are closed upstream."""
        self.draining = True
        self.slots.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.shutdown_grace_s):
                await self.idle.wait()
        for run in list(self.open):
            run.abort(ShuttingDown("the server is shutting down: this run did not finish in time. Retry it."))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await self.idle.wait()
        await self.upstreams.aclose()

    def opened(self, run: _RunResponse) -> None:
        self.open.add(run)
        self.idle.clear()

    def closed(self, run: _RunResponse) -> None:
        self.open.discard(run)
        if not self.open:
            self.idle.set()


class _RunResponse:
    """One completion: streamed (SSE) or not. A client disconnect cancels the run (every branch closed)."""

    def __init__(
        self,
        state: ProxyState,
        opts: RequestOptions,
        convo: wire.Conversation,
        model: str,
        stream: bool,
        include_usage: bool,
    ) -> None:
        self.state, self.opts, self.convo, self.model = state, opts, convo, model
        self.stream, self.include_usage = stream, include_usage
        self.cid, self.created = wire.new_completion_id(), wire.now()
        self.prompt_tokens, self.prompt_estimated = 0, True
        self.queue_wait_s = 0.0
        self.scope: Scope = {"type": "http"}
        self.info: dict[str, Any] = {}
        self._events: asyncio.Queue[Any] | None = None
        self._holds_slot = False

    # -- the ASGI side ---------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope, self.info = scope, scope.get(INFO, {})
        self.state.opened(self)
        producer = asyncio.ensure_future(self._produce(send))
        watcher = asyncio.ensure_future(self._watch(receive))
        disconnected = False
        try:
            done, _ = await asyncio.wait({producer, watcher}, return_when=asyncio.FIRST_COMPLETED)
            # A client that leaves after the last byte is not a cancelled run (both may be done at once).
            disconnected = watcher in done and not producer.done()
        finally:
            for task in (producer, watcher):
                if not task.done():
                    task.cancel()
            # The producer's cancellation runs the reasoner's finally (close every branch) before we return.
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await producer
            self._release()
            self.state.closed(self)
        if disconnected:
            self.info["outcome"] = "cancelled"
            self.state.metrics.record_failure("cancelled")
            log.info("client went away: run %s cancelled, every branch closed upstream", self.cid)

    async def _watch(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return

    def abort(self, exc: Exception) -> None:
        """End the run with ``exc`` as its error (shutdown): the run task raises it, closing every branch."""
        if self._events is not None:
            self._events.put_nowait(exc)

    def _release(self) -> None:
        if self._holds_slot:
            self._holds_slot = False
            self.state.slots.release()
            self.state.metrics.active.dec()

    async def _acquire(self) -> ClientError | None:
        slots = self.state.slots
        self.state.metrics.queued.inc()
        try:
            self.queue_wait_s = await slots.acquire()
        except QueueFull:
            return _busy(self.state)
        except QueueTimeout:
            return ClientError(
                503,
                f"the server is busy: no run slot freed within {slots.timeout_s:g} s. Retry later.",
                "server_error",
                err.QUEUE_TIMEOUT,
                headers={"Retry-After": str(self.state.config.retry_after_s)},
            )
        except QueueClosed:
            return err.from_run_error(ShuttingDown("the server is shutting down. Retry later."), model=self.model)
        finally:
            self.state.metrics.queued.dec()
        self._holds_slot = True
        self.state.metrics.active.inc()
        self.state.metrics.queue_wait.observe(self.queue_wait_s)
        self.info["queued"] = self.queue_wait_s
        return None

    # -- the run ---------------------------------------------------------------------------------
    async def _pump(self, queue: asyncio.Queue[Any]) -> None:
        """Iterate the reasoner in a task of its own that never waits on the client: it is only ever
        suspended inside the run, so cancelling it always runs the reasoner's cleanup at once."""
        config: dict[str, Any] = {"configurable": asdict(self.opts.context)}
        run_input = {"question": self.convo.question, "conversation": self.convo.turns}
        try:
            async for item in self.state.reasoner.astream_progress(run_input, config):  # type: ignore[arg-type]
                queue.put_nowait(item)
        except Exception as exc:
            queue.put_nowait(exc)

    async def _run(self, on_event: Any, on_idle: Any = None) -> DeepPruneResult:
        """The run's result; ``on_event`` gets each progress event, ``on_idle`` is called after
        ``KEEPALIVE_S`` without one (a long judge round must not look like a dead connection)."""
        ctx = self.opts.context
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._events = queue
        pump = asyncio.ensure_future(self._pump(queue))
        messages = ([{"role": "system", "content": ctx.system_prompt}] if ctx.system_prompt else []) + self.convo.turns
        tokens = asyncio.ensure_future(_prompt_tokens(self.state.upstreams.http(), ctx, self.model, messages))
        try:
            while True:
                try:
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns the item instead of raising
                    # when the client's disconnect cancels us just as an event arrives; the run then went on
                    # streaming upstream with nobody listening (seen in test_a_silent_stream_sends_keep_alive...).
                    async with asyncio.timeout(None if on_idle is None else KEEPALIVE_S):
                        item = await queue.get()
                except TimeoutError:
                    assert on_idle is not None
                    await on_idle()
                    continue
                if isinstance(item, Exception):
                    raise item
                if isinstance(item, DeepPruneResult):
                    self.prompt_tokens, self.prompt_estimated = await tokens
                    self._record(item)
                    return item
                await on_event(item)
        except Exception as exc:
            self._record_failure(exc)
            raise
        finally:
            self._events = None
            for task in (pump, tokens):
                if not task.done():
                    task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(pump)

    def _record(self, result: DeepPruneResult) -> None:
        self.state.metrics.record_result(result)
        self.info.update(outcome="ok", tokens=result.tokens_generated, saving=result.token_saving)

    def _record_failure(self, exc: Exception) -> None:
        failed = len(exc.branches) if isinstance(exc, AllBranchesFailedError) else 0
        if isinstance(exc, ShuttingDown):
            outcome, upstream = "shutdown", None
        elif isinstance(exc, DeepPruneError):
            outcome, upstream = "upstream_error", None if failed else "unavailable"
        else:
            outcome, upstream = "server_error", None
            log.error("run failed unexpectedly: %s", scrub(f"{type(exc).__name__}: {exc}"))
        self.state.metrics.record_failure(outcome, upstream=upstream, failed_branches=failed)
        self.info["outcome"] = outcome

    def _client_error(self, exc: Exception) -> ClientError:
        e = err.from_run_error(exc, model=self.model, has_images=self.convo.has_images)
        e.message = scrub(e.message, self.opts.context.base_urls)
        return e

    def _final(self, result: DeepPruneResult) -> tuple[wire.Reply, dict[str, int], dict[str, Any]]:
        ctx = self.opts.context
        answer = wire.reply(result, self.opts.content, ctx.max_tokens)
        use = wire.usage(result, self.prompt_tokens)
        summary = wire.deepprune_summary(result, prompt_tokens_estimated=self.prompt_estimated)
        summary.update(seed=ctx.seed, queue_wait_s=round(self.queue_wait_s, 6))
        return answer, use, summary

    # -- the two answers -------------------------------------------------------------------------
    async def _produce(self, send: Send) -> None:
        refused = await self._acquire()
        if refused is not None:
            self.info.setdefault("outcome", "refused")
            await _error(refused)(self.scope, _no_receive, send)
            return
        if self.stream:
            await self._produce_stream(send)
            return

        async def ignore(_: dict[str, Any]) -> None:
            return None

        try:
            result = await self._run(ignore)
        except Exception as exc:
            await _error(self._client_error(exc))(self.scope, _no_receive, send)
            return
        answer, use, summary = self._final(result)
        body = wire.completion_body(self.cid, self.model, self.created, answer, use, summary)
        await JSONResponse(body)(self.scope, _no_receive, send)

    async def _produce_stream(self, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")],
            }
        )

        async def write(*bodies: dict[str, Any] | str) -> None:
            data = "".join(
                f"data: {b if isinstance(b, str) else json.dumps(b, separators=(',', ':'))}\n\n" for b in bodies
            )
            await send({"type": "http.response.body", "body": data.encode("utf-8"), "more_body": True})

        cid, label, created = self.cid, self.model, self.created
        lines = wire.ProgressLines()
        ctx = self.opts.context
        first: list[dict[str, Any]] = [wire.chunk(cid, label, created, {"role": "assistant", "content": ""})]
        if self.opts.progress:
            first.append(
                wire.progress_chunk(cid, label, created, wire.accepted_line(ctx.n, ctx.policy, ctx.judge), "accepted")
            )
        await write(*first)

        async def on_event(event: dict[str, Any]) -> None:
            if self.opts.progress:
                out = [wire.progress_chunk(cid, label, created, s, str(event.get("event"))) for s in lines.lines(event)]
                if out:
                    await write(*out)

        async def keep_alive() -> None:
            await send({"type": "http.response.body", "body": b": keep-alive\n\n", "more_body": True})

        try:
            result = await self._run(on_event, keep_alive)
        except OSError:  # the client is gone: nothing to tell it (the watcher cancels what is left)
            raise
        except Exception as exc:
            e = self._client_error(exc)
            await write(err.body(e.message, e.kind, e.code, e.param), "[DONE]")
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        answer, use, summary = self._final(result)
        tail: list[dict[str, Any] | str] = [
            wire.chunk(cid, label, created, {"reasoning": piece})
            for piece in wire.content_pieces(answer.reasoning, REASONING_PIECE_CHARS)
            if piece
        ]
        tail += [wire.chunk(cid, label, created, {"content": piece}) for piece in wire.content_pieces(answer.content)]
        finish = answer.finish_reason
        if self.include_usage:  # OpenAI's place: a chunk without choices after the finish chunk, and only there
            tail.append(wire.chunk(cid, label, created, {}, finish=finish, deepprune=summary))
            tail.append(wire.chunk(cid, label, created, None, usage=use, deepprune=summary))
        else:  # not asked for: still on the finish chunk (once, so clients that add chunk usages count it once)
            tail.append(wire.chunk(cid, label, created, {}, finish=finish, usage=use, deepprune=summary))
        tail.append("[DONE]")
        await write(*tail)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _no_receive() -> dict[str, Any]:  # pragma: no cover - JSONResponse never reads
    return {"type": "http.disconnect"}


def _busy(state: ProxyState) -> ClientError:
    slots = state.slots
    return ClientError(
        429,
        f"the server is busy: {slots.active} runs in progress and {slots.waiting} waiting, the most it takes. "
        f"Retry after {state.config.retry_after_s} s.",
        "rate_limit_error",
        err.RATE_LIMIT,
        headers={"Retry-After": str(state.config.retry_after_s)},
    )


def _authorized(request: Request, key: str | None) -> bool:
    if key is None:
        return True
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), key.encode())


UNAUTHORIZED = ClientError(
    401,
    "missing or wrong API key: send 'Authorization: Bearer <key>' with the key of this server.",
    code=err.INVALID_API_KEY,
    headers={"WWW-Authenticate": "Bearer"},
)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) as soon as it is known to exceed ``limit``: by its Content-Length before
    reading a byte, else while it arrives."""
    too_large = ClientError(
        413, f"the request body is over this server's limit of {limit} bytes.", code=err.BODY_TOO_LARGE
    )
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _validation_error(exc: ValidationError) -> ClientError:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return ClientError(400, f"invalid request: {where}: {first['msg']}.", code=err.INVALID_VALUE, param=where)


async def _prepare(state: ProxyState, body: dict[str, Any]) -> _RunResponse:
    """A validated request as a run to start (ClientError otherwise); no upstream stream is opened yet."""
    config = state.config
    try:
        req = wire.ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        raise _validation_error(exc) from None
    fresh = secrets.randbelow(SEED_RANGE) if config.seed is None else None
    try:
        opts = parse_options(body, config.defaults, fresh_seed=fresh, judges=config.allowed_judges())
        convo = wire.conversation(req.messages)
        validate_question(convo.question, opts.context)
    except OptionsError as exc:
        raise ClientError(400, str(exc), code=exc.code, param=exc.param) from None
    except (wire.ConversationError, ConfigError) as exc:
        raise ClientError(400, str(exc), code=err.INVALID_VALUE, param="messages") from None
    model = await state.upstreams.resolve(opts.model or opts.context.model)
    ctx = opts.context
    changes: dict[str, Any] = {"model": model}
    if convo.system:
        changes["system_prompt"] = (ctx.system_prompt + "\n\n" + convo.system).strip()
    try:
        opts = RequestOptions(context=ctx.replace(**changes), model=model, progress=opts.progress, content=opts.content)
    except ConfigError as exc:
        raise ClientError(400, str(exc), code=err.INVALID_VALUE) from None
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    return _RunResponse(state, opts, convo, model, req.stream, include_usage)


def build_app(config: ProxyConfig) -> Starlette:
    """The proxy's Starlette app (also usable under any ASGI server: ``uvicorn module:app``); its
    ``state.proxy`` is the ``ProxyState`` (drain it on shutdown)."""
    state = ProxyState(config)

    async def health(request: Request) -> Response:
        """Liveness: the process answers (the upstream is /ready's business)."""
        slots = state.slots
        return JSONResponse(
            {"status": "draining" if state.draining else "ok", "active_runs": slots.active,
             "queued": slots.waiting, "max_concurrent": slots.limit}
        )  # fmt: skip

    async def ready(request: Request) -> Response:
        """Readiness: 200 when an upstream lists its models (and the proxy is not stopping), else 503."""
        found = await state.upstreams.probe()
        upstreams = [{"upstream": f"#{i}", "ok": ids is not None} for i, ids in enumerate(found)]
        ok = any(ids for ids in found) and not state.draining
        status = "ready" if ok else ("draining" if state.draining else "upstream unavailable")
        return JSONResponse({"status": status, "upstreams": upstreams}, status_code=200 if ok else 503)

    async def metrics(request: Request) -> Response:
        return Response(state.metrics.exposition(), media_type=CONTENT_TYPE)

    async def models(request: Request) -> Response:
        if not _authorized(request, config.api_key):
            return _error(UNAUTHORIZED)
        try:
            ids = await state.upstreams.models(fresh=True)
        except ClientError as exc:
            return _error(exc)
        # Each model also under its ``+deepprune`` alias: clients that check the name against this list
        # (DeepPrune's own backend among them) can then pick the suffix form and send options in the body.
        names = [*ids, *(i + SUFFIX for i in ids)]
        data = [{"id": i, "object": "model", "created": 0, "owned_by": "deepprune-proxy"} for i in names]
        return JSONResponse({"object": "list", "data": data})

    async def chat(request: Request) -> Response:
        info: dict[str, Any] = request.scope.get(INFO, {})
        if not _authorized(request, config.api_key):
            return _error(UNAUTHORIZED)
        try:
            if state.draining:
                raise err.from_run_error(ShuttingDown("the server is shutting down. Retry later."), model="")
            raw = await _read_body(request, config.max_body_bytes)
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                raise ClientError(
                    400, "the body is not valid JSON: send a chat completion request object.", code=err.INVALID_VALUE
                ) from None
            if not isinstance(body, dict):
                raise ClientError(400, "the body must be a JSON object with 'messages'.", code=err.INVALID_VALUE)
            run = await _prepare(state, body)
            if state.slots.full():
                raise _busy(state)
        except ClientError as exc:
            return _error(exc, config.defaults.base_urls)
        info.update(id=run.cid, model=run.model, stream=int(run.stream), n=run.opts.context.n)
        info["prompt"] = run.convo.question
        return run  # type: ignore[return-value]

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 405:
            e = ClientError(405, f"{request.method} is not allowed on {request.url.path}.", code=err.METHOD_NOT_ALLOWED)
        else:
            e = ClientError(404, f"no route {request.url.path}: the API is under /v1.", code=err.NOT_FOUND)
        return _error(e)

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/chat/completions", chat, methods=["POST"]),
    ]
    middleware = [Middleware(AccessLog, metrics=state.metrics, log_prompts=config.log_prompts)]
    if config.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=config.cors_origins,
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type"],
                max_age=600,
            )
        )
    app = Starlette(routes=routes, middleware=middleware, exception_handlers={404: not_found, 405: not_found})
    app.state.proxy = state
    return app


def warm_judges(config: ProxyConfig) -> list[str]:
    """Load every judge a request may pick and score one pair, before serving, so no request waits for a
    model to load (seconds for the trained judge on a small CPU). Returns the errors, if any: the proxy
    still serves, and runs record judge errors as they always do."""
    from deepprune_agents.graph import cached_judge, warm_up
    from deepprune_agents.reasoner import run_sync

    async def warm(name: str) -> str | None:
        ctx = config.defaults.replace(judge=name)
        judge = await cached_judge(ctx)
        return await warm_up(judge, ctx.judge_timeout_s)

    errors = []
    for name in config.allowed_judges():
        try:
            error = run_sync(warm(name))
        except DeepPruneError as exc:
            error = str(exc)
        if error:
            errors.append(f"{name}: {error}")
    return errors


class ProxyServer(ThreadedServer):
    """The proxy on a free port in a background thread (tests, benchmarks):
    ``with ProxyServer(ProxyConfig(ctx)) as proxy: proxy.base_url``."""

    label = "proxy"

    def __init__(self, config: ProxyConfig, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host=host, port=port)
        self.config = config
        self.grace_s = config.shutdown_grace_s
        self.app: Starlette | None = None

    def build(self) -> Starlette:
        for error in warm_judges(self.config):
            log.warning("a judge did not warm up: %s", scrub(error))
        self.app = build_app(self.config)
        return self.app

    def drain(self) -> Any:
        assert self.app is not None
        return self.app.state.proxy.drain


def serve_forever(config: ProxyConfig, *, host: str, port: int, access_log: bool = True) -> None:
    """Run the proxy in the foreground (the CLI) until SIGTERM or Ctrl-C, which drain it (``ProxyState.drain``)."""
    sock = bind(host, port)
    actual = sock.getsockname()[1]
    judges = config.allowed_judges()
    print(f"deepprune proxy: loading the judges a request may pick ({', '.join(judges)})...", flush=True)
    for error in warm_judges(config):
        print(f"deepprune proxy: warning: a judge did not warm up: {scrub(error)}", flush=True)
    if access_log:
        logging.getLogger("deepprune.access").setLevel(logging.INFO)
    print(
        f"deepprune proxy: http://{host}:{actual}/v1 -> {', '.join(config.defaults.base_urls)} "
        f"(n={config.defaults.n}, {config.defaults.policy} policy, {config.defaults.judge} judge, "
        f"max {config.max_concurrent} concurrent runs, {config.queue_size} queued"
        f"{', API key required' if config.api_key else ''})",
        flush=True,
    )
    app = build_app(config)
    serve_foreground(app, sock, app.state.proxy.drain, config.shutdown_grace_s)
