"""The graph LangGraph Studio / ``langgraph dev`` serves (see langgraph.json).

Compiled without a checkpointer: the LangGraph server brings its own persistence.
"""

from deepprune_agents.graph import build_graph

graph = build_graph()
