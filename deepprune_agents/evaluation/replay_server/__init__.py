"""An OpenAI-compatible server that replays recorded traces, token by token, like vLLM would stream them.

Why: evaluation must exercise the real engine — HTTP streams, the judge node, cancellation by closing
a socket — on traces with known answers, without a GPU. So this is a real ASGI app (Starlette on
uvicorn) speaking vLLM's dialect:

* ``GET /v1/models`` lists one model (``replay`` unless configured); another model name gets vLLM's 404;
* ``POST /v1/chat/completions`` and ``POST /v1/completions``, streaming (SSE chunk objects,
  ``data: [DONE]``, ``stream_options.include_usage`` and ``continuous_usage_stats``) and not;
* the question is found in the last user message / the prompt (whitespace-normalized containment), and
  the trace served is ``replay_data.trace_index(question, seed)``: deterministic by seed, a different
  recorded trace per branch of a run;
* one ``simple_tokenize`` piece per chunk, at ``tokens_per_s`` per stream (0: as fast as possible), or in
  *lockstep* (every stream of one run emits its k-th piece in the same tick, in seed order, ``stagger_s``
  apart): the pace at which the engine becomes deterministic, which is what lets a test prove that the
  offline simulator gives the engine's figures;
* every request is recorded (question, trace, tokens sent, start/end, whether and when the client
  disconnected, the session header it carried: ``session_header``, X-Session-ID by default, so a test
  behind a router sees which run each request belonged to): ``GET /stats``; ``GET /metrics`` exposes
  ``vllm:num_requests_running`` and ``vllm:generation_tokens_total`` so ``backends/metrics.py`` reads it
  like a vLLM server; ``GET /health``;
* a fault mode (``FaultConfig``; at construction, ``--fault-*`` flags or ``POST /admin/faults``): 429/500
  on open (first k requests, or a rate), a stall after t tokens, a malformed SSE chunk after t tokens,
  an abrupt connection drop after t tokens;
* a reasoning mode (``reasoning=``), serving each trace as a reasoning model would: its thinking
  (``backends.reasoning.split_recorded``) in ``delta.reasoning`` (vLLM >= 0.11 with a reasoning parser)
  or ``delta.reasoning_content`` (SGLang, older vLLM) and its answer in ``content``; or inline in
  ``content`` as ``<think>...</think>answer`` (``inline``; the tags fall across several chunks), or
  without the opening tag (``inline-open``: the chat template opened it).

``ReplayServer`` runs it in a background thread on a free port (tests, benchmarks);
``deepprune replay-server`` runs it in the foreground.

The package's modules, each importing only from those before it: ``parts`` (what a trace streams per
reasoning mode), ``faults``, ``records``, ``state``, ``payloads`` (vLLM-shaped bodies and chunks), ``sse``
(the paced streaming response), ``app`` (the Starlette routes), ``runner`` (``ReplayServer``,
``serve_forever``).
"""

from __future__ import annotations

from deepprune_agents.evaluation.replay_server.app import build_app
from deepprune_agents.evaluation.replay_server.faults import FaultConfig
from deepprune_agents.evaluation.replay_server.parts import REASONING_MODES, ReasoningMode, stream_parts
from deepprune_agents.evaluation.replay_server.records import RequestRecord
from deepprune_agents.evaluation.replay_server.runner import ReplayServer, serve_forever
from deepprune_agents.evaluation.replay_server.state import (
    DEFAULT_LOCKSTEP_LEAD_S,
    DEFAULT_MODEL,
    DEFAULT_SESSION_HEADER,
    ReplayState,
)

__all__ = [
    "DEFAULT_LOCKSTEP_LEAD_S",
    "DEFAULT_MODEL",
    "DEFAULT_SESSION_HEADER",
    "REASONING_MODES",
    "FaultConfig",
    "ReasoningMode",
    "ReplayServer",
    "ReplayState",
    "RequestRecord",
    "build_app",
    "serve_forever",
    "stream_parts",
]
