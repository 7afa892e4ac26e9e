"""LangGraph Studio's server: ``langgraph dev`` serves the ``deepprune`` graph of ``langgraph.json``
offline, and a ``langgraph_sdk`` client runs it against the real vLLM server, reading the streamed
custom events and the final state."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

REPO = Path(__file__).resolve().parents[2]
QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have now?"

# Offline and private: no analytics, no PyPI version check, no LangSmith tracing, no browser.
OFFLINE_ENV = {
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
    "HF_HUB_OFFLINE": "1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def absolute_config(tmp: Path) -> Path:
    """The repo's langgraph.json with its paths made absolute, so the server can run in ``tmp``: the
    in-memory runtime writes its ``.langgraph_api/`` store into the working directory."""
    config = json.loads((REPO / "langgraph.json").read_text())
    config["dependencies"] = [str((REPO / d).resolve()) if d.startswith(".") else d for d in config["dependencies"]]
    for name, spec in config["graphs"].items():
        path, _, attr = spec.partition(":")
        config["graphs"][name] = f"{(REPO / path).resolve()}:{attr}"
    out = tmp / "langgraph.json"
    out.write_text(json.dumps(config))
    return out


@pytest.fixture(scope="module")
def studio_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    cli = Path(sys.executable).with_name("langgraph")
    if not cli.exists():
        pytest.skip("langgraph CLI not installed: pip install 'langgraph-cli[inmem]'")
    workdir = tmp_path_factory.mktemp("studio")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGSMITH_API_KEY", "LANGCHAIN_API_KEY"))}
    env.update(OFFLINE_ENV)
    log = (workdir / "server.log").open("wb")
    args = [str(cli), "dev", "--config", str(absolute_config(workdir)), "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(
        [*args, "--no-browser", "--no-reload"],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so teardown stops the uvicorn worker too
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                log_tail = (workdir / "server.log").read_text()[-3000:]
                pytest.fail(f"langgraph dev exited with {proc.returncode}:\n{log_tail}")
            try:
                if httpx.get(url + "/ok", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"langgraph dev did not answer /ok:\n{(workdir / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


async def test_studio_serves_the_graph_and_its_context_form(studio_url: str) -> None:
    client = get_client(url=studio_url)
    (assistant,) = await client.assistants.search(graph_id="deepprune")
    graph = await client.assistants.get_graph(assistant["assistant_id"])
    nodes = {n["id"] for n in graph["nodes"]}
    assert {"fan_out", "judge", "vote"} <= nodes
    edges = {(e["source"], e["target"]) for e in graph["edges"]}
    assert ("judge", "judge") in edges and ("judge", "vote") in edges  # the judge loop
    schemas: dict[str, Any] = dict(await client.assistants.get_schemas(assistant["assistant_id"]))
    form = schemas["context_schema"]["properties"]
    assert {"n", "base_urls", "model", "judge", "policy", "max_tokens"} <= set(form)
    for choice in ("policy", "judge", "endpoint", "reasoning_format"):  # Studio renders these as dropdowns
        assert form[choice].get("enum"), f"{choice} is a free-text box in Studio: type it as a Literal"
    # Studio's input form: pydantic can only build it from typing_extensions.TypedDict on Python < 3.12.
    assert schemas["input_schema"] is not None, "no input schema: graph.py's state TypedDicts cannot be converted"
    # A question, or the messages of an agent's conversation (the last human message is the question).
    assert {"question", "messages"} <= set(schemas["input_schema"]["properties"])


async def test_studio_runs_the_graph_and_streams_progress(studio_url: str, vllm_server: Any) -> None:
    client = get_client(url=studio_url)
    thread = await client.threads.create()
    context = {"base_urls": [vllm_server.base_url], "model": vllm_server.model, "n": 2, "max_tokens": 64}
    custom: list[dict[str, Any]] = []
    values: list[dict[str, Any]] = []
    async for part in client.runs.stream(
        thread["thread_id"],
        "deepprune",
        input={"question": QUESTION},
        context=context,
        stream_mode=["custom", "values"],
    ):
        assert part.event != "error", part.data
        if part.event == "custom":
            custom.append(part.data)
        elif part.event == "values":
            values.append(part.data)
    kinds = [e["event"] for e in custom]
    assert kinds[0] == "start" and kinds[-1] == "result" and "tokens" in kinds and "judge" in kinds
    assert custom[0]["n"] == 2 and custom[0]["model"] == vllm_server.model
    result = values[-1]["result"]
    assert result["question"] == QUESTION and result["n"] == 2 and len(result["branches"]) == 2
    assert custom[-1]["answer"] == result["answer"] and custom[-1]["tokens_generated"] == result["tokens_generated"]
    # The thread keeps the whole final state (what Studio shows next to the graph).
    state = await client.threads.get_state(thread["thread_id"])
    final: dict[str, Any] = dict(state["values"])  # type: ignore[arg-type]
    assert final["result"] == result
    assert final["rounds"] == result["judge_rounds"] >= 1
    assert len(final["branches"]) == 2
