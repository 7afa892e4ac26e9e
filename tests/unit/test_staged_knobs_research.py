"""research/staged_knobs.py's pure part: the bar and judge-pays tallies over cases, and its neighbour grid."""

from __future__ import annotations

from bench_scripts import load_research

sk = load_research("staged_knobs")


def m(acc: float, tokens: float, wall: float) -> dict[str, float]:
    return {"accuracy": acc, "tokens": tokens, "wall": wall}


def test_verdicts_count_the_bar_and_whether_the_judge_pays() -> None:
    base = {"cons": m(0.70, 1000, 100), "esc": m(0.70, 800, 300)}
    cases = {
        # on the bar; the constant judge takes 50% more wall time: the judge pays
        "a": {**base, "numbers": m(0.69, 780, 120), "constant": m(0.70, 760, 180)},
        # 1.5 points down: off the bar; the constant judge is better on both by > 2%
        "b": {**base, "numbers": m(0.685, 700, 100), "constant": m(0.70, 600, 90)},
        # more tokens than ESC: off the bar
        "c": {**base, "numbers": m(0.70, 801, 100), "constant": m(0.70, 801, 100)},
    }
    assert sk.verdicts(cases) == {"cases": 3, "bar": 1, "pays": 1, "constant_better_on_both": 1}


def test_the_neighbours_are_one_knob_from_the_default_and_the_default_is_the_settings_default() -> None:
    from deepprune_agents.pruning import StagedKnobs

    knobs = StagedKnobs()
    assert {
        "staged_first_wave": knobs.first_wave,
        "staged_split_tau": knobs.split_tau,
        "staged_min_vote_share": knobs.min_vote_share,
    } == sk.DEFAULT
    for name, change in sk.NEIGHBOURS.items():
        assert name == "default" or change, name
        assert set(change) <= set(sk.DEFAULT)
        if "first version" not in name:
            assert len(change) <= 1  # a neighbour: one knob away
