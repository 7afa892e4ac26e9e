"""The StateGraph: fan_out -> judge (loops while branches run) -> vote.

Branch streams are owned by a run-scoped ``BranchPool`` (see engine.py) because LangGraph cannot cancel
one running node from another. The ``judge`` node is a real node that runs periodically: it waits until
the policy says a round is due (streaming branch progress as custom events meanwhile), runs the policy on
the branches' views, cancels what it prunes, and writes the branches' records (``BranchRecord`` as JSON)
into the state. Branches keep generating while the judge thinks, so no branch ever waits on it, and no
token is generated twice.

The nodes stay thin: ``fan_out`` validates the question and starts the run, ``judge`` runs one round,
``vote`` votes. Building the run (judge, policy, endpoints, requests, pool), and rebuilding it from a
checkpoint after a restart, happens in ``run_builder``, which the nodes call.

Custom stream events (``stream_mode="custom"``), all dicts with an ``event`` key:
``start``, ``tokens`` (per-branch deltas), ``cluster``/``merge`` (placement), ``judge`` (a round:
cancelled ids, clusters), ``result``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Annotated, Any, Literal, NotRequired

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

# pydantic builds Studio's input form from the state schema, and on Python < 3.12 only from this TypedDict.
from typing_extensions import TypedDict

from deepprune_agents.engine import LiveRun, RunRegistry
from deepprune_agents.errors import AllBranchesFailedError, ConfigError, JudgeError
from deepprune_agents.judges.base import Judge
from deepprune_agents.pruning import PruningPolicy
from deepprune_agents.pruning.types import BranchView, Decision
from deepprune_agents.result import BranchRecordDict, DeepPruneResult, DeepPruneResultDict
from deepprune_agents.run_builder import live_run, start_run
from deepprune_agents.settings import DeepPruneContext

RECURSION_LIMIT = 100_000  # one super-step per judge round: long runs must never hit LangGraph's default
JUDGE_ERROR_BACKOFF_S = 1.0
MAX_JUDGE_ERRORS = 3
OFF_LOOP_MIN_BRANCHES = 64  # from this many branches a judge round runs off the event loop (policy_step)


class InputState(TypedDict):
    """What a caller (or Studio) provides: a ``question``, or ``messages`` whose last human message is the
    question (so the graph drops into a ``MessagesState`` agent graph as a subgraph; the answer is then
    appended to ``messages`` as an AI message)."""

    question: NotRequired[str]
    messages: NotRequired[Annotated[list[AnyMessage], add_messages]]
    run_id: NotRequired[str]
    # OpenAI chat messages sent to every branch as they are (earlier turns, images): the proxy's input.
    conversation: NotRequired[list[dict[str, Any]]]


class State(InputState, total=False):
    model: str
    branches: list[BranchRecordDict]
    clusters: list[list[int]]
    rounds: int
    judge_calls: int
    pairs_scored: int
    judge_errors: list[str]
    deadline_hit: bool
    started_at: float
    policy_state: dict[str, Any]
    result: DeepPruneResultDict


class OutputState(TypedDict):
    result: DeepPruneResultDict
    messages: NotRequired[Annotated[list[AnyMessage], add_messages]]


def question_from_messages(messages: Any) -> str | None:
    """The last human message's text (the last message's when none is human), or None without messages.
    Accepts message objects and their dict form ({"role"/"type": ..., "content": ...}) as Studio sends."""
    if not isinstance(messages, list) or not messages:
        return None
    from langchain_core.messages import convert_to_messages

    try:
        converted: list[BaseMessage] = convert_to_messages(messages)
    except (ValueError, TypeError, NotImplementedError) as exc:
        raise ConfigError(f"cannot read the messages: {exc}. Pass chat messages or a 'question'.") from exc
    humans = [m for m in converted if m.type == "human"] or converted
    return humans[-1].text


def context_of(runtime: Runtime[DeepPruneContext] | Runtime[Any]) -> DeepPruneContext:
    """Context may arrive as the dataclass, a dict (Studio, JSON configs) or not at all."""
    ctx = DeepPruneContext.from_any(runtime.context)
    ctx.validate()
    return ctx


def validate_question(question: Any, ctx: DeepPruneContext) -> str:
    if isinstance(question, bytes):
        try:
            question = question.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError("the question is not valid UTF-8: decode it before asking.") from exc
    if not isinstance(question, str):
        raise ConfigError(f"the question must be a string, not {type(question).__name__}.")
    # Lone surrogates cannot be sent as UTF-8; replace them rather than fail deep inside the HTTP client.
    question = question.encode("utf-8", "replace").decode("utf-8").strip()
    if not question:
        raise ConfigError("the question is empty: pass the problem text to solve.")
    if len(question) > ctx.max_question_chars:
        raise ConfigError(
            f"the question has {len(question)} characters, over max_question_chars={ctx.max_question_chars}: "
            "shorten it or raise the limit."
        )
    return question


async def fan_out(state: State, runtime: Runtime[DeepPruneContext], runs: RunRegistry) -> State:
    """Validate the question and start the run (``run_builder.start_run``: N branch streams)."""
    ctx = context_of(runtime)
    question = state.get("question")
    if question is None:
        question = question_from_messages(state.get("conversation") or state.get("messages"))
    if question is None:
        raise ConfigError("no question: pass 'question', or 'messages' ending in the human message to answer.")
    question = validate_question(question, ctx)
    started = await start_run(
        question, state.get("run_id") or uuid.uuid4().hex, ctx, runs, conversation=state.get("conversation")
    )
    run = started.run
    runtime.stream_writer(
        {
            "event": "start",
            "run_id": run.run_id,
            "n": ctx.n,
            "model": started.model,
            "endpoints": started.urls,
            "policy": run.policy.name,
            "judge": run.judge.name,
        }
    )
    if len(started.first_wave) < ctx.n:
        runtime.stream_writer({"event": "launch", "branches": started.first_wave, "why": "first wave"})
    return {
        "question": question,
        "run_id": run.run_id,
        "model": started.model,
        "branches": run.pool.dumps(),
        "clusters": [],
        "rounds": 0,
        "judge_calls": 0,
        "pairs_scored": 0,
        "judge_errors": [started.warm_error] if started.warm_error else [],
        "deadline_hit": False,
        "started_at": time.time(),
    }


def _progress_events(run: LiveRun) -> dict[str, Any] | None:
    """Text deltas since the last event, per branch that moved (thinking and content as generated)."""
    moved = []
    for b in run.pool.branches:
        text = b.trace_text
        sent = run.sent_chars.get(b.id, 0)
        if len(text) != sent or run.sent_status.get(b.id) != b.status:
            event: dict[str, Any] = {"id": b.id, "tokens": b.tokens, "status": b.status, "delta": text[sent:]}
            if b.status == "finished":  # its answer is known now (None: no extractable answer)
                event["answer"] = b.answer
            moved.append(event)
            run.sent_chars[b.id] = len(text)
            run.sent_status[b.id] = b.status
    return {"event": "tokens", "branches": moved} if moved else None


async def policy_step(policy: PruningPolicy, views: list[BranchView], judge: Judge) -> Decision:
    """One policy round, off the event loop when it is large and the judge scores locally.

    Placing hundreds of branches costs the policy seconds of CPU (paper policy, numbers judge: ~0.8 s at
    512 branches, ~3 s at 2,048); on the loop that stalls every stream and the caller for as long. So from
    ``OFF_LOOP_MIN_BRANCHES`` branches on, a judge with a blocking scorer (``score_sync``: numbers,
    embedding, trained, blend, oracle, transformers) runs the round on a thread with its own loop; the event
    loop then waits at most a GIL switch interval (5 ms) at a time. A judge that talks to a server through
    an async client bound to this loop (``llm``, or a registered judge without ``score_sync``) stays here.
    The round reads only ``views`` (snapshots) and the policy's own state, which nothing else touches
    while the judge node awaits it."""
    if len(views) < OFF_LOOP_MIN_BRANCHES or not callable(getattr(judge, "score_sync", None)):
        return await policy.step(views, judge)
    return await asyncio.to_thread(asyncio.run, policy.step(views, judge))


def gave_up_judging(judge_errors: Sequence[str]) -> bool:
    """After ``MAX_JUDGE_ERRORS`` judge failures a run stops asking its judge: it degrades to plain cons@N."""
    return len(judge_errors) >= MAX_JUDGE_ERRORS


async def judge(state: State, runtime: Runtime[DeepPruneContext], runs: RunRegistry) -> State:
    """One judge round: wait until due, run the policy, cancel what it prunes, record the branches."""
    writer = runtime.stream_writer
    run = await live_run(state, context_of(runtime), writer, runs)
    run.touch()
    judge_errors = list(state.get("judge_errors", []))
    judging = not gave_up_judging(judge_errors)

    def due() -> bool:
        return judging and time.monotonic() >= run.judge_retry_at and run.policy.ready(run.pool.views())

    def tick() -> None:
        run.touch()
        event = _progress_events(run)
        if event:
            writer(event)

    in_time = await run.pool.wait_until(due, timeout_s=max(0.0, run.deadline - time.monotonic()), on_tick=tick)
    tick()
    deadline_hit = state.get("deadline_hit", False)
    if not in_time:
        deadline_hit = True
        await run.pool.cancel([b.id for b in run.pool.branches if b.alive], "deadline")
    decision = Decision()
    if judging:
        try:
            decision = await policy_step(run.policy, await run.pool.views_async(), run.judge)
        except JudgeError as exc:
            judge_errors.append(str(exc))
            run.judge_retry_at = time.monotonic() + JUDGE_ERROR_BACKOFF_S
            writer({"event": "judge_error", "error": str(exc)})
    await run.pool.cancel(decision.cancel, "pruned")
    await run.pool.cancel(decision.decided, "vote-decided")
    run.pool.launch(decision.launch)  # the policy's ``launch`` event (in decision.events) says why
    run.touch()
    for event in decision.events:
        writer(event)
    exported = run.policy.export()
    writer(
        {
            "event": "judge",
            "round": state.get("rounds", 0) + 1,
            "cancelled": decision.cancel,
            "clusters": exported.get("clusters", []),
            "pairs_scored": decision.pairs_scored,
            "vote_decided": decision.decided,
        }
    )
    return {
        "branches": await run.pool.dumps_async(),
        "clusters": exported.get("clusters", []),
        "rounds": state.get("rounds", 0) + 1,
        "judge_calls": state.get("judge_calls", 0) + decision.judge_calls,
        "pairs_scored": state.get("pairs_scored", 0) + decision.pairs_scored,
        "judge_errors": judge_errors,
        "deadline_hit": deadline_hit,
        "policy_state": exported,
    }


def after_judge(state: State, runs: RunRegistry) -> Literal["judge", "vote"]:
    """Another round while a branch runs; and once more when none does but some are unstarted and the policy
    is due: the last running branches may have finished after the round read them as running, and only a
    round that sees their answers can start the next wave (staged fan-out) instead of voting too early."""
    run = runs.get(state.get("run_id", ""))
    if run is None:
        return "vote"
    if run.pool.alive:
        return "judge"
    if state.get("deadline_hit") or gave_up_judging(state.get("judge_errors", [])):
        return "vote"  # no round would run the policy: vote over what ran
    views = run.pool.views()
    return "judge" if any(v.unstarted for v in views) and run.policy.ready(views) else "vote"


async def vote(state: State, runtime: Runtime[DeepPruneContext], runs: RunRegistry) -> State:
    """Vote over the survivors, close the run, publish the result."""
    run = await live_run(state, context_of(runtime), runtime.stream_writer, runs)
    try:
        views = run.pool.views()
        outcome = run.policy.vote(views)
        records = run.pool.records()
        if all(r.status == "failed" for r in records):
            errors = sorted({str(r.error) for r in records})
            raise AllBranchesFailedError(
                f"all {len(records)} branches failed; first error: {errors[0]}",
                branches=[r.dump() for r in records],
            )
        exported = run.policy.export()
        clusters: list[list[int]] = exported.get("clusters", [])
        cluster_of = {b: c for c, members in enumerate(clusters) for b in members}
        voters = set(outcome.voters)
        result = DeepPruneResult.from_branches(
            [r.model_copy(update={"cluster": cluster_of.get(r.id), "voted": r.id in voters}) for r in records],
            question=state["question"],
            answer=outcome.answer,
            votes=outcome.counts,
            clusters=clusters,
            policy=run.policy.name,
            judge=run.judge.name,
            model=state.get("model", ""),
            wall_time_s=time.perf_counter() - run.started_at,
            judge_rounds=state.get("rounds", 0),
            judge_calls=state.get("judge_calls", 0),
            pairs_scored=state.get("pairs_scored", 0),
            judge_errors=state.get("judge_errors", []),
            fallback=outcome.fallback or exported.get("fallback"),
            deadline_hit=state.get("deadline_hit", False),
        )
    finally:
        await run.aclose("done")
    runtime.stream_writer(
        {
            "event": "result",
            "answer": result.answer,
            "votes": result.votes,
            "tokens_generated": result.tokens_generated,
            "token_saving": result.token_saving,
        }
    )
    update: State = {"result": result.dump()}
    if state.get("messages"):  # a messages caller (an agent graph) reads the answer as the next AI message
        content = (
            result.answer if result.answer is not None else f"No answer: none of the {result.n} branches stated one."
        )
        update["messages"] = [AIMessage(content=content, name="deepprune")]
    return update


class _Nodes:
    """The graph's nodes, bound to the registry of the graph that owns them (no process-global runs)."""

    def __init__(self, runs: RunRegistry) -> None:
        self.runs = runs

    async def fan_out(self, state: State, runtime: Runtime[DeepPruneContext]) -> State:
        """Validate, resolve the model, and start N branch streams."""
        return await fan_out(state, runtime, self.runs)

    async def judge(self, state: State, runtime: Runtime[DeepPruneContext]) -> State:
        """One judge round: wait until due, snapshot, run the policy, cancel what it prunes."""
        return await judge(state, runtime, self.runs)

    def after_judge(self, state: State) -> Literal["judge", "vote"]:
        return after_judge(state, self.runs)

    async def vote(self, state: State, runtime: Runtime[DeepPruneContext]) -> State:
        """Vote over the survivors, close the run, publish the result."""
        return await vote(state, runtime, self.runs)


def build_graph(
    *, checkpointer: Any = None, name: str = "deepprune", runs: RunRegistry | None = None
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Compile the DeepPrune graph. Studio's ``langgraph.json`` uses it without a checkpointer.

    ``runs``: where this graph keeps its live runs (a new registry when None). Pass your own to close the
    graph's open runs yourself (``DeepPruneReasoner`` does, in a ``finally``)."""
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(
        State, context_schema=DeepPruneContext, input_schema=InputState, output_schema=OutputState
    )
    nodes = _Nodes(runs if runs is not None else RunRegistry())
    builder.add_node("fan_out", nodes.fan_out)
    builder.add_node("judge", nodes.judge)
    builder.add_node("vote", nodes.vote)
    builder.add_edge(START, "fan_out")
    builder.add_edge("fan_out", "judge")
    builder.add_conditional_edges("judge", nodes.after_judge, {"judge": "judge", "vote": "vote"})
    builder.add_edge("vote", END)
    graph = builder.compile(checkpointer=checkpointer, name=name)
    return graph.with_config({"recursion_limit": RECURSION_LIMIT})
