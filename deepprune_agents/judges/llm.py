"""The ``llm`` judge: any chat model behind an OpenAI-compatible endpoint, asked "same final answer?".

This is how a user plugs in the paper's released judge (``THU-KEG/DeepPrune-Judge-4B``) served by
their own vLLM, or any instruct model zero-shot. One request per pair with ``max_tokens=1`` and
``top_logprobs=20``: P(yes) is read from the first token's distribution (normalised over yes/no
variants), so a call costs one prefill and one decoding step. Requests run concurrently up to
``concurrency`` so that a batch of 64 pairs is not 64 round-trips in series, without flooding the server.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any, Literal

from deepprune_agents.errors import ConfigError, JudgeError
from deepprune_agents.judges.base import TracePair
from deepprune_agents.judges.prompt import DEFAULT_TEMPLATE, p_yes_from_logprobs, render_prompt


def judge_api_key() -> str:
    """The judge's API key, from the environment only (never a field that could leak into state)."""
    return os.environ.get("DEEPPRUNE_JUDGE_API_KEY") or os.environ.get("OPENAI_API_KEY") or "EMPTY"


class LLMJudge:
    """P(yes) of a chat (or completions) model on an OpenAI-compatible server."""

    name = "llm"

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        *,
        endpoint: Literal["chat", "completions"] = "chat",
        concurrency: int = 8,
        timeout_s: float = 60.0,
        prompt_template: str = DEFAULT_TEMPLATE,
        system_prompt: str | None = None,
        top_logprobs: int = 20,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        url = base_url or os.environ.get("DEEPPRUNE_JUDGE_BASE_URL")
        if not url:
            raise ConfigError(
                "the llm judge needs a server: pass base_url='http://host:port/v1' (judge_options) or set "
                "DEEPPRUNE_JUDGE_BASE_URL."
            )
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"judge base_url {url!r} must start with http:// or https:// (e.g. http://host:8000/v1).")
        if endpoint not in ("chat", "completions"):
            raise ConfigError(f"endpoint must be 'chat' or 'completions' (got {endpoint!r}).")
        if concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1 (got {concurrency}).")
        if not 1 <= top_logprobs <= 20:
            raise ConfigError(f"top_logprobs must lie in [1, 20] (got {top_logprobs}); vLLM caps it at 20.")
        render_prompt("", "", prompt_template)  # validates the placeholders now, not on the first call
        self.base_url = url.rstrip("/")
        self.model = model or os.environ.get("DEEPPRUNE_JUDGE_MODEL") or None
        self.endpoint = endpoint
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.prompt_template = prompt_template
        self.system_prompt = system_prompt
        self.top_logprobs = top_logprobs
        self.extra_body = dict(extra_body or {})
        self._client: Any = None
        self._model_lock = asyncio.Lock()

    def _get_client(self) -> Any:
        if self._client is None:
            from openai import AsyncOpenAI

            self._client = AsyncOpenAI(
                base_url=self.base_url, api_key=judge_api_key(), timeout=self.timeout_s, max_retries=1
            )
        return self._client

    async def _resolve_model(self) -> str:
        if self.model:
            return self.model
        async with self._model_lock:
            if not self.model:
                try:
                    models = await self._get_client().models.list()
                except Exception as exc:
                    raise self._wrap(exc) from exc
                ids = [m.id for m in models.data]
                if not ids:
                    raise JudgeError(f"{self.base_url} serves no model; pass model=NAME to the llm judge.")
                self.model = ids[0]
        return self.model

    def _wrap(self, exc: Exception) -> JudgeError:
        import openai

        if isinstance(exc, openai.NotFoundError):
            return JudgeError(
                f"the judge server {self.base_url} does not serve model {self.model!r}: pass a served model "
                "name (GET /v1/models lists them)."
            )
        if isinstance(exc, openai.APIConnectionError | openai.APITimeoutError):
            return JudgeError(
                f"the judge server {self.base_url} did not answer ({type(exc).__name__}); check base_url "
                "and that the server is up."
            )
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            return JudgeError(f"the judge server {self.base_url} refused the credentials; set DEEPPRUNE_JUDGE_API_KEY.")
        if isinstance(exc, openai.BadRequestError):
            return JudgeError(
                f"the judge server rejected the request ({exc}); if it mentions logprobs, start vLLM with "
                "--max-logprobs 20 or lower top_logprobs."
            )
        return JudgeError(f"llm judge request failed: {exc}")

    async def _score_one(self, model: str, a: str, b: str, sem: asyncio.Semaphore) -> float:
        prompt = render_prompt(a, b, self.prompt_template)
        client = self._get_client()
        async with sem:
            try:
                if self.endpoint == "chat":
                    messages = [{"role": "user", "content": prompt}]
                    if self.system_prompt:
                        messages.insert(0, {"role": "system", "content": self.system_prompt})
                    resp = await client.chat.completions.create(
                        model=model,
                        messages=messages,
                        max_tokens=1,
                        temperature=0.0,
                        logprobs=True,
                        top_logprobs=self.top_logprobs,
                        extra_body=self.extra_body or None,
                    )
                else:
                    resp = await client.completions.create(
                        model=model,
                        prompt=prompt + "\nAnswer:",
                        max_tokens=1,
                        temperature=0.0,
                        logprobs=self.top_logprobs,
                        extra_body=self.extra_body or None,
                    )
            except Exception as exc:
                raise self._wrap(exc) from exc
        return self._parse(resp)

    def _parse(self, resp: Any) -> float:
        choice = resp.choices[0] if resp.choices else None
        if choice is None:
            raise JudgeError("the judge server returned no choice; is the model a chat/completions model?")
        if self.endpoint == "chat":
            content = choice.logprobs.content if choice.logprobs is not None else None
            if not content:
                return p_yes_from_logprobs([], (choice.message.content or ""))
            first = content[0]
            top = [(t.token, t.logprob) for t in (first.top_logprobs or [])] or [(first.token, first.logprob)]
            return p_yes_from_logprobs(top, first.token)
        lp = choice.logprobs
        if lp is None or not lp.top_logprobs:
            return p_yes_from_logprobs([], choice.text or "")
        first_top: dict[str, float] = lp.top_logprobs[0] or {}
        return p_yes_from_logprobs(first_top.items(), (lp.tokens or [choice.text or ""])[0])

    async def ascore(self, pairs: Sequence[TracePair]) -> list[float]:
        if not pairs:
            return []
        model = await self._resolve_model()
        sem = asyncio.Semaphore(self.concurrency)
        return list(await asyncio.gather(*(self._score_one(model, a.text, b.text, sem) for a, b in pairs)))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
