"""Load a script from bench/ or research/ as a module in unit tests (both are folders of scripts, not packages).

bench/ goes on ``sys.path`` as it does when a script runs as ``python bench/NAME.py``, so the scripts'
shared modules (``bench/_common.py``, ``bench/_judge_eval/``) import the same way in both. A research script
builds on bench/'s modules (``python research/NAME.py`` puts bench/ on its path itself), so loading one puts
research/ and bench/ on the path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
RESEARCH = REPO / "research"


def _load(folder: Path, name: str, prefix: str) -> ModuleType:
    for path in (BENCH, folder):  # folder first: a research script imports its sibling scripts
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    spec = importlib.util.spec_from_file_location(f"{prefix}_{name}", folder / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their string annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def load_bench(name: str) -> ModuleType:
    """``bench/<name>.py`` executed as the module ``bench_<name>``."""
    return _load(BENCH, name, "bench")


def load_research(name: str) -> ModuleType:
    """``research/<name>.py`` executed as the module ``research_<name>``."""
    return _load(RESEARCH, name, "research")


def bench_module(name: str) -> ModuleType:
    """A module of bench/'s shared code (``_common``, ``_judge_eval.report``), imported as the scripts import it."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module(name)
