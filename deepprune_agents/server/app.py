"""The Starlette app of ``deepprune serve --upstream``: the operator's settings, auth, limits, routes,
and serving it (in a thread for tests, in the foreground for the CLI). The run of one request: run.py."""

from __future__ import annotations

import dataclasses
import hmac
import json
import logging
import os
import secrets
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from deepprune_agents.asgi_server import ThreadedServer, bind, serve_foreground
from deepprune_agents.errors import ConfigError, DeepPruneError
from deepprune_agents.graph import validate_question
from deepprune_agents.server import errors as err
from deepprune_agents.server import protocol as wire
from deepprune_agents.server.access_log import INFO, AccessLog
from deepprune_agents.server.errors import ClientError, ShuttingDown
from deepprune_agents.server.metrics import CONTENT_TYPE
from deepprune_agents.server.options import (
    MODEL_FREE_JUDGES,
    OFFLINE_JUDGES,
    SUFFIX,
    OptionsError,
    parse_options,
)
from deepprune_agents.server.queue import RunSlots
from deepprune_agents.server.run import ProxyState, RunResponse, busy, error_response, scrub
from deepprune_agents.settings import DeepPruneContext

log = logging.getLogger(__name__)

ENV_PROXY_API_KEY = "DEEPPRUNE_PROXY_API_KEY"
SEED_RANGE = 2**31 - 2**16  # a fresh seed per request; seed + i (i < max_n) stays a positive int32


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
    ui: bool = False  # serve the live page (server/ui.py) at /

    def __post_init__(self) -> None:
        if not self.defaults.base_urls:
            raise ConfigError("the proxy needs at least one upstream: pass --upstream http://HOST:PORT/v1.")
        if self.seed is not None:  # the runs' seed is the defaults' (a request that sets none gets it)
            self.defaults = self.defaults.replace(seed=self.seed)
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


def _validationerror_response(exc: ValidationError) -> ClientError:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return ClientError(400, f"invalid request: {where}: {first['msg']}.", code=err.INVALID_VALUE, param=where)


async def _prepare(state: ProxyState, config: ProxyConfig, body: dict[str, Any]) -> RunResponse:
    """A validated request as a run to start (ClientError otherwise); no upstream stream is opened yet."""
    try:
        req = wire.ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        raise _validationerror_response(exc) from None
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
        opts = dataclasses.replace(opts, context=ctx.replace(**changes), model=model)
    except ConfigError as exc:
        raise ClientError(400, str(exc), code=err.INVALID_VALUE) from None
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    return RunResponse(state, opts, convo, model, req.stream, include_usage)


def build_app(config: ProxyConfig) -> Starlette:
    """The proxy's Starlette app (also usable under any ASGI server: ``uvicorn module:app``); its
    ``state.proxy`` is the ``ProxyState`` (drain it on shutdown)."""
    slots = RunSlots(config.max_concurrent, config.queue_size, config.queue_timeout_s)
    state = ProxyState(config.defaults, slots, retry_after_s=config.retry_after_s, grace_s=config.shutdown_grace_s)

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
            return error_response(UNAUTHORIZED)
        try:
            ids = await state.upstreams.models(fresh=True)
        except ClientError as exc:
            return error_response(exc)
        # Each model also under its ``+deepprune`` alias: clients that check the name against this list
        # (DeepPrune's own backend among them) can then pick the suffix form and send options in the body.
        names = [*ids, *(i + SUFFIX for i in ids)]
        data = [{"id": i, "object": "model", "created": 0, "owned_by": "deepprune-proxy"} for i in names]
        return JSONResponse({"object": "list", "data": data})

    async def chat(request: Request) -> Response:
        info: dict[str, Any] = request.scope.get(INFO, {})
        if not _authorized(request, config.api_key):
            return error_response(UNAUTHORIZED)
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
            run = await _prepare(state, config, body)
            if state.slots.full():
                raise busy(state)
        except ClientError as exc:
            return error_response(exc, config.defaults.base_urls)
        info.update(id=run.cid, model=run.model, stream=int(run.stream), n=run.opts.context.n)
        info["prompt"] = run.convo.question
        return run  # type: ignore[return-value]

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 405:
            e = ClientError(405, f"{request.method} is not allowed on {request.url.path}.", code=err.METHOD_NOT_ALLOWED)
        else:
            e = ClientError(404, f"no route {request.url.path}: the API is under /v1.", code=err.NOT_FOUND)
        return error_response(e)

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/chat/completions", chat, methods=["POST"]),
    ]
    if config.ui:
        from deepprune_agents.server.ui import ui_routes

        routes += ui_routes(config.defaults, key_required=config.api_key is not None)
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
    from deepprune_agents.reasoner import run_sync
    from deepprune_agents.run_builder import cached_judge, warm_up

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
    if config.ui:
        print(f"deepprune proxy: live page at http://{host}:{actual}/", flush=True)
    app = build_app(config)
    serve_foreground(app, sock, app.state.proxy.drain, config.shutdown_grace_s)
