"""State shared by the handlers: traces, pacing (lockstep epochs), faults, records and counters."""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from deepprune_agents.errors import ConfigError
from deepprune_agents.evaluation.replay_data import RUN_STRIDE, QuestionIndex, ReplayQuestion
from deepprune_agents.evaluation.replay_server.faults import FaultConfig
from deepprune_agents.evaluation.replay_server.parts import REASONING_MODES
from deepprune_agents.evaluation.replay_server.records import RequestRecord

DEFAULT_MODEL = "replay"
DEFAULT_SESSION_HEADER = "X-Session-ID"
DEFAULT_LOCKSTEP_LEAD_S = 0.5


class ReplayState:
    """Traces, pacing, faults and records. Handlers run on the server's loop; ``snapshot()`` and
    ``set_faults()`` may be called from any thread (a lock guards the records)."""

    def __init__(
        self,
        questions: Sequence[ReplayQuestion],
        *,
        tokens_per_s: float = 0.0,
        model: str = DEFAULT_MODEL,
        faults: FaultConfig | None = None,
        lockstep: bool = False,
        stagger_s: float = 0.0,
        lockstep_lead_s: float = DEFAULT_LOCKSTEP_LEAD_S,
        reasoning: str | None = None,
        session_header: str = DEFAULT_SESSION_HEADER,
    ) -> None:
        if reasoning is not None and reasoning not in REASONING_MODES:
            raise ConfigError(f"unknown reasoning mode {reasoning!r}: use one of {', '.join(REASONING_MODES)}.")
        self.reasoning = reasoning
        self.session_header = session_header
        if tokens_per_s < 0:
            raise ConfigError(f"tokens_per_s must be >= 0 (0: full speed), got {tokens_per_s}.")
        if lockstep and tokens_per_s <= 0:
            raise ConfigError("lockstep pacing needs tokens_per_s > 0.")
        if stagger_s < 0 or lockstep_lead_s < 0:
            raise ConfigError("stagger_s and lockstep_lead_s must be >= 0.")
        self.index = QuestionIndex(questions)
        self.tokens_per_s = float(tokens_per_s)
        self.model = model
        self.lockstep = lockstep
        self.stagger_s = stagger_s
        self.lockstep_lead_s = lockstep_lead_s
        self.lock = threading.Lock()
        self.records: list[RequestRecord] = []
        self.open: dict[str, RequestRecord] = {}
        self.generation_tokens = 0
        self.prompt_tokens = 0
        self.finished: dict[str, int] = {"stop": 0, "length": 0, "abort": 0, "error": 0}
        self.seedless: dict[str, int] = {}
        self.epochs: dict[tuple[str, int], float] = {}
        self.set_faults(faults or FaultConfig())

    def set_faults(self, faults: FaultConfig) -> None:
        with self.lock:
            self.faults = faults
            self.fault_requests = 0
            self.fault_rng = random.Random(faults.seed)

    def reset(self) -> None:
        """Forget records and counters (open streams stay tracked)."""
        with self.lock:
            self.records = [r for r in self.records if r.id in self.open]
            self.generation_tokens = self.prompt_tokens = 0
            self.finished = dict.fromkeys(self.finished, 0)
            self.seedless.clear()
            self.epochs.clear()

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "model": self.model,
                "tokens_per_s": self.tokens_per_s,
                "lockstep": self.lockstep,
                "reasoning": self.reasoning,
                "open_streams": len(self.open),
                "open": sorted(self.open),
                "generation_tokens_total": self.generation_tokens,
                "finished": dict(self.finished),
                "faults": asdict(self.faults),
                "records": [r.as_dict() for r in self.records],
            }

    def open_fault(self) -> int | None:
        """The status to answer this request with, if an open fault applies."""
        with self.lock:
            f = self.faults
            if f.open_status is None:
                return None
            self.fault_requests += 1
            if f.open_first and self.fault_requests <= f.open_first:
                return f.open_status
            if f.open_rate and self.fault_rng.random() < f.open_rate:
                return f.open_status
            return None

    def seed_for(self, question_id: str, seed: int | None) -> int:
        if seed is not None:
            return int(seed)
        with self.lock:  # seedless clients get branch 0, 1, 2, ... of run 0, in arrival order
            k = self.seedless.get(question_id, 0)
            self.seedless[question_id] = k + 1
            return k

    def epoch_for(self, question_id: str, seed: int, now: float) -> float:
        """Lockstep: every stream of one (question, run) shares the time of its first open plus a lead."""
        key = (question_id, seed // RUN_STRIDE)
        with self.lock:
            if key not in self.epochs:
                self.epochs[key] = now + self.lockstep_lead_s
            return self.epochs[key]

    def metrics_text(self) -> str:
        with self.lock:
            running = len(self.open)
            lines = [
                "# HELP vllm:num_requests_running Number of requests currently streaming.",
                "# TYPE vllm:num_requests_running gauge",
                f'vllm:num_requests_running{{model_name="{self.model}"}} {running}',
                "# HELP vllm:num_requests_waiting Number of requests waiting (always 0 here).",
                "# TYPE vllm:num_requests_waiting gauge",
                f'vllm:num_requests_waiting{{model_name="{self.model}"}} 0',
                "# HELP vllm:generation_tokens_total Number of generation tokens sent.",
                "# TYPE vllm:generation_tokens_total counter",
                f'vllm:generation_tokens_total{{model_name="{self.model}"}} {self.generation_tokens}',
                "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.",
                "# TYPE vllm:prompt_tokens_total counter",
                f'vllm:prompt_tokens_total{{model_name="{self.model}"}} {self.prompt_tokens}',
                "# HELP vllm:request_success_total Count of finished requests by reason.",
                "# TYPE vllm:request_success_total counter",
            ]
            for reason, count in self.finished.items():
                lines.append(
                    f'vllm:request_success_total{{finished_reason="{reason}",model_name="{self.model}"}} {count}'
                )
        return "\n".join(lines) + "\n"
