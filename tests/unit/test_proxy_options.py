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
        ({"deepprune": {"n": 10_000}}, "deepprune", "max_n"),
    ],
)
def test_bad_values_name_the_field_and_the_fix(extra: dict[str, object], param: str, hint: str) -> None:
    with pytest.raises(OptionsError) as err:
        parse_options(body(**extra), DEFAULTS)
    assert err.value.param == param
    assert hint in str(err.value)


def test_question_is_the_last_user_message_and_system_text_is_kept() -> None:
    req = wire.ChatCompletionRequest.model_validate(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}, {"type": "image_url"}]},
            ]
        }
    )
    assert wire.question_and_system(req.messages) == ("What is 2+2?", "Be brief.")


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
    assert all(line.startswith(wire.PROGRESS_PREFIX) and line.endswith("\n") for line in start + judged)


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
    assert wire.reply_text(result, "branch") == "3+4=7. The answer is 7."
    assert wire.reply_text(result, "answer") == "7"
    assert wire.reply_text(result_of(BRANCHES, None), "branch") == "so 1. The answer is 1."


def test_usage_counts_every_branch_that_reached_the_server() -> None:
    result = result_of(BRANCHES, "7")
    use = wire.usage(result, prompt_tokens_per_branch=20)
    assert use == {"prompt_tokens": 60, "completion_tokens": 25, "total_tokens": 85}
    summary = wire.deepprune_summary(result, prompt_tokens_estimated=False)
    assert sum(b["tokens"] for b in summary["branches"]) == use["completion_tokens"]
    assert "text" not in summary["branches"][0] and "endpoint" not in summary["branches"][0]


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
