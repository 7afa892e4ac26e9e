"""``deepprune bench live``'s ESC arm and a staged run, on the replay server over real HTTP: ESC runs windows
of branches one after another and stops after a unanimous window; the staged policy leaves the branches
its first wave made unnecessary unstarted (the server never sees them)."""

from __future__ import annotations

import asyncio

from deepprune_agents.evaluation.live_bench import run_live_bench
from deepprune_agents.evaluation.replay_data import ReplayQuestion, make_trace
from deepprune_agents.evaluation.replay_server import ReplayServer
from deepprune_agents.settings import DeepPruneContext

RIGHT = "Tom has 3 apples and buys 4 more, so 3 + 4 = 7 apples." + " Counting again we get 7." * 4 + " The answer is 7."
WRONG = "Tom has 3 apples and loses 2, so 3 - 2 = 1 apple." + " Counting again we get 1." * 4 + " The answer is 1."


def question(texts: list[str]) -> ReplayQuestion:
    return ReplayQuestion(
        "apples", "Tom has 3 apples and buys 4 more. How many apples does he have?", "7",
        tuple(make_trace(t) for t in texts),
    )  # fmt: skip


def run(q: ReplayQuestion, n: int) -> dict:  # type: ignore[type-arg]
    with ReplayServer([q], tokens_per_s=400) as server:
        ctx = DeepPruneContext(
            base_urls=[server.base_url], model="replay", n=n, policy="staged", judge="constant", max_tokens=256
        )
        root = server.base_url.rsplit("/v1", 1)[0]
        report = asyncio.run(run_live_bench(ctx, root_url=root, questions=[(q.question, "7")], esc_window=5))
        assert server.wait_idle(5.0), "a stream was left open on the replay server"
    return report


def test_esc_stops_after_a_unanimous_window_and_staged_leaves_the_rest_unstarted() -> None:
    q = question([RIGHT] * 12)
    report = run(q, 12)
    (row,) = report["rows"]
    length = q.traces[0].n_tokens
    assert row["esc"]["branches"] == 5 and row["esc"]["answer"] == "7"
    assert row["esc"]["server_tokens"] == 5 * length  # one window, to the end
    assert row["cons"]["server_tokens"] == 12 * length
    # staged: a first wave of 4; four equal answers stop it; branches 4-11 never reach the server
    assert row["deepprune"]["answer"] == "7" and row["deepprune"]["server_tokens"] <= 5 * length
    assert row["deepprune"]["answers"].get("none", 0) >= 7
    assert report["deepprune_tokens_vs_esc"] <= 1.0


def test_esc_runs_window_after_window_while_answers_differ() -> None:
    q = question([RIGHT, WRONG] * 5)
    report = run(q, 10)
    (row,) = report["rows"]
    assert row["esc"]["branches"] == 10  # neither window of 5 was unanimous
    assert row["esc"]["server_tokens"] == row["cons"]["server_tokens"]  # the same seeds: the same traces
    # equal work: the ratio and its paired CI over the (one) question are exactly 1
    assert report["cons_tokens_vs_esc_ci"] == {"ratio": 1.0, "ci95": [1.0, 1.0], "questions": 1}
    assert report["deepprune_tokens_vs_esc_ci"]["ratio"] == report["deepprune_tokens_vs_esc"]
