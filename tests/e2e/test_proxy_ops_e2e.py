"""Operating the proxy (issue 36, "Operations"): /metrics that agree with a run's summary, one access-log
line per request, readiness that checks the upstream, a queue at the concurrency cap, a body-size limit,
CORS, JSON 404/405, judges loaded before serving. Real sockets, the replay server upstream."""

# ruff: noqa: F811 (pytest fixtures imported from test_proxy_e2e are parameters here)
from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from proxy_helpers import RecordingReplayServer  # tests/e2e is on sys.path (rootdir import mode)
from test_proxy_e2e import MESSAGES, QUESTION, make_proxy, upstream  # noqa: F401 (fixtures)

from deepprune_agents.evaluation.replay_server import FaultConfig, ReplayServer
from deepprune_agents.server.app import ProxyConfig, ProxyServer

FAST = {"n": 4, "judge": "numbers", "truncate": "tokens:12"}


def metrics_of(proxy: ProxyServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``GET /metrics`` read by prometheus_client's own parser: ``{(sample, labels): value}``."""
    from prometheus_client.parser import text_string_to_metric_families

    resp = httpx.get(proxy.root_url + "/metrics", timeout=5)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }


def test_metrics_parse_and_agree_with_the_run_summaries(
    upstream: ReplayServer, make_proxy: Callable[..., ProxyServer]
) -> None:
    proxy = make_proxy(upstream.base_url, api_key="k")
    client = openai.OpenAI(base_url=proxy.base_url, api_key="k", max_retries=0)
    summaries = []
    for stream in (False, True):
        if stream:
            chunks = list(client.chat.completions.create(
                model="replay", messages=MESSAGES, stream=True, extra_body={"deepprune": {**FAST, "n": 6}},  # type: ignore[arg-type]
            ))  # fmt: skip
            summaries.append((chunks[-1].model_extra or {})["deepprune"])
        else:
            reply = client.chat.completions.create(model="replay", messages=MESSAGES, extra_body={"deepprune": FAST})  # type: ignore[arg-type]
            summaries.append((reply.model_extra or {})["deepprune"])
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=proxy.base_url, api_key="wrong", max_retries=0).models.list()
    m = metrics_of(proxy)

    def value(name: str, **labels: str) -> float:
        return m.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("deepprune_proxy_runs_total", outcome="ok") == 2
    assert sum(s["n"] for s in summaries) == 10
    started = value("deepprune_proxy_branches_total", state="started")
    assert started == sum(s["n"] - s["unstarted"] for s in summaries)  # a staged run may hold some back
    for state in ("finished", "cancelled", "failed", "unstarted"):
        assert value("deepprune_proxy_branches_total", state=state) == sum(s[state] for s in summaries)
    assert started == sum(value("deepprune_proxy_branches_total", state=s) for s in ("finished", "cancelled", "failed"))
    assert value("deepprune_proxy_tokens_generated_total") == sum(s["tokens_generated"] for s in summaries)
    saved = sum(max(0, s["tokens_cons_estimate"] - s["tokens_generated"]) for s in summaries)
    assert value("deepprune_proxy_tokens_saved_total") == saved
    assert value("deepprune_proxy_run_seconds_count") == 2
    assert value("deepprune_proxy_run_seconds_sum") == pytest.approx(sum(s["wall_time_s"] for s in summaries))
    assert value("deepprune_proxy_http_responses_total", status="200") == 2
    assert value("deepprune_proxy_http_responses_total", status="401") == 1
    assert value("deepprune_proxy_queue_wait_seconds_count") == 2
    with ReplayServer([QUESTION], faults=FaultConfig(open_status=400, open_rate=1.0)) as broken:
        failing = make_proxy(broken.base_url)
        with pytest.raises(openai.APIStatusError):
            openai.OpenAI(base_url=failing.base_url, api_key="x", max_retries=0).chat.completions.create(
                model="replay",
                messages=MESSAGES,
                extra_body={"deepprune": FAST},  # type: ignore[arg-type]
            )
        m = metrics_of(failing)
    assert value("deepprune_proxy_runs_total", outcome="upstream_error") == 1
    assert value("deepprune_proxy_upstream_errors_total", kind="branch_failed") == 4
    assert value("deepprune_proxy_http_responses_total", status="502") == 1


def test_one_access_log_line_per_request_and_no_false_client_went_away(
    upstream: ReplayServer, make_proxy: Callable[..., ProxyServer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    proxy = make_proxy(upstream.base_url, api_key="sk-proxy-secret")
    client = openai.OpenAI(base_url=proxy.base_url, api_key="sk-proxy-secret", max_retries=0)
    client.chat.completions.create(model="replay", messages=MESSAGES, extra_body={"deepprune": FAST})  # type: ignore[arg-type]
    list(client.chat.completions.create(model="replay", messages=MESSAGES, stream=True, extra_body={"deepprune": FAST}))  # type: ignore[arg-type]
    httpx.get(proxy.root_url + "/health", timeout=5)  # probes are not logged
    deadline = time.monotonic() + 5  # the line is written once the response has ended
    while len([r for r in caplog.records if r.name == "deepprune.access"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    lines = [r.getMessage() for r in caplog.records if r.name == "deepprune.access"]
    assert len(lines) == 2, lines
    for line in lines:
        assert '"POST /v1/chat/completions" 200' in line and "n=4" in line and "tokens=" in line and "saved=" in line
        assert "sk-proxy-secret" not in line and QUESTION.question not in line
    assert "client went away" not in caplog.text  # it did not: it read the whole reply
    quoted = make_proxy(upstream.base_url, log_prompts=True)
    openai.OpenAI(base_url=quoted.base_url, api_key="x", max_retries=0).chat.completions.create(
        model="replay",
        messages=MESSAGES,
        extra_body={"deepprune": FAST},  # type: ignore[arg-type]
    )
    deadline = time.monotonic() + 5
    while QUESTION.question[:40] not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.02)
    assert QUESTION.question[:40] in caplog.text  # only when the operator asks for it


def test_readiness_checks_the_upstream_and_health_stays_liveness(make_proxy: Callable[..., ProxyServer]) -> None:
    down = make_proxy("http://127.0.0.1:9/v1")  # nothing listens there
    assert httpx.get(down.root_url + "/health", timeout=10).status_code == 200
    ready = httpx.get(down.root_url + "/ready", timeout=10)
    assert ready.status_code == 503 and ready.json()["upstreams"] == [{"upstream": "#0", "ok": False}]
    with ReplayServer([QUESTION]) as server:
        up = make_proxy(server.base_url)
        assert httpx.get(up.root_url + "/ready", timeout=10).json() == {
            "status": "ready",
            "upstreams": [{"upstream": "#0", "ok": True}],
        }


def test_requests_over_the_cap_wait_in_the_queue_and_only_a_full_queue_is_429(
    make_proxy: Callable[..., ProxyServer],
) -> None:
    with ReplayServer([QUESTION], tokens_per_s=40) as slow:  # a run takes ~1.5 s
        proxy = make_proxy(slow.base_url, max_concurrent=1, queue_size=2, retry_after_s=2)
        client = openai.OpenAI(base_url=proxy.base_url, api_key="x", max_retries=0, timeout=60)
        body = {"deepprune": {**FAST, "n": 2, "policy": "none"}}
        replies: list[Any] = []

        def ask() -> None:
            replies.append(client.chat.completions.create(model="replay", messages=MESSAGES, extra_body=body))  # type: ignore[arg-type]

        threads = [threading.Thread(target=ask) for _ in range(3)]  # 1 runs, 2 wait
        for t in threads:
            t.start()
            time.sleep(0.2)
        with pytest.raises(openai.RateLimitError) as full:  # the 4th finds the queue full
            client.chat.completions.create(model="replay", messages=MESSAGES, extra_body=body)  # type: ignore[arg-type]
        assert full.value.code == "rate_limit_exceeded" and full.value.response.headers["retry-after"] == "2"
        for t in threads:
            t.join(60)
        assert len(replies) == 3 and all(r.choices[0].message.content for r in replies)
        waits = sorted((r.model_extra or {})["deepprune"]["queue_wait_s"] for r in replies)
        assert waits[0] < 0.1 and waits[2] > waits[1] > 0.5  # served in turn
        impatient = make_proxy(slow.base_url, max_concurrent=1, queue_timeout_s=0.3)
        stream = openai.OpenAI(base_url=impatient.base_url, api_key="x", max_retries=0).chat.completions.create(
            model="replay",
            messages=MESSAGES,
            stream=True,
            extra_body=body,  # type: ignore[arg-type]
        )
        next(iter(stream))
        with pytest.raises(openai.APIStatusError) as timed_out:
            openai.OpenAI(base_url=impatient.base_url, api_key="x", max_retries=0).chat.completions.create(
                model="replay",
                messages=MESSAGES,
                extra_body=body,  # type: ignore[arg-type]
            )
        assert timed_out.value.status_code == 503 and timed_out.value.code == "queue_timeout"
        stream.close()
        assert slow.wait_idle(5.0)


def test_a_body_over_the_limit_is_refused_before_it_is_read(make_proxy: Callable[..., ProxyServer]) -> None:
    proxy = make_proxy("http://127.0.0.1:9/v1", max_body_bytes=64 * 1024)
    host, port = proxy.root_url.removeprefix("http://").split(":")
    size = 25 * 2**20
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\n\r\n".encode()
            + b'{"messages": ['
        )  # 25 MB announced, 14 bytes sent: the answer cannot wait for the rest
        reply = sock.recv(65536).decode()
    head, _, payload = reply.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 413")
    assert json.loads(payload)["error"]["code"] == "request_too_large"
    chunked = httpx.post(proxy.base_url + "/chat/completions", content=iter([b" " * 40_000] * 3), timeout=10)
    assert chunked.status_code == 413  # no Content-Length: counted while it arrives


def test_cors_is_off_by_default_and_opens_to_the_allowed_origins(make_proxy: Callable[..., ProxyServer]) -> None:
    preflight = {"Origin": "http://chat.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}  # fmt: skip
    closed = make_proxy("http://127.0.0.1:9/v1")
    resp = httpx.options(closed.base_url + "/chat/completions", headers=preflight, timeout=5)
    assert "access-control-allow-origin" not in resp.headers
    opened = make_proxy("http://127.0.0.1:9/v1", cors_origins=["http://chat.example"])
    resp = httpx.options(opened.base_url + "/chat/completions", headers=preflight, timeout=5)
    assert resp.status_code == 200 and resp.headers["access-control-allow-origin"] == "http://chat.example"
    other = httpx.options(opened.base_url + "/chat/completions", headers={**preflight, "Origin": "http://evil"})
    assert other.headers.get("access-control-allow-origin") != "http://evil"


def test_unknown_routes_and_methods_get_openai_json(make_proxy: Callable[..., ProxyServer]) -> None:
    proxy = make_proxy("http://127.0.0.1:9/v1")
    for method, path, status in (("GET", "/v1/completions", 404), ("GET", "/v1/chat/completions", 405)):
        resp = httpx.request(method, proxy.root_url + path, timeout=5)
        assert resp.status_code == status
        assert resp.json()["error"]["type"] == "invalid_request_error" and resp.json()["error"]["code"]


def test_allowed_judges_are_loaded_before_serving(
    upstream: ReplayServer, make_proxy: Callable[..., ProxyServer]
) -> None:
    from deepprune_agents.judges import get_judge, register_judge

    loads: list[float] = []

    def slow_to_load(**options: Any) -> Any:
        time.sleep(0.5)  # a model to read from disk
        loads.append(time.monotonic())
        return get_judge("numbers")

    register_judge("slow-to-load-test", slow_to_load, replace=True)
    proxy = make_proxy(upstream.base_url, judges=["numbers", "slow-to-load-test"])
    assert len(loads) == 1  # loaded by start(), before the first request
    t0 = time.monotonic()
    openai.OpenAI(base_url=proxy.base_url, api_key="x", max_retries=0).chat.completions.create(
        model="replay",
        messages=MESSAGES,
        extra_body={"deepprune": {**FAST, "judge": "slow-to-load-test"}},  # type: ignore[arg-type]
    )
    assert len(loads) == 1 and loads[0] < t0
    with pytest.raises(openai.BadRequestError) as refused:  # a judge the operator did not allow
        openai.OpenAI(base_url=proxy.base_url, api_key="x", max_retries=0).chat.completions.create(
            model="replay",
            messages=MESSAGES,
            extra_body={"deepprune": {**FAST, "judge": "constant"}},  # type: ignore[arg-type]
        )
    assert "numbers, slow-to-load-test" in refused.value.message


def test_serve_takes_the_run_flags_of_ask(monkeypatch: pytest.MonkeyPatch) -> None:
    from deepprune_agents.cli import main
    from deepprune_agents.server import app as proxy_app

    seen: list[ProxyConfig] = []
    monkeypatch.setattr(proxy_app, "serve_forever", lambda config, **kw: seen.append(config))
    argv = ["serve", "--upstream", "http://127.0.0.1:9/v1", "--max-tokens", "64", "--temperature", "0.3",
            "--max-n", "16", "--top-p", "0.5", "--run-timeout-s", "30", "--queue", "8", "--cors-origin", "*",
            "--tau", "0.4", "--grace", "3"]  # fmt: skip
    assert main(argv) == 0
    ctx = seen[0].defaults
    assert (ctx.max_tokens, ctx.temperature, ctx.max_n, ctx.top_p, ctx.run_timeout_s) == (64, 0.3, 16, 0.5, 30.0)
    assert ctx.tau == 0.4 and seen[0].seed is None  # no --seed: a fresh seed per request
    assert (seen[0].queue_size, seen[0].cors_origins, seen[0].shutdown_grace_s) == (8, ["*"], 3.0)
    assert main([*argv, "--seed", "5"]) == 0 and seen[1].seed == 5 == seen[1].defaults.seed


def test_recording_upstream_sees_no_request_after_a_refusal(make_proxy: Callable[..., ProxyServer]) -> None:
    with RecordingReplayServer([QUESTION]) as server:
        proxy = make_proxy(server.base_url, max_body_bytes=4096)
        resp = httpx.post(
            proxy.base_url + "/chat/completions",
            json={"model": "replay", "messages": [{"role": "user", "content": "x" * 5000}]},
            timeout=5,
        )
        assert resp.status_code == 413 and server.branch_bodies() == []
