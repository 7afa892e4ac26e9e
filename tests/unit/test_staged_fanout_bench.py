"""bench/staged_fanout.py's verdicts (issue 34's Done-when rules) on hand-made figures."""

from __future__ import annotations

from bench_scripts import load_bench

bench = load_bench("staged_fanout")


def m(acc: float, tokens: float, wall: float) -> dict[str, float]:
    return {"accuracy": acc, "tokens": tokens, "wall": wall}


METHODS = {
    "cons": m(0.70, 1000, 100),
    "esc": m(0.70, 800, 300),
    "staged/numbers": m(0.69, 780, 120),  # -1 point: on the bar; 2.5% fewer tokens, 60% less wall
    "staged/constant": m(0.70, 760, 200),  # better in tokens, 67% worse in wall
    "staged/worse": m(0.685, 700, 100),  # -1.5 points: off the bar
}


def test_the_bar_and_ahead_of_esc() -> None:
    assert bench.checks(METHODS, "staged/numbers") == {
        "acc": True, "tokens": True, "wall": True, "bar": True, "ahead": True,
    }  # fmt: skip
    assert bench.checks(METHODS, "staged/worse")["acc"] is False
    assert bench.checks(METHODS, "cons")["tokens"] is False  # more tokens than ESC


def test_the_judge_pays_when_the_constant_judge_is_10_percent_worse_and_never_better_on_both() -> None:
    assert bench.judge_pays(METHODS, "staged/numbers") == (True, False)
    both_better = {**METHODS, "staged/constant": m(0.70, 700, 100)}
    assert bench.judge_pays(both_better, "staged/numbers") == (False, True)
    assert bench.judge_pays(METHODS, "staged/constant") == (False, False)  # the control itself
