"""Split a reasoning model's output into its thinking and its final content (pure, incremental).

Reasoning models reach us in three shapes, and everything above ``backends/`` must not care which:

* vLLM started with ``--reasoning-parser`` streams the thinking in ``delta.reasoning`` (vLLM >= 0.11),
  SGLang and older vLLM in ``delta.reasoning_content``; the answer follows in ``delta.content``;
* without a parser the thinking is inline in ``content`` between ``<think>`` and ``</think>``; the opening
  tag is often written by the chat template into the prompt, so the stream starts *inside* the thinking
  and only ever shows ``</think>``.

``ThinkSplitter`` handles the inline shape one chunk at a time: tags split across chunks are held back
until they are complete, and a stream cut by ``length`` before ``</think>`` leaves all its text as
thinking. ``ReasoningFormat`` says what to expect:

* ``auto`` (default): reasoning fields when the server sends them; inline ``<think>...</think>`` in
  content; a ``</think>`` without an opening tag means the template opened it, so the content seen so
  far was thinking (the splitter says so with ``reclassify``). A stream with no tag at all is content;
* ``fields``: only the reasoning fields; content is taken verbatim (tags are not looked for);
* ``inline``: the stream starts inside the thinking (the chat template opened ``<think>``): content is
  thinking until ``</think>``;
* ``none``: a non-reasoning model: content verbatim, reasoning fields ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal, get_args

from deepprune_agents.errors import ConfigError

ReasoningFormat = Literal["auto", "fields", "inline", "none"]
REASONING_FORMATS: tuple[str, ...] = get_args(ReasoningFormat)
OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"
_TAGS = (OPEN_TAG, CLOSE_TAG)
_LONGEST = max(len(t) for t in _TAGS)

__all__ = [
    "CLOSE_TAG",
    "OPEN_TAG",
    "REASONING_FORMATS",
    "ReasoningFormat",
    "ThinkSplitter",
    "check_reasoning_format",
    "delta_reasoning",
    "inline_continuation",
    "split_message",
    "split_recorded",
    "split_text",
]


def check_reasoning_format(value: str) -> ReasoningFormat:
    """The value as a ReasoningFormat, or a ConfigError naming the accepted ones."""
    if value not in REASONING_FORMATS:
        raise ConfigError(f"unknown reasoning_format {value!r}: use one of {', '.join(REASONING_FORMATS)}.")
    return value  # type: ignore[return-value]


def _partial_tag_start(buf: str) -> int:
    """Where a trailing, incomplete ``<think>``/``</think>`` begins in ``buf`` (``len(buf)`` if none)."""
    k = buf.rfind("<", max(0, len(buf) - _LONGEST + 1))
    if k == -1:
        return len(buf)
    tail = buf[k:]
    return k if any(t.startswith(tail) and t != tail for t in _TAGS) else len(buf)


class ThinkSplitter:
    """Incremental splitter of inline ``<think>`` tags (one per stream; see the module doc).

    ``feed(text)`` returns ``(reasoning, content, reclassify)`` for one chunk of content; ``flush()`` the
    text held back at the end of the stream. ``reclassify`` is True once, in ``auto``, when a bare
    ``</think>`` showed that the content returned before was thinking: the caller moves it over."""

    __slots__ = ("_active", "_held", "_state", "verbatim")

    def __init__(self, fmt: ReasoningFormat = "auto") -> None:
        self._active = fmt in ("auto", "inline")
        # before: nothing seen yet (auto); thinking: inside <think>; answer: after </think> (final).
        self._state = "thinking" if fmt == "inline" else "before"
        self._held = ""
        #: A chunk without "<" would come back unchanged as content: callers may skip ``feed`` (hot path).
        self.verbatim = self._state != "thinking"

    @property
    def thinking(self) -> bool:
        """Whether the stream is inside the thinking now (what a resume must reopen)."""
        return self._active and self._state == "thinking"

    def feed(self, text: str) -> tuple[str, str, bool]:
        if not self._active or self._state == "answer":
            return "", text, False
        if not self._held and "<" not in text:  # the common chunk: no tag, nothing held
            return (text, "", False) if self._state == "thinking" else ("", text, False)
        buf, self._held = self._held + text, ""
        reasoning: list[str] = []
        content: list[str] = []
        reclassify = False
        while buf:
            if self._state == "answer":
                content.append(buf)
                break
            close = buf.find(CLOSE_TAG)
            opening = buf.find(OPEN_TAG)
            if opening != -1 and (close == -1 or opening < close):
                # An opening tag: thinking starts (or, already thinking, a duplicate tag is dropped).
                (reasoning if self._state == "thinking" else content).append(buf[:opening])
                self._state = "thinking"
                buf = buf[opening + len(OPEN_TAG) :]
                continue
            if close != -1:
                reasoning.append(buf[:close])
                reclassify = reclassify or self._state == "before"
                self._state = "answer"
                buf = buf[close + len(CLOSE_TAG) :]
                continue
            cut = _partial_tag_start(buf)
            self._held = buf[cut:]
            (reasoning if self._state == "thinking" else content).append(buf[:cut])
            break
        self.verbatim = not self._held and self._state != "thinking"
        return "".join(reasoning), "".join(content), reclassify

    def flush(self) -> tuple[str, str]:
        """What was held back as a possible tag start: the stream ended, so it was text after all."""
        held, self._held = self._held, ""
        self.verbatim = self._state != "thinking"
        return (held, "") if self._state == "thinking" else ("", held)


def delta_reasoning(delta: Mapping[str, Any]) -> str:
    """The thinking of one streamed delta (or non-streamed message): ``reasoning`` (vLLM >= 0.11) or
    ``reasoning_content`` (SGLang, older vLLM, DeepSeek's API)."""
    value = delta.get("reasoning") or delta.get("reasoning_content")
    return value if isinstance(value, str) else ""


def split_text(text: str, fmt: ReasoningFormat = "auto") -> tuple[str, str]:
    """``(reasoning, content)`` of a whole inline text (a recorded trace, a non-streamed message)."""
    if fmt in ("fields", "none"):
        return "", text
    splitter = ThinkSplitter(fmt)
    # Fed whole, a bare </think> leaves nothing earlier to reclassify: its prefix is already reasoning.
    reasoning, content, _ = splitter.feed(text)
    tail_r, tail_c = splitter.flush()
    return reasoning + tail_r, content + tail_c


def split_message(message: Mapping[str, Any], fmt: ReasoningFormat = "auto") -> tuple[str, str]:
    """``(reasoning, content)`` of a non-streamed ``choices[0].message``: the reasoning fields first,
    inline tags in the content otherwise."""
    content = message.get("content") or ""
    if not isinstance(content, str):
        content = ""
    if fmt == "none":
        return "", content
    fields = delta_reasoning(message)
    if fields:
        return fields, content
    return split_text(content, fmt)


def inline_continuation(reasoning: str, content: str) -> str:
    """The assistant prefix that resumes a branch after its partial output, for ``continue_final_message``.

    vLLM continues the final assistant message verbatim, so a branch that stopped mid-thinking must send
    its thinking back inline and still open (``<think>...`` without ``</think>``): the model then goes on
    thinking, and a server's reasoning parser (which looks for ``</think>`` in the *new* tokens) keeps
    routing it to the reasoning field. After the thinking, the closed block precedes the content."""
    if not reasoning:
        return content
    if not content:
        return OPEN_TAG + reasoning
    return OPEN_TAG + reasoning + CLOSE_TAG + content


_SENTENCE_END = re.compile(r"[.!?]\s+(?=\S)")


def split_recorded(text: str) -> tuple[str, str]:
    """``(thinking, answer)`` of a recorded trace, for serving or simulating it as a reasoning model.

    A trace with ``</think>`` splits there; a trace without tags is read as thinking followed by its
    last sentence as the answer (recorded chain-of-thought traces end on "The answer is N."); a single
    sentence is all answer."""
    if CLOSE_TAG in text:
        return split_text(text)
    ends = [m.end() for m in _SENTENCE_END.finditer(text.rstrip())]
    if not ends:
        return "", text
    return text[: ends[-1]], text[ends[-1] :]
