"""Commands whose optional dependencies are missing stop at once, naming the pip extra to install."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepprune_agents import extras
from deepprune_agents.cli import main


@pytest.fixture
def without(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Make named modules look uninstalled to the extras check."""
    real = extras.find_spec

    def hide(*names: str) -> None:
        monkeypatch.setattr(extras, "find_spec", lambda m, *a: None if m in names else real(m, *a))

    return hide


def test_replay_server_without_starlette_names_the_replay_extra(without, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    without("starlette")
    # The traces file does not exist: the check must come first, before any file is read.
    assert main(["replay-server", "--traces", str(tmp_path / "absent.jsonl"), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "deepprune-agents[replay]" in err and "starlette" in err


def test_sweep_plots_without_matplotlib_name_the_plots_extra(without, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    without("matplotlib")
    argv = ["eval", "replay", "--traces", str(tmp_path / "absent.jsonl"), "--sweep", "tau=0.3,0.5"]
    assert main([*argv, "--json", str(tmp_path / "out.json")]) == 2
    err = capsys.readouterr().err
    assert "deepprune-agents[plots]" in err and "matplotlib" in err


def test_every_extra_is_declared_in_pyproject() -> None:
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    declared = pyproject["project"]["optional-dependencies"]
    for extra in extras.EXTRAS:
        assert extra in declared, f"extra {extra!r} is checked by the CLI but not declared"
    own = [d for d in declared["dev"] if d.startswith("deepprune-agents[")]
    assert own, "dev does not pull in the project's own extras"
    pulled = set(own[0].split("[", 1)[1].rstrip("]").split(","))
    assert set(extras.EXTRAS) <= pulled, "dev must pull in every extra (CI runs those commands)"
