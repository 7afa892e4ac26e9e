"""Splitting a reasoning model's output into thinking and content: the pure splitter, the SSE path,
non-streamed messages, resumes, and the answer a branch votes with."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator

import pytest

from deepprune_agents.backends.openai_stream import BranchRequest, BranchStream, StreamChunk
from deepprune_agents.backends.reasoning import (
    ThinkSplitter,
    check_reasoning_format,
    inline_continuation,
    split_message,
    split_recorded,
    split_text,
)
from deepprune_agents.engine import Branch, branch_answer
from deepprune_agents.errors import ConfigError
from deepprune_agents.evaluation.replay_server import stream_parts

THINKING = "Tom has 3 apples, buys 4: 3 + 4 = 7. Check: 7 - 4 = 3 < 4? yes."
ANSWER = "\n\nThe answer is 7."


def feed_all(pieces: list[str], fmt: str = "auto") -> tuple[str, str, int]:
    """Feed pieces like a stream does; returns (reasoning, content, reclassifications), applying a
    reclassify to the content returned so far the way the engine does."""
    splitter = ThinkSplitter(check_reasoning_format(fmt))
    reasoning, content, moves = "", "", 0
    for p in pieces:
        r, c, reclassify = splitter.feed(p)
        if reclassify:
            reasoning, content, moves = reasoning + content, "", moves + 1
        reasoning, content = reasoning + r, content + c
    r, c = splitter.flush()
    return reasoning + r, content + c, moves


def cut_everywhere(text: str) -> list[list[str]]:
    """The text cut into 2 pieces at every offset, plus random cuts into 1-3 character pieces."""
    cuts = [[text[:i], text[i:]] for i in range(len(text) + 1)]
    rng = random.Random(0)
    for _ in range(20):
        pieces, i = [], 0
        while i < len(text):
            n = rng.randint(1, 3)
            pieces.append(text[i : i + n])
            i += n
        cuts.append(pieces)
    return cuts


def test_tags_split_across_chunks_at_every_offset() -> None:
    text = "<think>" + THINKING + "</think>" + ANSWER
    for pieces in cut_everywhere(text):
        assert feed_all(pieces) == (THINKING, ANSWER, 0), pieces


def test_missing_opening_tag_auto_reclassifies_and_inline_expects_it() -> None:
    text = THINKING + "</think>" + ANSWER  # the chat template wrote <think> into the prompt
    for pieces in cut_everywhere(text):
        reasoning, content, moves = feed_all(pieces, "auto")
        assert (reasoning, content) == (THINKING, ANSWER), pieces
        assert moves <= 1
        assert feed_all(pieces, "inline") == (THINKING, ANSWER, 0)


def test_cut_by_length_before_closing_tag_leaves_all_thinking() -> None:
    partial = "<think>" + THINKING[:30] + "</thi"  # a tag start held back, then the stream ends
    assert feed_all([partial[:9], partial[9:]]) == (THINKING[:30] + "</thi", "", 0)
    assert feed_all([THINKING[:30]], "inline") == (THINKING[:30], "", 0)


def test_empty_content_and_plain_text_and_formats_that_do_not_parse() -> None:
    assert feed_all(["<think>", THINKING, "</think>"]) == (THINKING, "", 0)
    plain = "3 + 4 = 7 and 3 < 4. The answer is 7."
    assert feed_all([plain[:10], plain[10:]]) == ("", plain, 0)  # no tag: a non-reasoning model
    tagged = "<think>x</think>y"
    assert feed_all([tagged], "fields") == ("", tagged, 0)
    assert feed_all([tagged], "none") == ("", tagged, 0)
    assert split_text(tagged) == ("x", "y")
    with pytest.raises(ConfigError, match="reasoning_format"):
        check_reasoning_format("think")


def test_content_before_the_opening_tag_and_a_duplicate_tag_inside_thinking() -> None:
    assert feed_all(["\n<think>a<think>b</think>c"]) == ("ab", "\nc", 0)
    assert feed_all(["<think>a", "</think>b", "<think>c"]) == ("a", "b<think>c", 0)  # after: verbatim


def test_non_streamed_messages() -> None:
    assert split_message({"content": ANSWER, "reasoning": THINKING}) == (THINKING, ANSWER)
    assert split_message({"content": ANSWER, "reasoning_content": THINKING}) == (THINKING, ANSWER)
    assert split_message({"content": "<think>" + THINKING + "</think>" + ANSWER}) == (THINKING, ANSWER)
    assert split_message({"content": None, "reasoning": THINKING}) == (THINKING, "")
    assert split_message({"content": "a", "reasoning": "b"}, "none") == ("", "a")


def test_resume_sends_the_thinking_back_inline_and_open() -> None:
    assert inline_continuation("", "3 + 4") == "3 + 4"
    assert inline_continuation("3 + 4", "") == "<think>3 + 4"
    assert inline_continuation("3 + 4 = 7", " The answer is 7.") == "<think>3 + 4 = 7</think> The answer is 7."
    req = BranchRequest(model="m", max_tokens=100).resumed("", 30, reasoning="3 + 4")
    assert req.continuation == "<think>3 + 4" and req.max_tokens == 70


def test_branch_answer_falls_back_to_thinking_only_when_content_cannot_hold_it() -> None:
    thought = "So 3 + 4 = 7. The answer is 7. Hmm, or is the answer 8"
    assert branch_answer("The answer is 7.", thought, "stop") == "7"
    assert branch_answer("", thought, "stop") == "7"  # empty content: the last answer in the thinking
    assert branch_answer("In short,", "The answer is 7.", "length") == "7"  # cut in the content
    assert branch_answer("I cannot tell.", "The answer is 7.", "stop") is None  # a content without answer
    assert branch_answer("The answer is 9.", "", None) == "9"


def test_branch_keeps_thinking_and_content_apart_and_the_judge_reads_both() -> None:
    b = Branch(id=0, request=BranchRequest(model="m"))
    b.add("Tom has 3", "")
    b.add(" apples", "")
    assert b.text == "Tom has 3 apples"
    b.add("", " more", reclassify=True)  # a bare </think>: what came before was thinking
    b.add(" The answer is 7.")
    assert b.reasoning == "Tom has 3 apples more" and b.text == " The answer is 7."
    assert b.trace_text == "Tom has 3 apples more The answer is 7."
    assert b.view().text == b.trace_text and list(b.view().pieces or []) == b.pieces
    record = b.record()
    assert record.reasoning == b.reasoning and record.text == b.text


# -- the SSE path ---------------------------------------------------------------------------------
class Lines:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    async def iter_lines(self) -> AsyncIterator[str]:
        for line in self.lines:
            yield line

    async def close(self) -> None:
        pass


def delta_event(delta: dict[str, object], finish: str | None = None) -> list[str]:
    return [f"data: {json.dumps({'choices': [{'delta': delta, 'finish_reason': finish}]})}", ""]


async def stream(lines: list[str], fmt: str = "auto") -> list[StreamChunk]:
    return [c async for c in BranchStream(Lines(lines), "chat", check_reasoning_format(fmt))]  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["reasoning", "reasoning_content"])
async def test_sse_reasoning_fields(key: str) -> None:
    lines = [
        *delta_event({"role": "assistant", "content": ""}),
        *delta_event({key: "3 + 4"}),
        *delta_event({key: " = 7"}),
        *delta_event({"content": "The answer is 7."}, "stop"),
        "data: [DONE]",
        "",
    ]
    got = await stream(lines)
    assert [(c.reasoning, c.text, c.finish_reason) for c in got] == [
        ("3 + 4", "", None),
        (" = 7", "", None),
        ("", "The answer is 7.", "stop"),
    ]
    assert [(c.reasoning, c.text) for c in await stream(lines, "none")] == [("", "The answer is 7.")]


async def test_sse_inline_tags_split_across_chunks_and_held_tail_flushed_at_finish() -> None:
    lines = [
        *delta_event({"content": "<thi"}),
        *delta_event({"content": "nk>3 + 4 = 7</th"}),
        *delta_event({"content": "ink>The answer is 7."}),
        *delta_event({"content": " <"}, "stop"),
        "data: [DONE]",
        "",
    ]
    got = await stream(lines)
    assert "".join(c.reasoning for c in got) == "3 + 4 = 7"
    assert "".join(c.text for c in got) == "The answer is 7. <"
    assert got[-1].finish_reason == "stop"


def test_recorded_traces_split_into_thinking_and_answer() -> None:
    assert split_recorded("<think>a b</think>The answer is 7.") == ("a b", "The answer is 7.")
    assert split_recorded("3 + 4 = 7. So 7.\nThe answer is 7.") == ("3 + 4 = 7. So 7.\n", "The answer is 7.")
    assert split_recorded("The answer is 7.") == ("", "The answer is 7.")


def test_replay_stream_parts_in_each_reasoning_mode() -> None:
    text = "<think>3 + 4 = 7.</think> The answer is 7."
    pieces = ("x",)
    assert stream_parts(text, pieces, None) == (("content", "x"),)
    fields = stream_parts(text, pieces, "reasoning_content")
    assert "".join(p for k, p in fields if k == "reasoning_content") == "3 + 4 = 7."
    assert "".join(p for k, p in fields if k == "content") == " The answer is 7."
    inline_open = "".join(p for _, p in stream_parts(text, pieces, "inline-open"))
    assert inline_open == "3 + 4 = 7.</think> The answer is 7."
    with pytest.raises(ConfigError):
        stream_parts(text, pieces, "xml")


def test_think_hard_content_is_answer_and_summary_not_the_thinking() -> None:
    from deepprune_agents.result import BranchResult, DeepPruneResult
    from deepprune_agents.tools import format_content

    thinking = "Tom has 3 apples and buys 4 more, so 3 + 4 = 7. " * 20
    branches = [
        BranchResult(
            id=0, status="finished", tokens=9, answer="7", voted=True, reasoning=thinking, text="So 7 apples."
        ),
        BranchResult(id=1, status="finished", tokens=9, answer="7", voted=True, reasoning=thinking, text=""),
    ]
    common = {"question": "q", "n": 2, "policy": "paper", "judge": "numbers", "model": "m", "wall_time_s": 1.0}
    result = DeepPruneResult(
        answer="7", branches=branches, tokens_generated=18, tokens_cons_estimate=18, token_saving=0.0, **common
    )
    lines = format_content(result).split("\n")
    assert lines[0] == "Answer: 7" and lines[1] == "Summary: So 7 apples." and len(lines) == 3
    assert thinking[:40] not in format_content(result)
    with_thinking = format_content(result, summary_chars=0, thinking_chars=30)
    assert "Summary" not in with_thinking and "Thinking: Tom has 3 apples" in with_thinking
    # no content (cut by length): the end of the thinking stands in, bounded
    result.branches = branches[1:]
    summary = format_content(result, summary_chars=50).split("\n")[1]
    assert summary.startswith("Summary: …") and len(summary) <= len("Summary: …") + 50


@pytest.mark.parametrize("fmt", ["auto", "inline"])
async def test_sse_path_with_its_fast_path_equals_the_splitter_on_every_cut(fmt: str) -> None:
    text = ("" if fmt == "inline" else "<think>") + THINKING + "</think>" + ANSWER
    for pieces in cut_everywhere(text)[::7]:
        lines = [line for p in pieces for line in delta_event({"content": p})]
        lines += delta_event({}, "stop")
        got = await stream(lines, fmt)
        reasoning, content = "", ""
        for c in got:
            if c.reclassify:
                reasoning, content = reasoning + content, ""
            reasoning, content = reasoning + c.reasoning, content + c.text
        assert (reasoning, content) == (THINKING, ANSWER), pieces


async def test_progress_lines_of_a_deepprune_proxy_are_not_thinking() -> None:
    progress = {"choices": [{"delta": {"reasoning": "deepprune: 3 branches started"}}], "deepprune": {"progress": True}}
    lines = [f"data: {json.dumps(progress)}", "", *delta_event({"reasoning": "3 + 4"}, "stop")]
    assert [c.reasoning for c in await stream(lines)] == ["3 + 4"]


def test_a_checkpointed_branch_resumes_with_its_thinking_sent_back_inline() -> None:
    from deepprune_agents.engine import BranchPool

    requests = [BranchRequest(model="m", max_tokens=100), BranchRequest(model="m", max_tokens=100)]
    snaps = [
        {"id": 0, "status": "running", "tokens": 30, "reasoning": "3 + 4 = 7, so", "text": ""},
        {
            "id": 1,
            "status": "finished",
            "tokens": 40,
            "reasoning": "3 + 4 = 7.",
            "text": " The answer is 7.",
            "answer": "7",
        },
    ]
    pool = BranchPool.restore(None, requests, snaps)  # type: ignore[arg-type]
    mid, done = pool.branches
    assert mid.status == "pending" and mid.request.continuation == "<think>3 + 4 = 7, so"
    assert mid.request.max_tokens == 70 and mid.reasoning == "3 + 4 = 7, so" and mid.text == ""
    assert done.status == "finished" and done.request.continuation == ""
    assert (done.reasoning, done.text, done.trace_text) == (
        "3 + 4 = 7.",
        " The answer is 7.",
        "3 + 4 = 7. The answer is 7.",
    )
