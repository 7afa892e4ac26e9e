"""scripts/readme_figures.py: every section renders from a clean checkout (the load section imports a bench
script) and sits on exactly one page (the README's headline list or a docs page), the committed pages are what
their committed inputs render to, ``--sections`` re-renders some sections while keeping the others as the page
has them, and a full render keeps the sections whose inputs are not on this machine (the live and load runs'
JSON is git-ignored)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "readme_figures.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("readme_figures_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_section_renders_under_its_own_heading() -> None:
    rf = load_script()
    for name, (section, heading) in rf.SECTIONS.items():
        rendered = section()
        lines = rendered.lines if isinstance(rendered, rf.Placeholder) else rendered
        assert lines[0].startswith(heading), (name, lines[0])


def test_only_the_named_sections_are_re_rendered() -> None:
    rf = load_script()
    old = "\n".join(
        [
            "",
            "### Live: DeepPrune vs cons@16 (kept)",
            "",
            "| policy | speedup |",
            "| adaptive | 1.51x |",
            "",
            "### Judges at the first 32 tokens (stale)",
            "",
            "stale judge text",
            "",
        ]
    )
    block = rf.render(old, only={"judge"}, names=("live", "judge", "soak"))
    assert block.startswith(rf.BEGIN) and block.endswith(rf.END)
    assert "| adaptive | 1.51x |" in block and "(kept)" in block  # not re-rendered: kept as it was
    assert "stale judge text" not in block  # re-rendered from docs/judge_results.md
    assert block.count("### Judges") == 1
    # a section the old block lacks is rendered even when not named (nothing to keep)
    assert any(line.startswith("### Soak:") for line in block.splitlines())


def test_every_section_is_on_exactly_one_page_and_every_page_has_a_block() -> None:
    rf = load_script()
    placed = [name for names in rf.PAGES.values() for name in names]
    assert sorted(placed) == sorted(rf.SECTIONS)  # none left out, none on two pages
    for page in rf.PAGES:
        text = (rf.REPO / page).read_text(encoding="utf-8")
        assert text.count(rf.BEGIN) == 1 and text.count(rf.END) == 1, page


def test_the_committed_pages_are_what_their_committed_inputs_render() -> None:
    """The sections read from committed files (docs/judge_results.md, docs/replay_results.md, docs/frontier_*.json)
    re-render to the pages as committed: a stale figure in the README or a docs page fails here."""
    rf = load_script()
    committed = {"headline_default", "headline_judges", "judge", "default", "replay"}
    for page in rf.PAGES:
        old, new = rf.update(page, committed)
        assert new == old, f"{page} is stale: run scripts/readme_figures.py"
        if page == "README.md":
            assert "- **The default on recorded 7B traces** (`staged` + `numbers`)" in new


def test_a_headline_item_is_one_line_and_the_items_follow_each_other() -> None:
    rf = load_script()
    old = "\n- **Soak**: 200 runs, RSS +1.6 MB.\n\n- **Live on vLLM-CPU** (kept): 1.51x sooner.\n"
    missing = rf.Placeholder(["- **Soak**: run `python bench/soak.py`."])
    live = rf.Placeholder(["- **Live on vLLM-CPU**: run `python bench/live_vllm.py`."])
    sections = {
        "headline_live": (lambda: live, "- **Live on vLLM-CPU**"),
        "headline_soak": (lambda: missing, "- **Soak**"),
    }
    rf.SECTIONS.update(sections)
    block = rf.render(old, names=("headline_live", "headline_soak"))
    assert block.splitlines()[1:4] == [
        "",
        "- **Live on vLLM-CPU** (kept): 1.51x sooner.",
        "- **Soak**: 200 runs, RSS +1.6 MB.",
    ]


def test_an_unknown_section_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    rf = load_script()
    monkeypatch.setattr(sys, "argv", ["readme_figures.py"])
    with pytest.raises(SystemExit) as exc:
        rf.main(["--sections", "judges"])
    assert exc.value.code == 2


def test_a_full_render_keeps_a_section_whose_inputs_are_not_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """The live and load runs write to the git-ignored bench/out: a render on a machine without them must not
    replace their measured figures with a placeholder."""
    rf = load_script()
    missing = rf.Placeholder(["### Soak: sequential", "", "_Not measured yet: run `python bench/soak.py`._", ""])
    monkeypatch.setattr(rf, "SECTIONS", {"soak": (lambda: missing, "### Soak:")})
    kept = rf.render("\n### Soak: sequential\n\nCommand: 200 runs, RSS +1.6 MB.\n")
    assert "Command: 200 runs, RSS +1.6 MB." in kept and "Not measured yet" not in kept
    assert "Not measured yet" in rf.render("")  # nothing to keep: the placeholder says which command to run


def _live_report(
    policy: str, cancelled: list[int], dtype: str | None, launched: list[int] | None = None
) -> dict[str, object]:
    rows = []
    for i, c in enumerate(cancelled):
        answers = {"7": 4, "12": 2, "none": 10} if i == 0 else {str(k): 1 for k in range(16)}
        rows.append(
            {
                "cons": {
                    "wall_s": 10.0,
                    "correct_branches": 4 if i == 0 else 1,
                    "answers": answers,
                    "server_tokens": 1000.0 * (i + 1),
                },
                "deepprune": {"wall_s": 12.0 if i == 1 else 5.0, "cancelled": c, "server_tokens": 1200.0 * (i + 1)},
            }
        )
        if launched is not None:
            rows[-1]["deepprune"]["launched"] = launched[i]
    return {
        "n": 16,
        "policy": policy,
        "judge": "constant",
        "speedup": 1.5,
        "token_reduction": 0.42,
        "answer_agreement": 0.5,
        "cons_plurality_share": 0.25,
        "accuracy_cons": 0.4,
        "accuracy_deepprune": 0.3,
        "cancel_latency_p50_ms": 2.4,
        "cancel_latency_p99_ms": 7.1,
        "server_abort_latency_p50_ms": 388.0,
        "server_abort_latency_p99_ms": 481.0,
        "cons_wall_s": 794.0,
        "deepprune_wall_s": 546.0,
        "cons_server_tokens": 22924.0,
        "deepprune_server_tokens": 13199.0,
        "server": {"embedded": True, "dtype": dtype} if dtype else {"embedded": False},
        "measured_at": "2026-12-02T06:00:00+00:00",
        "rows": rows,
    }


def test_the_live_section_is_read_from_the_reports(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every figure of the live section, its explanation included, comes from the reports: nothing kept by hand."""
    import json

    rf = load_script()
    out = tmp_path / "bench" / "out"
    out.mkdir(parents=True)
    report = _live_report("staged", [0, 8, 0], "float32", launched=[16, 12, 16])
    report.update(esc_wall_s=1200.0, esc_server_tokens=15000.0)
    for row, branches in zip(report["rows"], (16, 5, 16), strict=True):  # type: ignore[call-overload]
        row["esc"] = {"branches": branches, "server_tokens": 1000.0}
    (out / "live_vllm_a.json").write_text(json.dumps(report))
    monkeypatch.setattr(rf, "REPO", tmp_path)
    text = "\n".join(rf.live_section())
    assert "| 2026-12-02 (live_vllm_a.json) | float32 | staged | constant | 1.50x | 42.0% |" in text
    assert "| 794 / 546 | 22924 / 13199 | 1200 / 15000 |" in text  # cons, DeepPrune, then the ESC run
    assert "right in 1 to 4 of 16 branches" in text
    assert "gives 3 to 16 different answers" in text  # no answer counts as one answer
    assert "started all 16 branches on 2 of 3 questions (12-16 per question)" in text
    assert "slower than cons@16 on 1" in text
    assert "ESC ran all 16 branches on 2 of 3 questions" in text and "differ by +52.8%" in text
    # cons costs 1x, 2x, 3x ESC's 1,000 per question, DeepPrune 1.2x that: ratios of resampled sums, paired
    assert "95% CIs of the token ratios are [1.00, 3.00] for cons@16 / ESC and [1.20, 3.60] for `staged` / ESC" in text


def test_the_headline_items_and_the_dtype_table_are_read_from_the_reports(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The README's live, load and soak items and docs/live.md's dtype table, each from its JSON alone."""
    import json

    rf = load_script()
    out = tmp_path / "bench" / "out"
    out.mkdir(parents=True)
    (out / "live_vllm_a.json").write_text(json.dumps(_live_report("adaptive", [8, 8, 7], "float32")))
    lag = {"p50": 0.2, "p99": 13.4, "max": 232.0}
    (out / "scale_2048.json").write_text(
        json.dumps({"n": 2048, "stream_workers": 2, "loop_lag_ms": lag, "branches_lost": 0, "open_streams_after": 0})
    )
    samples = [{"tcp_sockets": 1, "asyncio_tasks": 1}, {"tcp_sockets": 2, "asyncio_tasks": 1}]
    (out / "soak.json").write_text(json.dumps({"runs": 200, "growth": {"rss_mb": 1.6}, "samples": samples}))
    rows = {
        "bfloat16": [{"streams": 1, "tok_per_s": 13.6}, {"streams": 8, "tok_per_s": 28.3}],
        "float32": [{"streams": 1, "tok_per_s": 12.6}, {"streams": 8, "tok_per_s": 73.3}],
    }
    dtype = {"native_bf16_flags": [], "serving_dtype": "float32", "tokens_per_completion": 100, "results": rows}
    (out / "server_dtype.json").write_text(json.dumps(dtype))
    monkeypatch.setattr(rf, "REPO", tmp_path)
    live = rf.headline_live()
    assert live[0].startswith("- **Live on vLLM-CPU** (embedded SmolLM2-135M, 2 cores, N = 16, `adaptive`")
    assert "0.69x the wall time of cons@16 with 42.0% fewer server tokens;" in live[0] and "7.1 ms (p99)" in live[0]
    report = _live_report("staged", [0, 0, 0], "float32")
    report.update(esc_server_tokens=13199.0 / 1.2, deepprune_tokens_vs_esc=1.2, deepprune_wall_vs_esc=0.5)
    for i, row in enumerate(report["rows"]):  # type: ignore[call-overload]
        row["esc"] = {"server_tokens": 1000.0 * (i + 1)}  # DeepPrune 1.2x and cons 1x on every question
    (out / "live_vllm_a.json").write_text(json.dumps(report))
    esc = "and 1.20x the tokens (95% CI [1.20, 1.20] over 3 questions; cons@16 vs ESC, equal work: 1.00x, [1.00, 1.00])"
    assert esc + " and 0.50x the wall time of an ESC run (windows of 5)" in rf.headline_live()[0]
    assert "2,048 branches" in rf.headline_load()[0] and "lag p99 13 ms, 0 branches lost" in rf.headline_load()[0]
    assert "RSS +1.6 MB, TCP sockets 1 -> 2" in rf.headline_soak()[0]
    table = "\n".join(rf.server_dtype_section())
    assert "| dtype | 1 stream | 8 streams |" in table
    assert "| float32 (ours here) | 12.6 | 73.3 |" in table and "| bfloat16 (vLLM's default) | 13.6 | 28.3 |" in table
    assert "native bfloat16 flags: none" in table
