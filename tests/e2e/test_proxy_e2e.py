"""``deepprune serve --upstream`` with real clients (openai sync/async, LangChain's ChatOpenAI, curl) on real
sockets, in front of the replay server (fast, deterministic traces): progress as marked reasoning deltas,
the answer as content, usage equal to the upstream's own count, the same answer and tokens as
``deepprune ask``, disconnect aborting every branch upstream, 401, 429, 400, and the upstream key never
leaking nor mixed with the proxy's."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from test_replay_server_e2e import RIGHT, WRONG  # tests/e2e is on sys.path (rootdir import mode)

from deepprune_agents.cli import main as cli_main
from deepprune_agents.evaluation.replay_data import ReplayQuestion, make_trace
from deepprune_agents.evaluation.replay_server import FaultConfig, ReplayServer
from deepprune_agents.evaluation.replay_server import runner as replay_runner  # where ReplayServer finds build_app
from deepprune_agents.reasoner import DeepPruneReasoner
from deepprune_agents.server.app import ProxyConfig, ProxyServer
from deepprune_agents.server.protocol import PROGRESS_PREFIX
from deepprune_agents.settings import DeepPruneContext

ODD = "Tom has 3 apples, doubles them to 6, so 6 apples." + " Counting again we get 6." * 6 + " The answer is 6."
QUESTION = ReplayQuestion(
    "apples",
    "Tom has 3 apples and buys 4 more. How many apples does he have?",
    "7",
    tuple(make_trace(t) for t in [RIGHT, WRONG, RIGHT, ODD, WRONG, RIGHT, RIGHT, WRONG]),
)
MESSAGES = [{"role": "user", "content": QUESTION.question}]
FAST = {"n": 8, "judge": "numbers", "truncate": "tokens:12"}


@pytest.fixture
def upstream() -> Iterator[ReplayServer]:
    with ReplayServer([QUESTION], tokens_per_s=200) as server:
        yield server
        assert server.wait_idle(5.0), "a branch stream was left open upstream"


@pytest.fixture
def make_proxy() -> Iterator[Callable[..., ProxyServer]]:
    started: list[ProxyServer] = []

    def make(upstream_url: str, **config: Any) -> ProxyServer:
        ctx = DeepPruneContext(base_urls=[upstream_url], judge="numbers", truncate="tokens:12")
        proxy = ProxyServer(ProxyConfig(ctx, **{"seed": 0, **config})).start()  # seed 0: the same traces each run
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.stop()


def upstream_tokens(server: ReplayServer) -> int:
    """What the upstream itself says it sent: the independent count usage is checked against."""
    return sum(r.tokens_sent for r in server.records())


def tokens_generated(proxy: ProxyServer) -> float:
    """The proxy's own total of the tokens its runs generated (``deepprune_proxy_tokens_generated_total``)."""
    value = proxy.app.state.proxy.metrics.registry.get_sample_value("deepprune_proxy_tokens_generated_total")
    return float(value or 0.0)


def check_usage(completion_tokens: int, summary: dict[str, Any], server: ReplayServer, first_record: int = 0) -> None:
    """usage == the sum of the branches' tokens, and each branch agrees with the upstream's own record of its
    request (``server.records()[first_record:]``, found by its seed: the proxy's seed 0 + the branch id): a
    finished branch counted every token the upstream sent, a cancelled one no more than it sent (the rest was
    in flight when its stream was closed: how much depends on load, so it is not bounded here), an unstarted
    one never reached it."""
    assert completion_tokens == sum(b["tokens"] for b in summary["branches"]) == summary["tokens_generated"]
    records = server.records()[first_record:]
    sent = {r.seed: r for r in records}
    assert len(sent) == len(records), "two requests of one run with one seed"
    for b in summary["branches"]:
        record = sent.get(b["id"])
        if b["status"] == "unstarted":
            assert record is None, b
            continue
        assert record is not None, b
        if b["status"] == "finished":
            assert record.tokens_sent == b["tokens"] and record.finish_reason is not None, (b, record)
        elif b["status"] == "cancelled":
            assert b["tokens"] <= record.tokens_sent, (b, record)
    assert completion_tokens <= sum(r.tokens_sent for r in records)


def test_openai_sync_stream_progress_then_answer(
    upstream: ReplayServer, make_proxy: Callable[..., ProxyServer]
) -> None:
    proxy = make_proxy(upstream.base_url)
    client = openai.OpenAI(base_url=proxy.base_url, api_key="unused", max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="replay", messages=MESSAGES, stream=True, extra_body={"deepprune": FAST},  # type: ignore[arg-type]
            stream_options={"include_usage": True},
        )
    )  # fmt: skip
    progress = [c for c in chunks if c.choices and (c.model_extra or {}).get("deepprune", {}).get("progress")]
    reasoning = [getattr(c.choices[0].delta, "reasoning", None) for c in progress]
    assert reasoning[0] == f"{PROGRESS_PREFIX}accepted: n=8, {DeepPruneContext().policy} policy, numbers judge\n"
    assert any("branches started on replay" in (r or "") for r in reasoning)
    assert all(r and r.startswith(PROGRESS_PREFIX) for r in reasoning)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content.endswith("The answer is 7.") and PROGRESS_PREFIX not in content
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finish] == ["stop"]
    last = chunks[-1]
    summary = (last.model_extra or {})["deepprune"]
    assert last.usage is not None and summary["answer"] == "7"
    check_usage(last.usage.completion_tokens, summary, upstream)
    assert last.usage.prompt_tokens > 0
    assert {b["status"] for b in summary["branches"]} <= {"finished", "cancelled"}
    assert 0.0 <= summary["token_saving"] < 1.0


async def test_openai_async_streamed_and_not(upstream: ReplayServer, make_proxy: Callable[..., ProxyServer]) -> None:
    proxy = make_proxy(upstream.base_url)
    async with openai.AsyncOpenAI(base_url=proxy.base_url, api_key="unused", max_retries=0) as client:
        # the model-name suffix, for clients that cannot send extra fields
        reply = await client.chat.completions.create(
            model="replay+deepprune:n=4,judge=numbers,content=answer",
            messages=MESSAGES,  # type: ignore[arg-type]
        )
        summary = (reply.model_extra or {})["deepprune"]
        assert reply.choices[0].message.content == summary["answer"] == "7"
        assert len(summary["branches"]) == 4 and summary["n"] == 4
        assert reply.usage is not None
        check_usage(reply.usage.completion_tokens, summary, upstream)
        before = len(upstream.records())
        stream = await client.chat.completions.create(
            model="replay", messages=MESSAGES, stream=True, extra_body={"deepprune": {**FAST, "progress": False}},  # type: ignore[arg-type]
        )  # fmt: skip
        chunks = [c async for c in stream]
    assert not any(getattr(c.choices[0].delta, "reasoning", None) for c in chunks if c.choices)  # progress off
    final = (chunks[-1].model_extra or {})["deepprune"]
    assert chunks[-1].usage is not None
    check_usage(chunks[-1].usage.completion_tokens, final, upstream, before)


def test_langchain_chat_openai(upstream: ReplayServer, make_proxy: Callable[..., ProxyServer]) -> None:
    from langchain_openai import ChatOpenAI

    proxy = make_proxy(upstream.base_url)
    llm = ChatOpenAI(model="replay", base_url=proxy.base_url, api_key="unused", extra_body={"deepprune": FAST})  # type: ignore[arg-type]
    message = llm.invoke(QUESTION.question)
    assert isinstance(message.content, str) and message.content.endswith("The answer is 7.")
    assert message.usage_metadata is not None
    sent = upstream_tokens(upstream)
    assert 0 < message.usage_metadata["output_tokens"] <= sent
    assert message.usage_metadata["output_tokens"] == tokens_generated(proxy)  # the run's own count, once
    before, counted = upstream_tokens(upstream), tokens_generated(proxy)
    streaming = ChatOpenAI(
        model="replay",
        base_url=proxy.base_url,
        api_key="unused",
        stream_usage=True,
        extra_body={"deepprune": FAST},  # type: ignore[arg-type]
    )
    pieces = list(streaming.stream(QUESTION.question))
    assert "".join(str(p.content) for p in pieces).endswith("The answer is 7.")
    output_tokens = sum(p.usage_metadata["output_tokens"] for p in pieces if p.usage_metadata)
    sent = upstream_tokens(upstream) - before
    assert 0 < output_tokens <= sent  # counted once, not once per usage-bearing chunk
    assert output_tokens == tokens_generated(proxy) - counted  # and equal to what the run generated


def test_curl_streams_server_sent_events(upstream: ReplayServer, make_proxy: Callable[..., ProxyServer]) -> None:
    proxy = make_proxy(upstream.base_url)
    body = json.dumps({"model": "replay", "messages": MESSAGES, "stream": True, "deepprune": FAST})
    out = subprocess.run(
        ["curl", "-sN", proxy.base_url + "/chat/completions", "-H", "Content-Type: application/json", "-d", body],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    data = [line[6:] for line in out.splitlines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    events = [json.loads(d) for d in data[:-1]]
    assert events[1]["choices"][0]["delta"]["reasoning"].startswith(PROGRESS_PREFIX)
    assert events[-1]["deepprune"]["answer"] == "7"
    check_usage(events[-1]["usage"]["completion_tokens"], events[-1]["deepprune"], upstream)


def _lockstep_run(via_proxy: bool, stagger_s: float, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """One run, on a fresh lockstep replay server (deterministic delivery), through the proxy or through
    ``deepprune ask --json``; returns answer, branches and tokens."""
    n = 5
    with ReplayServer([QUESTION], tokens_per_s=1.0 / (n * stagger_s), lockstep=True, stagger_s=stagger_s) as server:
        if via_proxy:
            ctx = DeepPruneContext(base_urls=[server.base_url])
            with ProxyServer(ProxyConfig(ctx)) as proxy:
                reply = openai.OpenAI(base_url=proxy.base_url, api_key="unused", max_retries=0).chat.completions.create(
                    model="replay", messages=MESSAGES, seed=3,  # type: ignore[arg-type]
                    extra_body={"deepprune": {"n": n, "judge": "numbers", "truncate": "tokens:12", "tau": 0.3}},
                )  # fmt: skip
            summary = (reply.model_extra or {})["deepprune"]
            assert reply.usage is not None
            return {
                "answer": summary["answer"],
                "branches": [(b["status"], b["tokens"]) for b in summary["branches"]],
                "tokens": reply.usage.completion_tokens,
                "upstream": upstream_tokens(server),
            }
        argv = ["ask", QUESTION.question, "--json", "--base-url", server.base_url, "--model", "replay", "--n", str(n),
                "--judge", "numbers", "--truncate", "tokens:12", "--tau", "0.3", "--seed", "3"]  # fmt: skip
        capsys.readouterr()
        assert cli_main(argv) == 0
        result = json.loads(capsys.readouterr().out)
        return {
            "answer": result["answer"],
            "branches": [(b["status"], b["tokens"]) for b in result["branches"]],
            "tokens": result["tokens_generated"],
            "upstream": upstream_tokens(server),
        }


def test_same_answer_and_tokens_as_deepprune_ask(capsys: pytest.CaptureFixture[str]) -> None:
    stagger = 0.015
    for _ in range(2):  # a judge round that overran the stagger (loaded machine): again at half the pace
        ask, proxied = _lockstep_run(False, stagger, capsys), _lockstep_run(True, stagger, capsys)
        ask_upstream, proxied_upstream = ask.pop("upstream"), proxied.pop("upstream")
        if ask == proxied:
            break
        stagger *= 2
    assert proxied == ask
    assert ask["tokens"] == sum(t for _, t in ask["branches"]) <= min(ask_upstream, proxied_upstream)
    assert "cancelled" in {s for s, _ in ask["branches"]}, "only meaningful if something was pruned"


def test_disconnect_aborts_every_branch_upstream(make_proxy: Callable[..., ProxyServer]) -> None:
    with ReplayServer([QUESTION], tokens_per_s=10) as slow:  # each trace takes ~6 s
        proxy = make_proxy(slow.base_url)
        client = openai.OpenAI(base_url=proxy.base_url, api_key="unused", max_retries=0)
        stream = client.chat.completions.create(
            model="replay", messages=MESSAGES, stream=True, extra_body={"deepprune": {**FAST, "policy": "none"}},  # type: ignore[arg-type]
        )  # fmt: skip
        for c in stream:
            if c.choices and "branches started" in (getattr(c.choices[0].delta, "reasoning", None) or ""):
                break
        deadline = time.monotonic() + 5
        while slow.open_streams() < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert slow.open_streams() == 8, "all branches should be streaming before the client leaves"
        stream.close()
        assert slow.wait_idle(5.0), "branches kept running upstream after the client disconnected"
        records = slow.records()
        assert len(records) == 8 and all(r.disconnected and r.finish_reason is None for r in records)
        health = httpx.get(proxy.root_url + "/health", timeout=5).json()
        assert health["active_runs"] == 0


def test_disconnect_while_waiting_for_a_non_streamed_reply_aborts_too(make_proxy: Callable[..., ProxyServer]) -> None:
    with ReplayServer([QUESTION], tokens_per_s=10) as slow:
        proxy = make_proxy(slow.base_url)
        body = json.dumps({"model": "replay", "messages": MESSAGES, "deepprune": {**FAST, "policy": "none"}})
        # A raw socket, so the client leaves exactly when every branch streams upstream (a client read
        # timeout would race the proxy's start-up on a loaded machine).
        host, port = proxy.root_url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(
                f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n{body}".encode()
            )
            deadline = time.monotonic() + 30
            while slow.open_streams() < 8 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert slow.open_streams() == 8, "all branches should be streaming before the client leaves"
        assert slow.wait_idle(5.0), "branches kept running upstream after the client went away"
        records = slow.records()
        assert len(records) == 8 and all(r.disconnected for r in records)


def test_over_the_limit_answers_429_with_retry_after(make_proxy: Callable[..., ProxyServer]) -> None:
    with ReplayServer([QUESTION], tokens_per_s=10) as slow:
        proxy = make_proxy(slow.base_url, max_concurrent=1, retry_after_s=3, queue_size=0)
        client = openai.OpenAI(base_url=proxy.base_url, api_key="unused", max_retries=0)
        stream = client.chat.completions.create(
            model="replay", messages=MESSAGES, stream=True, extra_body={"deepprune": {**FAST, "n": 2}},  # type: ignore[arg-type]
        )  # fmt: skip
        next(iter(stream))  # the run holds the only slot
        with pytest.raises(openai.RateLimitError) as err:
            client.chat.completions.create(model="replay", messages=MESSAGES)  # type: ignore[arg-type]
        assert err.value.response.headers["retry-after"] == "3"
        assert "busy" in err.value.message and err.value.code == "rate_limit_exceeded"
        stream.close()
        assert slow.wait_idle(5.0)
        deadline = time.monotonic() + 5  # the slot is free again once the cancelled run has closed
        while httpx.get(proxy.root_url + "/health", timeout=5).json()["active_runs"] and time.monotonic() < deadline:
            time.sleep(0.02)
        reply = client.chat.completions.create(
            model="replay",
            messages=MESSAGES,
            extra_body={"deepprune": {**FAST, "n": 2}},  # type: ignore[arg-type]
        )
        assert reply.choices[0].message.content


def test_bad_requests_get_openai_errors_that_name_the_fix(
    upstream: ReplayServer, make_proxy: Callable[..., ProxyServer]
) -> None:
    proxy = make_proxy(upstream.base_url)
    client = openai.OpenAI(base_url=proxy.base_url, api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="replay", messages=MESSAGES, extra_body={"deepprune": {"n": 0}})  # type: ignore[arg-type]
    assert "n must be an integer >= 1" in err.value.message
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="replay+deepprune:x=1", messages=MESSAGES)  # type: ignore[arg-type]
    assert "unknown DeepPrune option 'x'" in err.value.message
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="replay", messages=[])
    with pytest.raises(openai.NotFoundError) as nf:
        client.chat.completions.create(model="no-such-model", messages=MESSAGES, extra_body={"deepprune": FAST})  # type: ignore[arg-type]
    assert "replay" in nf.value.message  # names what the upstream serves
    assert upstream_tokens(upstream) == 0


def test_models_lists_the_upstream_and_health_is_open(
    upstream: ReplayServer, make_proxy: Callable[..., ProxyServer]
) -> None:
    proxy = make_proxy(upstream.base_url, api_key="proxy-key")
    models = openai.OpenAI(base_url=proxy.base_url, api_key="proxy-key").models.list()
    assert [m.id for m in models.data] == ["replay", "replay+deepprune"]
    assert httpx.get(proxy.root_url + "/health", timeout=5).status_code == 200


@pytest.fixture
def recording_upstream(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ReplayServer, list[str]]]:
    """The replay server behind a wrapper that records every Authorization header it receives."""
    seen: list[str] = []
    build = replay_runner.build_app

    def recording_app(state: Any) -> Any:
        app = build(state)

        async def wrapped(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                seen.append(dict(scope["headers"]).get(b"authorization", b"").decode())
            await app(scope, receive, send)

        return wrapped

    monkeypatch.setattr(replay_runner, "build_app", recording_app)
    with ReplayServer([QUESTION], tokens_per_s=200) as server:
        monkeypatch.setattr(replay_runner, "build_app", build)
        yield server, seen
        assert server.wait_idle(5.0)


def test_keys_never_mixed_and_the_upstream_key_never_leaks(
    recording_upstream: tuple[ReplayServer, list[str]],
    make_proxy: Callable[..., ProxyServer],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, seen = recording_upstream
    upstream_key, proxy_key = "sk-upstream-SECRET-31337", "proxy-key-42"
    monkeypatch.setenv("DEEPPRUNE_API_KEY", upstream_key)
    monkeypatch.setenv("DEEPPRUNE_PROXY_API_KEY", proxy_key)
    caplog.set_level(logging.DEBUG)
    proxy = make_proxy(server.base_url)  # the proxy key comes from the environment
    exchanged: list[str] = []
    with httpx.Client(base_url=proxy.root_url, timeout=30) as http:
        for key in (None, "wrong", upstream_key):  # the upstream key does not open the proxy either
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            for method, path in (("GET", "/v1/models"), ("POST", "/v1/chat/completions")):
                resp = http.request(method, path, headers=headers, json={"model": "replay", "messages": MESSAGES})
                assert resp.status_code == 401, (key, path)
                assert resp.json()["error"]["code"] == "invalid_api_key"
                assert "DEEPPRUNE" not in resp.json()["error"]["message"]  # the client cannot set the operator's env
                exchanged.append(resp.text + str(resp.headers))
        good = {"Authorization": f"Bearer {proxy_key}"}
        for payload in (
            {"model": "replay", "messages": MESSAGES, "deepprune": FAST},
            {"model": "replay", "messages": MESSAGES, "deepprune": FAST, "stream": True},
            {"model": "nope", "messages": MESSAGES, "deepprune": FAST},  # an upstream error, quoted back
            {"model": "nope", "messages": MESSAGES, "deepprune": FAST, "stream": True},
        ):
            resp = http.post("/v1/chat/completions", headers=good, json=payload)
            exchanged.append(resp.text + str(resp.headers))
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "model_not_found"  # before any stream
        resp = http.get("/v1/models", headers=good)
        assert resp.status_code == 200
        exchanged.append(resp.text + str(resp.headers))
    assert seen and set(seen) == {f"Bearer {upstream_key}"}, "the upstream got another key than DEEPPRUNE_API_KEY"
    for text in (*exchanged, caplog.text):
        assert upstream_key not in text
    for text in exchanged:  # what clients read does not show the operator's upstream URLs either
        assert server.base_url not in text and server.root_url not in text


def test_a_deepprune_client_behind_the_proxy_never_reads_progress_as_thinking(
    upstream: ReplayServer, make_proxy: Callable[..., ProxyServer]
) -> None:
    proxy = make_proxy(upstream.base_url)
    outer = DeepPruneReasoner(
        base_urls=[proxy.base_url], model="replay+deepprune", n=2, policy="none", judge="numbers",
        extra_body={"deepprune": {"n": 3, "judge": "numbers", "truncate": "tokens:12"}},
    )  # fmt: skip
    result = outer.invoke(QUESTION.question)
    assert result.finished == 2
    for b in result.branches:
        thinking = str(getattr(b, "reasoning", "") or "")
        assert PROGRESS_PREFIX not in b.text and PROGRESS_PREFIX not in thinking
        assert b.text.rstrip().endswith(f"The answer is {b.answer}.")
    assert result.tokens_generated <= upstream_tokens(upstream)  # the inner runs may prune


def test_several_upstreams_share_the_branches_and_list_models_once(make_proxy: Callable[..., ProxyServer]) -> None:
    with ReplayServer([QUESTION], tokens_per_s=200) as a, ReplayServer([QUESTION], tokens_per_s=200) as b:
        # a cap of 4 per upstream: one run's 8 branches fill its home upstream and spill to the other
        ctx = DeepPruneContext(base_urls=[a.base_url, b.base_url], judge="numbers", max_streams_per_endpoint=4)
        with ProxyServer(ProxyConfig(ctx)) as proxy:
            client = openai.OpenAI(base_url=proxy.base_url, api_key="unused", max_retries=0)
            assert [m.id for m in client.models.list().data] == ["replay", "replay+deepprune"]
            reply = client.chat.completions.create(
                model="replay",
                messages=MESSAGES,
                extra_body={"deepprune": {"n": 8, "policy": "none"}},  # type: ignore[arg-type]
            )
        assert a.records() and b.records(), "branches should spread over both upstreams"
        assert len(a.records()) + len(b.records()) == 8
        assert reply.usage is not None
        assert reply.usage.completion_tokens == upstream_tokens(a) + upstream_tokens(b)  # nothing pruned: exact


def test_a_silent_stream_sends_keep_alive_comments(
    make_proxy: Callable[..., ProxyServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    from deepprune_agents.server import run as proxy_run

    monkeypatch.setattr(proxy_run, "KEEPALIVE_S", 0.1)
    with ReplayServer([QUESTION], tokens_per_s=10) as slow:
        proxy = make_proxy(slow.base_url)
        body = {"model": "replay", "messages": MESSAGES, "stream": True, "deepprune": {**FAST, "progress": False}}
        comments = 0
        with httpx.stream("POST", proxy.base_url + "/chat/completions", json=body, timeout=10) as resp:
            for line in resp.iter_lines():
                assert "reasoning" not in line  # progress is off: nothing else is sent while branches run
                comments += line == ": keep-alive"
                if comments == 3:
                    break
        left_at = time.time()
        assert comments == 3
        # On failure, say where the close got stuck: which upstream streams were still open, and when each
        # sent its last token and saw the disconnect, in seconds after the client left.
        assert slow.wait_idle(5.0), [
            (
                r.seed,
                r.disconnected,
                r.tokens_sent,
                *(None if t is None else round(t - left_at, 3) for t in (r.t_disconnect, r.t_last_token)),
            )
            for r in slow.records()
        ]


def test_every_branch_failing_upstream_is_a_502_naming_the_cause(make_proxy: Callable[..., ProxyServer]) -> None:
    with ReplayServer([QUESTION], faults=FaultConfig(open_status=400, open_rate=1.0)) as broken:
        proxy = make_proxy(broken.base_url)
        client = openai.OpenAI(base_url=proxy.base_url, api_key="unused", max_retries=0)
        with pytest.raises(openai.APIStatusError) as err:
            client.chat.completions.create(model="replay", messages=MESSAGES, extra_body={"deepprune": FAST})  # type: ignore[arg-type]
        assert err.value.status_code == 502
        assert "all 8 branches failed" in err.value.message and "upstream #0 rejected" in err.value.message
        with pytest.raises(openai.APIError) as streamed:  # after the 200 of a stream: an error event
            list(
                client.chat.completions.create(
                    model="replay", messages=MESSAGES, stream=True, extra_body={"deepprune": FAST},  # type: ignore[arg-type]
                )
            )  # fmt: skip
        assert "all 8 branches failed" in streamed.value.message


def test_the_cli_serves_until_sigterm(upstream: ReplayServer) -> None:
    import os
    import signal
    import socket
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "deepprune_agents.cli", "serve", "--upstream", upstream.base_url, "--port", str(port)]
    cmd += ["--judge", "numbers", "--n", "4", "--max-concurrent", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    try:
        assert proc.stdout is not None
        assert "loading the judges a request may pick (numbers, constant)" in proc.stdout.readline()
        banner = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/v1" in banner and "n=4" in banner and "max 2 concurrent" in banner
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        reply = None
        deadline = time.monotonic() + 30
        while reply is None and time.monotonic() < deadline:
            try:
                reply = client.chat.completions.create(model="replay", messages=MESSAGES)  # type: ignore[arg-type]
            except openai.APIConnectionError:
                time.sleep(0.05)
        assert reply is not None and len((reply.model_extra or {})["deepprune"]["branches"]) == 4  # the CLI's --n
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
