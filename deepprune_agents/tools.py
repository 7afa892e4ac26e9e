"""``think_hard``: DeepPrune as a LangChain tool an agent calls for its hard sub-questions.

An agent's own model answers most steps directly; for the few where one sample is likely to be wrong
(multi-step arithmetic, logic), it hands the sub-question to ``think_hard``, which samples N branches,
prunes redundant ones with a judge and votes. The tool returns ``content_and_artifact``: the model reads
a short text (the voted answer and one line of pruning stats — a full result would flood its context),
while the full ``DeepPruneResult`` dict rides along as the ``ToolMessage.artifact`` for the application,
tracing and tests.

``think_hard`` is a ready instance that reads endpoints from the environment (``DEEPPRUNE_BASE_URLS``,
``DEEPPRUNE_MODEL``) or starts the embedded vLLM server on its first call — never at import.
``make_think_hard_tool`` binds your own endpoint, model, judge and budget.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForToolRun, CallbackManagerForToolRun
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import patch_config
from langchain_core.tools import ArgsSchema, BaseTool, ToolException
from pydantic import BaseModel, Field, PrivateAttr, SkipValidation

from deepprune_agents.answers import AnswerPattern
from deepprune_agents.errors import ConfigError, DeepPruneError
from deepprune_agents.reasoner import DeepPruneReasoner
from deepprune_agents.result import DeepPruneResult
from deepprune_agents.settings import DeepPruneContext

__all__ = [
    "DEFAULT_DESCRIPTION",
    "ThinkHardInput",
    "ThinkHardTool",
    "check_judge",
    "format_content",
    "make_think_hard_tool",
    "reasoning_lines",
    "think_hard",
]

DEFAULT_DESCRIPTION = (
    "Solve a hard, self-contained reasoning question (multi-step arithmetic, math word problems, logic) "
    "by sampling several independent chains of thought in parallel, stopping redundant ones early and "
    "voting on the final answer. Slower than answering directly: use it only for sub-questions where a "
    "single attempt is likely to be wrong. Put every number and fact the question needs into `question`. "
    "Returns the voted answer and a one-line summary of the vote."
)


# Derived from the settings default, so the model is never told a default the tool does not have.
_JUDGE_DESCRIPTION = (
    "Judge that reads the branches' openings: 'numbers' (number overlap; under the default policy it decides "
    "when to start the remaining branches), 'constant' (no judging), 'embedding', 'trained' or 'llm'. "
    f"Default: the tool's setting ('{DeepPruneContext.judge}' unless the tool was configured otherwise)."
)


class ThinkHardInput(BaseModel):
    """Arguments a model fills in. Only ``question`` is required: the others override the tool's defaults
    for one call, so a model can spend more (``n``, ``budget``) on a question it finds harder."""

    question: str = Field(
        description="The self-contained question to solve, with every number and fact it needs.",
        min_length=1,
    )
    n: int | None = Field(
        default=None,
        ge=1,
        description="Number of parallel reasoning branches (more is more reliable but slower). "
        "Default: the tool's setting.",
    )
    budget: int | None = Field(
        default=None,
        ge=1,
        description="Maximum tokens EACH branch may generate (a per-branch cap, not a total for the call). "
        "Default: the tool's setting.",
    )
    judge: str | None = Field(
        default=None,
        description=_JUDGE_DESCRIPTION,
    )


def check_judge(name: str) -> None:
    """Unknown judge names fail before any branch starts (the graph would only notice after fan-out)."""
    from deepprune_agents.judges import known_judges

    if name not in known_judges():
        raise ConfigError(
            f"unknown judge {name!r}: use one of {', '.join(known_judges())} "
            "(or register yours with deepprune_agents.judges.register_judge)."
        )


def _shorten(text: str, limit: int, *, tail: bool = False) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return "…" + text[-limit:] if tail else text[:limit] + "…"


def reasoning_lines(result: DeepPruneResult, summary_chars: int, thinking_chars: int) -> list[str]:
    """For a reasoning model: a short summary (the final content of a branch that voted for the answer,
    which such models write as a summary of their thinking; the end of the thinking when it has none) and,
    only if asked, the start of its thinking. Nothing for a model that does not think."""
    voters = [b for b in result.branches if b.voted and b.reasoning and b.answer == result.answer]
    if not voters:
        return []
    b, lines = voters[0], []
    if summary_chars > 0:
        summary = _shorten(b.text, summary_chars) if b.text.strip() else _shorten(b.reasoning, summary_chars, tail=True)
        lines.append(f"Summary: {summary}")
    if thinking_chars > 0:
        lines.append(f"Thinking: {_shorten(b.reasoning, thinking_chars)}")
    return lines


def format_content(result: DeepPruneResult, *, summary_chars: int = 400, thinking_chars: int = 0) -> str:
    """What the calling model reads: the answer, for a reasoning model a short summary, then one line of
    pruning stats. Short on purpose: the thinking and the branch texts stay in the artifact."""
    answer = f"Answer: {result.answer}" if result.answer is not None else "No branch reached a parsable answer."
    pruned = sum(b.cancel_reason == "pruned" for b in result.branches)
    votes = ", ".join(f"{k}: {v:g}" for k, v in sorted(result.votes.items(), key=lambda kv: -kv[1])) or "none"
    stats = (
        f"DeepPrune: {result.n} branches, {result.finished} finished, {result.cancelled} stopped early "
        f"({pruned} pruned as redundant), {result.failed} failed{result.not_started()}; votes {{{votes}}}; "
        f"{result.tokens_generated} tokens vs ~{result.tokens_cons_estimate} unpruned "
        f"({result.token_saving:.0%} saved)."
    )
    return "\n".join([answer, *reasoning_lines(result, summary_chars, thinking_chars), stats])


class ThinkHardTool(BaseTool):
    """The tool class; ``make_think_hard_tool`` is the usual way to build one.

    Settings given here (``base_urls``, ``model``, ``judge``, ``n``, ``max_tokens``, ``answer_pattern``) are laid over
    ``reasoner``'s (or the defaults and the environment when no reasoner is given). The reasoner is
    built on first use so that constructing the tool — and importing this module — reads no
    environment and starts no server. Settings in ``config["configurable"]`` still override per call,
    and the call's arguments override those.
    """

    name: str = "think_hard"
    description: str = DEFAULT_DESCRIPTION
    args_schema: Annotated[ArgsSchema | None, SkipValidation()] = ThinkHardInput
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    # DeepPrune errors name their fix; the agent's model should read them and adapt rather than crash.
    handle_tool_error: Any = True

    reasoner: Any = Field(default=None, exclude=True, description="A DeepPruneReasoner to build on.")
    base_urls: list[str] | None = Field(default=None, description="OpenAI-compatible base URLs (…/v1).")
    model: str | None = Field(default=None, description="Served model name; None: the first listed.")
    judge: str | None = Field(default=None, description="Default judge name.")
    n: int | None = Field(default=None, description="Default number of branches.")
    max_tokens: int | None = Field(default=None, description="Default token cap per branch.")
    answer_pattern: Any = Field(
        default=None,
        exclude=True,
        description="The branches' answer extractor: a regex with one group or a callable str -> str | None "
        "(answers.make_extractor). Not a call argument: the calling model does not choose it.",
    )
    summary_chars: int = Field(
        default=400, ge=0, description="Reasoning models: length of the summary the calling model reads (0: none)."
    )
    thinking_chars: int = Field(
        default=0, ge=0, description="Reasoning models: also show this much of a voter's thinking (0: none)."
    )

    _built: DeepPruneReasoner | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def settings(self) -> dict[str, Any]:
        """The tool-level settings that were given (None means: keep the reasoner's)."""
        given = {
            "base_urls": self.base_urls,
            "model": self.model,
            "judge": self.judge,
            "n": self.n,
            "max_tokens": self.max_tokens,
            "answer_pattern": self.answer_pattern,
        }
        return {k: v for k, v in given.items() if v is not None}

    def _content(self, result: DeepPruneResult) -> str:
        return format_content(result, summary_chars=self.summary_chars, thinking_chars=self.thinking_chars)

    def get_reasoner(self) -> DeepPruneReasoner:
        """The reasoner, built once (thread-safe: sync tool calls may run in parallel threads)."""
        with self._lock:
            if self._built is None:
                base = self.reasoner
                if base is not None and not isinstance(base, DeepPruneReasoner):
                    raise ToolException(f"reasoner must be a DeepPruneReasoner, not {type(base).__name__}.")
                context = base.context if base is not None else None
                self._built = DeepPruneReasoner(context, **self.settings())
            return self._built

    def _call_config(
        self,
        config: RunnableConfig,
        child_callbacks: Any,
        n: int | None,
        budget: int | None,
        judge: str | None,
    ) -> tuple[DeepPruneReasoner, RunnableConfig]:
        """The reasoner and the config for this call: callbacks become children of the tool run (so a
        tracer nests the reasoner's chain and its ``deepprune`` custom events under the tool), and the
        call's arguments become ``configurable`` overrides, validated here so that a bad value reaches
        the model as a tool error naming the fix."""
        try:
            reasoner = self.get_reasoner()
            overrides = {k: v for k, v in (("n", n), ("max_tokens", budget), ("judge", judge)) if v is not None}
            configurable = {**config.get("configurable", {}), **overrides}
            reasoner.context_for({"configurable": configurable})  # validate now: ConfigError names the fix
            if judge is not None:
                check_judge(judge)
        except DeepPruneError as exc:
            raise ToolException(str(exc)) from exc
        return reasoner, patch_config(config, callbacks=child_callbacks, configurable=configurable)

    def _run(
        self,
        question: str,
        n: int | None = None,
        budget: int | None = None,
        judge: str | None = None,
        *,
        config: RunnableConfig,
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> tuple[str, dict[str, Any]]:
        callbacks = run_manager.get_child() if run_manager is not None else None
        reasoner, call_config = self._call_config(config, callbacks, n, budget, judge)
        try:
            result = reasoner.invoke(question, call_config)
        except DeepPruneError as exc:
            raise ToolException(f"{self.name} failed: {exc}") from exc
        return self._content(result), result.model_dump(mode="json")

    async def _arun(
        self,
        question: str,
        n: int | None = None,
        budget: int | None = None,
        judge: str | None = None,
        *,
        config: RunnableConfig,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
    ) -> tuple[str, dict[str, Any]]:
        callbacks = run_manager.get_child() if run_manager is not None else None
        reasoner, call_config = self._call_config(config, callbacks, n, budget, judge)
        try:
            result = await reasoner.ainvoke(question, call_config)
        except DeepPruneError as exc:
            raise ToolException(f"{self.name} failed: {exc}") from exc
        return self._content(result), result.model_dump(mode="json")


def make_think_hard_tool(
    reasoner: DeepPruneReasoner | None = None,
    *,
    base_urls: list[str] | None = None,
    model: str | None = None,
    judge: str | None = None,
    n: int | None = None,
    max_tokens: int | None = None,
    answer_pattern: AnswerPattern = None,
    name: str = "think_hard",
    description: str = DEFAULT_DESCRIPTION,
    handle_tool_error: bool = True,
    summary_chars: int = 400,
    thinking_chars: int = 0,
) -> ThinkHardTool:
    """A ``think_hard`` tool bound to your endpoint, model, judge and budget.

    ``max_tokens`` is the default per-branch cap (the ``budget`` argument overrides it per call);
    ``answer_pattern`` (a regex or a callable) replaces the built-in answer extractor for the task. Given
    settings are checked now, so a typo fails here rather than in the middle of an agent run; with
    ``handle_tool_error=False`` errors during a call raise instead of going back to the model. For a
    reasoning model the calling model reads the answer and a summary of ``summary_chars``, not the
    thinking (``thinking_chars`` > 0 adds its start); the full thinking stays in the artifact.
    """
    tool = ThinkHardTool(
        reasoner=reasoner,
        base_urls=list(base_urls) if base_urls is not None else None,
        model=model,
        judge=judge,
        n=n,
        max_tokens=max_tokens,
        answer_pattern=answer_pattern,
        name=name,
        description=description,
        handle_tool_error=handle_tool_error,
        summary_chars=summary_chars,
        thinking_chars=thinking_chars,
    )
    if reasoner is not None and not isinstance(reasoner, DeepPruneReasoner):
        raise ConfigError(f"reasoner must be a DeepPruneReasoner, not {type(reasoner).__name__}.")
    if judge is not None:
        check_judge(judge)
    if tool.settings():
        (reasoner.context if reasoner is not None else DeepPruneContext()).replace(**tool.settings())
    return tool


#: The default tool: endpoints from ``DEEPPRUNE_BASE_URLS``/``DEEPPRUNE_MODEL`` or the embedded server.
think_hard: ThinkHardTool = make_think_hard_tool()
