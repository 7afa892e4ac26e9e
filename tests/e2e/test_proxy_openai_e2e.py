"""The proxy keeps the chat-completions contract (issue 36, "OpenAI semantics"): what reaches the branches
is read off a recording upstream (the replay server keeping every request body), what the client gets
through the openai client on real sockets. Each test pins one finding of the issue."""

# ruff: noqa: F811 (pytest fixtures imported from test_proxy_e2e are parameters here)
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
from proxy_helpers import RecordingReplayServer  # tests/e2e is on sys.path (rootdir import mode)
from test_proxy_e2e import MESSAGES, QUESTION, make_proxy  # noqa: F401 (a fixture)

from deepprune_agents.evaluation.replay_server import FaultConfig
from deepprune_agents.server.app import ProxyServer
from deepprune_agents.server.protocol import PROGRESS_PREFIX
from deepprune_agents.settings import DEFAULT_SYSTEM_PROMPT

FAST = {"n": 4, "judge": "numbers", "truncate": "tokens:12"}
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


@pytest.fixture
def upstream() -> Iterator[RecordingReplayServer]:
    with RecordingReplayServer([QUESTION], tokens_per_s=300) as server:
        yield server
        assert server.wait_idle(5.0), "a branch stream was left open upstream"


@pytest.fixture
def client_of(make_proxy: Callable[..., ProxyServer]) -> Callable[..., openai.OpenAI]:
    """An openai client of a new proxy in front of ``upstream_url``; a fresh seed per request (seed=None)."""

    def make(upstream_url: str, **config: Any) -> openai.OpenAI:
        proxy = make_proxy(upstream_url, **{"seed": None, **config})
        return openai.OpenAI(base_url=proxy.base_url, api_key="unused", max_retries=0)

    return make


def summary_of(reply: Any) -> dict[str, Any]:
    return dict((reply.model_extra or {})["deepprune"])


def test_finish_reason_is_length_when_the_branches_were_cut(
    upstream: RecordingReplayServer, client_of: Callable[..., openai.OpenAI]
) -> None:
    client = client_of(upstream.base_url)
    reply = client.chat.completions.create(
        model="replay",
        messages=MESSAGES,
        max_tokens=5,
        extra_body={"deepprune": FAST},  # type: ignore[arg-type]
    )
    assert {r.finish_reason for r in upstream.records()} == {"length"}
    assert reply.choices[0].finish_reason == "length"
    content = reply.choices[0].message.content or ""
    assert content.startswith("Tom has 3 apples") and len(content.split()) <= 5  # a branch cut, as OpenAI cuts


def test_a_thinking_model_cut_before_it_answered_gets_length_and_a_reply_that_says_why(
    client_of: Callable[..., openai.OpenAI],
) -> None:
    with RecordingReplayServer([QUESTION], tokens_per_s=300, reasoning="reasoning") as thinking:
        client = client_of(thinking.base_url)
        reply = client.chat.completions.create(
            model="replay",
            messages=MESSAGES,
            max_tokens=5,
            extra_body={"deepprune": FAST},  # type: ignore[arg-type]
        )
        choice = reply.choices[0]
        assert choice.finish_reason == "length"
        assert choice.message.content and "max_tokens=5" in choice.message.content  # not an empty reply
        chunks = list(
            client.chat.completions.create(
                model="replay", messages=MESSAGES, max_tokens=5, stream=True, extra_body={"deepprune": FAST},  # type: ignore[arg-type]
            )
        )  # fmt: skip
        assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]
        assert "max_tokens=5" in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert thinking.wait_idle(5.0)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "function", "function": {"name": "add", "parameters": {}}}], "tool_choice": "required"},
         "tools"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"logprobs": True, "top_logprobs": 2}, "logprobs"),
    ],
)  # fmt: skip
def test_fields_the_proxy_cannot_honour_are_a_400_not_a_plain_200(
    upstream: RecordingReplayServer, client_of: Callable[..., openai.OpenAI], extra: dict[str, Any], param: str
) -> None:
    client = client_of(upstream.base_url)
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="replay", messages=MESSAGES, extra_body={**extra, "deepprune": FAST})  # type: ignore[arg-type]
    assert err.value.code == "unsupported_parameter" and err.value.param == param
    assert "not supported" in err.value.message
    assert upstream.branch_bodies() == []  # refused before any branch opened


def test_stop_penalties_logit_bias_and_user_reach_every_branch(
    upstream: RecordingReplayServer, client_of: Callable[..., openai.OpenAI]
) -> None:
    client = client_of(upstream.base_url)
    sampling = {"stop": ["\n\n\n"], "presence_penalty": 0.5, "frequency_penalty": 0.25, "logit_bias": {"42": -5},
                "user": "user-7"}  # fmt: skip
    client.chat.completions.create(
        model="replay", messages=MESSAGES, **sampling, extra_body={"deepprune": FAST, "repetition_penalty": 1.05},  # type: ignore[arg-type]
    )  # fmt: skip
    bodies = upstream.branch_bodies()
    assert len(bodies) == FAST["n"]
    for body in bodies:
        assert {k: body.get(k) for k in sampling} == sampling and body["repetition_penalty"] == 1.05


def test_every_branch_gets_the_whole_conversation(
    upstream: RecordingReplayServer, client_of: Callable[..., openai.OpenAI]
) -> None:
    client = client_of(upstream.base_url)
    conversation = [
        {"role": "system", "content": "Answer in English."},
        {"role": "user", "content": "3+4?"},
        {"role": "assistant", "content": "7"},
        {"role": "user", "content": [{"type": "text", "text": QUESTION.question}]},
    ]
    reply = client.chat.completions.create(model="replay", messages=conversation, extra_body={"deepprune": FAST})  # type: ignore[arg-type]
    assert summary_of(reply)["answer"] is not None
    for body in upstream.branch_bodies():
        assert body["messages"] == [
            {"role": "system", "content": DEFAULT_SYSTEM_PROMPT + "\n\nAnswer in English."},
            *conversation[1:],
        ]


def test_images_reach_the_branches_or_get_a_400_that_says_so(
    upstream: RecordingReplayServer, client_of: Callable[..., openai.OpenAI]
) -> None:
    asked = [{"role": "user", "content": [{"type": "text", "text": QUESTION.question}, IMAGE]}]
    client_of(upstream.base_url).chat.completions.create(
        model="replay",
        messages=asked,
        extra_body={"deepprune": FAST},  # type: ignore[arg-type]
    )
    assert all(body["messages"][-1]["content"][1] == IMAGE for body in upstream.branch_bodies())
    # A text-only model server refuses image parts with a 400 (vLLM does): so does the proxy, saying why.
    with RecordingReplayServer([QUESTION], faults=FaultConfig(open_status=400, open_rate=1.0)) as text_only:
        client = client_of(text_only.base_url)
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model="replay", messages=asked, extra_body={"deepprune": FAST})  # type: ignore[arg-type]
        assert "images" in err.value.message and err.value.param == "messages"


def test_regenerate_samples_anew_and_the_seed_is_in_the_response(
    upstream: RecordingReplayServer, client_of: Callable[..., openai.OpenAI]
) -> None:
    client = client_of(upstream.base_url)
    seeds = []
    for _ in range(2):
        reply = client.chat.completions.create(model="replay", messages=MESSAGES, extra_body={"deepprune": FAST})  # type: ignore[arg-type]
        seeds.append(summary_of(reply)["seed"])
    sent = sorted(body["seed"] for body in upstream.branch_bodies())
    assert seeds[0] != seeds[1]
    assert sent == sorted(s + i for s in seeds for i in range(FAST["n"]))  # branch i: seed + i
    reply = client.chat.completions.create(
        model="replay",
        messages=MESSAGES,
        seed=3,
        extra_body={"deepprune": FAST},  # type: ignore[arg-type]
    )
    assert summary_of(reply)["seed"] == 3 and sorted(b["seed"] for b in upstream.branch_bodies()[-4:]) == [3, 4, 5, 6]


def test_the_winning_branch_reasoning_comes_back_as_vllm_returns_it(client_of: Callable[..., openai.OpenAI]) -> None:
    with RecordingReplayServer([QUESTION], tokens_per_s=300, reasoning="reasoning") as thinking:
        client = client_of(thinking.base_url)
        reply = client.chat.completions.create(
            model="replay",
            messages=MESSAGES,
            seed=0,
            extra_body={"deepprune": {**FAST, "policy": "none"}},  # type: ignore[arg-type]
        )
        message = reply.choices[0].message
        reasoning = getattr(message, "reasoning", None) or (message.model_extra or {}).get("reasoning")
        assert message.content and message.content.strip().endswith("The answer is 7.")
        assert reasoning and "3 + 4 = 7" in reasoning and "The answer is" not in message.content[:-20]
        chunks = list(
            client.chat.completions.create(
                model="replay", messages=MESSAGES, stream=True, seed=0,
                extra_body={"deepprune": {**FAST, "policy": "none", "progress": False}},  # type: ignore[arg-type]
            )
        )  # fmt: skip
        streamed = "".join(getattr(c.choices[0].delta, "reasoning", None) or "" for c in chunks if c.choices)
        assert "3 + 4 = 7" in streamed and PROGRESS_PREFIX not in streamed
        assert thinking.wait_idle(5.0)


def test_responses_name_the_resolved_model_not_the_alias(
    upstream: RecordingReplayServer, client_of: Callable[..., openai.OpenAI]
) -> None:
    client = client_of(upstream.base_url)
    reply = client.chat.completions.create(model="+deepprune:n=2,judge=numbers", messages=MESSAGES)  # type: ignore[arg-type]
    assert reply.model == "replay"
    chunks = list(client.chat.completions.create(model="replay+deepprune:n=2", messages=MESSAGES, stream=True))  # type: ignore[arg-type]
    assert {c.model for c in chunks} == {"replay"}


def test_client_errors_carry_openai_codes_and_no_operator_advice(
    upstream: RecordingReplayServer, client_of: Callable[..., openai.OpenAI]
) -> None:
    client = client_of(upstream.base_url)
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-9", messages=MESSAGES)  # type: ignore[arg-type]
    assert missing.value.code == "model_not_found" and "replay" in missing.value.message
    with pytest.raises(openai.BadRequestError) as oracle:  # reads recorded answers: no sense on live branches
        client.chat.completions.create(model="replay", messages=MESSAGES, extra_body={"deepprune": {"judge": "oracle"}})  # type: ignore[arg-type]
    assert oracle.value.param == "deepprune.judge"
    with RecordingReplayServer([QUESTION], faults=FaultConfig(open_status=400, open_rate=1.0)) as broken:
        stream = client_of(broken.base_url).chat.completions.create(
            model="replay",
            messages=MESSAGES,
            stream=True,
            extra_body={"deepprune": FAST},  # type: ignore[arg-type]
        )
        with pytest.raises(openai.APIError) as streamed:
            list(stream)
    assert streamed.value.code == "upstream_error"  # a code, not the status "502" as a string
    down = client_of("http://127.0.0.1:9/v1")  # nothing listens there
    for stream in (False, True):
        with pytest.raises(openai.APIStatusError) as unavailable:
            down.chat.completions.create(model="replay", messages=MESSAGES, stream=stream)  # type: ignore[arg-type]
        assert unavailable.value.status_code == 503 and unavailable.value.code == "upstream_unavailable"
        for advice in ("deepprune serve", "--base-url", "DEEPPRUNE_", "127.0.0.1:9"):
            assert advice not in unavailable.value.message
