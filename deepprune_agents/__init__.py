"""deepprune-agents: cheap parallel reasoning. N branches, a judge that prunes redundant ones, a vote.

The public API is small on purpose; everything is imported lazily so ``import deepprune_agents`` stays
fast (no torch, no vLLM) until a name is actually used.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "DeepPruneReasoner": "deepprune_agents.reasoner",
    "DeepPruneResult": "deepprune_agents.result",
    "DeepPruneContext": "deepprune_agents.settings",
    "Judge": "deepprune_agents.judges.base",
    "get_judge": "deepprune_agents.judges",
    "PartialTrace": "deepprune_agents.traces",
    "think_hard": "deepprune_agents.tools",
    "make_think_hard_tool": "deepprune_agents.tools",
    "build_graph": "deepprune_agents.graph",
}

__all__ = [
    "DeepPruneContext",
    "DeepPruneReasoner",
    "DeepPruneResult",
    "Judge",
    "PartialTrace",
    "__version__",
    "build_graph",
    "get_judge",
    "make_think_hard_tool",
    "think_hard",
]

if TYPE_CHECKING:  # pragma: no cover
    from deepprune_agents.graph import build_graph
    from deepprune_agents.judges import get_judge
    from deepprune_agents.judges.base import Judge
    from deepprune_agents.reasoner import DeepPruneReasoner
    from deepprune_agents.result import DeepPruneResult
    from deepprune_agents.settings import DeepPruneContext
    from deepprune_agents.traces import PartialTrace


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'deepprune_agents' has no attribute {name!r}")
    return getattr(import_module(module), name)
