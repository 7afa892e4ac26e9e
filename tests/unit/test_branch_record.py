"""One branch record: ``Branch.record()`` fills every field of ``BranchRecord`` (only the vote's ``cluster``
and ``voted`` come later), the graph state's dumps restore to the same branch, the result's branches are
those records, and the typed dumps (``BranchRecordDict``, ``DeepPruneResultDict``) match the models.
The live ``Branch`` and the simulator's ``SimBranch`` give a policy the same ``BranchView``."""

from __future__ import annotations

import json
import types
from typing import Any, get_args, get_origin, get_type_hints

import pytest

from deepprune_agents.backends.openai_stream import BranchRequest
from deepprune_agents.engine import Branch, branch_answer
from deepprune_agents.evaluation.replay_data import make_trace
from deepprune_agents.evaluation.simulator import SimBranch
from deepprune_agents.result import (
    BranchRecord,
    BranchRecordDict,
    DeepPruneResult,
    DeepPruneResultDict,
    cons_estimate,
)

VOTE_ONLY = {"cluster", "voted"}  # what the vote node adds to a branch's record


def cancelled_branch() -> Branch:
    """A branch with every recorded attribute away from its default."""
    b = Branch(id=3, request=BranchRequest(model="m", seed=44))
    b.add("", "3 + 4", reclassify=False)
    b.add(" so 7", "")
    b.tokens, b.status, b.answer, b.finish_reason = 5, "cancelled", "7", "length"
    b.endpoint, b.error, b.cancel_reason = "http://a/v1", "read timeout", "pruned"
    b.t_cancel_decided, b.t_cancel_closed, b.cancel_decided_at = 1.0, 1.25, 1700000000.0
    return b


def test_record_fills_every_field_but_the_votes() -> None:
    record = cancelled_branch().record()
    # A field added to BranchRecord must be filled here (or be one the vote adds): nothing else copies them.
    assert record.model_fields_set == set(BranchRecord.model_fields) - VOTE_ONLY
    defaults = BranchRecord(id=0, status="pending", tokens=0)
    assert all(getattr(record, k) != getattr(defaults, k) for k in record.model_fields_set)
    assert (record.reasoning, record.text, record.seed, record.cancel_latency_ms) == ("3 + 4", " so 7", 44, 250.0)


@pytest.mark.parametrize("status", ["finished", "cancelled", "failed"])
def test_a_json_checkpoint_restores_the_same_ended_branch(status: str) -> None:
    b = cancelled_branch()
    b.status = status  # type: ignore[assignment]
    dump = json.loads(json.dumps(b.record().dump()))
    restored = Branch(id=3, request=BranchRequest(model="m", seed=44))
    restored.restore(BranchRecord.model_validate(dump))
    # all but the cancel latency, measured on the clock of the process that lost the run
    assert restored.record().model_copy(update={"cancel_latency_ms": 250.0}) == b.record()
    assert restored.request.continuation == ""  # an ended branch is not started again


def test_a_running_branch_restores_as_pending_after_its_text() -> None:
    b = cancelled_branch()
    b.status, b.cancel_reason = "running", None
    restored = Branch(id=3, request=BranchRequest(model="m", seed=44, max_tokens=100))
    restored.restore(BranchRecord.model_validate(b.record().dump()))
    assert restored.status == "pending" and restored.base_tokens == 5 and restored.request.max_tokens == 95
    assert (restored.reasoning, restored.text) == (b.reasoning, b.text)


def test_the_result_holds_the_records_and_derives_its_totals() -> None:
    records = [
        BranchRecord(id=0, status="finished", tokens=10, answer="7", text="so 7"),
        BranchRecord(id=1, status="cancelled", tokens=4, cancel_reason="pruned"),
        BranchRecord(id=2, status="finished", tokens=20, answer="7"),
        BranchRecord(id=3, status="failed", tokens=0, error="boom"),
    ]
    voted = [r.model_copy(update={"cluster": 0, "voted": r.answer is not None}) for r in records]
    result = DeepPruneResult.from_branches(
        voted, question="q", answer="7", policy="p", judge="j", model="m", wall_time_s=0.5
    )
    assert [b.model_dump() for b in result.branches] == [b.model_dump() for b in voted]
    assert (result.n, result.tokens_generated, result.finished, result.cancelled, result.failed) == (4, 34, 2, 1, 1)
    # the cancelled branch (4 tokens) would have run to the mean of the longer finished ones: (10 + 20) / 2
    assert result.tokens_cons_estimate == cons_estimate(records) == 10 + 15 + 20 + 0
    assert result.token_saving == pytest.approx(1 - 34 / 45)
    assert DeepPruneResult.model_validate(json.loads(result.model_dump_json())) == result


def _same_type(typed_dict_hint: Any, model_hint: Any) -> bool:
    """Equal, where a TypedDict of the dump stands for the model it dumps."""
    dumps = {BranchRecordDict: BranchRecord, DeepPruneResultDict: DeepPruneResult}
    if typed_dict_hint in dumps:
        return dumps[typed_dict_hint] is model_hint
    if get_origin(typed_dict_hint) is not None and get_origin(typed_dict_hint) is not types.UnionType:
        args = zip(get_args(typed_dict_hint), get_args(model_hint), strict=True)
        return get_origin(typed_dict_hint) is get_origin(model_hint) and all(_same_type(a, b) for a, b in args)
    return bool(typed_dict_hint == model_hint)


@pytest.mark.parametrize("typed, model", [(BranchRecordDict, BranchRecord), (DeepPruneResultDict, DeepPruneResult)])
def test_the_typed_dumps_match_the_models(typed: Any, model: Any) -> None:
    hints = get_type_hints(typed)
    fields = {k: f.annotation for k, f in model.model_fields.items()}
    fields |= {k: f.return_type for k, f in model.model_computed_fields.items()}
    assert hints.keys() == fields.keys()
    assert all(_same_type(hints[k], fields[k]) for k in hints), {k: (hints[k], fields[k]) for k in hints}


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_live_and_replayed_branches_give_a_policy_the_same_view(share: float) -> None:
    trace = make_trace("Tom has 3 apples and buys 4, so 3 + 4 = 7. The answer is 7.")
    tokens = round(share * trace.n_tokens)
    done = tokens == trace.n_tokens
    sim = SimBranch(id=2, trace=trace, limit=trace.n_tokens, tokens=tokens, status="finished" if done else "running")
    live = Branch(id=2, request=BranchRequest(model="m"), tokens=tokens, status=sim.status)
    for piece in trace.pieces[:tokens]:
        live.add(piece)
    if done:
        live.answer = branch_answer(live.text, live.reasoning, "stop")
    a, b = live.view(), sim.view()
    assert (a.id, a.text, a.tokens, a.status, a.answer) == (b.id, b.text, b.tokens, b.status, b.answer)
    assert list(a.pieces or []) == list(b.pieces or [])
    assert (a.recorded_answer, b.recorded_answer) == (None, trace.recorded_answer)
    assert b.answer == ("7" if done else None)


def test_an_unstarted_branch_counts_in_the_cons_estimate_as_a_whole_finished_branch() -> None:
    """Staged fan-out: a branch never started would have run like the finished ones (their mean length)."""
    records = [
        BranchRecord(id=0, status="finished", tokens=10, answer="7"),
        BranchRecord(id=1, status="finished", tokens=20, answer="7"),
        BranchRecord(id=2, status="unstarted", tokens=0),
    ]
    assert cons_estimate(records) == 10 + 20 + 15
