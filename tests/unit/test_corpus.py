"""Pure parts of ``traces generate``: question formats, records, label balance, resume bookkeeping,
and the logprob/reasoning capture of the stream decoder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepprune_agents.corpus.generate import CapturingStream, GenerateConfig, build_request, completed_ids
from deepprune_agents.corpus.questions import (
    QuestionItem,
    Sample,
    gsm8k_truth,
    load_questions,
    pair_balance,
    parse_questions,
    question_record,
)
from deepprune_agents.errors import ConfigError
from deepprune_agents.trace_io import iter_trace_file


def test_gsm8k_truth_takes_the_number_after_hashes() -> None:
    assert gsm8k_truth("48/2 = 24\n24+48 = 72\n#### 1,072") == "1072"
    assert gsm8k_truth("\\frac{1}{2}") == "\\frac{1}{2}"


@pytest.mark.parametrize(
    ("records", "truth"),
    [
        ([{"question": "Q?", "answer": "x\n#### 5"}], "5"),  # GSM8K
        ([{"problem": "Q?", "answer": "\\frac12", "unique_id": "a"}], "\\frac12"),  # MATH-500
        ([{"prompt": "Q?", "answer": "17"}], "17"),  # AIME
    ],
)
def test_known_formats(records: list[dict[str, str]], truth: str) -> None:
    (item,) = parse_questions(records, "src")
    assert item == QuestionItem("src:0", "Q?", truth)


def test_generic_fields_and_ids(tmp_path: Path) -> None:
    f = tmp_path / "mine.json"
    f.write_text(json.dumps([{"q": "A?", "gold": "1", "uid": "x1"}, {"q": "B?", "uid": "x2"}]), encoding="utf-8")
    items = load_questions(f, question_field="q", answer_field="gold", id_field="uid")
    assert [(i.question_id, i.ground_truth) for i in items] == [("mine:x1", "1"), ("mine:x2", None)]
    with pytest.raises(ConfigError, match="question field"):
        load_questions(f)
    with pytest.raises(ConfigError, match="does not exist"):
        load_questions(tmp_path / "nope.jsonl")


def test_record_round_trips_through_trace_io(tmp_path: Path) -> None:
    item = QuestionItem("s:0", "What is 3+4?", "7")
    samples = [
        Sample(
            "3+4 = 7. The answer is 7.",
            tokens=9,
            finish_reason="stop",
            token_logprobs=[-0.1],
            top_logprobs=[{"7": -0.1}],
        ),
        Sample("3+4 = 8. The answer is 8.", tokens=9, reasoning="hmm"),
        Sample("I am not sure.", tokens=4),
    ]
    rec = question_record(item, samples, "smollm2")
    assert [t["answer"] for t in rec["traces"]] == ["7", "8", None]
    assert [t["correct"] for t in rec["traces"]] == [True, False, False]
    assert rec["traces"][1]["reasoning"] == "hmm" and rec["traces"][0]["top_logprobs"] == [{"7": -0.1}]
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps(rec) + "\n", encoding="utf-8")
    (q,) = list(iter_trace_file(path))
    assert q.question_id == "s:0" and q.traces[0].tokens == 9 and q.traces[0].token_logprobs == [-0.1]
    # 3 traces: one pair would agree only if two answers matched; the unanswered one agrees with nothing
    assert pair_balance([rec]) == {"same_answer_pairs": 0, "different_answer_pairs": 3}


def test_completed_ids_cuts_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    good = json.dumps({"question_id": "a", "question": "q", "traces": []})
    path.write_text(good + "\n" + '{"question_id": "b", "quest', encoding="utf-8")
    assert completed_ids(path) == {"a"}
    assert path.read_text(encoding="utf-8") == good + "\n"
    assert completed_ids(tmp_path / "missing.jsonl") == set()


def test_build_request_seeds_and_logprobs() -> None:
    item = QuestionItem("s:0", "Q?", None)
    req = build_request(item, 3, "m", GenerateConfig(seed=10, top_logprobs=2, system_prompt="sys"))
    assert req.seed == 13 and req.extra_body == {"logprobs": True, "top_logprobs": 2}
    assert req.messages[0] == {"role": "system", "content": "sys"}
    comp = build_request(item, 0, "m", GenerateConfig(endpoint="completions", top_logprobs=1))
    assert comp.extra_body == {"logprobs": 1} and "Q?" in comp.prompt
    with pytest.raises(ConfigError):
        GenerateConfig(n=0).validate()


def test_capturing_stream_decodes_logprobs_and_reasoning() -> None:
    chat = CapturingStream(None, "chat")
    event = {
        "choices": [
            {
                "delta": {"content": "7", "reasoning_content": "think"},
                "logprobs": {
                    "content": [{"token": "7", "logprob": -0.5, "top_logprobs": [{"token": "7", "logprob": -0.5}]}]
                },
                "finish_reason": None,
            }
        ]
    }
    chunk = chat._parse(json.dumps(event))
    assert chunk is not None and chunk.text == "7"
    assert chat.token_logprobs == [-0.5] and chat.top_logprobs == [{"7": -0.5}] and chat.reasoning == ["think"]
    comp = CapturingStream(None, "completions")
    comp._parse(
        json.dumps({"choices": [{"text": "a", "logprobs": {"token_logprobs": [-1.0], "top_logprobs": [{"a": -1.0}]}}]})
    )
    assert comp.token_logprobs == [-1.0] and comp.top_logprobs == [{"a": -1.0}]
