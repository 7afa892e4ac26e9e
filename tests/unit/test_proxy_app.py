"""The proxy's app in-process through httpx's ASGI transport (no socket, no upstream): everything it must
answer before a run starts — auth, validation, health. Runs, streams and disconnects: tests/e2e/test_proxy_*."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from deepprune_agents.errors import ConfigError
from deepprune_agents.server.app import ProxyConfig, build_app, scrub
from deepprune_agents.settings import DeepPruneContext

UPSTREAM = "http://10.0.0.7:8000/v1"
MESSAGES = [{"role": "user", "content": "What is 2 + 3?"}]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    config = ProxyConfig(DeepPruneContext(base_urls=[UPSTREAM], judge="numbers"), api_key="k3y")
    transport = httpx.ASGITransport(app=build_app(config))
    async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as c:
        yield c


async def test_health_needs_no_key(client: httpx.AsyncClient) -> None:
    resp = await client.get("/health")
    assert resp.status_code == 200 and resp.json()["active_runs"] == 0


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic k3y", "Bearer k3y2", "bearer"])
async def test_wrong_or_missing_key_is_401(client: httpx.AsyncClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    for resp in (
        await client.post("/v1/chat/completions", headers=headers, json={"messages": MESSAGES}),
        await client.get("/v1/models", headers=headers),
    ):
        assert resp.status_code == 401
        assert resp.headers["www-authenticate"] == "Bearer"
        assert resp.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    ("body", "param", "hint"),
    [
        ({"messages": []}, "messages", "messages"),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, "messages", "last user message"),
        ({"messages": [{"role": "user", "content": "   "}]}, "messages", "last user message"),
        ({"messages": MESSAGES, "deepprune": {"n": -1}}, "deepprune", "n must be"),
        ({"messages": MESSAGES, "model": "m+deepprune:tau=2"}, "deepprune", "tau"),
        ({"messages": [{"role": "user", "content": "x" * 20_001}]}, "messages", "max_question_chars"),
    ],
)
async def test_invalid_requests_are_400_with_the_fix(
    client: httpx.AsyncClient, body: dict[str, object], param: str, hint: str
) -> None:
    resp = await client.post("/v1/chat/completions", headers={"Authorization": "Bearer k3y"}, json=body)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and hint in error["message"]


async def test_a_body_that_is_not_json_is_400(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/chat/completions", headers={"Authorization": "Bearer k3y"}, content=b"{oops")
    assert resp.status_code == 400 and "not valid JSON" in resp.json()["error"]["message"]


def test_scrub_hides_the_upstream_key_and_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPPRUNE_API_KEY", "sk-secret-1")
    text = f"{UPSTREAM} refused sk-secret-1 (see http://10.0.0.7:8000/metrics)"
    assert scrub(text) == f"{UPSTREAM} refused *** (see http://10.0.0.7:8000/metrics)"
    assert scrub(text, [UPSTREAM]) == "upstream #0 refused *** (see upstream #0/metrics)"


def test_the_proxy_needs_an_upstream_and_a_positive_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPPRUNE_BASE_URLS", raising=False)
    monkeypatch.delenv("DEEPPRUNE_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match="--upstream"):
        ProxyConfig(DeepPruneContext())
    with pytest.raises(ConfigError, match="max_concurrent"):
        ProxyConfig(DeepPruneContext(base_urls=[UPSTREAM]), max_concurrent=0)


def test_the_operators_seed_is_the_seed_every_run_gets() -> None:
    """``seed=42`` makes the runs reproducible with 42, not with the defaults' seed (the CLI set both alike,
    which hid that the number was only read as "fixed or not")."""
    from deepprune_agents.server.options import parse_options

    config = ProxyConfig(DeepPruneContext(base_urls=[UPSTREAM], seed=0), seed=42)
    assert config.defaults.seed == 42
    body = {"model": "m", "messages": [{"role": "user", "content": "q"}]}
    assert parse_options(body, config.defaults, fresh_seed=None).context.seed == 42
    assert ProxyConfig(DeepPruneContext(base_urls=[UPSTREAM], seed=5)).defaults.seed == 5  # None: fresh per request
