"""The default ``staged`` policy on the real engine and LangGraph runtime, against the replay server over HTTP:
a first wave that finishes between two judge rounds still gets its next wave, and a judge that fails leaves a
staged run to its answers (the stop rules and the launches they need, as with the constant judge) instead of
voting over the first wave."""

from __future__ import annotations

from collections.abc import Sequence

from test_proxy_e2e import QUESTION  # tests/e2e is on sys.path (rootdir import mode)

from deepprune_agents.evaluation.replay_server import ReplayServer
from deepprune_agents.judges import register_judge
from deepprune_agents.judges.base import TracePair
from deepprune_agents.pruning import StagedPolicy
from deepprune_agents.pruning.adaptive import stop_is_safe
from deepprune_agents.pruning.vote import majority_vote, vote_is_decided
from deepprune_agents.reasoner import DeepPruneReasoner
from deepprune_agents.settings import DeepPruneContext
from deepprune_agents.truncation import parse_truncation


class RaisingJudge:
    name = "raises"

    async def ascore(self, pairs: Sequence[TracePair]) -> list[float]:
        raise RuntimeError("judge backend exploded")


register_judge("test-staged-raises", RaisingJudge, replace=True)


def context(server: ReplayServer, **extra: object) -> DeepPruneContext:
    settings: dict[str, object] = {"judge": "numbers", "truncate": "tokens:12", "n": 8, **extra}
    return DeepPruneContext(base_urls=[server.base_url], **settings)  # type: ignore[arg-type]


async def test_a_first_wave_that_ends_between_two_rounds_still_starts_the_next_wave() -> None:
    """Unpaced, the first wave's four branches can all finish after a round read them as running. The run
    must then have one more round (it sees their answers) instead of voting over four: before that fix, 8 of
    40 seeds voted "1" on a 2:2 or 3:1 first wave with four branches never started. A run may still end with
    branches unstarted, but only on answers that settle the vote."""
    assert DeepPruneContext().policy == "staged"
    rule = StagedPolicy(truncation=parse_truncation("tokens:12")).knobs  # the default's stopping rule
    with ReplayServer([QUESTION], tokens_per_s=0) as upstream:
        for seed in range(24):
            result = await DeepPruneReasoner(context(upstream, seed=seed)).ainvoke(QUESTION.question)
            assert result.answer == QUESTION.ground_truth, (seed, result.votes)
            unstarted = sum(b.status == "unstarted" for b in result.branches)
            if unstarted:
                ballots = [(b.id, b.answer, 1.0) for b in result.branches if b.status == "finished" and b.answer]
                counts = list(majority_vote([(i, a) for i, a, _ in ballots]).counts.values())
                launched = len(result.branches) - unstarted
                assert stop_is_safe(counts, rule, launched) or vote_is_decided(ballots, float(unstarted)), seed
        assert upstream.wait_idle(5.0)


async def test_a_failing_judge_leaves_a_staged_run_to_its_answers() -> None:
    """A staged run asks its judge once (the split read). When that call fails, nothing is read as split and
    the answers decide: here they disagree, so every held-back branch starts and all of them run."""
    with ReplayServer([QUESTION], tokens_per_s=200) as upstream:
        result = await DeepPruneReasoner(context(upstream, judge="test-staged-raises")).ainvoke(QUESTION.question)
        assert upstream.wait_idle(5.0)
        records = upstream.records()
    assert result.judge_errors and all("exploded" in e for e in result.judge_errors)
    assert len(records) == 8 and result.finished == 8 and result.cancelled == 0  # every branch ran: cons@8
    assert result.answer == QUESTION.ground_truth
