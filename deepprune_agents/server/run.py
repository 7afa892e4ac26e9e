"""The run of one completion request: wait for a run slot, run the reasoner, answer (SSE or JSON).

Each completion is an ASGI response that first waits for a run slot (``queue.RunSlots``), then runs the
reasoner in one task and watches the connection in another: when the client disconnects, the run task is
cancelled, and the reasoner's ``finally`` closes every branch stream — so the upstream aborts them all.
When the proxy stops, ``ProxyState.drain`` lets the open runs finish up to the grace period, then ends
each one with an error (its branches closed the same way). It calls ``DeepPruneReasoner`` like any other
user and knows nothing of pruning.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import httpx
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from deepprune_agents.backends.openai_stream import api_key_from_env
from deepprune_agents.errors import AllBranchesFailedError, DeepPruneError
from deepprune_agents.reasoner import DeepPruneReasoner
from deepprune_agents.result import DeepPruneResult
from deepprune_agents.server import errors as err
from deepprune_agents.server import protocol as wire
from deepprune_agents.server.access_log import INFO
from deepprune_agents.server.errors import ClientError, ShuttingDown
from deepprune_agents.server.metrics import ProxyMetrics
from deepprune_agents.server.options import RequestOptions
from deepprune_agents.server.queue import QueueClosed, QueueFull, QueueTimeout, RunSlots
from deepprune_agents.server.upstream import Upstreams
from deepprune_agents.settings import DeepPruneContext

log = logging.getLogger(__name__)

TOKENIZE_TIMEOUT_S = 2.0
KEEPALIVE_S = 15.0  # an SSE comment after this long without a chunk keeps idle-timeout proxies from cutting us
REASONING_PIECE_CHARS = 512


def scrub(text: str, upstreams: Sequence[str] = ()) -> str:
    """Never let the upstream key reach a client or a log line, whatever an error message quotes. With
    ``upstreams``, their URLs are replaced by ``upstream #i`` too (for what goes to clients: the
    operator's network layout is not theirs to see)."""
    key = api_key_from_env()
    if key and key != "EMPTY" and len(key) >= 4:
        text = text.replace(key, "***")
    return err.scrub_urls(text, upstreams)


def error_response(e: ClientError, upstreams: Sequence[str] = ()) -> JSONResponse:
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

    def __init__(
        self, defaults: DeepPruneContext, slots: RunSlots, *, retry_after_s: int = 1, grace_s: float = 20.0
    ) -> None:
        self.defaults, self.slots = defaults, slots
        self.retry_after_s, self.grace_s = retry_after_s, grace_s
        self.reasoner = DeepPruneReasoner(defaults)
        self.metrics = ProxyMetrics()
        self.upstreams = Upstreams(defaults.base_urls)
        self.open: set[RunResponse] = set()
        self.idle = asyncio.Event()  # set while no run is open
        self.idle.set()
        self.draining = False

    async def drain(self) -> None:
        """Shutting down: no new run; the open ones may finish for ``shutdown_grace_s``, then each gets an
        error (an error chunk and ``[DONE]`` when streamed) and its branches are closed upstream."""
        self.draining = True
        self.slots.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.grace_s):
                await self.idle.wait()
        for run in list(self.open):
            run.abort(ShuttingDown("the server is shutting down: this run did not finish in time. Retry it."))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await self.idle.wait()
        await self.upstreams.aclose()

    def opened(self, run: RunResponse) -> None:
        self.open.add(run)
        self.idle.clear()

    def closed(self, run: RunResponse) -> None:
        self.open.discard(run)
        if not self.open:
            self.idle.set()


class RunResponse:
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
            if "outcome" not in self.info:  # a run that already ended was counted as such
                self.state.metrics.record_failure("cancelled")
            self.info["outcome"] = "cancelled"
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
            return busy(self.state)
        except QueueTimeout:
            return ClientError(
                503,
                f"the server is busy: no run slot freed within {slots.timeout_s:g} s. Retry later.",
                "server_error",
                err.QUEUE_TIMEOUT,
                headers={"Retry-After": str(self.state.retry_after_s)},
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
            await error_response(refused)(self.scope, no_receive, send)
            return
        if self.stream:
            await self._produce_stream(send)
            return

        async def ignore(_: dict[str, Any]) -> None:
            return None

        try:
            result = await self._run(ignore)
        except Exception as exc:
            await error_response(self._client_error(exc))(self.scope, no_receive, send)
            return
        answer, use, summary = self._final(result)
        body = wire.completion_body(self.cid, self.model, self.created, answer, use, summary)
        await JSONResponse(body)(self.scope, no_receive, send)

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
            out: list[dict[str, Any]] = []
            if self.opts.progress:
                out = [wire.progress_chunk(cid, label, created, s, str(event.get("event"))) for s in lines.lines(event)]
            if self.opts.events and (data := wire.event_chunk(cid, label, created, event)):
                out.append(data)
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


async def no_receive() -> dict[str, Any]:  # pragma: no cover - JSONResponse never reads
    return {"type": "http.disconnect"}


def busy(state: ProxyState) -> ClientError:
    slots = state.slots
    return ClientError(
        429,
        f"the server is busy: {slots.active} runs in progress and {slots.waiting} waiting, the most it takes. "
        f"Retry after {state.retry_after_s} s.",
        "rate_limit_error",
        err.RATE_LIMIT,
        headers={"Retry-After": str(state.retry_after_s)},
    )
