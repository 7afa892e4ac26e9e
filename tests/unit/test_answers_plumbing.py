"""The run's answer extractor reaches every consumer (engine pool, simulator, replay evaluation), the
replay harness reports extraction agreement, and a branch without an answer is visible as such."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from deepprune_agents.answers import make_extractor
from deepprune_agents.backends.openai_stream import BranchRequest, StreamChunk
from deepprune_agents.cli.ask_cmd import NO_ANSWER, _answer_cell, _Board
from deepprune_agents.engine import BranchPool
from deepprune_agents.evaluation.replay_data import (
    AGREEMENT_WARN,
    ReplayQuestion,
    agreement_warnings,
    extraction_agreement,
    make_trace,
    with_extractor,
)
from deepprune_agents.evaluation.replay_eval import EvalConfig, evaluate
from deepprune_agents.evaluation.simulator import simulate
from deepprune_agents.judges import get_judge
from deepprune_agents.pruning import make_policy
from deepprune_agents.result import BranchResult, DeepPruneResult
from deepprune_agents.settings import DeepPruneContext

PATTERN = r"FINAL=(\w+)"


def _texts(answers: list[str]) -> list[str]:
    return [f"step one, step two, so FINAL={a} and nothing else" for a in answers]


class OneShotStream:
    def __init__(self, text: str) -> None:
        self.text = text

    async def __aiter__(self) -> AsyncIterator[StreamChunk]:
        yield StreamChunk(text=self.text, completion_tokens=5, finish_reason="stop")

    async def close(self) -> None:
        return None


class FakeEndpoint:
    base_url = "http://127.0.0.1:1/v1"
    inflight = 0


class FakeEndpoints:
    def __init__(self, text: str) -> None:
        self.text, self.endpoint = text, FakeEndpoint()

    async def open(self, req: BranchRequest) -> tuple[FakeEndpoint, Any]:
        self.endpoint.inflight += 1
        return self.endpoint, OneShotStream(self.text)


async def _pool_answer(text: str, **kwargs: Any) -> str | None:
    pool = BranchPool(FakeEndpoints(text), [BranchRequest(model="m")], **kwargs)  # type: ignore[arg-type]
    pool.start()
    await asyncio.wait_for(pool.wait_until(lambda: not pool.alive, timeout_s=5), 6)
    return pool.branches[0].answer


async def test_engine_pool_extracts_with_the_runs_extractor() -> None:
    text = _texts(["blue"])[0]
    assert await _pool_answer(text) is None  # the built-in chain finds no answer in it
    assert await _pool_answer(text, extract=make_extractor(PATTERN)) == "blue"


async def test_simulator_uses_the_runs_extractor_for_full_and_cut_traces() -> None:
    traces = [make_trace(t) for t in _texts(["red", "red", "blue"])]
    policy = make_policy(DeepPruneContext(policy="none", n=3))
    plain = await simulate(policy, get_judge("numbers"), traces)
    assert plain.answer is None and plain.answers == [None, None, None]
    result = await simulate(
        make_policy(DeepPruneContext(policy="none", n=3)), get_judge("numbers"), traces, extract=make_extractor(PATTERN)
    )
    assert result.answers == ["red", "red", "blue"] and result.answer == "red"


def _question(texts: list[str], recorded: list[str | None], source: str = "set-a") -> ReplayQuestion:
    traces = tuple(make_trace(t, recorded_answer=r) for t, r in zip(texts, recorded, strict=True))
    return ReplayQuestion(f"{source}-q", "q?", "red", traces, source)


def test_agreement_counts_markers_as_no_answer_and_warns_below_the_threshold(caplog: pytest.LogCaptureFixture) -> None:
    good = _question(["The answer is 7.", "The answer is 8.", "nothing here"], ["7", "8.0", "No answer!"], "good")
    bad = _question(_texts(["red", "red", "blue"]), ["red", "red", "blue"], "bad")
    agreement = extraction_agreement([good, bad])
    assert agreement["good"] == {"branches": 3, "agree": 1.0, "unextracted": pytest.approx(1 / 3), "ok": True}
    assert agreement["bad"]["agree"] == 0.0 and agreement["bad"]["unextracted"] == 1.0 and not agreement["bad"]["ok"]
    with caplog.at_level(logging.WARNING):
        warnings = agreement_warnings(agreement)
    assert len(warnings) == 1 and "'bad'" in warnings[0] and f"{AGREEMENT_WARN:.0%}" in warnings[0]
    assert "'bad'" in caplog.text
    fixed = extraction_agreement(with_extractor([bad], make_extractor(PATTERN)))
    assert fixed["bad"]["agree"] == 1.0 and agreement_warnings(fixed) == []


def test_replay_evaluation_votes_with_the_pattern_and_reports_agreement() -> None:
    q = _question(_texts(["red", "red", "blue"]), ["red", "red", "blue"])
    cfg = EvalConfig(n=3, runs=2, judge="oracle", bootstrap=20)
    plain = evaluate([q], cfg)
    assert plain["methods"]["cons"]["accuracy"] == 0.0
    assert plain["extraction_warnings"] and not plain["extraction_agreement"]["set-a"]["ok"]
    cfg.answer_pattern = PATTERN
    report = evaluate([q], cfg)
    assert report["methods"]["cons"]["accuracy"] == 1.0 and report["methods"]["deepprune"]["accuracy"] == 1.0
    assert report["extraction_agreement"]["set-a"]["agree"] == 1.0 and report["extraction_warnings"] == []


def test_eval_config_rejects_a_bad_pattern() -> None:
    from deepprune_agents.errors import ConfigError

    with pytest.raises(ConfigError, match="answer_pattern"):
        EvalConfig(answer_pattern="(").validate()


def _result(branches: list[BranchResult]) -> DeepPruneResult:
    return DeepPruneResult(
        question="q", answer="7", n=len(branches), policy="paper", judge="numbers", model="m",
        tokens_generated=10, tokens_cons_estimate=10, token_saving=0.0, wall_time_s=0.1, branches=branches,
    )  # fmt: skip


def test_results_count_finished_branches_without_an_answer() -> None:
    branches = [
        BranchResult(id=0, status="finished", tokens=5, answer="7"),
        BranchResult(id=1, status="finished", tokens=5, answer=None),
        BranchResult(id=2, status="cancelled", tokens=3, answer=None),
    ]
    result = _result(branches)
    assert [b.no_answer for b in result.branches] == [False, True, False]
    assert result.no_answer == 1 and "1 without an answer" in result.summary()
    dumped = result.model_dump(mode="json")
    assert dumped["no_answer"] == 1 and dumped["branches"][1]["no_answer"] is True
    assert DeepPruneResult.model_validate(dumped).no_answer == 1  # round-trips


def test_live_table_shows_no_answer_for_finished_branches_only() -> None:
    cell = _answer_cell({"status": "finished", "answer": None})
    assert str(cell) == NO_ANSWER
    assert _answer_cell({"status": "running"}) == ""
    assert _answer_cell({"status": "finished", "answer": "7"}) == "7"
    board = _Board(2)
    board.apply(
        {"event": "tokens", "branches": [{"id": 0, "tokens": 3, "status": "finished", "delta": "x", "answer": None}]}
    )
    board.apply(
        {"event": "tokens", "branches": [{"id": 1, "tokens": 3, "status": "finished", "delta": "y", "answer": "4"}]}
    )
    assert str(_answer_cell(board.rows[0])) == NO_ANSWER and _answer_cell(board.rows[1]) == "4"
