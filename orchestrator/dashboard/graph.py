"""A state machine's graph, laid out in layers on the server and drawn as SVG.

Why a small layered layout in Python rather than a vendored JavaScript library (dagre,
@viz-js/viz): ASL graphs are small (a few dozen states), mostly flow top to bottom, and nest
(Parallel branches and Map iterators are boxes holding graphs of their own). A longest-path
layering with one ordering pass draws them readably in a few hundred lines, the page works
with JavaScript off, there is no build step, no multi-megabyte WebAssembly asset and nothing
for a user's machine to install, and the SVG a test or screenshot sees is the SVG the server
wrote.

The layout: each body (the machine's, a branch's, an iterator's) is laid out on its own,
innermost first, so a Parallel or Map state is a node as large as its branches side by side.
Within a body, states reachable from StartAt are placed in rows by longest path over the
edges that do not close a loop; loops and edges that go upwards are drawn round the right.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

MAX_STATES = 400
"""Beyond this many states (all bodies together) the page shows the JSON without a graph."""

NODE_HEIGHT = 40
ROW_GAP = 46
COLUMN_GAP = 28
PAD = 16
HEADER = 30
CHAR_WIDTH = 7.4
STATUSES = ("succeeded", "failed", "caught", "running", "not-run")


class GraphError(ValueError):
    """The definition cannot be drawn (malformed, or too large); the message says why."""


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: str  # next, choice, default or catch


@dataclass
class Node:
    name: str
    type: str
    x: float = 0.0
    y: float = 0.0
    width: float = 0.0
    height: float = 0.0
    # Parallel: one body per branch; Map: its iterator.
    bodies: list[Body] = field(default_factory=list)


@dataclass
class Body:
    label: str
    start: str
    nodes: dict[str, Node]
    edges: list[Edge]
    width: float = 0.0
    height: float = 0.0


def lay_out(definition: Any) -> Body:
    """The laid-out graph of a parsed definition.

    Raises:
        GraphError: the definition is not drawable (no States, too many states).
    """
    return _body(definition, "State machine", [0], depth=0)


def _body(definition: Any, label: str, counter: list[int], depth: int) -> Body:
    if depth > 20:
        raise GraphError("the definition nests Parallel and Map states too deeply to draw")
    if not isinstance(definition, dict) or not isinstance(definition.get("States"), dict):
        raise GraphError(f"{label} has no States object to draw")
    states: dict[str, Any] = definition["States"]
    counter[0] += len(states)
    if counter[0] > MAX_STATES:
        raise GraphError(f"the definition has more than {MAX_STATES} states: too many to draw")
    start = definition.get("StartAt")
    nodes: dict[str, Node] = {}
    for name, state in states.items():
        state = state if isinstance(state, dict) else {}
        node = Node(str(name), str(state.get("Type", "?")))
        node.bodies = _inner_bodies(node, state, counter, depth)
        _size(node)
        nodes[node.name] = node
    edges = [
        edge for name, state in states.items() for edge in _edges(str(name), state) if edge.target in nodes
    ]
    body = Body(label, str(start) if start in nodes else "", nodes, edges)
    _place(body)
    return body


def _inner_bodies(node: Node, state: dict[str, Any], counter: list[int], depth: int) -> list[Body]:
    if node.type == "Parallel":
        branches = state.get("Branches") if isinstance(state.get("Branches"), list) else []
        return [
            _body(branch, f"Branch {index + 1}", counter, depth + 1) for index, branch in enumerate(branches)
        ]
    if node.type == "Map":
        iterator = state.get("ItemProcessor", state.get("Iterator"))
        return [_body(iterator, "Each item", counter, depth + 1)] if iterator is not None else []
    return []


def _size(node: Node) -> None:
    label_width = CHAR_WIDTH * max(len(node.name), len(node.type) + 2) + 2 * PAD
    if not node.bodies:
        node.width, node.height = max(120.0, label_width), NODE_HEIGHT
        return
    inner_width = sum(body.width for body in node.bodies) + COLUMN_GAP * (len(node.bodies) - 1)
    node.width = max(label_width, inner_width + 2 * PAD)
    node.height = HEADER + max(body.height for body in node.bodies) + PAD


def _edges(name: str, state: Any) -> list[Edge]:
    if not isinstance(state, dict):
        return []
    edges: list[Edge] = []
    if isinstance(state.get("Next"), str):
        edges.append(Edge(name, state["Next"], "next"))
    for rule in state.get("Choices") or []:
        if isinstance(rule, dict) and isinstance(rule.get("Next"), str):
            edges.append(Edge(name, rule["Next"], "choice"))
    if isinstance(state.get("Default"), str):
        edges.append(Edge(name, state["Default"], "default"))
    for catcher in state.get("Catch") or []:
        if isinstance(catcher, dict) and isinstance(catcher.get("Next"), str):
            edges.append(Edge(name, catcher["Next"], "catch"))
    # One drawn edge per (source, target, kind): three Choice rules to one state are one arrow.
    return list(dict.fromkeys(edges))


def _place(body: Body) -> None:
    order, back = _depth_first(body)
    layer = {name: 0 for name in order}
    for name in order:  # reverse post-order: every forward edge goes to a later name
        for edge in body.edges:
            if edge.source == name and (edge.source, edge.target) not in back:
                layer[edge.target] = max(layer[edge.target], layer[name] + 1)
    rows: list[list[str]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for name in order:
        rows[layer[name]].append(name)
    _order_rows(body, rows, back)
    width = max((_row_width(body, row) for row in rows), default=0.0)
    y = PAD + 24.0  # room for the start marker
    for row in rows:
        x = PAD + (width - _row_width(body, row)) / 2
        height = max(body.nodes[name].height for name in row)
        for name in row:
            node = body.nodes[name]
            node.x, node.y = x, y + (height - node.height) / 2
            x += node.width + COLUMN_GAP
        y += height + ROW_GAP
    loops = any(True for _ in back)
    body.width = width + 2 * PAD + (60 if loops else 0)
    body.height = y - ROW_GAP + PAD


def _depth_first(body: Body) -> tuple[list[str], set[tuple[str, str]]]:
    """States in reverse post-order from StartAt (unreachable ones after), and the loop edges."""
    successors: dict[str, list[str]] = {name: [] for name in body.nodes}
    for edge in body.edges:
        successors[edge.source].append(edge.target)
    seen: set[str] = set()
    on_path: set[str] = set()
    post: list[str] = []
    back: set[tuple[str, str]] = set()
    roots = ([body.start] if body.start else []) + list(body.nodes)
    reachable: list[str] = []
    for root in roots:
        if root in seen:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        seen.add(root)
        on_path.add(root)
        while stack:  # iterative: a long chain of states must not exhaust Python's stack
            name, index = stack[-1]
            if index < len(successors[name]):
                stack[-1] = (name, index + 1)
                target = successors[name][index]
                if target in on_path:
                    back.add((name, target))
                elif target not in seen:
                    seen.add(target)
                    on_path.add(target)
                    stack.append((target, 0))
            else:
                stack.pop()
                on_path.discard(name)
                post.append(name)
        if root == body.start:  # StartAt's states first, so the first row begins with it
            reachable, post = list(reversed(post)), []
    return reachable + list(reversed(post)), back


def _order_rows(body: Body, rows: list[list[str]], back: set[tuple[str, str]]) -> None:
    """One barycentre pass: each row sorted by the mean position of its states' parents above."""
    position = {name: index for index, name in enumerate(rows[0])} if rows else {}
    for row in rows[1:]:
        parents: dict[str, list[int]] = {name: [] for name in row}
        for edge in body.edges:
            if edge.target in parents and edge.source in position and (edge.source, edge.target) not in back:
                parents[edge.target].append(position[edge.source])
        original = {name: index for index, name in enumerate(row)}
        row.sort(
            key=lambda name: (
                sum(parents[name]) / len(parents[name]) if parents[name] else 1e9,
                original[name],
            )
        )
        position.update({name: index for index, name in enumerate(row)})


def _row_width(body: Body, row: list[str]) -> float:
    return sum(body.nodes[name].width for name in row) + COLUMN_GAP * (len(row) - 1)


# -- drawing -------------------------------------------------------------------------------------


def render_svg(
    body: Body,
    statuses: dict[str, str] | None = None,
    taken: set[tuple[str, str]] | None = None,
    title: str = "State machine graph",
) -> str:
    """The SVG of a laid-out graph; with ``statuses`` each state is coloured by what happened.

    Every state's element carries ``data-state`` (its name) and, with ``statuses``, ``data-status``
    (succeeded, failed, caught, running or not-run). ``taken`` are the (source, target) edges the
    execution went along; they are drawn bold.
    """
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" class="graph"'
        f' viewBox="0 0 {body.width:.0f} {body.height:.0f}"'
        f' width="{body.width:.0f}" height="{body.height:.0f}" role="group" aria-label="{_e(title)}">',
        "<defs>",
        # In user units: a bold (taken) edge keeps an arrowhead of the same size.
        '<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9" markerHeight="9"'
        ' markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" class="arrowhead"/></marker>',
        "</defs>",
    ]
    _draw_body(body, statuses, taken or set(), parts)
    parts.append("</svg>")
    return "".join(parts)


def _draw_body(
    body: Body, statuses: dict[str, str] | None, taken: set[tuple[str, str]], parts: list[str]
) -> None:
    if body.start:
        first = body.nodes[body.start]
        cx = first.x + first.width / 2
        parts.append(
            f'<circle class="start" cx="{cx:.1f}" cy="{PAD + 4}" r="6"><title>Start</title></circle>'
        )
        parts.append(
            f'<path class="edge" d="M{cx:.1f},{PAD + 10} L{cx:.1f},{first.y - 2:.1f}"'
            ' marker-end="url(#arrow)"/>'
        )
    for edge in body.edges:
        parts.append(_edge_path(body, edge, (edge.source, edge.target) in taken))
    for node in body.nodes.values():
        _draw_node(node, statuses, taken, parts)


def _edge_path(body: Body, edge: Edge, taken: bool) -> str:
    source, target = body.nodes[edge.source], body.nodes[edge.target]
    classes = f"edge edge-{edge.kind}" + (" taken" if taken else "")
    if target.y > source.y + source.height / 2:
        x1, y1 = source.x + source.width / 2, source.y + source.height
        x2, y2 = target.x + target.width / 2, target.y - 2
        bend = (y2 - y1) / 2
        d = f"M{x1:.1f},{y1:.1f} C{x1:.1f},{y1 + bend:.1f} {x2:.1f},{y2 - bend:.1f} {x2:.1f},{y2:.1f}"
    else:  # a loop or an edge upwards: round the right-hand side
        x1, y1 = source.x + source.width, source.y + source.height / 2
        x2, y2 = target.x + target.width + 2, target.y + target.height / 2
        out = max(x1, x2) + 50
        d = f"M{x1:.1f},{y1:.1f} C{out:.1f},{y1:.1f} {out:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
    label = f"{edge.source} to {edge.target} ({edge.kind})"
    return f'<path class="{classes}" d="{d}" marker-end="url(#arrow)"><title>{_e(label)}</title></path>'


def _draw_node(
    node: Node, statuses: dict[str, str] | None, taken: set[tuple[str, str]], parts: list[str]
) -> None:
    status = (statuses or {}).get(node.name, "not-run") if statuses is not None else None
    status_attribute = f' data-status="{status}"' if status else ""
    described = f"{node.name}, {node.type} state" + (f", {status.replace('-', ' ')}" if status else "")
    compound = " compound" if node.bodies else ""
    parts.append(
        f'<g class="state st-{status or "none"}{compound}" data-state="{_e(node.name)}"{status_attribute}'
        f' transform="translate({node.x:.1f},{node.y:.1f})" tabindex="0" role="button"'
        f' aria-label="{_e(described)}">'
    )
    parts.append(f'<rect class="box" width="{node.width:.1f}" height="{node.height:.1f}" rx="6"/>')
    if node.bodies:
        parts.append(f'<text class="name" x="{PAD}" y="19">{_e(node.name)}</text>')
        parts.append(
            f'<text class="kind" x="{node.width - PAD:.1f}" y="19" text-anchor="end">{node.type}</text>'
        )
        x = (node.width - sum(b.width for b in node.bodies) - COLUMN_GAP * (len(node.bodies) - 1)) / 2
        for body in node.bodies:
            parts.append(f'<g class="body" transform="translate({x:.1f},{HEADER})">')
            parts.append(
                f'<rect class="body-box" width="{body.width:.1f}" height="{body.height:.1f}" rx="4"/>'
            )
            parts.append(f'<text class="body-label" x="6" y="12">{_e(body.label)}</text>')
            _draw_body(body, statuses, taken, parts)
            parts.append("</g>")
            x += body.width + COLUMN_GAP
    else:
        parts.append(
            f'<text class="name" x="{node.width / 2:.1f}" y="17" text-anchor="middle">{_e(node.name)}</text>'
        )
        parts.append(
            f'<text class="kind" x="{node.width / 2:.1f}" y="32" text-anchor="middle">{_e(node.type)}</text>'
        )
    parts.append("</g>")


def _e(text: str) -> str:
    return html.escape(text, quote=True)
