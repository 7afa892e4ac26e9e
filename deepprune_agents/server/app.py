"""The Starlette app of ``deepprune serve --upstream``: auth, limits, routes, and the run of one request.

It calls ``DeepPruneReasoner`` like any other user and knows nothing of pruning. Each completion is an
ASGI response that runs the reasoner in one task and watches the connection in another: when the client
disconnects, the run task is cancelled, and the reasoner's ``finally`` closes every branch stream — so the
upstream aborts them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from deepprune_agents.asgi_server import ThreadedServer, bind, serve_foreground
from deepprune_agents.backends.openai_stream import api_key_from_env
from deepprune_agents.errors import ConfigError, DeepPruneError, ModelNotFoundError
from deepprune_agents.graph import validate_question
from deepprune_agents.reasoner import DeepPruneReasoner
from deepprune_agents.result import DeepPruneResult
from deepprune_agents.server import protocol as wire
from deepprune_agents.server.options import SUFFIX, OptionsError, RequestOptions, parse_options
from deepprune_agents.settings import DeepPruneContext

log = logging.getLogger(__name__)

ENV_PROXY_API_KEY = "DEEPPRUNE_PROXY_API_KEY"
TOKENIZE_TIMEOUT_S = 2.0
KEEPALIVE_S = 15.0  # an SSE comment after this long without a chunk keeps idle-timeout proxies from cutting us


@dataclass
class ProxyConfig:
    """The operator's settings: default run settings (with the upstream URLs), limits and the proxy key.

    ``api_key`` defaults to ``$DEEPPRUNE_PROXY_API_KEY``; the upstream key stays ``$DEEPPRUNE_API_KEY``
    and is read only by the backend, so the two can never be mixed."""

    defaults: DeepPruneContext
    max_concurrent: int = 4
    retry_after_s: int = 1
    api_key: str | None = field(default_factory=lambda: os.environ.get(ENV_PROXY_API_KEY) or None)

    def __post_init__(self) -> None:
        if not self.defaults.base_urls:
            raise ConfigError("the proxy needs at least one upstream: pass --upstream http://HOST:PORT/v1.")
        if self.max_concurrent < 1:
            raise ConfigError(f"max_concurrent must be >= 1 (got {self.max_concurrent}).")


def scrub(text: str, upstreams: Sequence[str] = ()) -> str:
    """Never let the upstream key reach a client or a log line, whatever an error message quotes. With
    ``upstreams``, their URLs are replaced by ``upstream #i`` too (for what goes to clients: the
    operator's network layout is not theirs to see)."""
    key = api_key_from_env()
    if key and key != "EMPTY" and len(key) >= 4:
        text = text.replace(key, "***")
    for i, url in enumerate(upstreams):
        base = url.rstrip("/")
        root = base[: -len("/v1")] if base.endswith("/v1") else base
        text = text.replace(base, f"upstream #{i}").replace(root, f"upstream #{i}")
    return text


def _error(status: int, message: str, *, upstreams: Sequence[str] = (), **kw: Any) -> JSONResponse:
    headers = kw.pop("headers", None)
    return JSONResponse(wire.error_body(scrub(message, upstreams), **kw), status_code=status, headers=headers)


async def _prompt_tokens(ctx: DeepPruneContext, model: str | None, question: str) -> tuple[int, bool]:
    """Prompt tokens of one branch, from vLLM's ``/tokenize`` (the same chat template the branches get);
    servers without it (the replay server, SGLang) get a whitespace estimate, flagged as such."""
    messages = [{"role": "user", "content": question}]
    if ctx.system_prompt:
        messages.insert(0, {"role": "system", "content": ctx.system_prompt})
    base = ctx.base_urls[0].rstrip("/")
    root = base[: -len("/v1")] if base.endswith("/v1") else base
    try:
        async with httpx.AsyncClient(timeout=TOKENIZE_TIMEOUT_S) as client:
            resp = await client.post(
                root + "/tokenize",
                json={"model": model, "messages": messages},
                headers={"Authorization": f"Bearer {api_key_from_env()}"},
            )
        if resp.status_code == 200 and isinstance(resp.json().get("count"), int):
            return int(resp.json()["count"]), False
    except (httpx.HTTPError, ValueError):
        pass
    return sum(len(m["content"].split()) for m in messages), True


class Limiter:
    """At most ``limit`` runs at a time; over it, the caller answers 429 at once (no queue to time out in)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    def try_acquire(self) -> bool:
        if self.active >= self.limit:
            return False
        self.active += 1
        return True

    def release(self) -> None:
        self.active = max(0, self.active - 1)


class _RunResponse:
    """One completion: streamed (SSE) or not. A client disconnect cancels the run (every branch closed)."""

    def __init__(
        self,
        reasoner: DeepPruneReasoner,
        limiter: Limiter,
        opts: RequestOptions,
        question: str,
        model_label: str,
        stream: bool,
        include_usage: bool,
    ) -> None:
        self.reasoner, self.limiter, self.opts = reasoner, limiter, opts
        self.question, self.model_label = question, model_label
        self.stream, self.include_usage = stream, include_usage
        self.cid, self.created = wire.new_completion_id(), wire.now()
        self.disconnected = False
        self.prompt_tokens, self.prompt_estimated = 0, True
        self.scope: Scope = {"type": "http"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        producer = asyncio.ensure_future(self._produce(send))
        watcher = asyncio.ensure_future(self._watch(receive))
        try:
            await asyncio.wait({producer, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (producer, watcher):
                if not task.done():
                    task.cancel()
            # The producer's cancellation runs the reasoner's finally (close every branch) before we return.
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await producer
            self.limiter.release()
        if self.disconnected:
            log.info("client went away: run %s cancelled, every branch closed upstream", self.cid)

    async def _watch(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                return

    async def _pump(self, queue: asyncio.Queue[Any]) -> None:
        """Iterate the reasoner in a task of its own that never waits on the client: it is only ever
        suspended inside the run, so cancelling it always runs the reasoner's cleanup at once."""
        config: dict[str, Any] = {"configurable": asdict(self.opts.context)}
        try:
            async for item in self.reasoner.astream_progress(self.question, config):  # type: ignore[arg-type]
                queue.put_nowait(item)
        except Exception as exc:
            queue.put_nowait(exc)

    async def _run(self, on_event: Any, on_idle: Any = None) -> DeepPruneResult:
        """The run's result; ``on_event`` gets each progress event, ``on_idle`` is called after
        ``KEEPALIVE_S`` without one (a long judge round must not look like a dead connection)."""
        ctx = self.opts.context
        queue: asyncio.Queue[Any] = asyncio.Queue()
        pump = asyncio.ensure_future(self._pump(queue))
        tokens = asyncio.ensure_future(_prompt_tokens(ctx, ctx.model, self.question))
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
                    return item
                await on_event(item)
        finally:
            for task in (pump, tokens):
                if not task.done():
                    task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(pump)

    def _final(self, result: DeepPruneResult) -> tuple[str, dict[str, int], dict[str, Any]]:
        content = wire.reply_text(result, self.opts.content)
        use = wire.usage(result, self.prompt_tokens)
        return content, use, wire.deepprune_summary(result, prompt_tokens_estimated=self.prompt_estimated)

    async def _produce(self, send: Send) -> None:
        if self.stream:
            await self._produce_stream(send)
            return

        async def ignore(_: dict[str, Any]) -> None:
            return None

        try:
            result = await self._run(ignore)
        except Exception as exc:
            status, kind = _status_of(exc)
            hide = self.opts.context.base_urls
            await _error(status, str(exc), kind=kind, upstreams=hide)(self.scope, _no_receive, send)
            return
        content, use, summary = self._final(result)
        body = wire.completion_body(self.cid, self.model_label, self.created, content, use, summary)
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

        cid, label, created = self.cid, self.model_label, self.created
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
            status, kind = _status_of(exc)
            message = scrub(str(exc), self.opts.context.base_urls)
            await write(wire.error_body(message, kind=kind, code=str(status)), "[DONE]")
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        content, use, summary = self._final(result)
        tail: list[dict[str, Any] | str] = [
            wire.chunk(cid, label, created, {"content": piece}) for piece in wire.content_pieces(content)
        ]
        if self.include_usage:  # OpenAI's place: a chunk without choices after the finish chunk, and only there
            tail.append(wire.chunk(cid, label, created, {}, finish="stop", deepprune=summary))
            tail.append(wire.chunk(cid, label, created, None, usage=use, deepprune=summary))
        else:  # not asked for: still on the finish chunk (once, so clients that add chunk usages count it once)
            tail.append(wire.chunk(cid, label, created, {}, finish="stop", usage=use, deepprune=summary))
        tail.append("[DONE]")
        await write(*tail)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _no_receive() -> dict[str, Any]:  # pragma: no cover - JSONResponse never reads
    return {"type": "http.disconnect"}


def _status_of(exc: Exception) -> tuple[int, str]:
    """HTTP status of a failed run: the caller's mistake, the upstream's failure, or our bug (logged)."""
    if isinstance(exc, ModelNotFoundError):
        return 404, "invalid_request_error"
    if isinstance(exc, ConfigError):
        return 400, "invalid_request_error"
    if isinstance(exc, DeepPruneError):
        return 502, "upstream_error"
    log.error("run failed unexpectedly: %s", scrub(f"{type(exc).__name__}: {exc}"))
    return 500, "server_error"


def _authorized(request: Request, key: str | None) -> bool:
    if key is None:
        return True
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), key.encode())


def build_app(config: ProxyConfig) -> Starlette:
    """The proxy's Starlette app (also usable under any ASGI server: ``uvicorn module:app``)."""
    reasoner = DeepPruneReasoner(config.defaults)
    limiter = Limiter(config.max_concurrent)

    def unauthorized() -> JSONResponse:
        return _error(
            401,
            f"missing or wrong API key: send 'Authorization: Bearer <key>' with the key set in {ENV_PROXY_API_KEY}.",
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "active_runs": limiter.active, "max_concurrent": limiter.limit})

    async def models(request: Request) -> Response:
        if not _authorized(request, config.api_key):
            return unauthorized()
        from openai import AsyncOpenAI, OpenAIError

        ids: list[str] = []
        for url in config.defaults.base_urls:
            client = AsyncOpenAI(base_url=url, api_key=api_key_from_env(), max_retries=1, timeout=10.0)
            try:
                ids += [m.id for m in (await client.models.list()).data if m.id not in ids]
            except OpenAIError as exc:
                log.warning("listing models of %s failed: %s", url, scrub(str(exc)))
            finally:
                await client.close()
        if not ids:
            return _error(
                502, "no upstream answered /v1/models: check that the --upstream servers run.", kind="upstream_error"
            )
        # Each model also under its ``+deepprune`` alias: clients that check the name against this list
        # (DeepPrune's own backend among them) can then pick the suffix form and send options in the body.
        names = [*ids, *(i + SUFFIX for i in ids)]
        data = [{"id": i, "object": "model", "created": 0, "owned_by": "deepprune-proxy"} for i in names]
        return JSONResponse({"object": "list", "data": data})

    async def chat(request: Request) -> Response:
        if not _authorized(request, config.api_key):
            return unauthorized()
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return _error(400, "the body is not valid JSON: send a chat completion request object.")
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object with 'messages'.")
        try:
            req = wire.ChatCompletionRequest.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            return _error(400, f"invalid request: {where}: {first['msg']}.", param=where)
        try:
            opts = parse_options(body, config.defaults)
        except OptionsError as exc:
            return _error(400, str(exc), param=exc.param)
        question, system = wire.question_and_system(req.messages)
        if not question:
            return _error(
                400, "no user message with text: the last user message is the question to solve.", param="messages"
            )
        ctx = opts.context
        try:
            question = validate_question(question, ctx)
        except ConfigError as exc:
            return _error(400, str(exc), param="messages")
        changes: dict[str, Any] = {"model": opts.model or ctx.model}
        if system:
            changes["system_prompt"] = (ctx.system_prompt + "\n\n" + system).strip()
        try:
            opts = RequestOptions(
                context=ctx.replace(**changes), model=opts.model, progress=opts.progress, content=opts.content
            )
        except ConfigError as exc:
            return _error(400, str(exc))
        if not limiter.try_acquire():
            return _error(
                429,
                f"{limiter.limit} runs already in progress (the proxy's --max-concurrent): retry after "
                f"{config.retry_after_s} s.",
                kind="rate_limit_error",
                code="too_many_runs",
                headers={"Retry-After": str(config.retry_after_s)},
            )
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        label = req.model or opts.context.model or "deepprune"
        return _RunResponse(reasoner, limiter, opts, question, label, req.stream, include_usage)  # type: ignore[return-value]

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/chat/completions", chat, methods=["POST"]),
    ]
    return Starlette(routes=routes)


class ProxyServer(ThreadedServer):
    """The proxy on a free port in a background thread (tests, benchmarks):
    ``with ProxyServer(ProxyConfig(ctx)) as proxy: proxy.base_url``."""

    label = "proxy"

    def __init__(self, config: ProxyConfig, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host=host, port=port)
        self.config = config

    def build(self) -> Starlette:
        return build_app(self.config)


def warm_judge(ctx: DeepPruneContext) -> str | None:
    """Load the default judge and score one pair before serving, so the first request does not wait
    for the model to load (seconds for the trained judge on a small CPU). Returns the error, if any:
    the proxy still serves, and runs record judge errors as they always do."""
    from deepprune_agents.run_builder import cached_judge, warm_up

    async def warm() -> str | None:
        judge = await cached_judge(ctx)
        return None if ctx.policy == "none" else await warm_up(judge, ctx.judge_timeout_s)

    try:
        return asyncio.run(warm())
    except DeepPruneError as exc:
        return str(exc)


def serve_forever(config: ProxyConfig, *, host: str, port: int) -> None:
    """Run the proxy in the foreground (the CLI); Ctrl-C stops it."""
    sock = bind(host, port)
    actual = sock.getsockname()[1]
    print(f"deepprune proxy: loading the {config.defaults.judge} judge before serving...", flush=True)
    error = warm_judge(config.defaults)
    if error:
        print(
            f"deepprune proxy: warning: the {config.defaults.judge} judge did not warm up: {scrub(error)}", flush=True
        )
    print(
        f"deepprune proxy: http://{host}:{actual}/v1 -> {', '.join(config.defaults.base_urls)} "
        f"(n={config.defaults.n}, {config.defaults.policy} policy, {config.defaults.judge} judge, "
        f"max {config.max_concurrent} concurrent runs{', API key required' if config.api_key else ''})",
        flush=True,
    )
    serve_foreground(build_app(config), sock)
