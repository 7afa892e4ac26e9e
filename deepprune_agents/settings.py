"""One typed settings object, read by the CLI, the Runnable and the graph alike.

It doubles as the LangGraph ``context_schema`` (like react-agent's ``Context``): Studio renders its
fields as a form, ``DeepPruneReasoner`` builds it from constructor arguments and ``RunnableConfig``,
and unset endpoint fields fall back to environment variables. API keys are *not* fields: they are only
read from the environment by the backend, so they can never end up in state, events or results.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args

from deepprune_agents.backends.openai_stream import EndpointKind
from deepprune_agents.backends.reasoning import ReasoningFormat
from deepprune_agents.errors import ConfigError
from deepprune_agents.pruning import KNOB_CLASSES
from deepprune_agents.pruning.knobs import Knobs, knob_settings_fields
from deepprune_agents.settings_layers import layered_values

K = TypeVar("K", bound=Knobs)

# Built-in judges, as Literal so Studio's context form offers them as choices; judges.register_judge adds
# names at run time (accepted by validate(); from typed code, cast them).
JudgeName = Literal["trained", "blend", "context", "numbers", "embedding", "oracle", "llm", "transformers", "constant"]

# The one list of policy names: the CLI's choices and validate() both read it.
PolicyName = Literal["adaptive", "paper", "periodic", "staged", "none"]
KNOWN_POLICIES: tuple[PolicyName, ...] = get_args(PolicyName)

# "The answer is N." rather than \boxed{}: small chat models (SmolLM2) follow it far more often, and the
# extractor reads both forms (and "#### N"), so larger models that box their answers work unchanged.
# From this many branches the streams are read by worker processes unless stream_workers says otherwise:
# in one process the loop lags by ~50 us x N per iteration at full speed (215 ms p99 at 512, bench/scale.py).
AUTO_WORKERS_MIN_BRANCHES = 256
DEFAULT_SESSION_HEADER = "X-Session-ID"  # what vllm-router's consistent_hash policy hashes
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (RFC 9110)
DEFAULT_SYSTEM_PROMPT = "Solve the problem step by step. Finish with a line of the form 'The answer is N.'"


@dataclass(kw_only=True)
@knob_settings_fields(KNOB_CLASSES, after="truncate")
class DeepPruneContext:
    """Everything a pruned run needs to know, with the paper's constants as defaults.

    The policies' knobs (``tau``, ``k1``, ``max_clusters``, ``stop_when_decided``, ``k2``, ``judge_every``,
    ``representatives``, ``adaptive_*``) are not spelled here: ``knob_settings_fields`` adds one field per
    knob declared in the policies' knobs classes (``pruning.KNOB_CLASSES``), after ``truncate``. Read them,
    typed, with ``ctx.knobs(PaperKnobs)``; as plain attributes (``ctx.tau``) they type-check as Any.
    """

    if TYPE_CHECKING:  # the knob fields are added at import time: let type checkers accept them too

        def __init__(self, **settings: Any) -> None: ...

        def __getattr__(self, name: str) -> Any: ...

    n: int = field(default=8, metadata={"description": "Number of parallel branches (cons@N)."})
    # Defaults chosen on the frontier of every shared trace set at every N among 8-64 at once (issue 34,
    # docs/staged_fanout.md, `bench/staged_fanout.py`): `staged` with the `numbers` judge keeps cons@N's accuracy
    # within 1 point with tokens and wall time at or below ESC's on all ten cases, and the judge pays for itself
    # (the constant judge takes >= 10% more wall time on the OVM cases, where questions are contested). The
    # former default, `adaptive` + `constant`, was chosen on five targets and lost 2-4 points at N = 8: its
    # thinning was cons@N/2 under another name. `numbers` is lexical (no model to load beside the server); it
    # only decides when to start branches, never which running branch to cancel.
    policy: PolicyName = field(
        default="staged",
        metadata={
            "description": "'staged' (start a first wave, the rest when the judge reads it as split or the "
            "answers need more votes; stop on a safe vote), 'adaptive' (thin clusters, stop on a safe vote), "
            "'paper' (DeepPrune), 'periodic' (judge every judge_every tokens) or 'none' (cons@N)."
        },
    )
    judge: JudgeName = field(
        default="numbers",
        metadata={
            "description": "Judge: trained, blend, context (reads the run too), numbers, embedding, oracle (recorded "
            "traces), llm, transformers, "
            "constant (no information: the control); "
            "a name given to judges.register_judge also works."
        },
    )
    judge_options: dict[str, Any] = field(
        default_factory=dict, metadata={"description": "Keyword arguments for the judge factory."}
    )
    truncate: str = field(
        default="tokens:32",
        metadata={"description": "Judge input: 'tokens:K' or 'words:K' (first K reasoning words)."},
    )
    base_urls: list[str] = field(
        default_factory=list,
        metadata={"description": "OpenAI-compatible base URLs (…/v1). Empty: start the embedded server."},
    )
    model: str | None = field(
        default=None, metadata={"description": "Model name; None takes the first model the server lists."}
    )
    endpoint: EndpointKind = field(default="chat", metadata={"description": "'chat' or 'completions'."})
    system_prompt: str = field(default=DEFAULT_SYSTEM_PROMPT)
    # A regex string (Studio, JSON, CLI) or, from Python, a callable str -> str | None; see
    # answers.make_extractor. Studio's form shows it as a string (the callable is not serializable).
    answer_pattern: str | Callable[[str], str | None] | None = field(
        default=None,
        metadata={
            "description": "Regex whose first group is a branch's final answer (last match wins; the built-in "
            "extractor answers when it finds none). None: the built-in extractor (boxed, ####, 'The answer is')."
        },
    )
    temperature: float = 0.8
    top_p: float = 0.95
    max_tokens: int = field(default=512, metadata={"description": "Token cap per branch."})
    seed: int = field(default=0, metadata={"description": "Branch i is sampled with seed + i."})
    extra_body: dict[str, Any] = field(
        default_factory=dict, metadata={"description": "vLLM sampling extras passed through extra_body."}
    )
    reasoning_format: ReasoningFormat = field(
        default="auto",
        metadata={
            "description": "How a reasoning model's thinking arrives: 'auto' (reasoning fields, or inline "
            "<think> tags, a bare </think> included), 'fields' (delta.reasoning / reasoning_content only), "
            "'inline' (content starts inside <think>: the chat template opened it), 'none' (no thinking)."
        },
    )
    chat_template_kwargs: dict[str, Any] = field(
        default_factory=dict,
        metadata={"description": "Passed to the server's chat template, e.g. {'enable_thinking': True} (Qwen3)."},
    )
    reasoning_effort: str | None = field(
        default=None, metadata={"description": "'low', 'medium' or 'high' for models that take it (gpt-oss)."}
    )
    include_reasoning: bool | None = field(
        default=None,
        metadata={"description": "vLLM: False drops the thinking from the stream (the judge then reads none)."},
    )
    max_n: int = field(default=512, metadata={"description": "Cap on n (protects the server)."})
    max_question_chars: int = 20_000
    request_timeout_s: float = field(
        default=60.0, metadata={"description": "Per-read timeout of a stream: a stalled stream fails."}
    )
    run_timeout_s: float = field(default=900.0, metadata={"description": "Deadline of a whole run."})
    judge_timeout_s: float = field(default=60.0, metadata={"description": "Deadline of one judge call."})
    open_retries: int = field(default=3, metadata={"description": "Retries when opening a stream."})
    session_header: str = field(
        default=DEFAULT_SESSION_HEADER,
        metadata={
            "description": "HTTP header that carries the run id on every branch request, so a router keeps a "
            "run's branches on one replica (vllm-router --policy consistent_hash reads X-Session-ID). "
            "Empty: no header."
        },
    )
    max_streams_per_endpoint: int | None = field(
        default=None,
        metadata={
            "description": "With several base_urls (no router): streams this process keeps on one endpoint "
            "before a run's further branches spill to the next (None: no cap; a run stays on its endpoint)."
        },
    )
    stream_workers: int | None = field(
        default=None,
        metadata={
            "description": "Worker processes that read the branch streams (0: this process). None: this process "
            f"below {AUTO_WORKERS_MIN_BRANCHES} branches, else one per core (at most 4), so that the streams' "
            "parsing stays off the event loop that runs the judge and the caller."
        },
    )

    def __new__(cls, *args: Any, **kwargs: Any) -> DeepPruneContext:
        # Remember what the call passed: those fields win over the settings file and the environment
        # (settings_layers.py), also when the call passes a field's default value.
        self = super().__new__(cls)
        object.__setattr__(self, "_explicit", frozenset(kwargs))
        return self

    def __post_init__(self) -> None:
        explicit: frozenset[str] = getattr(self, "_explicit", frozenset())
        for name, value in layered_values(fields(self), os.environ).items():
            if name not in explicit:
                setattr(self, name, value)
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the field and the fix; called on construction and by the graph."""
        if not isinstance(self.n, int) or self.n < 1:
            raise ConfigError(f"n must be an integer >= 1 (got {self.n!r}): ask for at least one branch.")
        if self.n > self.max_n:
            raise ConfigError(f"n={self.n} exceeds max_n={self.max_n}: lower n or raise max_n.")
        if self.policy not in KNOWN_POLICIES:
            raise ConfigError(f"unknown policy {self.policy!r}: use one of {', '.join(KNOWN_POLICIES)}.")
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise ConfigError(f"max_tokens must be an integer >= 1 (got {self.max_tokens!r}).")
        for kind in KNOB_CLASSES:
            self.knobs(kind)  # validates: ConfigError names the settings field and its range
        if self.endpoint not in ("chat", "completions"):
            raise ConfigError(f"endpoint must be 'chat' or 'completions' (got {self.endpoint!r}).")
        if not 0.0 <= self.temperature <= 5.0 or not 0.0 < self.top_p <= 1.0:
            raise ConfigError("temperature must lie in [0, 5] and top_p in (0, 1].")
        if self.stream_workers is not None and (
            not isinstance(self.stream_workers, int) or not 0 <= self.stream_workers <= 64
        ):
            raise ConfigError(
                f"stream_workers must be None (auto) or an integer in [0, 64] (got {self.stream_workers!r})."
            )
        for name in ("request_timeout_s", "run_timeout_s", "judge_timeout_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0.")
        from deepprune_agents.truncation import parse_truncation

        parse_truncation(self.truncate)
        from deepprune_agents.answers import make_extractor

        make_extractor(self.answer_pattern)  # a bad regex fails here, naming the fix
        from deepprune_agents.backends.reasoning import check_reasoning_format

        check_reasoning_format(self.reasoning_format)
        if not isinstance(self.chat_template_kwargs, dict):
            raise ConfigError('chat_template_kwargs must be a JSON object, e.g. {"enable_thinking": true}.')
        if not isinstance(self.session_header, str) or (
            self.session_header and not _HEADER_NAME.fullmatch(self.session_header)
        ):
            raise ConfigError(
                f"session_header must be an HTTP header name such as X-Session-ID, or empty to send none "
                f"(got {self.session_header!r})."
            )
        if self.max_streams_per_endpoint is not None and (
            not isinstance(self.max_streams_per_endpoint, int) or self.max_streams_per_endpoint < 1
        ):
            raise ConfigError(
                f"max_streams_per_endpoint must be None (no cap) or an integer >= 1 "
                f"(got {self.max_streams_per_endpoint!r})."
            )
        for url in self.base_urls:
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"base URL {url!r} must start with http:// or https:// (e.g. http://host:8000/v1).")

    def knobs(self, kind: type[K]) -> K:
        """A policy's knobs object from this object's knob fields (validated: ConfigError names the field)."""
        return kind.from_settings({f.name: getattr(self, f.name) for f in fields(self)})

    def workers_for_run(self) -> int:
        """How many stream worker processes this run uses (``stream_workers``, or its automatic choice)."""
        if self.stream_workers is not None:
            return self.stream_workers
        return 0 if self.n < AUTO_WORKERS_MIN_BRANCHES else max(1, min(4, os.cpu_count() or 1))

    def replace(self, **changes: Any) -> DeepPruneContext:
        """A validated copy with ``changes`` applied (unknown keys raise ConfigError)."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ConfigError(f"unknown setting(s) {sorted(unknown)}; known: {sorted(known)}.")
        # Copied field by field (asdict would deep-copy a callable answer_pattern, which may not copy).
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data = {k: v if k == "answer_pattern" else copy.deepcopy(v) for k, v in data.items()}
        data.update(changes)
        return DeepPruneContext(**data)

    @classmethod
    def from_any(cls, value: DeepPruneContext | dict[str, Any] | None) -> DeepPruneContext:
        """Accept the dataclass, a plain dict (Studio / JSON configs) or None (all defaults)."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            return cls().replace(**{k: v for k, v in value.items() if v is not None})
        raise ConfigError(f"context must be a DeepPruneContext or a dict, not {type(value).__name__}.")
