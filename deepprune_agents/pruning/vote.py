"""Weighted majority vote over extracted answers, grouping answers by mathematical equality.

Answers are grouped with ``answers.group_answers`` (so "0.5" and "\\frac{1}{2}" vote together);
unparsable answers (None) cast no vote. Ties go to the class whose first voter has the lowest branch id,
so the outcome never depends on dict or set ordering.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from deepprune_agents.answers import group_answers
from deepprune_agents.pruning.types import BranchView, VoteResult


def weighted_vote(ballots: Sequence[tuple[int, str | None, float]], *, fallback: str | None = None) -> VoteResult:
    """``ballots`` are (branch id, answer, weight). Returns the heaviest answer class."""
    valid = [(bid, ans, w) for bid, ans, w in ballots if ans is not None and w > 0]
    if not valid:
        return VoteResult(answer=None, counts={}, voters=[], fallback=fallback)
    groups = group_answers([ans for _, ans, _ in valid])
    counts: dict[str, float] = {}
    best: tuple[float, int] | None = None
    winner: str | None = None
    for members in groups:
        label = valid[members[0]][1]
        assert label is not None
        weight = sum(valid[i][2] for i in members)
        first_id = min(valid[i][0] for i in members)
        counts[label] = counts.get(label, 0.0) + weight
        key = (weight, -first_id)
        if best is None or key > best:
            best, winner = key, label
    return VoteResult(answer=winner, counts=counts, voters=sorted(b for b, _, _ in valid), fallback=fallback)


def cluster_ballots(members: Sequence[int], by_id: Mapping[int, BranchView]) -> list[tuple[int, str | None, float]]:
    """A cluster's ballots: one per member that finished with an answer, each carrying an equal share of
    the members whose answer is only *predicted* (cancelled, or still running): the judge put them with
    the answered ones, so thinning a cluster does not shrink its say.

    A member that finished *without* an answer, or failed, carries no weight: its outcome was observed and
    it is not the others' answer. (It used to count, so a cluster holding e.g. four no-answer traces and one
    answer weighed five against another cluster's three agreeing answers.)"""
    answered = [b for b in members if by_id[b].finished and by_id[b].answer is not None]
    if not answered:
        return []
    predicted = sum(1 for b in members if by_id[b].alive or by_id[b].status == "cancelled")
    weight = 1.0 + predicted / len(answered)
    return [(b, by_id[b].answer, weight) for b in answered]


def answer_histogram(answers: Iterable[str | None]) -> dict[str, int]:
    """Branches per answer class, grouped as the vote groups them ("10" and "10 dollars" are one class,
    labelled by its first answer; ``"none"``: no answer), most frequent first, ties in order of appearance."""
    seq = list(answers)
    given = [i for i, a in enumerate(seq) if a is not None]
    classes: list[tuple[int, int, str]] = []  # (-size, first index, label)
    for members in group_answers([seq[i] for i in given]):
        first = min(given[m] for m in members)
        classes.append((-len(members), first, str(seq[first])))
    missing = [i for i, a in enumerate(seq) if a is None]
    if missing:
        classes.append((-len(missing), missing[0], "none"))
    return {label: -neg for neg, _, label in sorted(classes)}


def plurality_share(histogram: Mapping[str, int]) -> float:
    """Share of the branches on the most frequent answer class of an ``answer_histogram`` (branches with no
    answer count in the total, never as the leader): the regime a question is in. Pruning saves most where
    one answer dominates; on a split question a safe policy keeps branches to the end."""
    total = sum(histogram.values())
    answered = [c for a, c in histogram.items() if a != "none"]
    return max(answered, default=0) / total if total else 0.0


def majority_vote(answers: Sequence[tuple[int, str | None]]) -> VoteResult:
    """Plain self-consistency (cons@N): one vote per answered branch."""
    return weighted_vote([(bid, ans, 1.0) for bid, ans in answers])


def vote_is_decided(ballots: Sequence[tuple[int, str | None, float]], undecided: float) -> bool:
    """True when no outcome of the ``undecided`` weight still to come can change the winner.

    The leading answer class must outweigh the runner-up even if every undecided vote went to the
    runner-up (strictly: a tie could flip on the tie-break). Used to stop branches whose vote cannot
    matter any more; it never changes the voted answer, only saves their tokens."""
    result = weighted_vote(ballots)
    if result.answer is None:
        return False
    weights = sorted(result.counts.values(), reverse=True)
    runner_up = weights[1] if len(weights) > 1 else 0.0
    return weights[0] > runner_up + undecided
