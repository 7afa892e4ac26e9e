"""The Starlette app: vLLM's routes, plus ``/stats``, ``/metrics``, ``/health`` and the admin routes."""

from __future__ import annotations

import time
from dataclasses import asdict

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from deepprune_agents.errors import ConfigError
from deepprune_agents.evaluation.replay_data import trace_index
from deepprune_agents.evaluation.replay_server.faults import FaultConfig
from deepprune_agents.evaluation.replay_server.payloads import _error, _prompt_of, _Stream
from deepprune_agents.evaluation.replay_server.records import RequestRecord
from deepprune_agents.evaluation.replay_server.sse import _SSEResponse
from deepprune_agents.evaluation.replay_server.state import ReplayState


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
