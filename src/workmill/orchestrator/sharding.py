"""Split a plan's work orders into shards, so ``execute`` can fan out over runners (docs/reference.md "Commands").

Pure functions of the plan: every runner (and ``settle``) computes the same
split from the same plan file and shard count, so nothing but ``K/N`` has to
travel to tell a runner what is its share.

**What must share a shard.** A module with ``reuse_output_type: release``
whose ``release_tag`` names another work order *of the same plan* waits, in
the executing process, until that producer is done and its manifest
uploaded (``executing.py``: ``after_groups``). That wait only exists inside
one process: split apart, the consumer would look for a manifest that is not
there yet and fail ``RELEASE_NOT_FOUND``. So producer and consumer are linked
(union-find; links are transitive) and a linked component never splits.

**What need not.** ``executing.py`` also orders the cache users of one
(tenant, module) — ``cache_writer``/``after_jobs`` — so that a second
identical request in the same process finds the first one's entry (a hit)
instead of running again. That is an economy, not a rule of correctness:
the price is charged in every reuse mode (docs/reference.md "Files of a platform repo"), a cache miss is not a
failure, two saves of one key are safe (the local backend publishes by one
rename and keeps the first; the index row is an upsert), and each entry
stays private to its tenant. Split across runners, such work orders may both
miss where one process would have hit once; statuses, SPEND and REFUND are
the same. Keeping them together would let one busy tenant pin most of a plan
onto one runner, so they are not linked.

**Balance.** Components are weighed by their module count and placed largest
first (ties: plan order) on the lightest shard (ties: fewer components, then
lower index) — the classic greedy that stays within 4/3 of the best split.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from workmill.orchestrator.records import Plan, WorkOrderPlan
from workmill.specs import RELEASE_TAG

ShardSpec = tuple[int, int]  # (K, N), K is 1-based
SHARD_TEXT = re.compile(r"([0-9]{1,6})/([0-9]{1,6})")


def parse_shard(text: str) -> ShardSpec:
    """``"K/N"`` → ``(K, N)`` with ``1 <= K <= N``; ``ValueError`` says what is wrong."""
    m = SHARD_TEXT.fullmatch(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not K/N (e.g. 2/5: the second of five shards)")
    k, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 1 <= k <= n:
        raise ValueError(f"{text!r}: need 1 <= K <= N")
    return k, n


def format_shard(k: int, n: int) -> str:
    return f"{k}/{n}"


def release_links(work_orders: Sequence[WorkOrderPlan]) -> list[tuple[int, int]]:
    """(consumer, producer) index pairs: a release-reusing module naming another planned work order."""
    index = {wo.key: i for i, wo in enumerate(work_orders)}
    links = []
    for i, wo in enumerate(work_orders):
        for m in wo.modules:
            if m.reuse_output_type != "release" or not m.release_tag:
                continue
            mt = RELEASE_TAG.fullmatch(m.release_tag)
            j = index.get((mt.group(1), mt.group(2))) if mt else None
            if j is not None and j != i:
                links.append((i, j))
    return links


def components(work_orders: Sequence[WorkOrderPlan]) -> list[list[int]]:
    """Groups of work-order indices that must run in one process, each sorted, by first member."""
    parent = list(range(len(work_orders)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in release_links(work_orders):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for i in range(len(work_orders)):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def split(work_orders: Sequence[WorkOrderPlan], n: int) -> list[list[WorkOrderPlan]]:
    """Exactly ``n`` shards (each in plan order); a shard is empty only if there are < n components."""
    if n < 1:
        raise ValueError("shard count must be at least 1")
    comps = components(work_orders)
    weight = [sum(len(work_orders[i].modules) for i in c) for c in comps]
    order = sorted(range(len(comps)), key=lambda c: (-weight[c], comps[c][0]))
    load = [0] * n
    count = [0] * n
    members: list[list[int]] = [[] for _ in range(n)]
    for c in order:
        s = min(range(n), key=lambda s: (load[s], count[s], s))
        load[s] += weight[c]
        count[s] += 1
        members[s].extend(comps[c])
    return [[work_orders[i] for i in sorted(m)] for m in members]


def shard_count(work_orders: Sequence[WorkOrderPlan], max_shards: int) -> int:
    """How many runners are worth starting: at most ``max_shards``, at most one per component."""
    if max_shards < 1:
        raise ValueError("shard count must be at least 1")
    return max(1, min(max_shards, len(components(work_orders))))


def matrix(work_orders: Sequence[WorkOrderPlan], max_shards: int) -> dict[str, list[str]]:
    """The GitHub Actions matrix: ``{"shard": ["1/3", "2/3", "3/3"]}`` (never empty)."""
    n = shard_count(work_orders, max_shards)
    return {"shard": [format_shard(k, n) for k in range(1, n + 1)]}


def shard_plan(plan: Plan, k: int, n: int) -> Plan:
    """The plan a runner executes for shard ``k`` of ``n``: that shard's work orders only."""
    if not 1 <= k <= n:
        raise ValueError(f"shard {k}/{n}: need 1 <= K <= N")
    mine = split(plan.work_orders, n)[k - 1]
    return plan.model_copy(update={"work_orders": mine, "decisions": []})
