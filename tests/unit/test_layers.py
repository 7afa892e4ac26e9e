"""Imports go one way: the package's import graph (every import, ``TYPE_CHECKING`` and lazy ones included)
has no cycle between modules nor between rooms (top-level modules and sub-packages), so a newcomer can
read it floor by floor. The check is scripts/import_layers.py; these tests run it on the package and on
small packages written here, to show it sees the imports it must see."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "import_layers.py"


@pytest.fixture(scope="module")
def layers() -> ModuleType:
    spec = importlib.util.spec_from_file_location("import_layers_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_package_has_no_import_cycle_between_modules(layers: ModuleType) -> None:
    graph = layers.module_graph()
    assert "deepprune_agents.graph" in graph and "deepprune_agents.pruning.paper" in graph
    assert layers.cycles(graph) == []


def test_the_packages_rooms_stack_into_floors(layers: ModuleType) -> None:
    rooms = layers.room_graph(layers.module_graph())
    assert layers.cycles(rooms) == []
    floors = layers.floors(rooms)
    level = {room: number for number, members in enumerate(floors) for room in members}
    assert level["errors"] == 0  # the bottom: every room may raise its errors
    assert level["pruning"] < level["settings"] < level["run_builder"] < level["graph"] < level["cli"]


def test_building_and_resuming_a_run_is_one_room_below_the_graph(layers: ModuleType) -> None:
    graph = layers.module_graph()
    builder = graph["deepprune_agents.run_builder"]
    assert {"deepprune_agents.engine", "deepprune_agents.pruning", "deepprune_agents.prompts"} <= builder
    assert "deepprune_agents.graph" not in builder
    # the graph's nodes call the builder instead of building endpoints, prompts and pools themselves
    assert "deepprune_agents.run_builder" in graph["deepprune_agents.graph"]
    assert not {"deepprune_agents.prompts", "deepprune_agents.backends.endpoints"} & graph["deepprune_agents.graph"]


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_type_checking_import_closes_a_cycle(layers: ModuleType, tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/errors.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.result import R\n",
            "pkg/result.py": "from pkg.errors import E\n",
        },
    )
    graph = layers.module_graph(tmp_path, "pkg")
    assert graph["pkg.errors"] == {"pkg.result"}
    assert layers.cycles(graph) == [["pkg.errors", "pkg.result"]]


def test_a_lazy_or_relative_import_into_a_subpackage_closes_a_room_cycle(layers: ModuleType, tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/settings.py": "from pkg.pruning import KNOBS\n",
            "pkg/pruning/__init__.py": "from .knobs import KNOBS\n",
            "pkg/pruning/knobs.py": "KNOBS = ()\n",
            "pkg/pruning/make.py": "def make():\n    from .. import settings\n    return settings\n",
        },
    )
    graph = layers.module_graph(tmp_path, "pkg")
    assert layers.cycles(graph) == []  # no module imports one that imports it back...
    assert graph["pkg.pruning.make"] == {"pkg.settings"}
    assert layers.cycles(layers.room_graph(graph)) == [["pruning", "settings"]]  # ...but the rooms climb back


def test_floors_put_each_room_above_what_it_imports(layers: ModuleType) -> None:
    rooms = {"cli": {"graph", "errors"}, "graph": {"errors"}, "errors": set()}
    assert layers.floors(rooms) == [["errors"], ["graph"], ["cli"]]
    with pytest.raises(ValueError, match="cycle"):
        layers.floors({"a": {"b"}, "b": {"a"}})
