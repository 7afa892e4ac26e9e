"""The proxy's run slots (a cap, then a bounded FIFO queue with a timeout) and its client-facing errors:
pure logic, on one event loop, no sockets."""

from __future__ import annotations

import asyncio

import pytest

from deepprune_agents.errors import AllBranchesFailedError, BackendUnavailableError, ModelNotFoundError
from deepprune_agents.server.errors import ShuttingDown, first_sentence, from_run_error, upstream_rejected
from deepprune_agents.server.queue import QueueClosed, QueueFull, QueueTimeout, RunSlots


async def test_slots_are_handed_on_in_arrival_order_and_a_full_queue_refuses() -> None:
    slots = RunSlots(limit=1, size=2, timeout_s=5)
    assert await slots.acquire() == 0.0
    order: list[int] = []

    async def wait(i: int) -> None:
        await slots.acquire()
        order.append(i)

    waiters = [asyncio.ensure_future(wait(i)) for i in range(2)]
    await asyncio.sleep(0.01)
    assert slots.waiting == 2 and slots.full()
    with pytest.raises(QueueFull):
        await slots.acquire()
    slots.release()
    await asyncio.sleep(0.01)
    assert order == [0] and slots.active == 1  # the slot passed on, not freed
    slots.release()
    await asyncio.gather(*waiters)
    assert order == [0, 1]
    slots.release()
    assert slots.active == 0 and not slots.full()


async def test_a_waiter_times_out_or_leaves_without_losing_a_slot() -> None:
    slots = RunSlots(limit=1, size=4, timeout_s=0.05)
    await slots.acquire()
    with pytest.raises(QueueTimeout):
        await slots.acquire()
    leaving = asyncio.ensure_future(slots.acquire())
    await asyncio.sleep(0.01)
    slots.release()  # handed to the waiter, which is cancelled before it runs: the slot must come back
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert slots.active == 0 and slots.waiting == 0


async def test_closing_tells_every_waiter_at_once() -> None:
    slots = RunSlots(limit=1, size=4, timeout_s=5)
    await slots.acquire()
    waiter = asyncio.ensure_future(slots.acquire())
    await asyncio.sleep(0.01)
    slots.close()
    with pytest.raises(QueueClosed):
        await waiter
    with pytest.raises(QueueClosed):
        await slots.acquire()


def test_first_sentence_keeps_the_finding_and_drops_the_advice() -> None:
    text = "cannot reach upstream #0 (ConnectError: [Errno 111] refused. x). Start a server (`deepprune serve`)."
    assert first_sentence(text) == "cannot reach upstream #0 (ConnectError: [Errno 111] refused. x)"
    assert first_sentence("no full stop") == "no full stop"


def test_run_errors_map_to_statuses_and_codes_without_operator_advice() -> None:
    down = from_run_error(BackendUnavailableError("cannot reach u (x). Start a server or fix --base-url."), model="m")
    assert (down.status, down.code) == (503, "upstream_unavailable") and "--base-url" not in down.message
    assert from_run_error(ModelNotFoundError("u does not serve 'm'. Pass --model"), model="m").code == "model_not_found"
    rejected = [{"error": "u rejected the request (400: image input is not supported)."}] * 2
    failed = AllBranchesFailedError("all 2 branches failed; first error: u rejected the request (400: no).", rejected)  # type: ignore[arg-type]
    assert upstream_rejected(failed) == 400
    assert from_run_error(failed, model="m").status == 502
    images = from_run_error(failed, model="m", has_images=True)
    assert (images.status, images.param) == (400, "messages") and "images" in images.message
    stop = from_run_error(ShuttingDown("the server is shutting down."), model="m")
    assert (stop.status, stop.code) == (503, "server_shutting_down")
    assert from_run_error(RuntimeError("secret internals"), model="m").message.startswith("the proxy failed")
