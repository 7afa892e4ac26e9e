"""e2e-only fixtures: after every test that used the vLLM server, nothing may be left running on it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from deepprune_agents.backends.metrics import RUNNING, parse_prometheus, totals


@pytest.fixture(autouse=True)
def no_orphan_requests(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "vllm_server" not in request.fixturenames:
        return
    server = request.getfixturevalue("vllm_server")
    deadline = time.monotonic() + 30  # an abort lands after the engine's current step: seconds on a slow machine
    running = None
    while time.monotonic() < deadline:
        running = totals(parse_prometheus(httpx.get(server.root_url + "/metrics", timeout=5).text)).get(RUNNING, 0.0)
        if running == 0:
            return
        time.sleep(0.1)
    pytest.fail(f"{running} request(s) still running on the vLLM server after the test: an orphaned branch")
