"""The DeepPrune graph as a subgraph of a messages-based agent graph (``MessagesState``), over real HTTP.

An agent graph keeps a conversation in ``messages``; dropping the compiled DeepPrune graph in as a node must
read the last human message as the question and append the voted answer as an AI message, with the full
result available in the subgraph's output. The replay server streams recorded traces on a real socket."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langgraph.graph import END, START, MessagesState, StateGraph

from deepprune_agents.errors import ConfigError
from deepprune_agents.evaluation.replay_data import ReplayQuestion, make_trace
from deepprune_agents.evaluation.replay_server import ReplayServer
from deepprune_agents.graph import build_graph, question_from_messages
from deepprune_agents.settings import DeepPruneContext

RIGHT = "Tom has 3 apples and buys 4 more, so 3 + 4 = 7 apples." + " Counting again we get 7." * 4 + " The answer is 7."
WRONG = "Tom has 3 apples and loses 2, so 3 - 2 = 1 apple." + " Counting again we get 1." * 4 + " The answer is 1."
QUESTION = ReplayQuestion(
    "apples-subgraph",
    "Tom has 3 apples and buys 4 more. How many apples does he have?",
    "7",
    tuple(make_trace(t) for t in [RIGHT, WRONG, RIGHT, RIGHT, RIGHT, RIGHT]),
)


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    with ReplayServer([QUESTION], tokens_per_s=200) as s:
        yield s
        assert s.wait_idle(5.0), "the replay server still has an open stream after the test"


async def test_the_graph_runs_as_a_subgraph_of_a_messages_graph(server: ReplayServer) -> None:
    parent = StateGraph(MessagesState, context_schema=DeepPruneContext)
    parent.add_node("deepprune", build_graph())
    parent.add_edge(START, "deepprune")
    parent.add_edge("deepprune", END)
    agent = parent.compile()
    ctx = DeepPruneContext(n=6, policy="paper", judge="numbers", base_urls=[server.base_url], model="replay")
    out = await agent.ainvoke(
        {"messages": [SystemMessage("You are careful."), HumanMessage(QUESTION.question)]}, context=ctx
    )
    messages = out["messages"]
    assert [m.type for m in messages] == ["system", "human", "ai"]
    assert isinstance(messages[-1], AIMessage)
    assert messages[-1].content == "7"
    assert len(server.records()) == 6  # one stream per branch reached the server


async def test_messages_input_on_the_graph_itself_returns_result_and_ai_message(server: ReplayServer) -> None:
    ctx = DeepPruneContext(n=4, policy="none", base_urls=[server.base_url], model="replay")
    out = await build_graph().ainvoke({"messages": [{"role": "user", "content": QUESTION.question}]}, context=ctx)
    assert out["result"]["question"] == QUESTION.question
    assert out["result"]["n"] == 4
    assert out["messages"][-1].content == out["result"]["answer"]


def test_question_from_messages_takes_the_last_human_message() -> None:
    msgs = [HumanMessage("first"), AIMessage("reply"), HumanMessage("second"), AIMessage("reply 2")]
    assert question_from_messages(msgs) == "second"
    assert question_from_messages([{"role": "user", "content": "as dict"}]) == "as dict"
    assert question_from_messages([]) is None
    assert question_from_messages(None) is None
    with pytest.raises(ConfigError):
        question_from_messages([{"no": "role"}])
