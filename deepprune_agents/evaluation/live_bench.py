"""Live benchmark: DeepPrune vs plain cons@N on a real vLLM server, in one run.

For each question both methods run back to back with the same seeds (branch i uses seed + i), so
DeepPrune's surviving branches are the very samples cons@N would have drawn. Figures:

* wall time per run, and ``speedup`` = total cons wall / total DeepPrune wall;
* generated tokens from the *server's* counter (``vllm:generation_tokens_total``), which includes the
  tokens produced between a cancel decision and the abort: ``token_reduction`` = 1 - DP / cons;
* ``answer_agreement``: share of questions where both votes give the same answer (plus accuracy of both
  against the known answers);
* cancellation latency: client side (decision -> socket closed) from the result, and server side
  (decision -> ``vllm:num_requests_running`` dropped by the batch size) from a 25 ms metrics sampler.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import statistics
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from deepprune_agents.answers import answers_equal
from deepprune_agents.backends.metrics import metric, scrape_samples, wait_until_idle
from deepprune_agents.evaluation.stats import paired_ratio
from deepprune_agents.pruning.vote import answer_histogram, plurality_share
from deepprune_agents.result import DeepPruneResult
from deepprune_agents.settings import DeepPruneContext

if TYPE_CHECKING:
    from deepprune_agents.engine import RunRegistry

# Ten one- or two-step word problems written for this benchmark; the embedded SmolLM2-135M gets each of
# them right in at least some samples (see the per-question "cons_correct_branches" in the JSON).
LIVE_QUESTIONS: list[tuple[str, str]] = [
    ("Tom has 3 apples and buys 4 more. How many apples does he have now?", "7"),
    ("A box holds 6 eggs. How many eggs are in 2 boxes?", "12"),
    ("Sara had 10 candies and ate 3 of them. How many candies are left?", "7"),
    ("There are 5 birds on a tree and 2 more birds land on it. How many birds are on the tree now?", "7"),
    ("One pencil costs 2 dollars. How many dollars do 5 pencils cost?", "10"),
    ("Ben is 8 years old. How old will Ben be in 3 years?", "11"),
    ("A class has 12 girls and 9 boys. How many students are in the class?", "21"),
    ("Anna reads 4 pages every day. How many pages does she read in 3 days?", "12"),
    ("Mike had 20 dollars and spent 5 dollars. How many dollars does he have left?", "15"),
    ("A farmer has 3 cows. Each cow has 4 legs. How many legs do the cows have in total?", "12"),
]


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in [0, 100]): the smallest value with at least q% of the values at or
    below it, so p99 of 100 samples is the 99th smallest, not the maximum. None for no values.

    Not ``numpy.percentile(method="inverted_cdf")``: it computes the rank in floating point (0.07 * 100
    is 7.000000000000001) and returns the 8th of 100 values for p7. Here the rank is q * n / 100 with
    a tolerance far below one rank."""
    if not values:
        return None
    ordered = sorted(values)
    rank = math.ceil(q * len(ordered) / 100 - 1e-9)
    return ordered[min(len(ordered), max(1, rank)) - 1]


@dataclass
class RunningSampler:
    """Polls ``vllm:num_requests_running`` every ``interval_s`` into (epoch, value) samples."""

    root_url: str
    interval_s: float = 0.025  # 10 ms polling cost the 2-core server a third of its throughput

    def __post_init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self._task: asyncio.Task[None] | None = None

    async def _loop(self) -> None:
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    samples = await scrape_samples(self.root_url, client)
                    self.samples.append((time.time(), metric(samples, "vllm:num_requests_running")))
                await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def abort_latencies_ms(self, result: DeepPruneResult) -> list[float]:
        """Per cancel batch: time until the running count fell by the batch size."""
        batches: dict[float, int] = {}
        for b in result.branches:
            if b.status == "cancelled" and b.cancel_decided_at is not None:
                batches[b.cancel_decided_at] = batches.get(b.cancel_decided_at, 0) + 1
        out = []
        for t0, k in sorted(batches.items()):
            before = [v for t, v in self.samples if t <= t0]
            if not before:
                continue
            target = before[-1] - k
            after = [(t, v) for t, v in self.samples if t > t0 and v <= target]
            if after:
                out.append((after[0][0] - t0) * 1000.0)
        return out


async def _server_tokens(root_url: str) -> float:
    return metric(await scrape_samples(root_url), "vllm:generation_tokens_total")


async def _measured_run(
    reasoner: Any, question: str, configurable: dict[str, Any], root_url: str, sampler: RunningSampler | None = None
) -> tuple[DeepPruneResult, float, float]:
    """One run between two idle points of the server: its result, wall seconds and server tokens (the
    counter's difference, so nothing another request generated is counted)."""
    await wait_until_idle(root_url, timeout_s=60)
    before = await _server_tokens(root_url)
    if sampler is not None:
        sampler.start()
    t0 = time.perf_counter()
    try:
        result = await reasoner.ainvoke(question, config={"configurable": configurable})
    finally:
        wall = time.perf_counter() - t0
        if sampler is not None:
            await sampler.stop()
    await wait_until_idle(root_url, timeout_s=60)
    return result, wall, await _server_tokens(root_url) - before


async def live_esc(reasoner: Any, question: str, ctx: DeepPruneContext, root_url: str, window: int) -> dict[str, Any]:
    """ESC on the live server: windows of ``window`` branches one after another (cons runs of ``window``
    branches whose seeds continue the N-branch run's: window k has branches k*window ...), stopping after
    the first window whose answers are all equal; majority vote over every branch sampled. Tokens from the
    server's counter, wall time summed over the windows."""
    from deepprune_agents.evaluation.baselines import unanimous
    from deepprune_agents.pruning.vote import majority_vote

    answers: list[str | None] = []
    wall = tokens = 0.0
    for start in range(0, ctx.n, window):
        k = min(window, ctx.n - start)
        configurable = {"policy": "none", "n": k, "seed": ctx.seed + start}
        result, seconds, used = await _measured_run(reasoner, question, configurable, root_url)
        wall += seconds
        tokens += used
        got = [b.answer for b in result.branches]
        answers += got
        if unanimous(got):  # the offline ESC's stop rule (evaluation/baselines.esc)
            break
    vote = majority_vote(list(enumerate(answers)))
    return {"answer": vote.answer, "wall_s": wall, "server_tokens": tokens, "branches": len(answers)}


async def run_live_bench(
    ctx: DeepPruneContext,
    *,
    root_url: str,
    questions: list[tuple[str, str]] | None = None,
    progress: Any = None,
    runs: RunRegistry | None = None,
    esc_window: int = 0,
) -> dict[str, Any]:
    """Run both methods on every question (and ESC with windows of ``esc_window`` branches when > 0);
    returns the JSON-ready report. ``runs``: the registry the reasoner keeps its live runs in (the CLI
    passes one so that Ctrl-C closes them)."""
    from deepprune_agents.reasoner import DeepPruneReasoner

    questions = questions or LIVE_QUESTIONS
    reasoner = DeepPruneReasoner(ctx, runs=runs)
    rows: list[dict[str, Any]] = []
    client_lat: list[float] = []
    server_lat: list[float] = []
    for q, truth in questions:
        row: dict[str, Any] = {"question": q, "truth": truth}
        for method, policy in (("cons", "none"), ("deepprune", ctx.policy)):
            sampler = RunningSampler(root_url)
            result, wall, tokens = await _measured_run(reasoner, q, {"policy": policy}, root_url, sampler)
            row[method] = {
                "answer": result.answer,
                "correct": answers_equal(result.answer, truth),
                "wall_s": wall,
                "server_tokens": tokens,
                "client_tokens": result.tokens_generated,
                "cancelled": result.cancelled,
                "failed": result.failed,
                # branches a request was sent for (a staged run may leave some unstarted)
                "launched": result.n - result.unstarted,
                "correct_branches": sum(answers_equal(b.answer, truth) for b in result.branches),
                "answers": answer_histogram(b.answer for b in result.branches),
            }
            if method == "deepprune":
                lat = [b.cancel_latency_ms for b in result.branches if b.cancel_latency_ms is not None]
                client_lat.extend(lat)
                srv = sampler.abort_latencies_ms(result)
                server_lat.extend(srv)
                row[method]["cancel_latency_ms"] = lat
                row[method]["server_abort_latency_ms"] = srv
        if esc_window > 0:
            row["esc"] = await live_esc(reasoner, q, ctx, root_url, esc_window)
            row["esc"]["correct"] = answers_equal(row["esc"]["answer"], truth)
        row["agree"] = answers_equal(row["cons"]["answer"], row["deepprune"]["answer"]) or (
            row["cons"]["answer"] is None and row["deepprune"]["answer"] is None
        )
        rows.append(row)
        if progress is not None:
            progress(row)
    cons_wall = sum(r["cons"]["wall_s"] for r in rows)
    dp_wall = sum(r["deepprune"]["wall_s"] for r in rows)
    cons_tok = sum(r["cons"]["server_tokens"] for r in rows)
    dp_tok = sum(r["deepprune"]["server_tokens"] for r in rows)
    return {
        "n": ctx.n,
        "policy": ctx.policy,
        "judge": ctx.judge,
        "truncate": ctx.truncate,
        # The figures depend on how spread the model's answers are, which sampling sets: a report says it.
        "sampling": {
            "temperature": ctx.temperature,
            "top_p": ctx.top_p,
            "max_tokens": ctx.max_tokens,
            "seed": ctx.seed,
        },
        "questions": len(rows),
        "speedup": cons_wall / dp_wall if dp_wall else None,
        "token_reduction": 1.0 - dp_tok / cons_tok if cons_tok else None,
        "answer_agreement": sum(r["agree"] for r in rows) / len(rows),
        "cons_plurality_share": statistics.mean(plurality_share(r["cons"]["answers"]) for r in rows),
        "accuracy_cons": sum(r["cons"]["correct"] for r in rows) / len(rows),
        "accuracy_deepprune": sum(r["deepprune"]["correct"] for r in rows) / len(rows),
        "cancel_latency_p50_ms": statistics.median(client_lat) if client_lat else None,
        "cancel_latency_p99_ms": percentile(client_lat, 99),
        "server_abort_latency_p50_ms": statistics.median(server_lat) if server_lat else None,
        "server_abort_latency_p99_ms": percentile(server_lat, 99),
        "cons_wall_s": cons_wall,
        "deepprune_wall_s": dp_wall,
        "cons_server_tokens": cons_tok,
        "deepprune_server_tokens": dp_tok,
        "targets": {"speedup": 2.0, "token_reduction": 0.60, "cancel_latency_p99_ms": 50.0},
        "rows": rows,
        **(_esc_figures(rows, dp_wall, dp_tok) if esc_window > 0 else {}),
    }


def _esc_figures(rows: list[dict[str, Any]], dp_wall: float, dp_tok: float) -> dict[str, Any]:
    """ESC's totals beside the policy's (issue 34's live bar: wall <= 1.1x cons@N's, tokens <= ESC's)."""
    esc_wall = sum(r["esc"]["wall_s"] for r in rows)
    esc_tok = sum(r["esc"]["server_tokens"] for r in rows)
    esc_per_q = [r["esc"]["server_tokens"] for r in rows]
    return {
        "esc_wall_s": esc_wall,
        "esc_server_tokens": esc_tok,
        "accuracy_esc": sum(r["esc"]["correct"] for r in rows) / len(rows),
        "deepprune_tokens_vs_esc": dp_tok / esc_tok if esc_tok else None,
        "deepprune_wall_vs_esc": dp_wall / esc_wall if esc_wall else None,
        # Where both run every branch, the token ratio is sampling noise: its paired CI over the questions says
        # how wide that noise is, and cons@N vs ESC (the same requests, the same seeds) shows it on equal work.
        "deepprune_tokens_vs_esc_ci": paired_ratio([r["deepprune"]["server_tokens"] for r in rows], esc_per_q),
        "cons_tokens_vs_esc_ci": paired_ratio([r["cons"]["server_tokens"] for r in rows], esc_per_q),
    }
