"""stream_workers: explicit counts win; None picks worker processes only for large fan-outs."""

from __future__ import annotations

import os

import pytest

from deepprune_agents.errors import ConfigError
from deepprune_agents.settings import AUTO_WORKERS_MIN_BRANCHES, DeepPruneContext


def test_auto_uses_workers_only_for_large_fan_outs() -> None:
    assert DeepPruneContext(n=AUTO_WORKERS_MIN_BRANCHES - 1).workers_for_run() == 0
    big = DeepPruneContext(n=AUTO_WORKERS_MIN_BRANCHES, max_n=4096).workers_for_run()
    assert big == max(1, min(4, os.cpu_count() or 1))


def test_an_explicit_count_wins() -> None:
    assert DeepPruneContext(n=2048, max_n=4096, stream_workers=0).workers_for_run() == 0
    assert DeepPruneContext(n=4, stream_workers=3).workers_for_run() == 3


@pytest.mark.parametrize("bad", [-1, 65, 1.5, "2"])
def test_bad_counts_fail_naming_the_setting(bad: object) -> None:
    with pytest.raises(ConfigError, match="stream_workers"):
        DeepPruneContext(stream_workers=bad)
