"""Built-in judges (embedding, oracle, numbers) and the judge registry."""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Sequence

import pytest

from deepprune_agents.errors import ConfigError
from deepprune_agents.judges import JUDGE_NAMES, Judge, TracePair, get_judge, known_judges, register_judge
from deepprune_agents.judges.numbers import NumberOverlapJudge, jaccard, number_set
from deepprune_agents.traces import PartialTrace


def pt(text: str, answer: str | None = None) -> PartialTrace:
    return PartialTrace(text=text, answer=answer)


# ---------------------------------------------------------------- embedding


@pytest.fixture(scope="module")
def embedding_judge() -> Judge:
    return get_judge("embedding")


async def test_embedding_ranks_near_duplicate_above_unrelated(embedding_judge: Judge) -> None:
    base = "Natalia sold 48 clips in April and half as many in May, so 48 / 2 = 24 clips in May."
    near = "Natalia sold 48 clips in April and half as many in May, so she sold 48/2 = 24 in May."
    unrelated = "The mitochondria is the powerhouse of the cell and produces ATP for the organism."
    scores = await embedding_judge.ascore([(pt(base), pt(near)), (pt(base), pt(unrelated))])
    assert len(scores) == 2
    assert all(isinstance(s, float) and 0.0 <= s <= 1.0 for s in scores)
    assert scores[0] > scores[1]
    assert scores[0] > 0.8


async def test_embedding_identical_is_one_and_symmetric_and_empty(embedding_judge: Judge) -> None:
    a, b = pt("Janet has 16 eggs and eats 3."), pt("She bakes muffins with 4 eggs every day.")
    s_ab, s_ba, s_aa = await embedding_judge.ascore([(a, b), (b, a), (a, a)])
    assert math.isclose(s_ab, s_ba, abs_tol=1e-5)
    assert math.isclose(s_aa, 1.0, abs_tol=1e-4)
    assert await embedding_judge.ascore([]) == []


async def test_embedding_concurrent_calls_agree(embedding_judge: Judge) -> None:
    pairs: list[TracePair] = [(pt(f"step {i}: add {i} apples"), pt(f"step {i}: add {i} pears")) for i in range(20)]
    r1, r2 = await asyncio.gather(embedding_judge.ascore(pairs), embedding_judge.ascore(pairs[::-1]))
    assert r1 == pytest.approx(r2[::-1], abs=1e-5)


# ---------------------------------------------------------------- oracle


async def test_oracle_uses_recorded_answers() -> None:
    judge = get_judge("oracle")
    pairs = [
        (pt("x", "72"), pt("y", "72")),
        (pt("x", "72"), pt("y", "71")),
        (pt("x", None), pt("y", "72")),
        (pt("x", None), pt("y", None)),
    ]
    assert await judge.ascore(pairs) == [1.0, 0.0, 0.0, 0.0]


# ---------------------------------------------------------------- numbers


def test_number_set_canonicalizes() -> None:
    assert number_set("He paid $1,000 then 3.50 and 3.5 and -2, x2 ignored") == {"1000", "3.5", "-2"}
    assert number_set("no digits here") == frozenset()


def test_jaccard_values() -> None:
    assert jaccard(frozenset({"1", "2"}), frozenset({"2", "3"})) == pytest.approx(1 / 3)
    assert jaccard(frozenset(), frozenset()) == 0.5
    assert jaccard(frozenset({"1"}), frozenset()) == 0.0


async def test_numbers_judge_scores() -> None:
    judge = NumberOverlapJudge()
    s = await judge.ascore(
        [
            (pt("48 / 2 = 24"), pt("48 divided by 2 is 24")),
            (pt("48 / 2 = 24"), pt("48 + 2 = 50")),
            (pt("Let us think."), pt("First, read the question.")),
        ]
    )
    assert s[0] == 1.0
    assert s[1] == pytest.approx(2 / 4)
    assert s[2] == 0.5


# ---------------------------------------------------------------- registry


def test_registry_unknown_name_lists_known() -> None:
    with pytest.raises(ConfigError) as info:
        get_judge("nope")
    for name in ("embedding", "oracle", "numbers", "trained"):
        assert name in str(info.value)


def test_registry_bad_option_is_config_error() -> None:
    with pytest.raises(ConfigError, match="accepted options"):
        get_judge("numbers", temperature=3)


async def test_register_custom_judge() -> None:
    class Const:
        name = "const-test"

        def __init__(self, value: float = 0.25) -> None:
            self.value = value

        async def ascore(self, pairs: Sequence[TracePair]) -> list[float]:
            return [self.value] * len(pairs)

    register_judge("const-test", Const, replace=True)
    judge = get_judge("const-test", value=0.75)
    assert "const-test" in known_judges()
    assert await judge.ascore([(pt("a"), pt("b"))]) == [0.75]
    with pytest.raises(ConfigError, match="already registered"):
        register_judge("numbers", Const)
    with pytest.raises(ConfigError, match="already registered"):
        register_judge("const-test", Const)


async def test_registered_judge_scores() -> None:
    class Half:
        name = "half-test"

        async def ascore(self, pairs: Sequence[TracePair]) -> list[float]:
            return [0.5] * len(pairs)

    register_judge("half-test", Half, replace=True)
    assert await get_judge("half-test").ascore([(pt("a"), pt("b"))]) == [0.5]


def test_register_rejects_non_judge() -> None:
    register_judge("not-a-judge-test", lambda: object(), replace=True)
    with pytest.raises(ConfigError, match="ascore"):
        get_judge("not-a-judge-test")


def test_builtin_names() -> None:
    assert set(JUDGE_NAMES) >= {"embedding", "trained", "llm", "transformers", "oracle", "numbers"}


def test_judge_threads_default_is_half_the_cores_and_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    from deepprune_agents.judges._threads import ENV_JUDGE_THREADS, judge_threads

    monkeypatch.delenv(ENV_JUDGE_THREADS, raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3}, raising=False)
    assert judge_threads() == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0}, raising=False)
    assert judge_threads() == 1
    monkeypatch.setenv(ENV_JUDGE_THREADS, "3")
    assert judge_threads() == 3
    assert judge_threads(5) == 5  # an explicit option wins over the environment
    monkeypatch.setenv(ENV_JUDGE_THREADS, "many")
    with pytest.raises(ConfigError, match=ENV_JUDGE_THREADS):
        judge_threads()
    with pytest.raises(ConfigError, match=">= 1"):
        judge_threads(0)


def test_embedding_judge_forward_pass_uses_its_thread_count() -> None:
    import torch

    from deepprune_agents.judges.embedding import EmbeddingJudge

    before = torch.get_num_threads()
    judge = EmbeddingJudge(threads=1)
    judge.score_sync([(PartialTrace(text="3 + 4 = 7"), PartialTrace(text="3 plus 4 is 7"))])
    assert torch.get_num_threads() == 1
    torch.set_num_threads(before)


# ---------------------------------------------------------------- constant (the control)


async def test_constant_judge_gives_every_pair_its_score_whatever_the_text() -> None:
    pairs: list[TracePair] = [(pt("48 / 2 = 24"), pt("48 / 2 = 24")), (pt("48 / 2 = 24"), pt("unrelated text"))]
    assert await get_judge("constant").ascore(pairs) == [1.0, 1.0]
    assert await get_judge("constant", score=0.25).ascore(pairs) == [0.25, 0.25]
    assert await get_judge("constant").ascore([]) == []
    from deepprune_agents.judges.constant import ConstantJudge

    assert ConstantJudge().needs_encoder is False  # replay prewarm leaves it alone


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "1", True])
def test_constant_judge_rejects_a_score_outside_0_1(bad: object) -> None:
    with pytest.raises(ConfigError, match="constant judge"):
        get_judge("constant", score=bad)


def test_the_cli_lists_the_frontier_judges_of_the_evaluation() -> None:
    from deepprune_agents.cli.replay_cmds import FRONTIER_JUDGES as CLI_JUDGES
    from deepprune_agents.evaluation.frontier import FRONTIER_JUDGES

    assert CLI_JUDGES == FRONTIER_JUDGES and "constant" in FRONTIER_JUDGES
