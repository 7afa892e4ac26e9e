"""Shared fixtures: one real vLLM server per test session, and the shared GSM8K data folder.

e2e tests run by default (CI runs them); ``pytest -m "not e2e"`` skips them. Every test under
``tests/e2e/`` is marked ``e2e`` automatically so a forgotten decorator cannot sneak a server-starting
test into the fast suite.

``DEEPPRUNE_EMBEDDED_URL=http://127.0.0.1:PORT`` makes the session reuse an already-running server
(``deepprune serve``) instead of paying the ~1 min startup; otherwise the fixture starts its own and
stops it after the session.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from deepprune_agents.backends.embedded import (
    DEFAULT_SERVED_NAME,
    ENV_EMBEDDED_MODEL,
    ENV_EMBEDDED_URL,
    EmbeddedServer,
    ExternalServer,
)

REPO = Path(__file__).resolve().parents[1]
E2E_DIR = Path(__file__).resolve().parent / "e2e"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def vllm_server() -> Iterator[EmbeddedServer | ExternalServer]:
    """A running OpenAI-compatible vLLM server: ``.base_url``, ``.root_url``, ``.model``, ``.log_path``
    (None when the server is not ours, so its log cannot be read)."""
    url = os.environ.get(ENV_EMBEDDED_URL)
    model = os.environ.get(ENV_EMBEDDED_MODEL) or DEFAULT_SERVED_NAME
    if url:
        yield ExternalServer(url, model=model).start()
        return
    server = EmbeddedServer(served_name=model)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def shared_data_dir() -> Path:
    """``$DEEPPRUNE_SHARED_DATA`` or ``<repo>/../shared/data``."""
    return Path(os.environ.get("DEEPPRUNE_SHARED_DATA") or REPO / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder (recorded GSM8K traces); skips the test when it is absent."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(
            f"shared data folder {path} is absent: set DEEPPRUNE_SHARED_DATA to the folder holding "
            "traces/*.jsonl (see ../shared/data/README.md) to run this test."
        )
    return path


@pytest.fixture(scope="session")
def refused_base_url() -> Iterator[str]:
    """A base URL on loopback whose connections are refused: a port bound by this session but never
    listened on, so no other process can take it while the tests run (a fixed "closed" port such as 9
    is only closed until something listens there)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
