"""The test conventions of tests/README.md that a machine can check: no exact float comparison with a value
numpy, torch or math computes (those differ by an ulp between CPUs: AVX2 vs AVX-512)."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
FUNCTIONS = "log|log1p|log2|log10|exp|expm1|sqrt|tanh|sigmoid|softmax|expit|mean|dot|matmul|sum|fsum|cos|sin|pow"
EXACT_FLOAT = re.compile(
    r"assert .*(==|!=) *-?(math|np|numpy|torch|scipy\.special)\.[a-z_0-9.]*(" + FUNCTIONS + r")\b"
    r"|(math|np|numpy|torch)\.[a-z_0-9.]*(" + FUNCTIONS + r")\(.*\) *(==|!=)"
)


def offending_lines(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            tolerant = "approx(" in line or "close(" in line  # pytest.approx, allclose, isclose, assert_close
            if line.lstrip().startswith("assert") and not tolerant and EXACT_FLOAT.search(line):
                found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    return found


def test_no_exact_comparison_with_a_computed_float() -> None:
    assert offending_lines(TESTS) == [], "use pytest.approx or np.testing.assert_allclose (tests/README.md)"


def test_the_check_sees_both_sides_and_lets_approx_pass(tmp_path: Path) -> None:
    # The examples are written with EQ for "==", so that grepping tests/ for the rule finds none here.
    bad = ["assert rows[0] EQ -math.log(4)", "assert np.exp(x) != y", "assert total EQ np.sum(values)"]
    good = ["assert rows[0] EQ pytest.approx(-math.log(4), rel=1e-12)", "assert n EQ math.comb(5, 2)"]
    (tmp_path / "test_x.py").write_text("\n".join(bad + good).replace("EQ", "=="))
    assert [line.split(": ", 1)[1] for line in offending_lines(tmp_path)] == [b.replace("EQ", "==") for b in bad]
