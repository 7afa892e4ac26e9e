"""bench/startup.py end to end, with one run: real ``deepprune --help`` and ``deepprune ask`` processes
against the replay server, and the report they make (the figures themselves are the bench's to judge)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_one_run_reports_help_and_ask_overhead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))  # as `python bench/startup.py` has it (for bench/_common.py)
    spec = importlib.util.spec_from_file_location("bench_startup", BENCH / "startup.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, bench)
    spec.loader.exec_module(bench)
    out = tmp_path / "startup.json"
    assert bench.main(["--runs", "1", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    this = report["this"]
    for key in ("help_s", "help_cpu_s", "ask_total_s", "ask_run_s", "ask_overhead_s", "ask_cpu_s"):
        assert this[key]["median"] > 0, key
    total, run = this["ask_total_s"]["median"], this["ask_run_s"]["median"]
    assert this["ask_overhead_s"]["median"] == pytest.approx(total - run)
    assert run < total
    assert report["targets"] == {"help_s": 0.5, "ask_overhead_s": 1.5}
    assert isinstance(this["meets_targets"], bool)
