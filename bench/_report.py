"""The one way bench scripts write their JSON report (``--json OUT``): parents made, indented, newline-ended."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_report(report: dict[str, Any], out: str | Path) -> None:
    """Write ``report`` to ``out`` and say where (every bench prints its figures and writes JSON)."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")
