"""What a sharded ``execute`` leaves for ``settle``: one receipt per shard.

``runtime/shards/<K>-of-<N>.json`` is written when ``execute --shard K/N``
starts (``finished_at`` empty) and rewritten when it returns normally. Settle
trusts a shard's journals only when its receipt is finished and belongs to
this very plan (``created_at`` + ``lease_token``) and names exactly the work
orders the split gives that shard. Without that, a runner that crashed, was
cancelled, or whose upload got lost would look like "nothing ran" and settle
would refund every module as ``INTERRUPTED`` — charging nothing for work
that may have been delivered. Such work orders are left RUNNING instead, with
their SPEND, until the shard is executed again (or the next ``workmill run``
resumes them).
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from workmill import clock
from workmill.errors import WorkmillError
from workmill.fsio import atomic_write_text
from workmill.orchestrator.records import Plan, WorkOrderPlan, journal_path, sync_journal
from workmill.orchestrator.sharding import format_shard, split

RECEIPTS_DIR = "shards"
_NAME = re.compile(r"([0-9]{1,6})-of-([0-9]{1,6})\.json")


class ShardReceipt(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    schema_version: int = 1
    shard: str  # "K/N"
    plan_created_at: str
    plan_lease_token: str
    work_orders: list[str]  # "tenant/work_order", plan order
    started_at: str
    finished_at: str = ""  # empty: execute has not returned (still running, crashed, cancelled)


def receipt_path(runtime_dir: Path, k: int, n: int) -> Path:
    return runtime_dir / RECEIPTS_DIR / f"{k}-of-{n}.json"


def _names(work_orders: list[WorkOrderPlan]) -> list[str]:
    return [f"{wo.tenant_id}/{wo.work_order_id}" for wo in work_orders]


def _belongs(r: ShardReceipt, plan: Plan) -> bool:
    return (r.plan_created_at, r.plan_lease_token) == (plan.created_at, plan.lease_token)


def begin(runtime_dir: Path, plan: Plan, k: int, n: int, mine: list[WorkOrderPlan]) -> ShardReceipt:
    """Record that shard ``k/n`` of ``plan`` started (replacing an older receipt)."""
    r = ShardReceipt(
        shard=format_shard(k, n),
        plan_created_at=plan.created_at,
        plan_lease_token=plan.lease_token,
        work_orders=_names(mine),
        started_at=clock.now_iso(),
    )
    write(runtime_dir, r)
    return r


def finish(runtime_dir: Path, r: ShardReceipt) -> None:
    """Mark the shard finished, once its journals are durable (settle will trust them)."""
    for name in r.work_orders:
        tenant_id, work_order_id = name.split("/")
        sync_journal(journal_path(runtime_dir, tenant_id, work_order_id))
    write(runtime_dir, r.model_copy(update={"finished_at": clock.now_iso()}))


def write(runtime_dir: Path, r: ShardReceipt) -> None:
    k, n = (int(x) for x in r.shard.split("/"))
    atomic_write_text(receipt_path(runtime_dir, k, n), r.model_dump_json(indent=2) + "\n")


def read(path: Path) -> ShardReceipt | None:
    """The receipt at ``path``, or None when absent or unreadable (treated as not finished)."""
    try:
        return ShardReceipt.model_validate_json(path.read_bytes())
    except (OSError, ValidationError, ValueError):
        return None


def finished_shards(runtime_dir: Path, plan: Plan, n: int) -> set[int]:
    """Shards ``k`` of ``n`` whose results settle may use (see the module docstring)."""
    out = set()
    for k, mine in enumerate(split(plan.work_orders, n), start=1):
        r = read(receipt_path(runtime_dir, k, n))
        if (
            r is not None
            and r.finished_at
            and _belongs(r, plan)
            and r.shard == format_shard(k, n)
            and r.work_orders == _names(mine)
        ):
            out.add(k)
    return out


def detect_shard_count(runtime_dir: Path, plan: Plan) -> int | None:
    """N of the receipts of this plan in the runtime dir (None: the plan was not sharded)."""
    counts = set()
    d = runtime_dir / RECEIPTS_DIR
    for path in sorted(d.glob("*-of-*.json")) if d.is_dir() else []:
        m = _NAME.fullmatch(path.name)
        r = read(path) if m else None
        if m and r is not None and _belongs(r, plan):
            counts.add(int(m.group(2)))
    if len(counts) > 1:
        raise WorkmillError(
            f"{d}: receipts of this plan for different shard counts {sorted(counts)}; "
            "pass --shards N to say which split ran"
        )
    return counts.pop() if counts else None
