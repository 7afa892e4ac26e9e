"""The embedded server's dtype: float32 unless the CPU has native bfloat16 (pure logic, no server)."""

from __future__ import annotations

import pytest

from deepprune_agents.backends import embedded
from deepprune_agents.backends.embedded import EmbeddedServer, cpu_flags, kv_cache_gb, serving_dtype

X86_AVX2 = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\n"
X86_BF16 = "processor\t: 0\nflags\t\t: avx2 avx512f avx512_bf16 amx_tile\n"
ARM_BF16 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"


def test_cpu_flags_reads_x86_flags_and_arm_features() -> None:
    assert cpu_flags(X86_AVX2) == frozenset({"fpu", "sse2", "avx", "avx2", "fma"})
    assert "bf16" in cpu_flags(ARM_BF16)
    assert cpu_flags("") == frozenset()


@pytest.mark.parametrize(
    ("cpuinfo", "dtype"), [(X86_AVX2, "float32"), (X86_BF16, "bfloat16"), (ARM_BF16, "bfloat16"), ("", "float32")]
)
def test_bfloat16_only_where_the_cpu_computes_it_natively(cpuinfo: str, dtype: str) -> None:
    assert serving_dtype(cpu_flags(cpuinfo)) == dtype


def test_float32_gets_twice_the_kv_cache_so_the_same_tokens_fit() -> None:
    assert int(kv_cache_gb("float32")) == 2 * int(kv_cache_gb("bfloat16"))


def test_the_command_carries_the_dtype_and_the_environment_sizes_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(embedded.ENV_DTYPE, raising=False)
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    monkeypatch.delenv(embedded.ENV_KV_CACHE_GB, raising=False)
    monkeypatch.setattr(embedded, "_local_dtype", lambda: "float32")
    server = EmbeddedServer(port=1234)
    cmd = server.command(embedded.Path("/m"))
    assert cmd[cmd.index("--dtype") + 1] == "float32"
    assert server.environment()["VLLM_CPU_KVCACHE_SPACE"] == kv_cache_gb("float32")


@pytest.mark.parametrize("extra", [("--dtype", "bfloat16"), ("--dtype=bfloat16",)])
def test_a_dtype_in_extra_args_wins(extra: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "_local_dtype", lambda: "float32")
    server = EmbeddedServer(port=1234, extra_args=extra)
    assert server.dtype == "bfloat16"
    cmd = server.command(embedded.Path("/m"))
    assert cmd[cmd.index("--dtype") + 1] == "bfloat16"  # and extra_args, later on the line, agree


def test_the_environment_variable_overrides_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(embedded.ENV_DTYPE, "bfloat16")
    assert EmbeddedServer(port=1).dtype == "bfloat16"


def test_describe_names_the_dtype_the_server_computes_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """A corpus piece's provenance records this: the same seed in another dtype gives other samples."""
    monkeypatch.setattr(embedded, "_local_dtype", lambda: "bfloat16")
    assert EmbeddedServer(port=1, served_name="smollm2").describe() == {
        "kind": "embedded",
        "model": "smollm2",
        "dtype": "bfloat16",
        "vllm": embedded.vllm_version(),
    }
    assert EmbeddedServer(port=1, extra_args=("--dtype", "float32")).describe()["dtype"] == "float32"
    assert embedded.vllm_version() != "unknown"  # vllm-cpu's metadata is found
