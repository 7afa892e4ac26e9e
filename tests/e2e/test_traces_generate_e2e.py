"""``traces generate`` against the project's replay server on a real socket: records, resume, retries on
open, a half-done question never written, and no stream left open on the server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from deepprune_agents.cli import main as cli_main
from deepprune_agents.corpus.generate import GenerateConfig, generate
from deepprune_agents.corpus.questions import QuestionItem
from deepprune_agents.evaluation.replay_data import ReplayQuestion, make_trace
from deepprune_agents.evaluation.replay_server import FaultConfig, ReplayServer
from deepprune_agents.trace_io import load_traces

RIGHT = "She has 3 + 4 = 7 apples. The answer is 7."
WRONG = "She has 3 - 2 = 1 apple. The answer is 1."


def _question(i: int) -> ReplayQuestion:
    return ReplayQuestion(
        f"q{i}",
        f"Question {i}: Ann has 3 apples and gets 4 more; how many now?",
        "7",
        tuple(make_trace(t) for t in [RIGHT, WRONG, RIGHT]),
    )


QUESTIONS = [_question(i) for i in range(4)]
ITEMS = [QuestionItem(f"test:{q.question_id}", q.question, "7") for q in QUESTIONS]


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    with ReplayServer(QUESTIONS, tokens_per_s=0) as s:
        yield s
        assert s.wait_idle(5.0), "a stream was left open on the replay server"


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def test_generate_writes_graded_records_and_resumes(server: ReplayServer, tmp_path: Path) -> None:
    out = tmp_path / "corpus.jsonl"
    cfg = GenerateConfig(n=3, max_tokens=64, concurrency=4)
    first = asyncio.run(generate(ITEMS[:2], out, base_urls=[server.base_url], cfg=cfg, command="test"))
    assert (first.written, first.skipped, first.failed) == (2, 0, 0)
    recs = load_traces([out])
    assert [q.question_id for q in sorted(recs, key=lambda q: q.question_id)] == ["test:q0", "test:q1"]
    for q in recs:
        assert len(q.traces) == 3
        for t in q.traces:
            assert t.text in (RIGHT, WRONG)
            assert t.answer == ("7" if t.text == RIGHT else "1")
            assert t.correct is (t.text == RIGHT)
            assert t.tokens is not None and t.tokens > 0
    prov = json.loads(Path(str(out) + ".provenance.json").read_text(encoding="utf-8"))
    assert prov["model"] == server.model and prov["sampling"]["n"] == 3
    (run,) = prov["runs"]  # the run's own figures, so the corpus's cost is on record
    assert run["written"] == 2 and run["interrupted"] is False and run["concurrency"] == 4
    assert run["sampled_tokens"] == sum(t.tokens or 0 for q in recs for t in q.traces) > 0
    assert run["wall_s"] >= 0 and run["ended"] >= run["date"]
    assert "server" not in run  # nothing known of a server given by URL, so nothing claimed
    requests_before = len(server.records())
    described = {"kind": "embedded", "dtype": "bfloat16"}
    again = asyncio.run(generate(ITEMS, out, base_urls=[server.base_url], cfg=cfg, server=described))
    assert (again.written, again.skipped) == (2, 2)
    runs = json.loads(Path(str(out) + ".provenance.json").read_text(encoding="utf-8"))["runs"]
    assert [r.get("server") for r in runs] == [None, described]  # per run: pieces may differ
    assert len(server.records()) - requests_before == 2 * 3  # only the two new questions were sampled
    assert len(_lines(out)) == 4
    with pytest.raises(Exception, match="sampling"):
        asyncio.run(generate(ITEMS, out, base_urls=[server.base_url], cfg=GenerateConfig(n=5)))


def test_open_errors_are_retried(server: ReplayServer, tmp_path: Path) -> None:
    server.set_faults(FaultConfig(open_status=429, open_first=2))
    out = tmp_path / "c.jsonl"
    s = asyncio.run(generate(ITEMS[:1], out, base_urls=[server.base_url], cfg=GenerateConfig(n=2, concurrency=1)))
    assert (s.written, s.failed) == (1, 0)


def test_a_broken_stream_fails_its_question_only_and_closes_the_siblings(server: ReplayServer, tmp_path: Path) -> None:
    server.set_faults(FaultConfig(drop_after=2))
    out = tmp_path / "c.jsonl"
    s = asyncio.run(generate(ITEMS[:2], out, base_urls=[server.base_url], cfg=GenerateConfig(n=3)))
    assert s.failed == 2 and s.written == 0
    assert out.read_text(encoding="utf-8") == ""  # a half-sampled question is never written


def test_cancel_keeps_written_questions_and_a_rerun_completes(tmp_path: Path) -> None:
    out = tmp_path / "c.jsonl"
    cfg = GenerateConfig(n=2, concurrency=2)
    with ReplayServer(QUESTIONS, tokens_per_s=30) as slow:

        async def run_then_cancel() -> None:
            task = asyncio.create_task(generate(ITEMS, out, base_urls=[slow.base_url], cfg=cfg))
            while not (out.is_file() and out.read_text(encoding="utf-8")):  # the first question is written
                await asyncio.sleep(0.02)
                assert not task.done()
            task.cancel()  # what Ctrl-C does to asyncio.run's main task
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(run_then_cancel())
        assert slow.wait_idle(5.0), "cancelling left a stream open"
        (cut,) = json.loads(Path(str(out) + ".provenance.json").read_text(encoding="utf-8"))["runs"]
        assert cut["interrupted"] is True and cut["written"] == len(_lines(out))  # the piece's figures are kept
        text = out.read_text(encoding="utf-8")
        kept = _lines(out)
        assert text.endswith("\n") and kept and all(len(r["traces"]) == 2 for r in kept)  # type: ignore[arg-type]
        rest = asyncio.run(generate(ITEMS, out, base_urls=[slow.base_url], cfg=cfg))
        assert rest.skipped == len(kept) and rest.written == len(ITEMS) - len(kept)
        assert slow.wait_idle(5.0)
    assert sorted(r["question_id"] for r in _lines(out)) == sorted(i.question_id for i in ITEMS)  # type: ignore[type-var]


def test_cli_generate_from_a_gsm8k_file(server: ReplayServer, tmp_path: Path) -> None:
    qfile = tmp_path / "gsm.jsonl"
    qfile.write_text(
        "".join(json.dumps({"question": q.question, "answer": "3 + 4 = 7\n#### 7"}) + "\n" for q in QUESTIONS[:2]),
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    code = cli_main(
        [
            "traces",
            "generate",
            "--questions",
            str(qfile),
            "--out",
            str(out),
            "--n",
            "2",
            "--base-url",
            server.base_url,
            "--no-progress",
        ]
    )
    assert code == 0
    recs = _lines(out)
    assert {r["question_id"] for r in recs} == {"gsm:0", "gsm:1"}
    assert all(r["ground_truth"] == "7" for r in recs)


def test_generate_on_real_vllm_with_logprobs(vllm_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The embedded vLLM server: token counts from usage, top-k logprobs per generated token."""
    out = tmp_path / "v.jsonl"
    items = [QuestionItem("v:0", "What is 2 + 3?", "5"), QuestionItem("v:1", "What is 10 - 4?", "6")]
    cfg = GenerateConfig(n=2, max_tokens=12, top_logprobs=2, concurrency=4)
    s = asyncio.run(generate(items, out, base_urls=[vllm_server.base_url], cfg=cfg))
    assert (s.written, s.failed) == (2, 0) and s.tokens > 0
    for rec in _lines(out):
        for t in rec["traces"]:  # type: ignore[union-attr]
            assert isinstance(t["text"], str) and t["text"]
            assert 0 < t["tokens"] <= 12
            assert len(t["token_logprobs"]) == t["tokens"] and all(lp <= 0 for lp in t["token_logprobs"])
            assert all(1 <= len(top) <= 3 for top in t["top_logprobs"])
