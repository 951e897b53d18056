"""Dependency-graph rules shared by validate, maintenance, inspect and the orchestrator."""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence


def find_cycles(deps: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Every dependency cycle once, each rotated to start at its smallest id.

    Only edges between known nodes count: unknown dependencies are a separate error.
    """
    color: dict[str, int] = {}
    stack: list[str] = []
    found: dict[tuple[str, ...], list[str]] = {}

    for root in sorted(deps):
        if color.get(root):
            continue
        # iterative DFS: a hostile repo can hold a 999-long chain
        work: list[tuple[str, int]] = [(root, 0)]
        color[root] = 1
        stack.append(root)
        while work:
            node, i = work[-1]
            children = [d for d in deps.get(node, ()) if d in deps]
            if i < len(children):
                work[-1] = (node, i + 1)
                child = children[i]
                state = color.get(child, 0)
                if state == 0:
                    color[child] = 1
                    stack.append(child)
                    work.append((child, 0))
                elif state == 1:
                    cycle = stack[stack.index(child) :]
                    k = cycle.index(min(cycle))
                    rotated = cycle[k:] + cycle[:k]
                    found.setdefault(tuple(rotated), rotated)
            else:
                work.pop()
                stack.pop()
                color[node] = 2
    return [found[k] for k in sorted(found)]


def topological_order(listed: Sequence[str], deps: Mapping[str, Sequence[str]]) -> list[str]:
    """``listed`` in run order: dependencies first, ties broken by listed position.

    Dependencies outside ``listed`` are ignored (they are satisfied elsewhere or
    reported by validation). Raises ValueError on a cycle.
    """
    pos = {m: i for i, m in enumerate(listed)}
    indeg = {m: 0 for m in listed}
    users: dict[str, list[str]] = {m: [] for m in listed}
    for m in listed:
        for d in deps.get(m, ()):
            if d in pos and d != m:
                indeg[m] += 1
                users[d].append(m)
    ready = [pos[m] for m in listed if indeg[m] == 0]
    heapq.heapify(ready)
    out: list[str] = []
    while ready:
        m = listed[heapq.heappop(ready)]
        out.append(m)
        for u in users[m]:
            indeg[u] -= 1
            if indeg[u] == 0:
                heapq.heappush(ready, pos[u])
    if len(out) != len(listed):
        raise ValueError("dependency cycle among " + ", ".join(m for m in listed if indeg[m]))
    return out


def transitive_deps(module_id: str, deps: Mapping[str, Sequence[str]]) -> list[str]:
    """Every module ``module_id`` needs, directly or not, in discovery (DFS pre-) order."""
    seen: list[str] = []
    seen_set = {module_id}
    work = list(reversed(deps.get(module_id, ())))
    while work:
        d = work.pop()
        if d in seen_set:
            continue
        seen_set.add(d)
        seen.append(d)
        work.extend(reversed(deps.get(d, ())))
    return seen


def ranks(deps: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Topological rank: 0 with no known deps, else 1 + the highest rank of a dependency."""
    order = topological_order(sorted(deps), deps)
    rank: dict[str, int] = {}
    for m in order:
        rank[m] = 1 + max((rank[d] for d in deps[m] if d in rank), default=-1)
    return rank
