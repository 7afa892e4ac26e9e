"""The llm judge's template file, per-pair cache and fall-back to another judge (issue 12).

The judge server is an in-process HTTP transport answering like vLLM (first-token top logprobs): a fake
for the wire, so what is tested is the judge's own logic, with every request counted."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import httpx2
import pytest
from openai import AsyncOpenAI

from deepprune_agents.errors import ConfigError
from deepprune_agents.judges import get_judge
from deepprune_agents.judges.llm import DEFAULT_TEMPLATE_FILE, LLMJudge, load_template
from deepprune_agents.traces import PartialTrace


def logprob_server(prompts: list[str]) -> httpx2.MockTransport:
    """Says 'yes' (p=0.9) when both attempts mention the same last number, else 'no'."""

    def handle(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        prompt = body["messages"][-1]["content"]
        prompts.append(prompt)
        same = prompt.count("= 7") >= 2
        first, second = ("yes", "no") if same else ("no", "yes")
        top = [{"token": first, "logprob": -0.105}, {"token": second, "logprob": -2.303}]
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": top[0]["token"]},
            "logprobs": {"content": [{"token": top[0]["token"], "logprob": top[0]["logprob"], "top_logprobs": top}]},
            "finish_reason": "length",
        }
        return httpx2.Response(200, json={"id": "x", "object": "chat.completion", "created": 0, "model": "j",
                                          "choices": [choice]})  # fmt: skip

    return httpx2.MockTransport(handle)


def judge_on(transport: httpx2.MockTransport, **options: object) -> LLMJudge:
    judge = get_judge("llm", base_url="http://judge.test/v1", model="j", **options)
    assert isinstance(judge, LLMJudge)
    judge._client = AsyncOpenAI(
        base_url=judge.base_url, api_key="x", max_retries=0, http_client=httpx2.AsyncClient(transport=transport)
    )
    return judge


SAME = (PartialTrace("Thinking: 3 + 4 = 7 apples."), PartialTrace("So 3 + 4 = 7."))
OTHER = (PartialTrace("Thinking: 3 + 4 = 7 apples."), PartialTrace("3 * 4 = 12"))


async def test_template_file_and_per_pair_cache(tmp_path: Path) -> None:
    template = tmp_path / "judge.txt"
    template.write_text("MY JUDGE\nA: {a}\nB: {b}\nSame answer?\n", encoding="utf-8")
    prompts: list[str] = []
    judge = judge_on(logprob_server(prompts), template_file=str(template))
    scores = await judge.ascore([SAME, OTHER, SAME])
    assert scores[0] == scores[2] > 0.8 and scores[1] < 0.2
    assert len(prompts) == 2 and prompts[0].startswith("MY JUDGE\nA: Thinking: 3 + 4 = 7 apples.")
    assert await judge.ascore([OTHER]) == [scores[1]]
    assert len(prompts) == 2 and judge.cache_hits == 2  # the repeated pairs never reached the server


def test_default_template_is_the_shipped_file_and_bad_files_are_config_errors(tmp_path: Path) -> None:
    judge = get_judge("llm", base_url="http://judge.test/v1", model="j")
    assert judge.prompt_template == load_template(DEFAULT_TEMPLATE_FILE)  # type: ignore[attr-defined]
    assert "{a}" in judge.prompt_template and "thinking" in judge.prompt_template  # type: ignore[attr-defined]
    bad = tmp_path / "bad.txt"
    bad.write_text("no placeholders", encoding="utf-8")
    with pytest.raises(ConfigError, match="placeholders"):
        get_judge("llm", base_url="http://judge.test/v1", template_file=str(bad))
    with pytest.raises(ConfigError, match="cannot read"):
        get_judge("llm", base_url="http://judge.test/v1", template_file=str(tmp_path / "missing.txt"))
    with pytest.raises(ConfigError, match="itself"):
        get_judge("llm", base_url="http://judge.test/v1", fallback="llm")


async def test_unreachable_judge_server_falls_back_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    judge = get_judge("llm", base_url=f"http://127.0.0.1:{port}/v1", model="m", timeout_s=5.0, fallback="numbers")
    numbers = get_judge("numbers")
    with caplog.at_level(logging.WARNING, logger="deepprune_agents.judges.llm"):
        first = await judge.ascore([SAME, OTHER])
        second = await judge.ascore([OTHER])
    assert first == await numbers.ascore([SAME, OTHER]) and second == await numbers.ascore([OTHER])
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "'numbers' judge instead" in warnings[0].getMessage()
    assert judge.fallback_calls == 2  # type: ignore[attr-defined]
