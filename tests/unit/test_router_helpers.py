"""The local router helpers (backends/router.py, `deepprune replicas`): the command line and bad input. The
router itself runs for real in tests/e2e/test_router_e2e.py."""

from __future__ import annotations

import pytest

from deepprune_agents.backends import router as router_mod
from deepprune_agents.backends.router import Replicas, RouterProcess
from deepprune_agents.cli import build_parser
from deepprune_agents.errors import BackendUnavailableError, ConfigError


def test_router_command_line() -> None:
    r = RouterProcess(["http://127.0.0.1:8001/v1", "http://127.0.0.1:8002"], port=30001)
    cmd = r.command("vllm-router")
    assert cmd[cmd.index("--worker-urls") + 1 : cmd.index("--worker-urls") + 3] == [
        "http://127.0.0.1:8001",  # the root URL: the router adds /v1/... itself
        "http://127.0.0.1:8002",
    ]
    assert cmd[cmd.index("--policy") + 1] == "consistent_hash" and cmd[cmd.index("--port") + 1] == "30001"
    assert r.base_url == "http://127.0.0.1:30001/v1"


def test_bad_input_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="at least one worker"):
        RouterProcess([])
    with pytest.raises(ConfigError, match="n must be >= 1"):
        Replicas(0)
    monkeypatch.setattr(router_mod, "router_executable", lambda: None)
    with pytest.raises(BackendUnavailableError, match=r"pip install 'deepprune-agents\[router\]'"):
        RouterProcess(["http://127.0.0.1:1"]).start()


def test_replicas_subcommand_parses() -> None:
    args = build_parser().parse_args(["replicas", "--n", "3", "--router", "--router-policy", "sticky_least_loaded"])
    assert (args.n, args.router, args.router_policy) == (3, True, "sticky_least_loaded")
