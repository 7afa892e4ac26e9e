"""The pruned-reasoning engine end to end on a real vLLM server (session fixture ``vllm_server``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys

import httpx
from server_log import ABORT_GRACE_S, every_added_request_aborted, log_since, log_size, wait_for_log

from deepprune_agents.backends.metrics import metric, scrape_samples, wait_until_idle
from deepprune_agents.errors import ModelNotFoundError
from deepprune_agents.graph import build_graph
from deepprune_agents.reasoner import DeepPruneReasoner
from deepprune_agents.settings import DeepPruneContext

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have now?"


def settings(server, **kw):  # type: ignore[no-untyped-def]
    base = {"n": 8, "base_urls": [server.base_url], "model": server.model, "max_tokens": 160, "seed": 0}
    base.update(kw)
    return base


async def generated(root_url: str) -> float:
    return metric(await scrape_samples(root_url), "vllm:generation_tokens_total")


async def test_pruning_cancels_on_the_server_and_costs_fewer_tokens(vllm_server) -> None:  # type: ignore[no-untyped-def]
    root = vllm_server.root_url
    assert await wait_until_idle(root, 60)
    t0 = await generated(root)
    cons = await DeepPruneReasoner(**settings(vllm_server, policy="none")).ainvoke(QUESTION)
    assert await wait_until_idle(root, 60)
    t1 = await generated(root)
    offset = log_size(vllm_server)
    # periodic + embedding: one representative per cluster, and MiniLM calls these short prefixes alike, so
    # a pruning round that lands while branches run is certain to cancel some (the defaults may keep all 8).
    pruned = await DeepPruneReasoner(**settings(vllm_server, policy="periodic", judge="embedding")).ainvoke(QUESTION)
    # Nothing may be left running on the server once we return.
    assert await wait_until_idle(root, 5)
    t2 = await generated(root)

    assert cons.cancelled == 0 and cons.finished + cons.failed == 8
    assert pruned.answer is not None
    assert pruned.cancelled >= 1
    cancelled = [b for b in pruned.branches if b.status == "cancelled"]
    assert all(b.cancel_latency_ms is not None and b.cancel_latency_ms < 1000 for b in cancelled)
    # The server's own token counter: pruning generated fewer tokens than the same seeds unpruned.
    assert (t2 - t1) < (t1 - t0), (t2 - t1, t1 - t0)
    assert pruned.tokens_generated == sum(b.tokens for b in pruned.branches)
    # Every branch's text is kept, cancelled ones included.
    assert all(b.text for b in cancelled)
    if vllm_server.log_path is not None:
        assert "Aborted request" in log_since(vllm_server, offset)


async def test_graph_streams_progress_events(vllm_server) -> None:  # type: ignore[no-untyped-def]
    graph = build_graph()
    ctx = DeepPruneContext(**settings(vllm_server, n=4, max_tokens=64))
    kinds: list[str] = []
    final = None
    async for mode, chunk in graph.astream({"question": QUESTION}, context=ctx, stream_mode=["custom", "values"]):
        if mode == "custom":
            kinds.append(chunk["event"])
        elif "result" in chunk:
            final = chunk["result"]
    assert kinds[0] == "start" and kinds[-1] == "result"
    assert "tokens" in kinds and "judge" in kinds
    assert final is not None and len(final["branches"]) == 4
    assert await wait_until_idle(vllm_server.root_url, 5)


async def test_wrong_model_name_names_the_served_models(vllm_server) -> None:  # type: ignore[no-untyped-def]
    reasoner = DeepPruneReasoner(**settings(vllm_server, model="no-such-model"))
    try:
        await reasoner.ainvoke(QUESTION)
    except ModelNotFoundError as exc:
        assert vllm_server.model in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected ModelNotFoundError")


async def test_caller_cancellation_aborts_every_branch(vllm_server) -> None:  # type: ignore[no-untyped-def]
    reasoner = DeepPruneReasoner(**settings(vllm_server, max_tokens=400, policy="none"))
    offset = log_size(vllm_server)
    task = asyncio.create_task(reasoner.ainvoke("Write a long story about a dragon who learns arithmetic."))
    async with httpx.AsyncClient() as client:
        for _ in range(200):  # wait until the branches are running on the server
            running = metric(await scrape_samples(vllm_server.root_url, client), "vllm:num_requests_running")
            if running >= 1:
                break
            await asyncio.sleep(0.05)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    # The evidence of the abort is the server's log; the engine drops an aborted request only after the step
    # it is in, which took 8 s on a machine serving SmolLM2 at a quarter of its usual speed (cold engine).
    if vllm_server.log_path is not None:
        assert await wait_for_log(vllm_server, every_added_request_aborted, ABORT_GRACE_S, offset)
    assert await wait_until_idle(vllm_server.root_url, ABORT_GRACE_S)


def test_cli_ask_json(vllm_server) -> None:  # type: ignore[no-untyped-def]
    env = dict(os.environ, DEEPPRUNE_API_KEY="sk-test-secret-value")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "deepprune_agents.cli",
            "ask",
            QUESTION,
            "--n",
            "4",
            "--max-tokens",
            "96",
            "--base-url",
            vllm_server.base_url,
            "--model",
            vllm_server.model,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=True,
    )
    result = json.loads(out.stdout)
    assert result["n"] == 4 and len(result["branches"]) == 4
    assert result["tokens_generated"] > 0
    # The API key never appears in results or output.
    assert "sk-test-secret-value" not in out.stdout + out.stderr
