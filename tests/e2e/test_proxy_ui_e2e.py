"""The live page of ``deepprune serve --upstream URL --ui`` in a real headless Chromium (Debian's ``chromium``
driven by Playwright; no browser download), in front of the real proxy and the replay server: a question
typed into the page runs through the proxy's own ``/v1/chat/completions``, the branch rows move while the
run streams, and what the page ends on is what that very response said (its SSE body, read back from the
browser). Stop closes every branch upstream; a proxy with a key asks for it.

Skipped, saying what to install, when no chromium binary is found (``$DEEPPRUNE_CHROMIUM`` names one).
``DEEPPRUNE_UI_SCREENSHOT=docs/proxy_ui.png`` also writes the end-of-run screenshot used in docs/proxy_ui.md.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_proxy_e2e import QUESTION  # tests/e2e is on sys.path (rootdir import mode)

from deepprune_agents.evaluation.replay_server import ReplayServer
from deepprune_agents.server.app import ProxyConfig, ProxyServer
from deepprune_agents.settings import DeepPruneContext

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the Playwright driver is missing: pip install -e '.[dev]' (PyPI 'playwright')"
)

CHROMIUM_ENV = "DEEPPRUNE_CHROMIUM"
SCREENSHOT_ENV = "DEEPPRUNE_UI_SCREENSHOT"
TIMEOUT_MS = 45_000  # generous: a loaded 2-core CI machine; a run itself takes ~1.5 s
pytestmark = pytest.mark.timeout(180)


def chromium_path() -> str | None:
    """``$DEEPPRUNE_CHROMIUM``, else Debian's ``chromium`` (or Ubuntu's ``chromium-browser``) on PATH."""
    return os.environ.get(CHROMIUM_ENV) or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        pytest.skip(
            "no chromium binary for the live-page test: apt-get install -y chromium (Debian), "
            f"or set {CHROMIUM_ENV}=/path/to/chromium"
        )
    with sync_api.sync_playwright() as pw:
        # /dev/shm is 64 MB in containers: Chromium's default shared memory there crashes tabs under load.
        chromium = pw.chromium.launch(executable_path=path, args=["--disable-dev-shm-usage"], timeout=TIMEOUT_MS)
        yield chromium
        chromium.close()


class Page:
    """A fresh browser page that records console errors and uncaught exceptions (CSP refusals among them)."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 820})
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.problems: list[str] = []
        self.page.on("console", lambda m: self.problems.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))

    def open(self, proxy: ProxyServer) -> Any:
        self.page.goto(proxy.base_url.removesuffix("/v1") + "/")
        return self.page


@pytest.fixture
def tab(browser: Any) -> Iterator[Page]:
    tab = Page(browser)
    yield tab
    tab.context.close()


def start_proxy(upstream: ReplayServer, policy: str | None = None, **config: Any) -> ProxyServer:
    ctx = DeepPruneContext(base_urls=[upstream.base_url], judge="numbers", truncate="tokens:12")
    if policy is not None:
        ctx = ctx.replace(policy=policy)
    return ProxyServer(ProxyConfig(ctx, ui=True, **config)).start()


def sse_chunks(body: str) -> list[dict[str, Any]]:
    """The JSON chunks of an SSE body, in order (comments and ``[DONE]`` left out)."""
    out = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(line[5:].lstrip(" ") for line in block.split("\n") if line.startswith("data:"))
        if data and data != "[DONE]":
            out.append(json.loads(data))
    return out


def rows(page: Any) -> dict[int, dict[str, str]]:
    """The branch table as the page shows it: id -> status, tokens, answer, cancel reason."""
    shown = page.eval_on_selector_all(
        "#branches tbody tr",
        """rs => rs.map(r => ({id: r.dataset.id, status: r.dataset.status,
            tokens: r.querySelector('.count').textContent, answer: r.querySelector('td.answer').textContent,
            reason: (r.querySelector('.reason') || {}).textContent || ''}))""",
    )
    return {int(r["id"]): r for r in shown}


def ask(page: Any, question: str) -> Any:
    """Type the question, press Ask; the browser's response to the page's own POST."""
    page.fill("#question", question)
    with page.expect_response(lambda r: r.url.endswith("/v1/chat/completions")) as info:
        page.click("#send")
    return info.value


# The default policy (staged: a first wave, the rest unstarted unless needed) and one that prunes running branches.
@pytest.mark.parametrize("policy", [None, "adaptive"], ids=["default", "adaptive"])
def test_the_page_shows_the_branches_live_and_the_run_s_voted_answer(
    tab: Page, tmp_path: Path, policy: str | None
) -> None:
    with ReplayServer([QUESTION], tokens_per_s=20) as upstream:  # ~3 s per branch: time to watch
        proxy = start_proxy(upstream, policy)
        try:
            page = tab.open(proxy)
            shown_policy = policy or DeepPruneContext().policy
            assert f"n=8 · {shown_policy} policy · numbers judge" in page.text_content("#defaults")
            assert page.is_hidden("#key")  # no proxy key: nothing to ask for
            response = ask(page, QUESTION.question)
            # Live: rows exist and run while the stream is open, before the vote.
            page.wait_for_selector("#branches tr[data-status=running]")
            assert page.get_attribute("#answer", "data-state") == "waiting"
            page.wait_for_selector("#answer[data-state=done]")
            body = response.text()  # the SSE body the page read, as the browser received it
            shown = rows(page)
            answer = page.text_content("#answer")
            stats = {
                s: page.text_content(f'.stat[data-stat="{s}"] b')
                for s in ("finished", "cancelled", "not started", "tokens")
            }
            reply = page.text_content("#reply")
            shot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "proxy_ui.png")
            page.screenshot(path=str(shot), full_page=True)
        finally:
            proxy.stop()
        assert upstream.wait_idle(5.0), "a branch stream was left open upstream"
        records = upstream.records()

    assert response.status == 200 and response.headers["content-type"].startswith("text/event-stream")
    chunks = sse_chunks(body)
    summary = next(c["deepprune"] for c in chunks if "branches" in c.get("deepprune", {}))
    assert answer == summary["answer"] == QUESTION.ground_truth  # the voted answer is the run's
    assert {i: (r["status"], int(r["tokens"]), r["answer"] or None) for i, r in shown.items()} == {
        b["id"]: (b["status"], b["tokens"], b["answer"]) for b in summary["branches"]
    }
    statuses = [r["status"] for r in shown.values()]
    started = [r for r in shown.values() if r["status"] != "unstarted"]
    assert len(shown) == 8 and len(records) == len(started) and "finished" in statuses  # one request per started row
    if policy == "adaptive":
        assert len(records) == 8 and "cancelled" in statuses  # it prunes running branches
    assert all(r["reason"] in ("pruned", "vote decided") for r in shown.values() if r["status"] == "cancelled")
    assert stats == {
        "finished": str(summary["finished"]),
        "cancelled": str(summary["cancelled"]),
        "not started": str(statuses.count("unstarted")),
        "tokens": str(summary["tokens_generated"]),
    }
    assert reply == "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    events = [c["deepprune"]["event"] for c in chunks if c.get("deepprune", {}).get("data") is not None]
    assert events[0] == "start" and events.count("tokens") >= 2 and "judge" in events and events[-1] == "result"
    if len(started) < 8:  # a staged run says which branches its first wave started
        launches = [
            c["deepprune"]["data"]
            for c in chunks
            if c.get("deepprune", {}).get("event") == "launch" and c["deepprune"].get("data") is not None
        ]
        assert launches[0]["why"] == "first wave" and len(launches[0]["branches"]) < 8
    assert upstream.base_url.removesuffix("/v1") not in body  # the start event's endpoints stay in the proxy
    assert tab.problems == []  # no script error, no CSP refusal
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stop_closes_every_branch_upstream(tab: Page) -> None:
    with ReplayServer([QUESTION], tokens_per_s=5) as upstream:  # ~12 s per branch: still running at Stop
        proxy = start_proxy(upstream)
        try:
            page = tab.open(proxy)
            ask(page, QUESTION.question)
            page.wait_for_selector("#branches tr[data-status=running]")
            page.click("#stop")
            page.wait_for_selector("#phase:has-text('stopped')")
            assert upstream.wait_idle(5.0), "branches kept running upstream after Stop"
            records = upstream.records()
            shown = rows(page).values()
            started = [r for r in shown if r["status"] != "unstarted"]  # a staged run holds some back
            assert len(shown) == 8 and len(records) == len(started) > 0
            assert all(r.disconnected and r.finish_reason is None for r in records)
            assert page.text_content("#answer") == "—" and page.is_enabled("#send")
            assert {r["status"] for r in started} == {"cancelled"}
        finally:
            proxy.stop()
    assert tab.problems == []


def test_a_proxy_with_a_key_asks_for_it(tab: Page) -> None:
    with ReplayServer([QUESTION], tokens_per_s=0) as upstream:
        proxy = start_proxy(upstream, api_key="s3cret-proxy-key")
        try:
            page = tab.open(proxy)
            assert page.is_visible("#key")
            refused = ask(page, QUESTION.question)
            page.wait_for_selector("#error:not([hidden])")
            assert refused.status == 401 and "API key" in page.text_content("#error")
            page.fill("#key", "s3cret-proxy-key")
            answered = ask(page, QUESTION.question)
            page.wait_for_selector("#answer[data-state=done]")
            assert answered.status == 200 and page.text_content("#answer") == QUESTION.ground_truth
            assert page.is_hidden("#error")
        finally:
            proxy.stop()
        assert upstream.wait_idle(5.0)
    # The browser reports the 401 it was answered as a console error; nothing else may go wrong.
    assert all("401" in p for p in tab.problems), tab.problems
