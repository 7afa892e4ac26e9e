"""The graph with a SQLite checkpointer: a run interrupted mid-way resumes from its last checkpoint
without regenerating finished branches (branches still generating continue after their text)."""

from __future__ import annotations

from persistence_scenario import assert_resumed_from_the_checkpoint, lose_and_resume

from deepprune_agents.backends.metrics import wait_until_idle
from deepprune_agents.settings import DeepPruneContext

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have now?"


async def test_resume_after_the_process_lost_the_run(vllm_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # tau = 1.0: the judge never merges, so nothing is pruned and every branch's fate is visible.
    ctx = DeepPruneContext(
        n=4,
        base_urls=[vllm_server.base_url],
        model=vllm_server.model,
        max_tokens=160,
        judge="numbers",
        policy="periodic",
        tau=1.0,
        judge_every=8,
        truncate="tokens:8",
    )
    r = await lose_and_resume(
        QUESTION, ctx, tmp_path / "vllm.sqlite", idle=lambda: wait_until_idle(vllm_server.root_url, 5)
    )
    assert_resumed_from_the_checkpoint(r)
    assert await wait_until_idle(vllm_server.root_url, 5)
