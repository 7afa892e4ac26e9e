"""Two real vLLM-CPU replicas behind vllm-router: a run's branches kept on one replica vs spread over both.

    python bench/router.py [--runs 3] [--n 16] [--max-tokens 32] [--prompt-tokens 2050] [--json bench/out/router.json]

Every run is N branches sharing one long prompt (about 2,000 tokens: an agent's context plus the question,
different for every run so no run reuses another's cache). Two vllm-router processes stand in front of the
same two embedded replicas: ``consistent_hash`` (affinity: the branches carry the run's ``X-Session-ID``,
so a run stays on one replica) and ``round_robin`` (spreading: a run's branches alternate replicas). The
runs alternate between the two, so load from other processes on the machine falls on both alike.

Per run, from the replicas' own ``/metrics`` (deltas over the run): prefix-cache queries and hits (tokens;
``vllm:prefix_cache_queries`` / ``vllm:prefix_cache_hits``): the hit rate over the run's prompt tokens and
the prompt tokens actually computed (queries - hits), tokens generated; aborts from the replicas' logs
("Request <id> aborted.": vLLM 0.32 does not count client aborts in ``request_success_total``).
From the client: time to first token per branch, wall time of the run. Half of each run's branches are
cancelled once they have ``--cancel-at`` tokens (what a judge's pruning does): each must show up as an
abort on its replica, and no request may be left running after the run.

Then one run through the affinity router and the same run sent straight to the replica it landed on:
their token counts (the router drops ``continuous_usage_stats``; counts come from the stream itself).
Last, the abort-latency caveat: a stream closed while its request is still in prefill (no token yet), through
the router and direct: seconds until the replica counts the abort.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import statistics
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from _common import write_report

from deepprune_agents.backends.embedded import EmbeddedServer
from deepprune_agents.backends.endpoints import EndpointPool
from deepprune_agents.backends.metrics import metric, scrape_samples, wait_until_idle
from deepprune_agents.backends.openai_stream import BranchRequest
from deepprune_agents.backends.router import RouterProcess
from deepprune_agents.engine import BranchPool
from deepprune_agents.settings import DEFAULT_SESSION_HEADER

QUERIES = "vllm:prefix_cache_queries_total"
HITS = "vllm:prefix_cache_hits_total"
PROMPT = "vllm:prompt_tokens_total"
GENERATED = "vllm:generation_tokens_total"
# vLLM 0.32 does not count a request the client aborted in request_success_total{finished_reason="abort"}
# (output_processor.abort_requests skips the finished-request stats); its log says so, with
# --enable-log-requests (which the embedded server passes): "Request <id> aborted."
ABORT_LINE = re.compile(rb"Request \S+ aborted\.")
POLICIES = {"affinity": "consistent_hash", "spreading": "round_robin"}
QUESTION = "Using the ledger above, which shelf holds the most crates? Think step by step."


class AbortLog:
    """Counts the "Request <id> aborted." lines the replicas log after ``mark()``: the abort evidence."""

    def __init__(self, servers: list[EmbeddedServer]) -> None:
        self.paths = [s.log_path for s in servers]
        self.offsets = [0] * len(servers)

    def mark(self) -> None:
        self.offsets = [p.stat().st_size if p is not None else 0 for p in self.paths]

    def count(self) -> int:
        total = 0
        for path, offset in zip(self.paths, self.offsets, strict=True):
            if path is not None:
                with path.open("rb") as fh:
                    fh.seek(offset)
                    total += len(ABORT_LINE.findall(fh.read()))
        return total


@dataclass
class RunFigures:
    mode: str
    run: int
    prompt_tokens: int  # one branch's prompt (the server's count)
    queries: int
    hits: int
    computed: int  # prompt tokens the replicas computed (queries - hits)
    replicas_used: int
    replica_prompt: list[int]  # prompt tokens each replica received during the run
    wall_s: float
    ttft_s: list[float] = field(default_factory=list)
    cancelled: int = 0
    aborted: int = 0
    left_running: int = 0
    tokens: int = 0  # what the client counted
    generated: int = 0  # what the replicas generated (vllm:generation_tokens_total)

    @property
    def hit_rate(self) -> float:
        return self.hits / self.queries if self.queries else 0.0


def ledger(run: int, lines: int) -> str:
    """A run's long context, different per run from its first token on (no run reuses another's cached
    blocks), and of the same token count for every run: every number has a fixed width."""
    rows = [f"Ledger {run:05d}. Every line names a shelf and its crates."]
    rows += [
        f"Line {k:04d}: shelf {(k * 7 + run) % 97:02d} holds {(k * 37 + run * 11) % 500:03d} crates."
        for k in range(lines)
    ]
    return "\n".join(rows)


def messages_for(run: int, lines: int) -> list[dict[str, str]]:
    return [{"role": "system", "content": ledger(run, lines)}, {"role": "user", "content": QUESTION}]


async def prompt_length(client: httpx.AsyncClient, root_url: str, model: str, messages: list[dict[str, str]]) -> int:
    resp = await client.post(root_url + "/tokenize", json={"model": model, "messages": messages})
    resp.raise_for_status()
    return int(resp.json()["count"])


async def lines_for(client: httpx.AsyncClient, server: EmbeddedServer, target: int) -> int:
    """The fewest ledger lines that make a prompt of at least ``target`` tokens (vLLM's /tokenize counts
    them). A prompt just past a multiple of the KV block size (128 on CPU) wastes least: only whole blocks
    are cached, so a branch that hits computes the tokens of the last partial block again."""

    async def count(lines: int) -> int:
        return await prompt_length(client, server.root_url, server.model, messages_for(0, lines))

    low, high = 1, 64
    while await count(high) < target:
        low, high = high, high * 2
    while low < high:  # binary search: the smallest line count whose prompt reaches the target
        mid = (low + high) // 2
        if await count(mid) >= target:
            high = mid
        else:
            low = mid + 1
    return high


async def counters(client: httpx.AsyncClient, servers: list[EmbeddedServer]) -> list[dict[str, float]]:
    out = []
    for s in servers:
        samples = await scrape_samples(s.root_url, client)
        out.append(
            {
                "queries": metric(samples, QUERIES),
                "hits": metric(samples, HITS),
                "prompt": metric(samples, PROMPT),
                "generated": metric(samples, GENERATED),
            }
        )
    return out


async def one_run(
    mode: str, run: int, base_url: str, servers: list[EmbeddedServer], client: httpx.AsyncClient, args: Any,
    lines: int, seed: int,
) -> tuple[RunFigures, BranchPool]:  # fmt: skip
    session = uuid.uuid4().hex
    model = servers[0].model
    messages = messages_for(run, lines)
    requests = [
        BranchRequest(
            model=model, messages=messages, max_tokens=args.max_tokens, temperature=0.8, seed=seed + k,
            session_id=session, session_header=DEFAULT_SESSION_HEADER, reasoning_format="none",
        )
        for k in range(args.n)
    ]  # fmt: skip
    before = await counters(client, servers)
    aborts = AbortLog(servers)
    aborts.mark()
    endpoints = EndpointPool([base_url], read_timeout_s=600.0)
    pool = BranchPool(endpoints, requests)
    t0 = time.perf_counter()
    pool.start()
    doomed = [b.id for b in pool.branches if b.id % 2 == 1] if args.cancel_at > 0 else []
    try:
        if doomed:
            await pool.wait_until(
                lambda: all(not pool.branches[i].alive or pool.branches[i].tokens >= args.cancel_at for i in doomed),
                timeout_s=600.0,
            )
            await pool.cancel(doomed, "pruned")
        await pool.wait_until(lambda: not pool.alive, timeout_s=600.0)
    finally:
        await pool.aclose()
        await endpoints.aclose()
    wall = time.perf_counter() - t0
    idle = [await wait_until_idle(s.root_url, 60.0, client=client) for s in servers]
    await asyncio.sleep(0.5)  # the replicas' log lines of the last aborts
    after = await counters(client, servers)
    delta = [{k: a[k] - b[k] for k in a} for a, b in zip(after, before, strict=True)]
    figures = RunFigures(
        mode=mode,
        run=run,
        prompt_tokens=round(sum(d["prompt"] for d in delta) / args.n),
        queries=round(sum(d["queries"] for d in delta)),
        hits=round(sum(d["hits"] for d in delta)),
        computed=round(sum(d["queries"] - d["hits"] for d in delta)),
        replicas_used=sum(d["prompt"] > 0 for d in delta),
        replica_prompt=[round(d["prompt"]) for d in delta],
        wall_s=wall,
        ttft_s=[b.t_first_token - b.t_start for b in pool.branches if b.t_first_token and b.t_start],
        cancelled=sum(b.status == "cancelled" for b in pool.branches),
        aborted=aborts.count(),
        generated=round(sum(d["generated"] for d in delta)),
        left_running=sum(not ok for ok in idle),
        tokens=sum(b.tokens for b in pool.branches),
    )
    failed = [b.error for b in pool.branches if b.status == "failed"]
    if failed:
        raise RuntimeError(f"{mode} run {run}: {len(failed)} branch(es) failed: {failed[0]}")
    return figures, pool


def summary(rows: list[RunFigures]) -> dict[str, Any]:
    """The figures of one mode over its runs (pure: unit-tested)."""
    queries = sum(r.queries for r in rows)
    ttft = [t for r in rows for t in r.ttft_s]
    return {
        "runs": len(rows),
        "hit_rate": sum(r.hits for r in rows) / queries if queries else 0.0,
        "prompt_tokens_per_branch": statistics.mean(r.prompt_tokens for r in rows),
        "computed_per_run": statistics.mean(r.computed for r in rows),
        "prompts_computed_per_run": statistics.mean(r.computed / r.prompt_tokens for r in rows if r.prompt_tokens),
        "replicas_per_run": statistics.mean(r.replicas_used for r in rows),
        "ttft_median_s": statistics.median(ttft) if ttft else None,
        "ttft_mean_s": statistics.mean(ttft) if ttft else None,
        "wall_mean_s": statistics.mean(r.wall_s for r in rows),
        "generated_per_run": statistics.mean(r.generated for r in rows),
        "cancelled": sum(r.cancelled for r in rows),
        "aborted": sum(r.aborted for r in rows),
        "left_running": sum(r.left_running for r in rows),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    servers = [EmbeddedServer(startup_timeout_s=900) for _ in range(2)]
    routers: dict[str, RouterProcess] = {}
    try:
        for s in servers:  # one after another: two vLLM start-ups at once thrash a small machine
            s.start()
        for mode, policy in POLICIES.items():
            routers[mode] = RouterProcess([s.root_url for s in servers], policy=policy).start()
        async with httpx.AsyncClient(timeout=60.0) as client:
            lines = await lines_for(client, servers[0], args.prompt_tokens)
            rows: list[RunFigures] = []
            for run in range(2 * args.runs):  # interleaved: affinity, spreading, affinity, ...
                mode = "affinity" if run % 2 == 0 else "spreading"
                figures, _ = await one_run(mode, run, routers[mode].base_url, servers, client, args, lines, 1000 * run)
                rows.append(figures)
                print(
                    f"{mode:9} run {run}: hit rate {figures.hit_rate:6.1%}, computed {figures.computed:5d} of "
                    f"{figures.queries:5d} prompt tokens on {figures.replicas_used} replica(s), wall "
                    f"{figures.wall_s:5.1f} s, TTFT median {statistics.median(figures.ttft_s):5.2f} s, "
                    f"cancelled {figures.cancelled} aborted {figures.aborted}, left running {figures.left_running}",
                    flush=True,
                )
            counts = await same_counts(client, servers, routers["affinity"], args, lines)
            aborts = await abort_latency(client, servers, routers["affinity"], lines, args.abort_reps)
    finally:
        for r in routers.values():
            r.stop()
        for s in servers:
            s.stop()
    report: dict[str, Any] = {
        "setup": {
            "replicas": 2, "n": args.n, "runs_per_mode": args.runs, "max_tokens": args.max_tokens,
            "cancel_at": args.cancel_at, "prompt_tokens_target": args.prompt_tokens, "policies": POLICIES,
            "server": servers[0].describe(),
        },
        "affinity": summary([r for r in rows if r.mode == "affinity"]),
        "spreading": summary([r for r in rows if r.mode == "spreading"]),
        "through_router_vs_direct": counts,
        "abort_latency_in_prefill_s": aborts,
        "runs": [{**asdict(r), "hit_rate": r.hit_rate} for r in rows],
    }  # fmt: skip
    return report


async def same_counts(
    client: httpx.AsyncClient, servers: list[EmbeddedServer], router: RouterProcess, args: Any, lines: int
) -> dict[str, Any]:
    """One run (no cancels) through the router, then the same requests straight to the replica it used."""
    no_cancel = argparse.Namespace(**{**vars(args), "cancel_at": 0})
    routed, routed_pool = await one_run("routed", 900, router.base_url, servers, client, no_cancel, lines, 777)
    home = max(range(len(servers)), key=lambda k: routed.replica_prompt[k])
    direct_pool = BranchPool(
        EndpointPool([servers[home].base_url], read_timeout_s=600.0), [b.request for b in routed_pool.branches]
    )
    direct_pool.start()
    try:
        await direct_pool.wait_until(lambda: not direct_pool.alive, timeout_s=600.0)
    finally:
        await direct_pool.aclose()
        await direct_pool.endpoints.aclose()
    routed_tokens = [b.tokens for b in routed_pool.branches]
    direct_tokens = [b.tokens for b in direct_pool.branches]
    total_r, total_d = sum(routed_tokens), sum(direct_tokens)
    return {
        "replica": servers[home].base_url,
        "routed_tokens": routed_tokens,
        "direct_tokens": direct_tokens,
        "relative_difference": abs(total_r - total_d) / total_d if total_d else None,
    }


async def abort_latency(
    client: httpx.AsyncClient, servers: list[EmbeddedServer], router: RouterProcess, lines: int, reps: int
) -> dict[str, list[float]]:
    """Seconds from closing a stream still in prefill (no token yet) to the abort on its replica, through
    the router and straight to a replica: each time a fresh prompt (nothing cached), closed 0.3 s after it
    was opened; the replicas' logs are polled every 20 ms for the abort."""
    out: dict[str, list[float]] = {"through_router": [], "direct": []}
    for rep in range(reps):
        for where, url in (("through_router", router.base_url), ("direct", servers[rep % 2].base_url)):
            req = BranchRequest(
                model=servers[0].model, messages=messages_for(5000 + 2 * rep + (where == "direct"), lines),
                max_tokens=256, seed=rep, session_id=uuid.uuid4().hex, session_header=DEFAULT_SESSION_HEADER,
            )  # fmt: skip
            aborts = AbortLog(servers)
            aborts.mark()
            endpoints = EndpointPool([url], read_timeout_s=600.0)
            try:  # the client goes away 0.3 s after sending, whether or not the response headers came back
                opening = asyncio.ensure_future(endpoints.open(req))
                done, _ = await asyncio.wait({opening}, timeout=0.3)
                closed = time.perf_counter()
                if done:
                    endpoint, stream = opening.result()
                    await stream.close()
                    endpoint.inflight -= 1
                else:
                    opening.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await opening
            finally:
                await endpoints.aclose()
            while not aborts.count():  # polled every 20 ms: the replica logs the abort as it happens
                if time.perf_counter() - closed > 300:
                    raise RuntimeError(f"{where}: the closed request was not aborted on its replica in 300 s")
                await asyncio.sleep(0.02)
            out[where].append(time.perf_counter() - closed)
            if not all([await wait_until_idle(s.root_url, 60.0, client=client) for s in servers]):
                raise RuntimeError(f"{where}: a request still ran on a replica after the abort")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per mode (default 3)")
    parser.add_argument("--n", type=int, default=16, help="branches per run (default 16)")
    parser.add_argument("--max-tokens", type=int, default=32, help="tokens per branch (default 32)")
    parser.add_argument("--cancel-at", type=int, default=8, help="cancel odd branches at this many tokens (0: none)")
    parser.add_argument("--prompt-tokens", type=int, default=2049, help="prompt length per branch (default 2049)")
    parser.add_argument("--abort-reps", type=int, default=2, help="abort-latency probes per path (default 2)")
    parser.add_argument("--json", default="bench/out/router.json", help="report path")
    args = parser.parse_args()
    report = asyncio.run(main_async(args))
    for mode in ("affinity", "spreading"):
        s = report[mode]
        print(
            f"{mode:9}: prefix-cache hit rate {s['hit_rate']:.1%} over the runs' prompt tokens; prompts computed per "
            f"run {s['prompts_computed_per_run']:.2f}; wall {s['wall_mean_s']:.1f} s; TTFT median "
            f"{s['ttft_median_s']:.2f} s; cancelled {s['cancelled']}, aborted {s['aborted']}; left running "
            f"{s['left_running']}"
        )
    c = report["through_router_vs_direct"]
    print(f"token counts through the router vs direct: {sum(c['routed_tokens'])} vs {sum(c['direct_tokens'])}")
    for where, values in report["abort_latency_in_prefill_s"].items():
        print(f"abort of a branch closed in prefill, {where}: " + ", ".join(f"{v:.2f} s" for v in values))
    write_report(report, args.json)


if __name__ == "__main__":
    main()
