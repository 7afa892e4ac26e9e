"""The ``llm`` judge against the real embedded vLLM server (SmolLM2 zero-shot)."""

from __future__ import annotations

from typing import Any

import pytest

from deepprune_agents.errors import JudgeError
from deepprune_agents.judges import get_judge
from deepprune_agents.traces import PartialTrace

pytestmark = pytest.mark.e2e

SAME_A = "Janet's ducks lay 16 eggs. She eats 3 and bakes with 4, so 16 - 3 - 4 = 9 eggs. 9 * 2 = $18"
SAME_B = "16 - 3 - 4 = 9 eggs are left to sell. At $2 each she makes 9 * 2 = $18"
OTHER = "She eats 3 and bakes 4, so she uses 7 eggs. 16 + 7 = 23 eggs, and 23 * 2 = $46"


async def test_llm_judge_scores_pairs_on_vllm(vllm_server: Any) -> None:
    judge = get_judge("llm", base_url=vllm_server.base_url, model=vllm_server.model, concurrency=4)
    pairs = [
        (PartialTrace(SAME_A), PartialTrace(SAME_B)),
        (PartialTrace(SAME_A), PartialTrace(OTHER)),
        (PartialTrace(SAME_A), PartialTrace(SAME_A)),
    ]
    scores = await judge.ascore(pairs)
    assert len(scores) == 3
    assert all(isinstance(s, float) and 0.0 <= s <= 1.0 for s in scores)
    # The first token's top-20 logprobs of an instruct model contain yes/no: a real probability, not
    # the 0.5 "no information" fallback and not a hard 0/1 from the sampled token alone.
    assert any(0.0 < s < 1.0 and s != 0.5 for s in scores)
    # Deterministic (temperature 0, logprobs): the same pair scores the same in another call.
    again = await judge.ascore(pairs[:1])
    assert again[0] == pytest.approx(scores[0], abs=0.02)
    await judge.aclose()  # type: ignore[attr-defined]


async def test_llm_judge_resolves_model_and_reports_unknown_model(vllm_server: Any) -> None:
    auto = get_judge("llm", base_url=vllm_server.base_url)
    (score,) = await auto.ascore([(PartialTrace(SAME_A), PartialTrace(SAME_B))])
    assert 0.0 <= score <= 1.0
    assert auto.model  # type: ignore[attr-defined]
    wrong = get_judge("llm", base_url=vllm_server.base_url, model="no-such-model", fallback=None)
    with pytest.raises(JudgeError, match="does not serve model"):
        await wrong.ascore([(PartialTrace(SAME_A), PartialTrace(SAME_B))])
