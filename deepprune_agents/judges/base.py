"""The judge protocol: P(two partial traces reach the same final answer).

Batched and async because every real judge is either a network call (an LLM judge on vLLM) or a
batched forward pass (embedding / trained cross-encoder): scoring one pair at a time would make the
judge the bottleneck of the judge node.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from deepprune_agents.traces import PartialTrace

TracePair = tuple[PartialTrace, PartialTrace]


@runtime_checkable
class Judge(Protocol):
    """Anything with a ``name`` and an async batched ``ascore``.

    ``ascore`` returns one probability in [0, 1] per pair, in order. It must not mutate the traces,
    and should be symmetric for a well-behaved judge (callers do not rely on it).
    """

    name: str

    async def ascore(self, pairs: Sequence[TracePair]) -> list[float]: ...


@runtime_checkable
class RunAwareJudge(Judge, Protocol):
    """A judge that also reads the run the pairs come from (``judges/run_context.py`` says why).

    ``run`` holds every branch of the run that the policy can judge so far (its judge input: the same
    truncation as the pairs'), the pairs' own branches included. The policies pass it through
    ``call_judge``; any other caller of plain ``ascore`` gets the judge's documented fallback.
    """

    async def ascore_in_run(self, pairs: Sequence[TracePair], run: Sequence[PartialTrace]) -> list[float]: ...
