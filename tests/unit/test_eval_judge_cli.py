"""``deepprune eval judge``: without --judge it evaluates the project's default judge, and it warns loudly
when test questions were in the judge's training data (read from the judge's provenance.json)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deepprune_agents.cli import main as cli_main
from deepprune_agents.judges.blend import BlendModel, save_blend
from deepprune_agents.settings import DeepPruneContext
from deepprune_agents.trace_io import load_traces
from deepprune_agents.training.pairs import question_key


def _trace_file(path: Path) -> Path:
    rec = {
        "question_id": "t:0",
        "question": "Ann has 3 apples and gets 4 more. How many?",
        "ground_truth": "7",
        "traces": [
            {"text": "3 + 4 = 7 apples. The answer is 7.", "answer": "7"},
            {"text": "3 + 4 = 7, so 7. The answer is 7.", "answer": "7"},
            {"text": "3 - 4 = -1 apples. The answer is -1.", "answer": "-1"},
        ],
    }
    path.write_text(json.dumps(rec) + "\n", encoding="utf-8")
    return path


def test_warns_when_test_questions_trained_the_judge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    test = _trace_file(tmp_path / "t.jsonl")
    (q,) = load_traces([test])
    model = BlendModel(np.zeros(3, np.float32), np.ones(3, np.float32), np.ones(3, np.float32), 0.0, "tokens:32")
    weights = tmp_path / "w"
    save_blend(model, weights, {"data": [{"files": [], "question_ids": [], "question_keys": [question_key(q)]}]})
    out = tmp_path / "m.json"
    args = ["eval", "judge", "--judge", "blend", "--judge-option", f"weights_dir={weights}"]
    assert cli_main([*args, "--test", str(test), "--json", str(out)]) == 0
    assert "WARNING: 1 of 1 test questions were in the training data" in capsys.readouterr().err
    assert json.loads(out.read_text())["training_overlap"] == {"files": [], "questions": 1, "of": 1}


def test_without_judge_it_evaluates_the_default(tmp_path: Path) -> None:
    test = _trace_file(tmp_path / "t.jsonl")
    out = tmp_path / "m.json"
    assert cli_main(["eval", "judge", "--test", str(test), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["judge"] == DeepPruneContext.judge and result["pairs"] == 3


def test_it_reports_auroc_within_a_question_and_runs_the_context_judge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The within-question AUROC is the ranking a policy uses; with one question it equals the pooled AUROC."""
    test = _trace_file(tmp_path / "t.jsonl")
    out = tmp_path / "m.json"
    assert cli_main(["eval", "judge", "--judge", "numbers", "--test", str(test), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["auroc_within_question"] == pytest.approx(result["auroc"])
    assert "AUROC within a question" in capsys.readouterr().out
    assert cli_main(["eval", "judge", "--judge", "context", "--test", str(test), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["pairs"] == 3
