"""``deepprune eval replay --frontier`` on a tiny synthetic trace file: every method at every N the file
serves, deterministic, JSON plus two plots."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from bench_scripts import load_bench  # tests/unit is on sys.path (rootdir import mode)
from test_baselines import write_synthetic_file

from deepprune_agents.cli import main
from deepprune_agents.evaluation.frontier import frontier_async, frontier_ns
from deepprune_agents.evaluation.replay_data import load_replay_questions
from deepprune_agents.evaluation.replay_eval import EvalConfig


def test_frontier_ns_adds_the_full_set_below_the_largest_n(tmp_path: Path) -> None:
    f = tmp_path / "syn.jsonl"
    write_synthetic_file(f)  # 8 traces per question
    questions = load_replay_questions([f])
    assert frontier_ns(questions) == [8]
    assert frontier_ns(questions, (2, 4, 16)) == [2, 4, 8]


def test_frontier_measures_every_policy_with_every_judge_and_is_deterministic(tmp_path: Path) -> None:
    f = tmp_path / "syn.jsonl"
    write_synthetic_file(f)
    questions = load_replay_questions([f])
    cfg = EvalConfig(runs=3, truncate="tokens:4")

    def run() -> dict[str, object]:
        return asyncio.run(
            frontier_async(questions, cfg, ns=(4, 16), judges=("oracle", "numbers"), skip=[("periodic", "numbers", 8)])
        )

    report = run()
    assert report["ns"] == [4, 8]  # 16 is more than the file has: its full set (8) instead
    methods = report["points"]["4"]
    expected = {"cons", "esc", "ac", "cons-half", "deepconf-low", "deepconf-high"} | {
        f"{p}/{j}" for p in ("paper", "periodic", "adaptive", "staged") for j in ("oracle", "numbers")
    }
    assert set(methods) == expected
    assert "periodic/numbers" not in report["points"]["8"] and "periodic/numbers at N=8" in report["skipped"]
    for m in methods.values():
        assert 0.0 <= m["accuracy"] <= 1.0 and m["tokens"] > 0 and 0 < m["wall"] <= m["tokens"]
    # cons runs every trace to its end in parallel: its wall time is the longest trace; ESC/AC add windows
    assert methods["cons"]["wall"] <= methods["esc"]["wall"]
    assert methods["ac"]["wall"] == methods["ac"]["tokens"]
    again = run()
    for n in report["points"]:
        for name, m in report["points"][n].items():
            assert again["points"][n][name]["accuracy"] == m["accuracy"]
            assert again["points"][n][name]["tokens"] == m["tokens"]


def test_cli_frontier_writes_json_and_two_plots(tmp_path: Path) -> None:
    f = tmp_path / "syn.jsonl"
    write_synthetic_file(f)
    out = tmp_path / "front.json"
    argv = ["eval", "replay", "--traces", str(f), "--frontier", "--frontier-judges", "oracle,numbers"]
    argv += ["--frontier-n", "4,16", "--runs", "2", "--truncate", "tokens:4", "--json", str(out)]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert set(report["points"]) == {"4", "8"}
    assert (tmp_path / report["plots"]["tokens"]).is_file() and (tmp_path / report["plots"]["wall"]).is_file()
    assert "llm" in report["not_measured"]


def test_one_policy_re_measured_replaces_only_its_points(tmp_path: Path) -> None:
    # bench/replay_results.py --frontier --policies adaptive: after a change to one policy, only its points
    # are measured again and merged into the stored frontier; the other policies' points stay as they were.
    f = tmp_path / "syn.jsonl"
    write_synthetic_file(f)
    questions = load_replay_questions([f])
    cfg = EvalConfig(runs=2, truncate="tokens:4")
    kw = {"ns": (4,), "judges": ("oracle", "numbers")}
    old = asyncio.run(frontier_async(questions, cfg, **kw))  # type: ignore[arg-type]
    changed = cfg.with_setting("adaptive_keep_fraction", 1.0)  # no thinning: different adaptive points
    new = asyncio.run(frontier_async(questions, changed, policies=("adaptive",), **kw))  # type: ignore[arg-type]
    merge = load_bench("replay_results").merge_policies
    merged = merge(old, new, ["adaptive"])
    assert merged["config"] == new["config"]
    for method, point in merged["points"]["4"].items():
        source = new if method.startswith("adaptive/") else old
        assert point == source["points"]["4"][method], method
    assert set(merged["points"]["4"]) == set(old["points"]["4"])
    # a knob another policy reads (tau: every clustering policy) changed: the old points no longer fit
    retuned = asyncio.run(frontier_async(questions, changed.with_setting("tau", 0.7), policies=("adaptive",), **kw))  # type: ignore[arg-type]
    assert merge(old, retuned, ["adaptive"]) is None


def test_a_labelled_judge_joins_the_stored_frontier_without_replacing_it(tmp_path: Path) -> None:
    # bench/replay_results.py --frontier --judges blend-heldout --policies adaptive: a judge under its own
    # label (name + options, e.g. weights fitted without this data set) is measured alone and added to the
    # stored points of every other policy/judge. Here the label names the numbers judge again, so its points
    # must equal the stored adaptive/numbers points draw for draw.
    f = tmp_path / "syn.jsonl"
    write_synthetic_file(f)
    questions = load_replay_questions([f])
    cfg = EvalConfig(runs=2, truncate="tokens:4")
    old = asyncio.run(frontier_async(questions, cfg, ns=(4,), judges=("oracle", "numbers")))
    new = asyncio.run(
        frontier_async(
            questions,
            cfg,
            ns=(4,),
            judges=("numbers-again",),
            policies=("adaptive",),
            judge_specs={"numbers-again": ("numbers", {})},
        )
    )
    assert new["judge_specs"] == {"numbers-again": {"judge": "numbers", "options": {}}}
    merged = load_bench("replay_results").merge_policies(old, new, ["adaptive"], ["numbers-again"])
    points = merged["points"]["4"]
    assert set(points) == set(old["points"]["4"]) | {"adaptive/numbers-again"}
    assert {m: p for m, p in points.items() if m != "adaptive/numbers-again"} == old["points"]["4"]
    again, stored = points["adaptive/numbers-again"], old["points"]["4"]["adaptive/numbers"]
    assert (again["accuracy"], again["tokens"], again["wall"]) == (stored["accuracy"], stored["tokens"], stored["wall"])
    assert merged["judges"] == ["oracle", "numbers", "numbers-again"]
    assert merged["judge_specs"] == new["judge_specs"]


def test_the_judge_value_table_compares_each_judge_with_the_constant_one_under_its_policy() -> None:
    bench = load_bench("replay_results")
    label, n = bench.TARGETS[0]
    points = {
        "adaptive/embedding": {"accuracy": 0.70, "tokens": 1020.0},
        "adaptive/constant": {"accuracy": 0.70, "tokens": 1000.0},
        "paper/oracle": {"accuracy": 0.72, "tokens": 800.0},
        "paper/constant": {"accuracy": 0.60, "tokens": 1000.0},
        "periodic/numbers": {"accuracy": 0.7, "tokens": 900.0},  # no constant point: no row
    }
    lines = bench.render_judge_value({label: {"points": {str(n): points}}})
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines if line.startswith("| ") and "/" in line}
    assert set(rows) == {"adaptive/embedding", "paper/oracle"}
    assert "| +0.0 / +2% |" in rows["adaptive/embedding"]
    assert "| +12.0 / -20% |" in rows["paper/oracle"]
