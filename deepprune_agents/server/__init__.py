"""``deepprune serve --upstream``: an OpenAI-compatible endpoint that answers with pruned parallel reasoning.

A thin room at the top: it owns the wire format (``protocol``), per-request options (``options``), auth
and limits (``app``), and calls ``DeepPruneReasoner`` like any other user. Starlette and uvicorn come with
the ``proxy`` extra (``pip install 'deepprune-agents[proxy]'``); ``require_server_deps`` says so at once.
"""

from __future__ import annotations

from deepprune_agents.extras import require_extra

EXTRA = "proxy"


def require_server_deps() -> None:
    """Fail at once, naming the extra, when the ASGI stack is missing."""
    require_extra(EXTRA, "`deepprune serve --upstream`")
