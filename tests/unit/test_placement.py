"""Placement over several base URLs (issue 35): a run's branches on one endpoint, runs spread, spilling only
at the cap or on a refusal; and the run's session header on every branch request, resumed ones included."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator

import httpx2
import openai
import pytest

from deepprune_agents.backends.endpoints import EndpointPool, open_streams
from deepprune_agents.backends.openai_stream import BranchRequest, request_body
from deepprune_agents.backends.placement import affinity_order, place
from deepprune_agents.errors import ConfigError
from deepprune_agents.prompts import branch_requests
from deepprune_agents.settings import DeepPruneContext

URLS = ["http://a:8000/v1", "http://b:8000/v1", "http://c:8000/v1"]


def test_a_run_has_one_home_and_runs_spread() -> None:
    homes = Counter(place(f"run-{k}", URLS, [0, 0, 0], [True] * 3) for k in range(300))
    assert set(homes) == {0, 1, 2}
    assert min(homes.values()) > 60  # about a third each (rendezvous hashing is uniform)
    for k in range(20):  # the home does not move as the run's own branches load it (no cap)
        session = f"run-{k}"
        home = place(session, URLS, [0, 0, 0], [True] * 3)
        loaded = [0, 0, 0]
        for _ in range(16):
            assert place(session, URLS, loaded, [True] * 3) == home
            loaded[home] += 1


def test_the_order_depends_only_on_the_session_and_the_urls() -> None:
    order = affinity_order("run-7", URLS)
    assert sorted(order) == [0, 1, 2]
    assert affinity_order("run-7", URLS) == order  # deterministic: every process computes the same
    # the URLs listed in another order: the same endpoint comes first
    backwards = URLS[::-1]
    assert [backwards[i] for i in affinity_order("run-7", backwards)] == [URLS[i] for i in order]
    # removing an endpoint that was not the run's home leaves the home where it was
    others = [u for u in URLS if u != URLS[order[-1]]]
    assert others[affinity_order("run-7", others)[0]] == URLS[order[0]]


def test_spill_at_the_cap_and_on_refusal_in_the_runs_order() -> None:
    order = affinity_order("run-1", URLS)
    home, second, third = order
    loads = [0, 0, 0]
    loads[home] = 4
    assert place("run-1", URLS, loads, [True] * 3, cap=4) == second  # home full: the next in the order
    loads[second] = 4
    assert place("run-1", URLS, loads, [True] * 3, cap=4) == third
    loads[third] = 9
    assert place("run-1", URLS, loads, [True] * 3, cap=4) in (home, second)  # all full: the least loaded
    healthy = [True] * 3
    healthy[home] = False
    assert place("run-1", URLS, [0, 0, 0], healthy) == second  # the home refused: the next, not any
    assert place("run-1", URLS[:1], [99], [False]) == 0  # one base URL (a router): no placement of ours


def test_without_a_session_the_fewest_open_streams() -> None:
    assert place("", URLS, [3, 1, 2], [True] * 3) == 1
    assert place("", URLS, [1, 1, 1], [True] * 3) == 0  # ties: list order
    assert place("", URLS, [0, 1, 2], [False, True, True]) == 1


async def test_pool_keeps_a_run_on_its_home_and_counts_streams_process_wide() -> None:
    first = EndpointPool(URLS[:2])
    second = EndpointPool(URLS[:2], max_streams_per_endpoint=3)
    try:
        home = first.pick("run-x")
        assert all(first.pick("run-x") is home for _ in range(5))
        home.inflight += 3  # three streams of run-x open through the first pool
        assert open_streams(home.base_url) == 3
        # another pool of the same process (another run, or the same run resumed) sees them: at the cap,
        # run-x's next stream spills to the other endpoint
        spilled = second.pick("run-x")
        assert spilled.base_url != home.base_url
        home.inflight -= 3
        assert second.pick("run-x").base_url == home.base_url
    finally:
        await first.aclose()
        await second.aclose()
    assert open_streams(URLS[0]) == 0
    with pytest.raises(ConfigError, match="max_streams_per_endpoint"):
        EndpointPool(URLS, max_streams_per_endpoint=0)


async def test_refused_home_cools_down_and_the_retry_goes_to_the_next_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pool = EndpointPool(URLS[:2], retry_wait_s=0.0)
    home = pool.pick("run-y")
    other = next(e for e in pool.endpoints if e is not home)
    tried: list[str] = []

    async def refuse(req: BranchRequest) -> str:
        tried.append(home.base_url)
        raise openai.APIConnectionError(request=httpx2.Request("POST", home.base_url))

    async def accept(req: BranchRequest) -> str:
        tried.append(other.base_url)
        return "stream"

    monkeypatch.setattr(home, "open", refuse)
    monkeypatch.setattr(other, "open", accept)
    endpoint, stream = await pool.open(BranchRequest(model="m", session_id="run-y"))
    assert (endpoint, stream) == (other, "stream") and tried == [home.base_url, other.base_url]
    assert home.down_until > 0 and other.inflight == 1
    other.inflight -= 1
    await pool.aclose()


async def test_every_branch_request_carries_the_runs_session_header_and_no_per_branch_id() -> None:
    seen: list[httpx2.Request] = []

    async def sse() -> AsyncIterator[bytes]:
        yield b'data: {"choices":[{"delta":{"content":"x"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, content=sse(), headers={"content-type": "text/event-stream"})

    ctx = DeepPruneContext(n=3, base_urls=["http://router:30000/v1"])
    requests = branch_requests("What is 3 + 4?", "m", ctx, run_id="run-42")
    requests.append(requests[1].resumed("so far", 5))  # a resumed branch: the same session
    pool = EndpointPool(ctx.base_urls)
    endpoint = pool.endpoints[0]
    endpoint._new_http_client = lambda: httpx2.AsyncClient(transport=httpx2.MockTransport(handler))  # type: ignore[method-assign]
    for req in requests:
        _, stream = await pool.open(req)
        assert [c.text async for c in stream] == ["x"]
        await stream.close()
        endpoint.inflight -= 1
    await pool.aclose()
    assert len(seen) == 4
    assert {r.headers.get("x-session-id") for r in seen} == {"run-42"}
    # nothing else differs between the branches' headers (a per-branch id would split a run in a router)
    headers = {tuple(sorted((k, v) for k, v in r.headers.items() if k != "content-length")) for r in seen}
    assert len(headers) == 1
    assert json.loads(seen[-1].content)["continue_final_message"] is True

    quiet = branch_requests("q", "m", DeepPruneContext(n=1, session_header=""), run_id="run-42")[0]
    assert quiet.session_header == "" and quiet.session_id == "run-42"  # placement still knows the run


def test_no_continuous_usage_requested() -> None:
    """Routers drop ``continuous_usage_stats``: the counts come from chunks and the final usage chunk,
    the same way direct and through a router."""
    body = request_body(BranchRequest(model="m"))
    assert body["stream_options"] == {"include_usage": True}


def test_session_settings_are_validated() -> None:
    assert DeepPruneContext().session_header == "X-Session-ID"
    with pytest.raises(ConfigError, match="session_header"):
        DeepPruneContext(session_header="X Session")
    with pytest.raises(ConfigError, match="max_streams_per_endpoint"):
        DeepPruneContext(max_streams_per_endpoint=0)


def test_a_branch_restored_from_a_checkpoint_resumes_under_the_runs_session() -> None:
    """After a restart the graph rebuilds the requests with the checkpointed run id (graph.resume_run):
    the resumed branch continues after its text and still carries the run's session."""
    from deepprune_agents.engine import Branch
    from deepprune_agents.result import BranchRecord

    ctx = DeepPruneContext(n=2, max_tokens=100)
    request = branch_requests("What is 3 + 4?", "m", ctx, run_id="run-9")[1]
    record = BranchRecord(id=1, status="running", tokens=5, text="3 + 4 is")
    branch = Branch(id=1, request=request)
    branch.restore(record)
    assert branch.status == "pending" and branch.request.continuation
    assert (branch.request.session_id, branch.request.session_header) == ("run-9", "X-Session-ID")
