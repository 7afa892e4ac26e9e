"""Prometheus parsing: the server's token and request counts are the evidence behind every claim."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from deepprune_agents.backends.metrics import Sample, metric, parse_prometheus, totals

VLLM_SNIPPET = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="smollm2"} 3.0
vllm:num_requests_running{engine="1",model_name="smollm2"} 2.0
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="smollm2"} 1234.0
vllm:request_success_total{engine="0",finished_reason="stop",model_name="smollm2"} 7.0
vllm:request_success_total{engine="0",finished_reason="abort",model_name="smollm2"} 5.0
vllm:request_success_total{engine="1",finished_reason="abort",model_name="smollm2"} 2.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="+Inf",model_name="smollm2"} 9.0
process_cpu_seconds_total 12.5
"""


def test_parses_names_labels_and_values() -> None:
    samples = parse_prometheus(VLLM_SNIPPET)
    data_lines = [ln for ln in VLLM_SNIPPET.splitlines() if ln and not ln.startswith("#")]
    assert len(samples) == len(data_lines)
    first = samples[0]
    assert first.name == "vllm:num_requests_running"
    assert first.labels == {"engine": "0", "model_name": "smollm2"}
    assert first.value == 3.0
    assert samples[-1] == Sample("process_cpu_seconds_total", 12.5, {})
    bucket = next(s for s in samples if s.name.endswith("_bucket"))
    assert bucket.labels["le"] == "+Inf"


def test_totals_sum_over_label_sets() -> None:
    m = totals(parse_prometheus(VLLM_SNIPPET))
    assert m["vllm:num_requests_running"] == 5.0
    assert m["vllm:request_success_total"] == 14.0
    assert m["vllm:generation_tokens_total"] == 1234.0
    assert "vllm:missing" not in m


def test_metric_filters_by_labels() -> None:
    samples = parse_prometheus(VLLM_SNIPPET)
    assert metric(samples, "vllm:request_success_total", finished_reason="abort") == 7.0
    assert metric(samples, "vllm:request_success_total", finished_reason="abort", engine="1") == 2.0
    assert metric(samples, "vllm:request_success_total", finished_reason="length") == 0.0
    assert metric(samples, "vllm:num_requests_running") == 5.0


def test_comments_blank_and_malformed_lines_are_skipped() -> None:
    text = "\n# just a comment\n\nnot a metric line at all {\nok_metric 1\nbad_value abc\nbad{x=1} 2\n"
    samples = parse_prometheus(text)
    assert [s.name for s in samples] == ["ok_metric"]


def test_special_values_timestamps_and_escapes() -> None:
    text = 'a{path="C:\\\\dir",msg="say \\"hi\\"\\n"} NaN\nb +Inf 1700000000000\nc -Inf\nd 1e3\n'
    samples = {s.name: s for s in parse_prometheus(text)}
    assert math.isnan(samples["a"].value)
    assert samples["a"].labels == {"path": "C:\\dir", "msg": 'say "hi"\n'}
    assert samples["b"].value == math.inf
    assert samples["c"].value == -math.inf
    assert samples["d"].value == 1000.0


label_value = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)


@given(
    values=st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1, max_size=6),
    label=label_value,
)
def test_round_trip_of_rendered_samples(values: list[float], label: str) -> None:
    escaped = label.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    text = "\n".join(f'x_total{{k="{escaped}",i="{i}"}} {v!r}' for i, v in enumerate(values))
    samples = parse_prometheus(text)
    assert [s.value for s in samples] == values
    assert all(s.labels["k"] == label for s in samples)
    assert math.isclose(totals(samples)["x_total"], math.fsum(values), rel_tol=1e-9, abs_tol=1e-6)


def test_one_malformed_line_costs_only_itself() -> None:
    """prometheus_client's parser rejects a whole text for one bad line: the rest must still count."""
    broken = VLLM_SNIPPET.replace("process_cpu_seconds_total 12.5", "process_cpu_seconds_total twelve")
    assert totals(parse_prometheus(broken)) == {
        k: v for k, v in totals(parse_prometheus(VLLM_SNIPPET)).items() if k != "process_cpu_seconds_total"
    }
