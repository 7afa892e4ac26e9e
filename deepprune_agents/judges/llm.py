"""The ``llm`` judge: any chat model behind an OpenAI-compatible endpoint, asked "same final answer?".

This is how a user plugs in the paper's released judge (``THU-KEG/DeepPrune-Judge-4B``) served by
their own vLLM, or any instruct model zero-shot. One request per pair with ``max_tokens=1`` and
``top_logprobs=20``: P(yes) is read from the first token's distribution (normalised over yes/no
variants), so a call costs one prefill and one decoding step. Requests run concurrently up to
``concurrency`` so that a batch of 64 pairs is not 64 round-trips in series, without flooding the server.

* The prompt comes from ``prompt_template`` (a string), else ``template_file`` (or
  ``$DEEPPRUNE_JUDGE_TEMPLATE``), else the generic ``templates/same_answer.txt`` shipped here; any template
  holds the placeholders ``{a}`` and ``{b}``. For the paper's released judge, supply the prompt it was
  trained with as a file; we do not guess it.
* Like every judge it reads a branch's thinking then its content so far (``PartialTrace.text``).
* Scores are cached per (model, template, pair): the periodic policy and the warm-up ask the same pairs
  again, and a second server round-trip for a pair already scored is pure latency.
* When the judge server fails (down, unknown model, rejected request), the pairs are scored by the
  ``fallback`` judge (``trained``, the default judge, unless set; None raises instead), with one warning
  per outage; the server is tried again after ``retry_after_s``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from deepprune_agents.errors import ConfigError, JudgeError
from deepprune_agents.judges.base import Judge, TracePair
from deepprune_agents.judges.prompt import p_yes_from_logprobs, render_prompt

log = logging.getLogger(__name__)

#: The generic template shipped with the package (not the paper judge's: supply that one as a file).
DEFAULT_TEMPLATE_FILE = Path(__file__).with_name("templates") / "same_answer.txt"


def load_template(path: str | os.PathLike[str]) -> str:
    """A prompt template from a UTF-8 file; it must hold the placeholders ``{a}`` and ``{b}``."""
    try:
        template = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the judge template file {str(path)!r} ({exc}): pass an existing file.") from exc
    render_prompt("", "", template)
    return template.strip("\n")


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
        prompt_template: str | None = None,
        template_file: str | None = None,
        system_prompt: str | None = None,
        top_logprobs: int = 20,
        extra_body: dict[str, Any] | None = None,
        cache_size: int = 65_536,
        fallback: str | None = "trained",
        fallback_options: dict[str, Any] | None = None,
        retry_after_s: float = 60.0,
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
        if prompt_template is None:
            prompt_template = load_template(
                template_file or os.environ.get("DEEPPRUNE_JUDGE_TEMPLATE") or DEFAULT_TEMPLATE_FILE
            )
        render_prompt("", "", prompt_template)  # validates the placeholders now, not on the first call
        if fallback == "llm":
            raise ConfigError("the llm judge cannot fall back to itself: use fallback='trained', 'embedding' or None.")
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
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str, str], float] = OrderedDict()
        self.cache_hits = 0
        self.fallback = fallback
        self.fallback_options = dict(fallback_options or {})
        self.retry_after_s = retry_after_s
        self._fallback_judge: Judge | None = None
        self._down_until = 0.0
        self.fallback_calls = 0

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
        if self.fallback is not None and time.monotonic() < self._down_until:
            return await self._score_fallback(pairs)
        try:
            return await self._score_llm(pairs)
        except JudgeError as exc:
            if self.fallback is None:
                raise
            log.warning(
                "llm judge: %s; scoring with the %r judge instead (retrying %s in %.0f s).",
                exc,
                self.fallback,
                self.base_url,
                self.retry_after_s,
            )
            self._down_until = time.monotonic() + self.retry_after_s
            return await self._score_fallback(pairs)

    async def _score_llm(self, pairs: Sequence[TracePair]) -> list[float]:
        model = await self._resolve_model()
        sem = asyncio.Semaphore(self.concurrency)
        keys = [(model, a.text, b.text) for a, b in pairs]
        todo = {k: None for k in keys if k not in self._cache}  # distinct pairs, in order
        self.cache_hits += len(keys) - len(todo)
        scores = await asyncio.gather(*(self._score_one(model, a, b, sem) for _, a, b in todo))
        for key, score in zip(todo, scores, strict=True):
            self._cache[key] = score
        out = [self._cache[k] for k in keys]
        for k in keys:
            self._cache.move_to_end(k)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return out

    async def _score_fallback(self, pairs: Sequence[TracePair]) -> list[float]:
        if self._fallback_judge is None:
            from deepprune_agents.judges import get_judge

            name = str(self.fallback)
            self._fallback_judge = await asyncio.to_thread(get_judge, name, **self.fallback_options)
        self.fallback_calls += 1
        return await self._fallback_judge.ascore(pairs)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
