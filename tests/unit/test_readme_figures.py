"""scripts/readme_figures.py: every section renders from a clean checkout (the load section imports a bench
script), and ``--sections`` re-renders some sections while keeping the others as the README has them (the
live runs' JSON is not on every machine, and a full render would replace their figures with a placeholder)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "readme_figures.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("readme_figures_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_section_renders_under_its_own_heading() -> None:
    rf = load_script()
    for name, (section, heading) in rf.SECTIONS.items():
        lines = section()
        assert lines[0].startswith(heading), (name, lines[0])


def test_only_the_named_sections_are_re_rendered() -> None:
    rf = load_script()
    old = "\n".join(
        [
            "",
            "### Live: DeepPrune vs cons@16 (kept)",
            "",
            "| policy | speedup |",
            "| adaptive | 1.51x |",
            "",
            "### Judges at the first 32 tokens (stale)",
            "",
            "stale judge text",
            "",
        ]
    )
    block = rf.render(old, only={"judge"})
    assert block.startswith(rf.BEGIN) and block.endswith(rf.END)
    assert "| adaptive | 1.51x |" in block and "(kept)" in block  # not re-rendered: kept as it was
    assert "stale judge text" not in block  # re-rendered from docs/judge_results.md
    assert block.count("### Judges") == 1
    # a section the old block lacks is rendered even when not named (nothing to keep)
    assert any(line.startswith("### Soak:") for line in block.splitlines())


def test_an_unknown_section_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    rf = load_script()
    monkeypatch.setattr(sys, "argv", ["readme_figures.py"])
    with pytest.raises(SystemExit) as exc:
        rf.main(["--sections", "judges"])
    assert exc.value.code == 2
