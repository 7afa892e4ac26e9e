"""What every bench script shares: where the shared trace data lives, and how a JSON report is written.

Bench scripts run as ``python bench/NAME.py`` (bench/ is then on ``sys.path``) or are loaded by the unit
tests through ``tests/unit/bench_scripts.load_bench``, which puts bench/ on the path the same way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

# The shared trace files the benches read (../shared/data/README.md): the OVM GSM8K test and train files of
# both 7B generators, MATH x8 (Qwen2.5-Math) and dates x10 (ChatGPT-3.5).
TRACE_FILES = {
    "mistral": "ovm_gsm8k_test_n300_mistral7b-ep2.jsonl",
    "mistral-train": "ovm_gsm8k_train_n100_mistral7b-ep2.jsonl",
    "llama": "ovm_gsm8k_test_n500_llama7b-2-ep2.jsonl",
    "llama-train": "ovm_gsm8k_train_n100_llama7b-2-ep2.jsonl",
    "math": "qwen25math_math_n8.jsonl",
    "dates": "verifycot_date_chatgpt35_n10.jsonl",
}


def shared_data() -> Path:
    """The shared data folder: ``$DEEPPRUNE_SHARED_DATA``, else ``../shared/data`` beside the repository
    (its files are read in place, never copied into the repo)."""
    return Path(os.environ.get("DEEPPRUNE_SHARED_DATA") or REPO / ".." / "shared" / "data").resolve()


def traces_absent() -> bool:
    """True, after saying so, when the shared trace folder is missing (a fresh clone has no data): the
    benches that only read recorded traces then exit 0 with nothing to measure."""
    traces = shared_data() / "traces"
    if traces.is_dir():
        return False
    print(f"{traces} is absent: nothing to measure (see ../shared/data/README.md).")
    return True


def write_report(report: dict[str, Any], out: str | Path) -> None:
    """Write ``report`` to ``out`` and say where (every bench prints its figures and writes JSON)."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")
