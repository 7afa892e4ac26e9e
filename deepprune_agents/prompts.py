"""How a question becomes a branch request (chat messages or a raw completions prompt)."""

from __future__ import annotations

from deepprune_agents.backends.openai_stream import BranchRequest
from deepprune_agents.settings import DeepPruneContext

COMPLETIONS_TEMPLATE = "Question: {question}\nAnswer: Let's think step by step."


def branch_requests(question: str, model: str, ctx: DeepPruneContext) -> list[BranchRequest]:
    """N requests that differ only in their seed (seed + i), so each branch is reproducible alone.

    The shared prefix (system prompt + question) is identical across branches on purpose: vLLM's
    automatic prefix caching then computes it once for all N.
    """
    messages = [{"role": "user", "content": question}]
    if ctx.system_prompt:
        messages.insert(0, {"role": "system", "content": ctx.system_prompt})
    prompt = ""
    if ctx.endpoint == "completions":
        prompt = (ctx.system_prompt + "\n\n" if ctx.system_prompt else "") + COMPLETIONS_TEMPLATE.format(
            question=question
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
            extra_body=dict(ctx.extra_body),
        )
        for i in range(ctx.n)
    ]
