"""Where a branch's stream goes when the client is given several base URLs and no router: the pure rule.

All N branches of a run share one prompt (system prompt, agent context, question), so they belong on one
replica, where vLLM's prefix cache computes that prompt once; spread over k replicas, it is computed k times.
Different runs should spread. The rule (``place``):

* one base URL (a single server, or a router such as vllm-router): no placement of our own;
* a branch of a run (a session id) goes to the run's *home*: the first endpoint in the run's rendezvous-hash
  order (highest ``blake2b(session, url)``) that is healthy and below the per-endpoint cap. The order depends
  only on the session id and the URLs, so every process that opens the run's branches (stream workers,
  several stateless proxies in front of the same replicas) finds the same home without sharing state, and
  different runs land on different endpoints as the hash spreads them;
* it spills to the next endpoint in that order only when the home refused a connection (cooling down) or
  holds ``cap`` of this process' streams; with every endpoint at its cap, the least loaded takes it;
* a request without a session (``deepprune traces generate`` and other one-off callers) goes to the endpoint
  with the fewest open streams, as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def affinity_order(session: str, urls: Sequence[str]) -> list[int]:
    """Indices of ``urls``, the session's preferred endpoint first (rendezvous / highest-random-weight hashing).

    Removing an endpoint moves only the runs that lived there; the others keep their home."""

    def weight(url: str) -> int:
        digest = hashlib.blake2b(f"{session}\x00{url}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big")

    return sorted(range(len(urls)), key=lambda i: weight(urls[i]), reverse=True)


def place(
    session: str,
    urls: Sequence[str],
    loads: Sequence[int],
    healthy: Sequence[bool],
    cap: int | None = None,
) -> int:
    """The index of the endpoint a new stream of ``session`` opens on.

    ``loads``: open streams per endpoint (this process'); ``healthy``: False while an endpoint cools down
    after refusing; ``cap``: streams per endpoint before a run spills (None: no cap)."""
    if not urls:
        raise ValueError("no endpoint to place a stream on")
    if len(urls) == 1:
        return 0
    candidates = [i for i in range(len(urls)) if healthy[i]] or list(range(len(urls)))
    if not session:
        return min(candidates, key=lambda i: (loads[i], i))
    ordered = [i for i in affinity_order(session, urls) if i in candidates]
    for i in ordered:
        if cap is None or loads[i] < cap:
            return i
    return min(ordered, key=lambda i: loads[i])  # all at their cap: the least loaded (min keeps hash order on ties)
