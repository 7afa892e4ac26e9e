"""``DeepPruneReasoner`` follows the Runnable conventions, on the real graph and the real vLLM server:
LCEL composition, ``with_config``, ``astream_events``, ``batch``/``abatch`` with ``max_concurrency``,
callbacks and tags, and a recursion limit that long runs never hit."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda

from deepprune_agents.graph import build_graph
from deepprune_agents.reasoner import DeepPruneReasoner
from deepprune_agents.result import DeepPruneResult
from deepprune_agents.settings import DeepPruneContext

QUESTIONS = [
    "Tom has 3 apples and buys 4 more. How many apples does he have now?",
    "A box holds 6 eggs. How many eggs are in 2 boxes?",
    "Sara had 10 dollars and spent 4. How many dollars are left?",
]


def make(server: Any, **kw: Any) -> DeepPruneReasoner:
    base: dict[str, Any] = {
        "base_urls": [server.base_url],
        "model": server.model,
        "n": 4,
        "max_tokens": 64,
        "judge": "numbers",
    }
    base.update(kw)
    return DeepPruneReasoner(**base)


class Recorder(BaseCallbackHandler):
    """Records what a tracer would see: chain starts/ends with tags, and our custom events."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.starts: dict[UUID, dict[str, Any]] = {}
        self.ends: dict[UUID, tuple[float, Any]] = {}
        self.custom: list[tuple[str, dict[str, Any], UUID, list[str]]] = []

    def on_chain_start(
        self, serialized: dict[str, Any] | None, inputs: Any, *, run_id: UUID, tags: list[str] | None = None, **kw: Any
    ) -> None:
        with self.lock:
            self.starts[run_id] = {"name": kw.get("name"), "tags": tags or [], "t": time.monotonic()}

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kw: Any) -> None:
        with self.lock:
            self.ends[run_id] = (time.monotonic(), outputs)

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, tags: list[str] | None = None, **kw: Any) -> None:
        with self.lock:
            self.custom.append((name, data, run_id, tags or []))

    def reasoner_runs(self) -> list[tuple[float, float, UUID]]:
        """(start, end, run id) of every DeepPruneReasoner run, in start order."""
        return sorted(
            (s["t"], self.ends[rid][0], rid) for rid, s in self.starts.items() if s["name"] == "DeepPruneReasoner"
        )


def overlaps(runs: list[tuple[float, float, UUID]]) -> bool:
    return any(b[0] < a[1] for a, b in itertools.pairwise(runs))


def test_lcel_chain_with_config_tags_and_callbacks(vllm_server: Any) -> None:
    prompt = ChatPromptTemplate.from_messages([("human", "Solve this problem: {problem}")])
    reasoner = make(vllm_server, n=8).with_config(configurable={"n": 3})
    results: list[DeepPruneResult] = []

    def answer_of(result: DeepPruneResult) -> str | None:
        results.append(result)
        return result.answer

    chain = prompt | reasoner | RunnableLambda(answer_of)
    recorder = Recorder()
    answer = chain.invoke({"problem": QUESTIONS[0]}, config={"tags": ["my-tag"], "callbacks": [recorder]})

    (result,) = results
    assert answer == result.answer
    assert result.n == 3 and len(result.branches) == 3  # with_config's configurable overrides n=8
    assert result.question == f"Solve this problem: {QUESTIONS[0]}"  # read from the prompt's human message
    ((_, _, rid),) = recorder.reasoner_runs()
    assert "my-tag" in recorder.starts[rid]["tags"]
    assert recorder.ends[rid][1].answer == answer  # the handler saw the reasoner's output
    ours = [(data, tags) for name, data, run_id, tags in recorder.custom if name == "deepprune" and run_id == rid]
    kinds = [data["event"] for data, _ in ours]
    assert kinds[0] == "start" and kinds[-1] == "result" and "judge" in kinds
    assert all("my-tag" in tags for _, tags in ours)


async def test_astream_events_carries_progress_as_custom_events(vllm_server: Any) -> None:
    reasoner = make(vllm_server)
    custom: list[dict[str, Any]] = []
    output = None
    async for event in reasoner.astream_events(QUESTIONS[1], version="v2"):
        if event["event"] == "on_custom_event":
            assert event["name"] == "deepprune"
            custom.append(dict(event["data"]))
        elif event["event"] == "on_chain_end" and event["name"] == "DeepPruneReasoner":
            output = event["data"]["output"]
    assert isinstance(output, DeepPruneResult)
    kinds = [e["event"] for e in custom]
    assert kinds[0] == "start" and kinds[-1] == "result" and "tokens" in kinds and "judge" in kinds
    assert custom[-1]["answer"] == output.answer
    assert custom[-1]["tokens_generated"] == output.tokens_generated
    # The token deltas add up to the branches' texts.
    texts: dict[int, str] = {}
    for e in custom:
        for b in e.get("branches", []) if e["event"] == "tokens" else []:
            texts[b["id"]] = texts.get(b["id"], "") + b["delta"]
    assert texts == {b.id: b.text for b in output.branches}


def test_batch_honours_max_concurrency(vllm_server: Any) -> None:
    reasoner = make(vllm_server, n=2, max_tokens=48)
    recorder = Recorder()
    results = reasoner.batch(QUESTIONS[:2], config={"max_concurrency": 1, "callbacks": [recorder]})
    assert [r.question for r in results] == QUESTIONS[:2]
    runs = recorder.reasoner_runs()
    assert len(runs) == 2 and not overlaps(runs)


async def test_abatch_runs_concurrently_up_to_max_concurrency(vllm_server: Any) -> None:
    reasoner = make(vllm_server, n=2, max_tokens=48)
    recorder = Recorder()
    results = await reasoner.abatch(QUESTIONS, config={"max_concurrency": 2, "callbacks": [recorder]})
    assert [r.question for r in results] == QUESTIONS
    runs = recorder.reasoner_runs()
    assert len(runs) == 3 and overlaps(runs)
    # Never more than two at once: at every start, count the runs in flight.
    assert max(sum(s <= t < e for s, e, _ in runs) for t, _, _ in runs) <= 2


async def test_long_runs_do_not_hit_the_default_recursion_limit(vllm_server: Any) -> None:
    # judge_every=1: a judge round (one graph super-step) per new token -> far more than LangGraph's default
    # 25 steps, even when the caller passes a small recursion_limit (an agent's limit flows into its tools).
    question = "List the multiples of 7 from 7 to 84, one per line, then add them all up."
    settings: dict[str, Any] = {
        "n": 2, "max_tokens": 128, "policy": "periodic", "judge_every": 1, "stop_when_decided": False,
    }  # fmt: skip
    result = await make(vllm_server, **settings).ainvoke(question, config={"recursion_limit": 10})
    # super-steps = fan_out + judge rounds + vote
    assert result.judge_rounds + 2 > 25, result.judge_rounds
    graph_ctx = DeepPruneContext(base_urls=[vllm_server.base_url], model=vllm_server.model, judge="numbers", **settings)
    final = await build_graph().ainvoke({"question": question}, context=graph_ctx)
    assert final["result"]["judge_rounds"] + 2 > 25, final["result"]["judge_rounds"]
