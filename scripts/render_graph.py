"""Render ``build_graph().get_graph()`` to ``docs/graph.png`` offline.

LangChain's ``draw_mermaid_png`` calls the mermaid.ink web service and ``draw_png`` needs Graphviz
(a system library); this script draws the same nodes and edges with matplotlib alone, so the picture
can be rebuilt anywhere:

    python scripts/render_graph.py            # -> docs/graph.png
    python scripts/render_graph.py out.png

Layout: nodes ranked top-down by their longest path from ``__start__`` (back edges ignored), solid
arrows for fixed edges, dashed for conditional ones, an arc for a node that loops on itself. Each box
shows the node's name and the first line of its function's docstring.
"""

from __future__ import annotations

import sys
from collections import deque
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

REPO = Path(__file__).resolve().parents[1]
BOX_W, BOX_H, ROW_H = 6.6, 0.95, 1.9


def caption(node: Any) -> str:
    """First docstring line of the node's function ("" for __start__/__end__)."""
    data = node.data
    func = getattr(data, "afunc", None) or getattr(data, "func", None)
    doc = (getattr(func, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc and not node.id.startswith("__") else ""


def ranks(nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Longest-path rank from the first node over the edges that do not close a cycle."""
    out: dict[str, list[str]] = {n: [] for n in nodes}
    for s, t in edges:
        if s != t:
            out[s].append(t)
    # Drop back edges found by DFS so the ranking is over a DAG.
    forward: dict[str, list[str]] = {n: [] for n in nodes}
    state: dict[str, int] = {}

    def dfs(n: str) -> None:
        state[n] = 1
        for t in out[n]:
            if state.get(t) == 1:
                continue  # back edge
            forward[n].append(t)
            if t not in state:
                dfs(t)
        state[n] = 2

    for n in nodes:
        if n not in state:
            dfs(n)
    indeg = {n: 0 for n in nodes}
    for n in nodes:
        for t in forward[n]:
            indeg[t] += 1
    rank = dict.fromkeys(nodes, 0)
    queue = deque(n for n in nodes if indeg[n] == 0)
    while queue:
        n = queue.popleft()
        for t in forward[n]:
            rank[t] = max(rank[t], rank[n] + 1)
            indeg[t] -= 1
            if indeg[t] == 0:
                queue.append(t)
    return rank


def render(graph: Any, path: Path, title: str) -> None:
    nodes = list(graph.nodes)
    edges = [(e.source, e.target, bool(e.conditional)) for e in graph.edges]
    rank = ranks(nodes, [(s, t) for s, t, _ in edges])
    rows: dict[int, list[str]] = {}
    for n in nodes:
        rows.setdefault(rank[n], []).append(n)
    pos = {
        n: ((i - (len(row) - 1) / 2) * (BOX_W + 1.0), -r * ROW_H) for r, row in rows.items() for i, n in enumerate(row)
    }

    width = max(len(r) for r in rows.values()) * (BOX_W + 1.0) + 3.0
    height = len(rows) * ROW_H + 0.8
    fig, ax = plt.subplots(figsize=(width * 1.25, height * 1.25), dpi=110)
    ax.set_xlim(-width / 2, width / 2)
    ax.set_ylim(-(len(rows) - 1) * ROW_H - 0.9, 1.2)
    ax.axis("off")
    ax.set_title(title, fontsize=15, fontweight="bold")

    for n in nodes:
        x, y = pos[n]
        terminal = n.startswith("__")
        w = BOX_W * (0.45 if terminal else 1.0)
        ax.add_patch(
            FancyBboxPatch(
                (x - w / 2, y - BOX_H / 2),
                w,
                BOX_H,
                boxstyle="round,pad=0.02,rounding_size=0.45" if terminal else "round,pad=0.02,rounding_size=0.12",
                facecolor="#eeeeee" if terminal else "#dbe9ff",
                edgecolor="#555555" if terminal else "#1f4e9c",
                linewidth=1.6,
            )
        )
        label = n.strip("_") if terminal else n
        text = ax.text(x, y + (0.14 if caption(graph.nodes[n]) else 0), label, ha="center", va="center", fontsize=13)
        text.set_fontweight("bold")
        if cap := caption(graph.nodes[n]):
            short = cap if len(cap) <= 90 else cap[:87] + "..."
            ax.text(x, y - 0.22, short, ha="center", va="center", fontsize=8.5, color="#333333")

    for s, t, conditional in edges:
        (x1, y1), (x2, y2) = pos[s], pos[t]
        style: dict[str, Any] = dict(arrowstyle="-|>", mutation_scale=18, linewidth=1.5, color="#333333")
        if conditional:
            style["linestyle"] = (0, (5, 3))
        if s == t:
            # A self-loop: an arc leaving the right side and coming back.
            arrow = FancyArrowPatch(
                (x1 + BOX_W / 2, y1 + 0.25),
                (x1 + BOX_W / 2, y1 - 0.25),
                connectionstyle="arc,angleA=0,angleB=0,armA=55,armB=55,rad=18",
                **style,
            )
            ax.add_patch(arrow)
            ax.text(x1 + BOX_W / 2 + 1.1, y1, "while branches\nstill run", fontsize=9, va="center", color="#1f4e9c")
            continue
        start = (x1, y1 - BOX_H / 2) if y2 < y1 else (x1, y1 + BOX_H / 2)
        end = (x2, y2 + BOX_H / 2) if y2 < y1 else (x2, y2 - BOX_H / 2)
        ax.add_patch(FancyArrowPatch(start, end, **style))
        if conditional:
            ax.text((x1 + x2) / 2 + 0.15, (start[1] + end[1]) / 2, "all stopped", fontsize=9, va="center")

    ax.text(
        -width / 2 + 0.2,
        -(len(rows) - 1) * ROW_H - 0.75,
        "solid: fixed edge   dashed: conditional edge (after_judge)",
        fontsize=8.5,
        color="#555555",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str]) -> None:
    from deepprune_agents.graph import build_graph

    out = Path(argv[0]) if argv else REPO / "docs" / "graph.png"
    render(build_graph().get_graph(), out, "deepprune graph")
    print(out)


if __name__ == "__main__":
    main(sys.argv[1:])
