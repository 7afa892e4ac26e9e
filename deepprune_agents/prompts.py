"""How a question becomes a branch request (chat messages or a raw completions prompt)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deepprune_agents.backends.openai_stream import BranchRequest
from deepprune_agents.backends.reasoning import check_reasoning_format
from deepprune_agents.settings import DeepPruneContext

COMPLETIONS_TEMPLATE = "Question: {question}\nAnswer: Let's think step by step."


def branch_requests(
    question: str,
    model: str,
    ctx: DeepPruneContext,
    *,
    run_id: str = "",
    conversation: Sequence[dict[str, Any]] | None = None,
) -> list[BranchRequest]:
    """N requests that differ only in their seed (seed + i), so each branch is reproducible alone.

    The shared prefix (system prompt + question) is identical across branches on purpose: vLLM's
    automatic prefix caching then computes it once for all N, provided they reach the same replica, so
    every request carries the run's id (``session_id``, sent as ``ctx.session_header``).

    ``conversation``: OpenAI chat messages (earlier turns, content parts and all, ending in the turn that
    asks ``question``) sent to every branch after the system prompt, so a follow-up ("and times 2?") is
    read with what it follows. None: the question alone.
    """
    messages: list[dict[str, Any]] = (
        [dict(m) for m in conversation] if conversation else [{"role": "user", "content": question}]
    )
    if ctx.system_prompt:
        messages.insert(0, {"role": "system", "content": ctx.system_prompt})
    prompt = ""
    if ctx.endpoint == "completions":
        earlier = "".join(f"{m['role'].capitalize()}: {_text(m.get('content'))}\n" for m in (conversation or [])[:-1])
        prompt = (
            (ctx.system_prompt + "\n\n" if ctx.system_prompt else "")
            + earlier
            + COMPLETIONS_TEMPLATE.format(question=question)
        )
    return [
        BranchRequest(
            model=model,
            messages=messages if ctx.endpoint == "chat" else [],
            prompt=prompt,
            endpoint="chat" if ctx.endpoint == "chat" else "completions",
            max_tokens=ctx.max_tokens,
            temperature=ctx.temperature,
            top_p=ctx.top_p,
            seed=ctx.seed + i,
            extra_body=request_extras(ctx),
            reasoning_format=check_reasoning_format(ctx.reasoning_format),
            session_id=run_id,
            session_header=ctx.session_header,
        )
        for i in range(ctx.n)
    ]


def _text(content: Any) -> str:
    """The text of a message's content (a string or OpenAI's list of parts; other parts are left out)."""
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return str(content or "")


def request_extras(ctx: DeepPruneContext) -> dict[str, Any]:
    """``extra_body`` with the reasoning pass-throughs that were set (explicit ``extra_body`` keys win)."""
    extras: dict[str, Any] = {}
    if ctx.chat_template_kwargs:
        extras["chat_template_kwargs"] = dict(ctx.chat_template_kwargs)
    if ctx.reasoning_effort is not None:
        extras["reasoning_effort"] = ctx.reasoning_effort
    if ctx.include_reasoning is not None:
        extras["include_reasoning"] = ctx.include_reasoning
    return {**extras, **ctx.extra_body}
