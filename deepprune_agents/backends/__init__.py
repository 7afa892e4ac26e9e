"""I/O at the edge: OpenAI-compatible streaming, several endpoints, the embedded vLLM server."""

from deepprune_agents.backends.endpoints import EndpointPool
from deepprune_agents.backends.openai_stream import BranchRequest, BranchStream, StreamChunk

__all__ = ["BranchRequest", "BranchStream", "EndpointPool", "StreamChunk"]
