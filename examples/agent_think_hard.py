"""An agent that hands its hard sub-questions to ``think_hard`` (DeepPrune) and answers the rest itself.

    # a real tool-calling model (any ``init_chat_model`` string; needs that provider's package and key):
    python examples/agent_think_hard.py --model openai:gpt-4.1-mini --base-url http://gpu:8000/v1 \\
        "A train leaves at 9:40 and arrives at 13:05. How many minutes is the trip?"

    # offline: a scripted stand-in model that always delegates, the embedded (or given) vLLM server
    python examples/agent_think_hard.py --base-url http://127.0.0.1:8011/v1 --n 4 --budget 96

The agent's own model plans and talks; ``think_hard`` samples N chains of thought on the vLLM server,
prunes redundant ones and votes. The tool message carries the voted answer plus one line of stats as
its content (what the model reads) and the full result as its artifact (what the program reads).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from langchain.agents import create_agent
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool

from deepprune_agents.tools import make_think_hard_tool, think_hard

SYSTEM_PROMPT = (
    "You are a careful assistant. Answer easy questions directly. For a hard multi-step reasoning or "
    "arithmetic sub-question, call the `think_hard` tool with a self-contained question, then answer "
    "using its voted result."
)


class DelegatingChatModel(BaseChatModel):
    """A scripted stand-in for a tool-calling model, so the example (and its test) run offline.

    It behaves like a model that always delegates: on a user turn it calls ``think_hard`` with the
    user's question (and the ``n``/``budget`` it was built with); once the tool has answered, it replies
    with the tool's first line. Real agents pass a real model instead.
    """

    tool_name: str = "think_hard"
    n: int | None = None
    budget: int | None = None

    @property
    def _llm_type(self) -> str:
        return "deepprune-delegating-demo"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[LanguageModelInput, AIMessage]:
        names = {getattr(t, "name", None) for t in tools}
        if self.tool_name not in names:
            raise ValueError(f"the agent has no {self.tool_name!r} tool (tools: {sorted(map(str, names))}).")
        return self

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            first_line = str(last.content).splitlines()[0] if last.content else "No answer."
            return AIMessage(content=f"After thinking hard: {first_line}")
        args: dict[str, Any] = {"question": last.text}
        if self.n is not None:
            args["n"] = self.n
        if self.budget is not None:
            args["budget"] = self.budget
        call_id = f"call_{sum(isinstance(m, AIMessage) for m in messages)}"
        return AIMessage(content="", tool_calls=[{"name": self.tool_name, "args": args, "id": call_id}])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._generate(messages, stop, None, **kwargs)


def build_agent(model: BaseChatModel | str, tool: BaseTool | None = None) -> Any:
    """A ``create_agent`` agent with ``think_hard`` (or your configured copy of it) as its tool."""
    return create_agent(model, [tool or think_hard], system_prompt=SYSTEM_PROMPT, name="think_hard_agent")


def tool_results(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """The full DeepPrune results the agent's tool calls produced (the ToolMessage artifacts)."""
    return [m.artifact for m in messages if isinstance(m, ToolMessage) and m.name == "think_hard" and m.artifact]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("question", nargs="?", default="Tom has 3 boxes of 12 eggs and breaks 5. How many are left?")
    parser.add_argument("--model", help="init_chat_model string, e.g. openai:gpt-4.1-mini (default: offline stand-in)")
    parser.add_argument("--base-url", action="append", help="vLLM base URL (…/v1); default: the embedded server")
    parser.add_argument("--vllm-model", help="served model name (default: the first the server lists)")
    parser.add_argument("--n", type=int, default=4, help="branches per think_hard call")
    parser.add_argument("--budget", type=int, default=256, help="max tokens per branch")
    args = parser.parse_args(argv)

    tool = make_think_hard_tool(base_urls=args.base_url, model=args.vllm_model, n=args.n, max_tokens=args.budget)
    if args.model:
        from langchain.chat_models import init_chat_model

        model: BaseChatModel = init_chat_model(args.model)
    else:
        model = DelegatingChatModel()
    agent = build_agent(model, tool)
    state = agent.invoke({"messages": [{"role": "user", "content": args.question}]})
    print(state["messages"][-1].text)
    for result in tool_results(state["messages"]):
        stats = {k: result[k] for k in ("answer", "votes", "finished", "cancelled", "tokens_generated", "token_saving")}
        print(json.dumps(stats))


if __name__ == "__main__":
    main()
