"""research/contest_thinning.py's pure part: replaying recorded per-draw outcomes under a per-draw keep rule,
and issue 10's bar."""

from __future__ import annotations

from bench_scripts import load_research

ct = load_research("contest_thinning")


def _record() -> object:
    # 2 questions x 2 draws; keep 0.5 is cheap and wrong on the contested draw (q0 r1), keep 1.0 right and dear
    rec = ct.CaseRecord(cons_accuracy=1.0, esc_tokens=150.0)
    rec.outcomes = {
        0.5: ([[1.0, 0.0], [1.0, 1.0]], [[100.0, 100.0], [100.0, 100.0]]),
        0.75: ([[1.0, 0.0], [1.0, 1.0]], [[150.0, 150.0], [150.0, 150.0]]),
        1.0: ([[1.0, 1.0], [1.0, 1.0]], [[200.0, 200.0], [200.0, 200.0]]),
    }
    agree = {"oracle": 0.9, "numbers": 0.8, "words": 0.7}
    split = {"oracle": 0.3, "numbers": 0.2, "words": 0.3}
    rec.stats = [[agree, split], [agree, agree]]
    return rec


def test_a_fixed_keep_replays_its_own_outcomes() -> None:
    rec = _record()
    assert ct.apply_rule(rec, lambda _s: 0.5) == (0.75, 100.0)  # q0: 1 of 2, q1: 2 of 2
    assert ct.apply_rule(rec, lambda _s: 1.0) == (1.0, 200.0)


def test_a_contest_rule_keeps_more_only_on_the_contested_draw_and_meets_the_bar() -> None:
    rec = _record()
    acc, tok = ct.apply_rule(rec, lambda s: 1.0 if s["oracle"] < 0.5 else 0.5)
    assert (acc, tok) == (1.0, 125.0)
    assert ct.passes(rec, acc, tok)
    assert not ct.passes(rec, *ct.apply_rule(rec, lambda _s: 0.5))  # 25 points below cons
    assert not ct.passes(rec, *ct.apply_rule(rec, lambda _s: 1.0))  # dearer than ESC


def test_rules_cover_every_statistic_and_threshold_with_the_default_elsewhere() -> None:
    rec = _record()
    named = ct.rules([rec])
    assert [n for n, _ in named[: len(ct.KEEPS)]] == [f"keep {k}" for k in ct.KEEPS]
    contest = named[len(ct.KEEPS) :]
    assert len(contest) == len(ct.STATISTICS) * len(ct.QUANTILES) * (len(ct.KEEPS) - 1)
    for name, pick in contest:
        assert pick({"oracle": 1.0, "numbers": 1.0, "words": 1.0}) == ct.BASE_KEEP  # an agreeing draw
        assert pick({"oracle": -1.0, "numbers": -1.0, "words": -1.0}) == float(name.rsplit(" ", 1)[1])
