"""``deepprune traces generate``: sample N solutions per question on an OpenAI-compatible server.

I/O lives here; parsing and record building are in ``questions.py``. Properties a long corpus run needs:

* **resumable**: questions whose id is already in the output file are skipped, so a rerun of the same
  command continues where the last one stopped;
* **Ctrl-C safe**: a question's line is appended and flushed only once all its N samples are done, so
  every line in the file is complete, nothing written is lost, and a half-sampled question is simply
  redone on the next run (a torn last line, e.g. from a power cut, is cut off on resume);
* **bounded**: at most ``concurrency`` streams are open; retries happen only around *opening* a stream
  (``EndpointPool.open``), since a retried half-read stream would silently change the sample;
* streams are closed on every exit path, so no request is left running on the server;
* a provenance sidecar (``OUT.provenance.json``: model, sampling, date, command, question file digest)
  says how the corpus was made; resuming with different sampling is refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deepprune_agents.backends.endpoints import EndpointPool
from deepprune_agents.backends.openai_stream import BranchRequest, BranchStream, EndpointKind, StreamChunk
from deepprune_agents.corpus.questions import QuestionItem, Sample, question_record
from deepprune_agents.errors import BackendError, ConfigError

PROVENANCE_SUFFIX = ".provenance.json"


def provenance_path(trace_file: str | Path) -> Path:
    """The provenance sidecar of a trace file: ``FILE.provenance.json`` beside it."""
    return Path(str(trace_file) + PROVENANCE_SUFFIX)


@dataclass(kw_only=True)
class GenerateConfig:
    """Sampling and scheduling of one corpus run (the sampling part is recorded in the provenance)."""

    n: int = 8
    max_tokens: int = 512
    temperature: float = 0.8
    top_p: float = 0.95
    seed: int = 0
    top_logprobs: int = 0  # 0: no logprobs; k >= 1: chosen-token logprob + top-k per token
    system_prompt: str = ""
    endpoint: EndpointKind = "chat"
    concurrency: int = 32
    open_retries: int = 3
    read_timeout_s: float = 120.0

    def validate(self) -> None:
        if self.n < 1:
            raise ConfigError(f"n must be >= 1 (got {self.n}).")
        if self.max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1 (got {self.max_tokens}).")
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1 (got {self.concurrency}).")
        if not 0 <= self.top_logprobs <= 20:
            raise ConfigError(f"top_logprobs must lie in [0, 20] (got {self.top_logprobs}).")
        if self.endpoint not in ("chat", "completions"):
            raise ConfigError(f"endpoint must be 'chat' or 'completions' (got {self.endpoint!r}).")

    def sampling(self) -> dict[str, Any]:
        """What changes the samples (and so must match when resuming)."""
        keys = ("n", "max_tokens", "temperature", "top_p", "seed", "top_logprobs", "system_prompt", "endpoint")
        return {k: getattr(self, k) for k in keys}


@dataclass
class GenerateSummary:
    """What a run did: questions written now, skipped (already there), failed (retry by rerunning)."""

    written: int = 0
    skipped: int = 0
    failed: int = 0
    tokens: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


class CapturingStream(BranchStream):
    """A BranchStream that also keeps per-token logprobs and reasoning text, which the engine's
    stream ignores (it needs text and token counts only)."""

    def __init__(self, raw: Any, kind: EndpointKind) -> None:
        super().__init__(raw, kind)
        self.token_logprobs: list[float] = []
        self.top_logprobs: list[dict[str, float]] = []
        self.reasoning: list[str] = []

    @classmethod
    def adopt(cls, stream: BranchStream) -> CapturingStream:
        # Same raw response and endpoint kind; only the event decoding differs.
        return cls(stream._raw, stream._kind)

    def _parse(self, payload: str) -> StreamChunk | None:
        chunk = super()._parse(payload)
        event = json.loads(payload)
        for choice in (event.get("choices") or [])[:1]:
            self._capture(choice)
        return chunk

    def _capture(self, choice: dict[str, Any]) -> None:
        delta = choice.get("delta") or {}
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            self.reasoning.append(reasoning)
        lp = choice.get("logprobs")
        if not isinstance(lp, dict):
            return
        if isinstance(lp.get("content"), list):  # chat: [{token, logprob, top_logprobs: [{token, logprob}]}]
            for tok in lp["content"]:
                self.token_logprobs.append(float(tok.get("logprob", 0.0)))
                self.top_logprobs.append({str(t["token"]): float(t["logprob"]) for t in tok.get("top_logprobs") or []})
        elif isinstance(lp.get("token_logprobs"), list):  # completions: parallel lists
            self.token_logprobs.extend(float(x) if x is not None else 0.0 for x in lp["token_logprobs"])
            for top in lp.get("top_logprobs") or []:
                self.top_logprobs.append({str(k): float(v) for k, v in (top or {}).items()})


def build_request(item: QuestionItem, index: int, model: str, cfg: GenerateConfig) -> BranchRequest:
    """The request of sample ``index`` of ``item``: seed ``cfg.seed + index`` makes each reproducible."""
    extra: dict[str, Any] = {}
    if cfg.top_logprobs:
        extra = (
            {"logprobs": True, "top_logprobs": cfg.top_logprobs}
            if cfg.endpoint == "chat"
            else {"logprobs": cfg.top_logprobs}
        )
    messages = [{"role": "user", "content": item.question}]
    if cfg.system_prompt:
        messages.insert(0, {"role": "system", "content": cfg.system_prompt})
    prompt = ""
    if cfg.endpoint == "completions":
        from deepprune_agents.prompts import COMPLETIONS_TEMPLATE

        prefix = cfg.system_prompt + "\n\n" if cfg.system_prompt else ""
        prompt = prefix + COMPLETIONS_TEMPLATE.format(question=item.question)
    return BranchRequest(
        model=model,
        messages=messages if cfg.endpoint == "chat" else [],
        prompt=prompt,
        endpoint=cfg.endpoint,
        max_tokens=cfg.max_tokens,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        seed=cfg.seed + index,
        extra_body=extra,
    )


async def sample_one(pool: EndpointPool, req: BranchRequest, capture: bool) -> Sample:
    """Stream one solution to its end; the stream is closed on every exit path (cancellation too)."""
    endpoint, stream = await pool.open(req)
    cap = CapturingStream.adopt(stream) if capture else None
    parts: list[str] = []
    tokens: int | None = None
    finish: str | None = None
    try:
        async for chunk in cap or stream:
            parts.append(chunk.text)
            if chunk.completion_tokens is not None:
                tokens = chunk.completion_tokens
            if chunk.finish_reason is not None:
                finish = chunk.finish_reason
    finally:
        await (cap or stream).close()
        endpoint.inflight -= 1
    sample = Sample(text="".join(parts), tokens=tokens, finish_reason=finish)
    if cap is not None:
        sample.reasoning = "".join(cap.reasoning) or None
        if req.extra_body.get("logprobs"):
            sample.token_logprobs = cap.token_logprobs
            sample.top_logprobs = cap.top_logprobs
    return sample


def completed_ids(out_path: Path) -> set[str]:
    """Question ids already in ``out_path``; a torn last line (no newline, bad JSON) is cut off."""
    if not out_path.is_file():
        return set()
    data = out_path.read_bytes()
    good_end = data.rfind(b"\n") + 1
    if good_end < len(data):
        with out_path.open("r+b") as fh:
            fh.truncate(good_end)
    ids = set()
    for line in data[:good_end].decode("utf-8").splitlines():
        if line.strip():
            try:
                ids.add(str(json.loads(line)["question_id"]))
            except (json.JSONDecodeError, KeyError) as exc:
                raise ConfigError(f"{out_path} has a line that is not a trace record ({exc}); not resuming.") from exc
    return ids


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_provenance(
    out_path: Path,
    *,
    model: str,
    base_urls: Sequence[str],
    cfg: GenerateConfig,
    questions_file: Path | None,
    command: str | None,
    limit: int | None,
    server: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Create (or check, on resume) ``OUT.provenance.json``; a resume with other sampling is refused.

    ``server``: what is known of the server that samples this run (for the embedded one: its dtype and
    vLLM version), kept per run because a corpus made in pieces may be made on different machines, and
    the same seed and sampling on another dtype are not the same samples (nor the same tokens per second).
    """
    side = provenance_path(out_path)
    prov: dict[str, Any] = {
        "model": model,
        "base_urls": list(base_urls),
        "sampling": cfg.sampling(),
        "questions_file": questions_file.name if questions_file else None,
        "questions_sha256": _digest(questions_file) if questions_file and questions_file.is_file() else None,
        "limit": limit,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "runs": [],
    }
    if side.is_file():
        old = json.loads(side.read_text(encoding="utf-8"))
        if old.get("sampling") != prov["sampling"] or old.get("model") != model:
            raise ConfigError(
                f"{out_path} was generated with model {old.get('model')!r} and sampling {old.get('sampling')}; "
                f"this run uses {model!r} and {prov['sampling']}. Write to another --out file."
            )
        old.setdefault("runs", [])
        prov = old
    run: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "command": command}
    if server is not None:
        run["server"] = dict(server)
    prov["runs"].append(run)
    side.write_text(json.dumps(prov, indent=2) + "\n", encoding="utf-8")
    return prov


def record_run_end(out_path: Path, summary: GenerateSummary, *, concurrency: int, interrupted: bool) -> None:
    """Complete this run's provenance entry (the last one) with what it did: the corpus's cost is then on
    record per run (its tokens per second on this machine), not quoted from memory. Called on every exit,
    Ctrl-C included, so a corpus made in pieces keeps every piece's figures; ``interrupted``: the run ended
    before every question was tried (Ctrl-C or an error)."""
    side = provenance_path(out_path)
    if not side.is_file():
        return
    prov = json.loads(side.read_text(encoding="utf-8"))
    if not prov.get("runs"):
        return
    prov["runs"][-1].update(
        {
            "ended": datetime.now(UTC).isoformat(timespec="seconds"),
            "interrupted": interrupted,
            "written": summary.written,
            "failed": summary.failed,
            "sampled_tokens": summary.tokens,
            "wall_s": round(summary.seconds, 1),
            "tokens_per_s": round(summary.tokens_per_s, 1),
            "concurrency": concurrency,
        }
    )
    side.write_text(json.dumps(prov, indent=2) + "\n", encoding="utf-8")


ProgressFn = Callable[[int], None]


async def _all_or_nothing(coros: Sequence[Coroutine[Any, Any, Sample]]) -> list[Sample]:
    """All results in order, or the first error after cancelling (and awaiting) the siblings: a failed
    sample must not leave the question's other streams running on the server."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def generate(
    items: Sequence[QuestionItem],
    out_path: str | Path,
    *,
    base_urls: Sequence[str],
    model: str | None = None,
    cfg: GenerateConfig | None = None,
    source: str | None = None,
    questions_file: str | Path | None = None,
    command: str | None = None,
    limit: int | None = None,
    on_question: ProgressFn | None = None,
    server: Mapping[str, Any] | None = None,
) -> GenerateSummary:
    """Sample ``cfg.n`` solutions for every question of ``items`` not yet in ``out_path`` and append one
    line per completed question. A question whose samples fail (after the open retries) is counted in
    ``failed`` and left out, so a rerun retries it."""
    cfg = cfg or GenerateConfig()
    cfg.validate()
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = completed_ids(out)
    todo = [it for it in items if it.question_id not in done]
    summary = GenerateSummary(skipped=len(items) - len(todo))
    pool = EndpointPool(base_urls, read_timeout_s=cfg.read_timeout_s, open_retries=cfg.open_retries)
    t0 = time.perf_counter()
    recorded, interrupted = False, True
    try:
        served = await pool.resolve_model(model)
        write_provenance(
            out,
            model=served,
            base_urls=base_urls,
            cfg=cfg,
            questions_file=Path(questions_file) if questions_file else None,
            command=command,
            limit=limit,
            server=server,
        )
        recorded = True
        label = source or served
        capture = bool(cfg.top_logprobs) or cfg.endpoint == "chat"
        streams = asyncio.Semaphore(cfg.concurrency)
        # Enough questions in flight to keep every stream slot busy, not the whole file at once.
        in_flight = asyncio.Semaphore(max(2, math.ceil(cfg.concurrency / cfg.n) + 1))

        async def one_sample(item: QuestionItem, j: int) -> Sample:
            async with streams:
                return await sample_one(pool, build_request(item, j, served, cfg), capture)

        # One small append + flush per finished question: microseconds of blocking, and it is what makes
        # every completed question durable the moment it is counted.
        with out.open("a", encoding="utf-8") as fh:  # noqa: ASYNC230

            async def one_question(item: QuestionItem) -> None:
                try:
                    results = await _all_or_nothing([one_sample(item, j) for j in range(cfg.n)])
                except BackendError as exc:
                    summary.failed += 1
                    summary.errors.append(f"{item.question_id}: {exc}")
                else:
                    rec = question_record(item, results, label)
                    fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                    fh.flush()  # the line is complete on disk before we count it
                    summary.written += 1
                    summary.tokens += sum(s.tokens or 0 for s in results)
                finally:
                    in_flight.release()
                    if on_question is not None:
                        on_question(1)

            tasks: list[asyncio.Task[None]] = []
            try:
                for item in todo:
                    await in_flight.acquire()
                    tasks.append(asyncio.create_task(one_question(item)))
                await asyncio.gather(*tasks)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        interrupted = False
        return summary
    finally:
        summary.seconds = time.perf_counter() - t0
        if recorded:
            record_run_end(out, summary, concurrency=cfg.concurrency, interrupted=interrupted)
        await pool.aclose()


def summary_dict(summary: GenerateSummary) -> dict[str, Any]:
    d = asdict(summary)
    d["tokens_per_s"] = round(summary.tokens_per_s, 1)
    return d
