"""The proxy's pure parts: per-request options (body field, model suffix, standard fields), the progress
lines, the reply text and the usage of a result."""

from __future__ import annotations

import pytest

from deepprune_agents.result import BranchResult, DeepPruneResult
from deepprune_agents.server import protocol as wire
from deepprune_agents.server.options import OptionsError, parse_options, split_model
from deepprune_agents.settings import DeepPruneContext

DEFAULTS = DeepPruneContext(base_urls=["http://upstream:8000/v1"], judge="numbers")


def body(**kw: object) -> dict[str, object]:
    return {"model": "m", "messages": [{"role": "user", "content": "q"}], **kw}


@pytest.mark.parametrize(
    ("name", "model", "options"),
    [
        ("Qwen/Qwen3-8B", "Qwen/Qwen3-8B", {}),
        ("Qwen/Qwen3-8B+deepprune", "Qwen/Qwen3-8B", {}),
        ("Qwen/Qwen3-8B+deepprune:n=16,judge=numbers", "Qwen/Qwen3-8B", {"n": "16", "judge": "numbers"}),
        ("+deepprune:n=4", None, {"n": "4"}),
        ("llama3:8b+deepprune:policy=periodic", "llama3:8b", {"policy": "periodic"}),
        (None, None, {}),
    ],
)
def test_model_suffix_grammar(name: str | None, model: str | None, options: dict[str, str]) -> None:
    assert split_model(name) == (model, options)


@pytest.mark.parametrize("name", ["m+deepprune(n=4)", "m+deepprune:n", "m+deepprune:=4"])
def test_bad_suffix_names_the_grammar(name: str) -> None:
    with pytest.raises(OptionsError) as err:
        split_model(name)
    assert err.value.param == "model"
    assert "key=value" in str(err.value)


def test_priority_body_over_suffix_over_standard_fields_over_defaults() -> None:
    opts = parse_options(
        body(model="m+deepprune:n=4,max_tokens=64", max_tokens=32, temperature=0.2, seed=7, deepprune={"n": 6}),
        DEFAULTS,
    )
    ctx = opts.context
    assert (ctx.n, ctx.max_tokens, ctx.temperature, ctx.seed) == (6, 64, 0.2, 7)
    assert opts.model == "m" and ctx.judge == "numbers" and ctx.base_urls == DEFAULTS.base_urls


def test_suffix_strings_are_typed() -> None:
    opts = parse_options(body(model="m+deepprune:tau=0.3,stop_when_decided=false,progress=off"), DEFAULTS)
    assert opts.context.tau == 0.3 and opts.context.stop_when_decided is False and opts.progress is False


@pytest.mark.parametrize(
    ("extra", "param", "hint"),
    [
        ({"deepprune": {"n": 0}}, "deepprune", ">= 1"),
        ({"deepprune": {"n": "many"}}, "deepprune.n", "integer"),
        ({"deepprune": {"n": 2.5}}, "deepprune.n", "integer"),
        ({"deepprune": {"policy": "magic"}}, "deepprune", "paper"),
        ({"deepprune": {"judge": "psychic"}}, "deepprune.judge", "numbers"),
        ({"deepprune": {"base_urls": ["http://evil/v1"]}}, "deepprune.base_urls", "use one of"),
        ({"deepprune": {"content": "poem"}}, "deepprune.content", "branch"),
        ({"deepprune": [1, 2]}, "deepprune", "object"),
        ({"temperature": "hot"}, "temperature", "number"),
        ({"n": 3}, "n", "deepprune.n"),
        ({"deepprune": {"n": 10_000}}, "deepprune.n", "limit of 512 branches"),
        ({"deepprune": {"judge": "oracle"}}, "deepprune.judge", "not available here"),
    ],
)
def test_bad_values_name_the_field_and_the_fix(extra: dict[str, object], param: str, hint: str) -> None:
    with pytest.raises(OptionsError) as err:
        parse_options(body(**extra), DEFAULTS)
    assert err.value.param == param
    assert hint in str(err.value)


def test_the_whole_conversation_goes_to_the_branches_and_system_text_is_kept() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    req = wire.ChatCompletionRequest.model_validate(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}, image]},
            ]
        }
    )
    convo = wire.conversation(req.messages)
    assert (convo.question, convo.system, convo.has_images) == ("What is 2+2?", "Be brief.", True)
    assert [t["role"] for t in convo.turns] == ["user", "assistant", "user"]
    assert convo.turns[-1]["content"][1] == image  # passed as it is: the model server decides


@pytest.mark.parametrize(
    ("messages", "hint"),
    [
        ([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "end with a user message"),
        ([{"role": "tool", "content": "42"}, {"role": "user", "content": "q"}], "tools are not"),
        ([{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}], "input_audio"),
    ],
)
def test_conversations_that_cannot_be_sent_as_they_are_name_why(messages: list[dict[str, object]], hint: str) -> None:
    req = wire.ChatCompletionRequest.model_validate({"messages": messages})
    with pytest.raises(wire.ConversationError, match=hint):
        wire.conversation(req.messages)


@pytest.mark.parametrize(
    ("extra", "param", "code"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools", "unsupported_parameter"),
        ({"tool_choice": "required"}, "tool_choice", "unsupported_parameter"),
        ({"response_format": {"type": "json_object"}}, "response_format", "unsupported_parameter"),
        ({"logprobs": True}, "logprobs", "unsupported_parameter"),
        ({"n": 2}, "n", "unsupported_value"),
        ({"stop": 5}, "stop", "invalid_value"),
        ({"presence_penalty": 3}, "presence_penalty", "invalid_value"),
        ({"logit_bias": {"abc": 1}}, "logit_bias", "invalid_value"),
    ],
)
def test_what_the_proxy_cannot_honour_is_refused_with_an_openai_code(
    extra: dict[str, object], param: str, code: str
) -> None:
    with pytest.raises(OptionsError) as err:
        parse_options(body(**extra), DEFAULTS)
    assert (err.value.param, err.value.code) == (param, code)


def test_sampling_fields_reach_every_branch_and_a_seed_is_fresh_unless_set() -> None:
    sampling = {"stop": ["\n\n"], "presence_penalty": 0.5, "frequency_penalty": -0.2, "logit_bias": {"42": -100},
                "user": "u-1", "repetition_penalty": 1.1}  # fmt: skip
    ctx = parse_options(body(**sampling), DEFAULTS.replace(extra_body={"top_k": 20}), fresh_seed=1234).context
    assert ctx.extra_body == {"top_k": 20, **sampling} and ctx.seed == 1234
    assert parse_options(body(seed=7), DEFAULTS, fresh_seed=1234).context.seed == 7
    assert parse_options(body(), DEFAULTS).context.seed == DEFAULTS.seed  # the operator fixed the seed


def test_progress_lines_report_each_state_change_once() -> None:
    lines = wire.ProgressLines()
    start = lines.lines({"event": "start", "n": 4, "model": "m", "policy": "paper", "judge": "numbers"})
    assert start == ["deepprune: 4 branches started on m (paper policy, numbers judge)\n"]
    tick = {"event": "tokens", "branches": [{"id": 1, "status": "finished", "tokens": 9, "delta": ""}]}
    assert lines.lines(tick) == ["deepprune: branch 1 finished (9 tokens)\n"]
    assert lines.lines(tick) == []  # reported once
    judged = lines.lines({"event": "judge", "round": 2, "cancelled": [0, 3], "clusters": [[1], [2]]})
    assert judged == ["deepprune: judge round 2: pruned branch(es) 0, 3 (2 clusters)\n"]
    assert lines.lines({"event": "cluster", "branch": 1, "cluster": 0}) == []
    launched = lines.lines({"event": "launch", "branches": [4, 5, 6, 7], "why": "judge-split", "similarity": 0.2})
    assert launched == ["deepprune: started branch(es) 4-7 (judge split)\n"]
    assert lines.lines({"event": "launch", "branches": [0, 2], "why": "first wave"}) == [
        "deepprune: started branch(es) 0, 2 (first wave)\n"
    ]
    assert all(line.startswith(wire.PROGRESS_PREFIX) and line.endswith("\n") for line in start + judged + launched)


def result_of(branches: list[BranchResult], answer: str | None) -> DeepPruneResult:
    tokens = sum(b.tokens for b in branches)
    return DeepPruneResult(
        question="q", answer=answer, branches=branches, n=len(branches), policy="paper", judge="numbers",
        model="m", tokens_generated=tokens, tokens_cons_estimate=tokens, token_saving=0.0, wall_time_s=0.1,
    )  # fmt: skip


BRANCHES = [
    BranchResult(id=0, status="finished", tokens=10, answer="1", text="so 1. The answer is 1."),
    BranchResult(id=1, status="cancelled", tokens=3, text="we"),
    BranchResult(id=2, status="finished", tokens=12, answer="7", voted=True, text="3+4=7. The answer is 7."),
    BranchResult(id=3, status="failed", tokens=0, error="boom"),
]


def test_reply_is_a_voting_branch_or_the_answer() -> None:
    result = result_of(BRANCHES, "7")
    assert wire.reply(result, "branch", 512) == wire.Reply("3+4=7. The answer is 7.", "", "stop")
    assert wire.reply(result, "answer", 512).content == "7"
    assert wire.reply(result_of(BRANCHES, None), "branch", 512).content == "so 1. The answer is 1."


def test_the_reply_says_length_and_why_when_the_branches_were_cut() -> None:
    cut = [
        BranchResult(id=0, status="finished", tokens=5, finish_reason="length", reasoning="Let me think", text=""),
        BranchResult(id=1, status="finished", tokens=5, finish_reason="length", text=""),
    ]
    reply = wire.reply(result_of(cut, None), "branch", 5)
    assert reply.finish_reason == "length" and "max_tokens=5" in reply.content
    voted = [BranchResult(id=0, status="finished", tokens=5, finish_reason="length", answer="7", voted=True,
                          reasoning="3+4", text="The answer is 7")]  # fmt: skip
    reply = wire.reply(result_of(voted, "7"), "branch", 5)
    assert reply == wire.Reply("The answer is 7", "3+4", "length")  # the winning branch's reasoning comes along
    failed = wire.reply(result_of([BranchResult(id=0, status="failed", tokens=0)], None), "answer", 5)
    assert failed.content.startswith("No answer") and failed.finish_reason == "stop"


def test_usage_counts_every_branch_that_reached_the_server() -> None:
    result = result_of(BRANCHES, "7")
    use = wire.usage(result, prompt_tokens_per_branch=20)
    assert use == {"prompt_tokens": 60, "completion_tokens": 25, "total_tokens": 85}
    summary = wire.deepprune_summary(result, prompt_tokens_estimated=False)
    assert sum(b["tokens"] for b in summary["branches"]) == use["completion_tokens"]
    assert "text" not in summary["branches"][0] and "endpoint" not in summary["branches"][0]


def test_a_branch_a_staged_run_never_started_costs_no_prompt_and_is_not_counted_as_started() -> None:
    staged = [*BRANCHES, BranchResult(id=4, status="unstarted", tokens=0)]
    result = DeepPruneResult.from_branches(
        staged, question="q", answer="7", policy="staged", judge="numbers", model="m", wall_time_s=0.1
    )
    assert wire.usage(result, prompt_tokens_per_branch=20) == wire.usage(result_of(BRANCHES, "7"), 20)
    summary = wire.deepprune_summary(result, prompt_tokens_estimated=False)
    assert (summary["n"], summary["finished"], summary["cancelled"], summary["failed"], summary["unstarted"]) == (
        5, 2, 1, 1, 1,
    )  # fmt: skip
    assert "1 failed, 1 not started;" in result.summary()
    assert "not started" not in result_of(BRANCHES, "7").summary()

    pytest.importorskip("prometheus_client")
    from deepprune_agents.server.metrics import ProxyMetrics

    metrics = ProxyMetrics()
    metrics.record_result(result)
    value = metrics.registry.get_sample_value
    started = value("deepprune_proxy_branches_total", {"state": "started"})
    assert (
        started
        == 4
        == sum(value("deepprune_proxy_branches_total", {"state": s}) or 0 for s in ("finished", "cancelled", "failed"))
    )
    assert value("deepprune_proxy_branches_total", {"state": "unstarted"}) == 1


def test_content_pieces_rebuild_the_text() -> None:
    text = "x" * 150
    assert "".join(wire.content_pieces(text)) == text and wire.content_pieces("") == [""]


def test_serve_upstream_names_the_extra_when_starlette_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import deepprune_agents.extras as extras
    from deepprune_agents.cli import main

    monkeypatch.setattr(extras, "find_spec", lambda name: None if name == "uvicorn" else object())
    assert main(["serve", "--upstream", "http://127.0.0.1:9/v1"]) == 2
    err = capsys.readouterr().err
    assert "needs uvicorn" in err and "deepprune-agents[proxy]" in err


def test_branch_requests_carry_the_whole_conversation() -> None:
    from deepprune_agents.prompts import branch_requests

    turns = [
        {"role": "user", "content": "3+4?"},
        {"role": "assistant", "content": "7"},
        {"role": "user", "content": [{"type": "text", "text": "and times 2?"}]},
    ]
    chat = branch_requests("and times 2?", "m", DEFAULTS.replace(n=2), conversation=turns)
    assert [r.messages for r in chat] == [[{"role": "system", "content": DEFAULTS.system_prompt}, *turns]] * 2
    assert [r.seed for r in chat] == [DEFAULTS.seed, DEFAULTS.seed + 1]
    (raw,) = branch_requests("and times 2?", "m", DEFAULTS.replace(n=1, endpoint="completions"), conversation=turns)
    assert "User: 3+4?\nAssistant: 7\nQuestion: and times 2?" in raw.prompt
    (alone,) = branch_requests("q", "m", DEFAULTS.replace(n=1))
    assert alone.messages[-1] == {"role": "user", "content": "q"}
