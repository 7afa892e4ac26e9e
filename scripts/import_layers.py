"""The package's import graph, read from the source (``ast``), and whether its imports go one way.

Every import counts: at the top of a module, inside a function (lazy imports) and under
``if TYPE_CHECKING:`` (a type a module names is a dependency of its design, even if Python never runs
the import). Two graphs are checked:

- modules (``deepprune_agents.pruning.paper``): no cycle;
- rooms, the package's top-level modules and sub-packages (``pruning``, ``graph``, ``backends``): no
  cycle either, so the rooms stack into floors where each imports only from the floors below it. An
  import that "climbs back up" (``errors`` naming a type of ``result``, which imports ``pruning``, which
  imports ``errors``) shows as a cycle here.

    python scripts/import_layers.py          # prints the floors; exit status 1 on a cycle

``tests/unit/test_layers.py`` runs the same check, so the structure stays one way up.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "deepprune_agents"

Graph = dict[str, set[str]]


def modules(root: Path, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under ``root/package`` (a package is its ``__init__``)."""
    found: dict[str, Path] = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _owner(name: str, known: Mapping[str, Path]) -> str | None:
    """The innermost known module that ``name`` lies in (a name imported from a module is that module)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> Iterable[str]:
    """The dotted names one import statement refers to (``from a import b`` gives ``a.b``: b may be a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: from the module's package, one level up per extra dot
        here = module.split(".") if is_package else module.split(".")[:-1]
        here = here[: len(here) - (node.level - 1)]
        base = ".".join([*here, *([node.module] if node.module else [])])
    return [f"{base}.{alias.name}" for alias in node.names] + [base]


def module_graph(root: Path = REPO, package: str = PACKAGE) -> Graph:
    """Module -> the package's modules it imports, anywhere in its source (TYPE_CHECKING and lazy included)."""
    known = modules(root, package)
    graph: Graph = {name: set() for name in known}
    for name, path in known.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            targets = list(_imported(node, name, is_package))
            if isinstance(node, ast.ImportFrom):  # `from a import b`: the module a.b if it is one, else a
                base, names = targets[-1], targets[:-1]
                targets = [t if t in known else base for t in names]
            for target in targets:
                owner = _owner(target, known) if target.split(".")[0] == package else None
                if owner is not None and owner != name:
                    graph[name].add(owner)
    return graph


def room(module: str) -> str:
    """The room a module belongs to: its top-level module or sub-package (``pruning``, ``graph``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def room_graph(graph: Mapping[str, Iterable[str]]) -> Graph:
    """The module graph folded onto rooms (imports within a room dropped)."""
    rooms: Graph = {room(m): set() for m in graph}
    for source, targets in graph.items():
        rooms[room(source)].update(room(t) for t in targets if room(t) != room(source))
    return rooms


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def floors(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Floor 0 imports nothing of the package; floor k imports only from floors below k (needs no cycle)."""
    level: dict[str, int] = {}

    def height(node: str, seen: tuple[str, ...] = ()) -> int:
        if node not in level:
            if node in seen:
                raise ValueError(f"import cycle through {node}")
            below = [height(t, (*seen, node)) for t in graph.get(node, ())]
            level[node] = 1 + max(below) if below else 0
        return level[node]

    for node in graph:
        height(node)
    return [sorted(n for n, k in level.items() if k == f) for f in range(max(level.values(), default=-1) + 1)]


def main() -> int:
    graph = module_graph()
    rooms = room_graph(graph)
    problems = [("modules", c) for c in cycles(graph)] + [("rooms", c) for c in cycles(rooms)]
    for kind, members in problems:
        print(f"import cycle among {kind}: {' <-> '.join(members)}")
    if problems:
        return 1
    arrows = sum(len(t) for t in rooms.values())
    print(f"{len(rooms)} rooms, {arrows} arrows between them, no cycle. Floors, bottom up:")
    for number, members in enumerate(floors(rooms)):
        print(f"  {number:2d}: {', '.join(members)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
