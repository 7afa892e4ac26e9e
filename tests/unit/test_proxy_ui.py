"""The live page's server side without a browser: served only with ``ui``, under a CSP that allows exactly
its inline code, the operator's defaults inert in a data block; the opt-in event chunks it reads carry no
upstream URL. The page itself runs in Chromium in tests/e2e/test_proxy_ui_e2e.py."""

from __future__ import annotations

import base64
import hashlib
import json
from html.parser import HTMLParser

import httpx
import pytest

from deepprune_agents.server import protocol as wire
from deepprune_agents.server.app import ProxyConfig, build_app
from deepprune_agents.server.options import parse_options
from deepprune_agents.server.ui import SETTINGS_MARK, page_template, render_page
from deepprune_agents.settings import DeepPruneContext

UPSTREAM = "http://10.0.0.7:8000/v1"


class Blocks(HTMLParser):
    """Every <script>/<style> block of a page with its attributes and text (an HTML parser, not the regex
    ui.py hashes with: the two must agree)."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks: list[tuple[str, dict[str, str | None], str]] = []
        self._open: tuple[str, dict[str, str | None]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._open = (tag, dict(attrs))
            self.blocks.append((tag, dict(attrs), ""))

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            tag, attrs, text = self.blocks[-1]
            self.blocks[-1] = (tag, attrs, text + data)

    def handle_endtag(self, tag: str) -> None:
        self._open = None


def blocks_of(html: str) -> list[tuple[str, dict[str, str | None], str]]:
    parser = Blocks()
    parser.feed(html)
    return parser.blocks


async def get(config: ProxyConfig, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=build_app(config))
    async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
        return await client.get(path)


@pytest.fixture
def ctx() -> DeepPruneContext:
    return DeepPruneContext(base_urls=[UPSTREAM], judge="numbers", n=6)


async def test_the_page_is_served_only_with_ui(ctx: DeepPruneContext) -> None:
    assert (await get(ProxyConfig(ctx), "/")).status_code == 404
    resp = await get(ProxyConfig(ctx, ui=True, api_key="k3y"), "/")  # a static page: no key needed to load it
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    settings = next(text for tag, attrs, text in blocks_of(resp.text) if attrs.get("id") == "settings")
    assert json.loads(settings) == {
        "n": 6,
        "max_n": ctx.max_n,
        "policy": ctx.policy,
        "judge": "numbers",
        "model": None,
        "key_required": True,
    }
    assert UPSTREAM not in resp.text and "10.0.0.7" not in resp.text


async def test_the_csp_allows_exactly_the_page_s_own_inline_code(ctx: DeepPruneContext) -> None:
    resp = await get(ProxyConfig(ctx, ui=True), "/")
    policy = dict(d.strip().split(" ", 1) for d in resp.headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'none'" and policy["connect-src"] == "'self'"
    code = [(tag, text) for tag, attrs, text in blocks_of(resp.text) if not attrs]
    assert sorted(tag for tag, _ in code) == ["script", "style"]  # one of each; the settings block has a type
    for tag, text in code:
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        assert policy[f"{tag}-src"] == f"'sha256-{digest}'"
    assert resp.headers["x-content-type-options"] == "nosniff"


def test_defaults_cannot_close_their_data_block(ctx: DeepPruneContext) -> None:
    html = render_page(ctx.replace(model="m</script><script>alert(1)</script>"), key_required=False)
    assert SETTINGS_MARK in page_template() and SETTINGS_MARK not in html
    data = [text for tag, attrs, text in blocks_of(html) if attrs.get("id") == "settings"]
    assert len(data) == 1 and json.loads(data[0])["model"] == "m</script><script>alert(1)</script>"
    assert len(blocks_of(html)) == 3  # no block smuggled in


def test_events_are_opt_in_from_the_body_or_the_suffix(ctx: DeepPruneContext) -> None:
    messages = [{"role": "user", "content": "2+3?"}]
    assert parse_options({"messages": messages}, ctx).events is False
    assert parse_options({"messages": messages, "deepprune": {"events": True}}, ctx).events is True
    assert parse_options({"messages": messages, "model": "m+deepprune:events=on"}, ctx).events is True


def test_event_chunks_carry_the_public_fields_only() -> None:
    start = {
        "event": "start",
        "run_id": "r",
        "n": 2,
        "model": "m",
        "endpoints": [UPSTREAM],
        "policy": "p",
        "judge": "j",
    }
    chunk = wire.event_chunk("id", "m", 1, start)
    assert chunk is not None and chunk["choices"][0]["delta"] == {}
    assert chunk["deepprune"] == {
        "progress": True,
        "event": "start",
        "data": {"n": 2, "model": "m", "policy": "p", "judge": "j"},
    }
    tokens = {"event": "tokens", "branches": [{"id": 0, "tokens": 3, "status": "running", "delta": "a b c"}]}
    assert wire.event_chunk("id", "m", 1, tokens)["deepprune"]["data"] == {"branches": tokens["branches"]}  # type: ignore[index]
    judge = {
        "event": "judge",
        "round": 1,
        "cancelled": [1],
        "vote_decided": [],
        "clusters": [[0], [1]],
        "pairs_scored": 1,
    }
    assert wire.event_chunk("id", "m", 1, judge)["deepprune"]["data"] == {  # type: ignore[index]
        "round": 1,
        "cancelled": [1],
        "vote_decided": [],
        "clusters": [[0], [1]],
    }
    launch = {"event": "launch", "branches": [4, 5], "why": "answers-need", "votes": [1, 1]}
    assert wire.event_chunk("id", "m", 1, launch)["deepprune"]["data"] == {  # type: ignore[index]
        "branches": [4, 5],
        "why": "answers-need",
    }
    assert wire.event_chunk("id", "m", 1, {"event": "resume", "run_id": "r"}) is None
