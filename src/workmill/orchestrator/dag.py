"""The DAG scheduler: up to ``max_parallel`` modules at once, across work orders.

Jobs are given in priority order (work orders in plan order, modules in
listed order), so among ready jobs the one listed first starts first — with
``max_parallel=1`` the order is exactly the listed order, dependencies first.
Skips are decided here, before a job would start:

- a dependency FAILED or SKIPPED → SKIPPED ``DEPENDENCY_FAILED``;
- a STRICT work order already has a FAILED module → every job of it not yet
  started is SKIPPED ``STRICT_ABORTED`` (running ones finish).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from workmill.orchestrator.statuses import ModuleStatus

DEPENDENCY_FAILED = "DEPENDENCY_FAILED"
STRICT_ABORTED = "STRICT_ABORTED"


@dataclass(frozen=True)
class Job:
    key: Hashable
    group: Hashable  # the work order
    deps: tuple[Hashable, ...] = ()
    strict: bool = True
    # groups that must be finished (whatever their outcome) before this job starts:
    # a release reused from a work order of the same run must be published first
    after_groups: tuple[Hashable, ...] = ()
    # jobs that must be finished (whatever their outcome) first: a cache lookup waits for an
    # earlier job of the same tenant and module that may store the entry it would hit
    after_jobs: tuple[Hashable, ...] = ()


@dataclass(frozen=True)
class Skip:
    """Why a job was not started (a reason *name*, resolved to a code by the caller)."""

    reason: str


@dataclass
class Scheduler:
    jobs: Sequence[Job]
    max_parallel: int
    run: Callable[[Job], ModuleStatus]
    on_skip: Callable[[Job, Skip], None]
    cancel: threading.Event = field(default_factory=threading.Event)
    errors: dict[Hashable, BaseException] = field(default_factory=dict)
    # statuses already known (a resumed run): these jobs are not run again
    initial: dict[Hashable, ModuleStatus] = field(default_factory=dict)
    # called in the scheduling thread once every job of a group has its status
    on_group_done: Callable[[Hashable], None] = lambda group: None
    # a job's pool and that pool's cap (a tenant's max_parallel_modules), or None
    pool_of: Callable[[Job], tuple[Hashable, int] | None] = lambda job: None

    def _has_room(self, job: Job, running: Sequence[Job]) -> bool:
        pool = self.pool_of(job)
        if pool is None:
            return True
        busy = sum(1 for j in running if (p := self.pool_of(j)) is not None and p[0] == pool[0])
        return busy < pool[1]

    def execute(self) -> dict[Hashable, ModuleStatus]:
        """Run every job (or skip it); returns each job's final status."""
        status: dict[Hashable, ModuleStatus] = dict(self.initial)
        failed_groups: set[Hashable] = {
            j.group for j in self.jobs if j.strict and status.get(j.key) is ModuleStatus.FAILED
        }
        pending = [j for j in self.jobs if j.key not in status]
        members: dict[Hashable, list[Hashable]] = {}
        groups_of: dict[Hashable, list[Hashable]] = {}
        for j in self.jobs:
            members.setdefault(j.group, []).append(j.key)
            groups_of.setdefault(j.key, []).append(j.group)
        finished_groups: set[Hashable] = set()
        # incremental bookkeeping, so one completion costs O(its group), not O(all jobs):
        # keys of each group without a status yet, and groups that just ran out of them
        order = {g: i for i, g in enumerate(members)}
        left = {g: {k for k in keys if k not in status} for g, keys in members.items()}
        complete = {g for g, keys in left.items() if not keys}
        # a new unsuccessful status or failed group may skip pending jobs: rescan only then
        dirty = True

        def set_status(key: Hashable, value: ModuleStatus) -> None:
            nonlocal dirty
            status[key] = value
            if not value.succeeded:
                dirty = True
            for g in groups_of[key]:
                left[g].discard(key)
                if not left[g]:
                    complete.add(g)

        def finish_groups() -> None:
            for group in sorted(complete, key=order.__getitem__):
                if group not in finished_groups:
                    finished_groups.add(group)
                    self.on_group_done(group)
            complete.clear()

        unknown_groups = {g for j in self.jobs for g in j.after_groups} - set(members)
        finished_groups |= unknown_groups
        running: dict[Future[ModuleStatus], Job] = {}
        known = {j.key for j in self.jobs}
        for job in self.jobs:
            missing = [d for d in job.deps if d not in known]
            missing += [k for k in job.after_jobs if k not in known]
            if missing:
                raise ValueError(f"job {job.key} depends on unknown {missing}")

        def skip(job: Job, reason: str) -> None:
            set_status(job.key, ModuleStatus.SKIPPED)
            self.on_skip(job, Skip(reason))

        with ThreadPoolExecutor(max_workers=max(1, self.max_parallel)) as pool:
            while pending or running:
                while dirty:  # until a scan skips nothing more
                    dirty = False
                    for job in list(pending):
                        if any(d in status and not status[d].succeeded for d in job.deps):
                            pending.remove(job)
                            skip(job, DEPENDENCY_FAILED)
                        elif job.strict and job.group in failed_groups:
                            pending.remove(job)
                            skip(job, STRICT_ABORTED)
                finish_groups()
                for job in list(pending):
                    if len(running) >= self.max_parallel or self.cancel.is_set():
                        break
                    if (
                        self._has_room(job, list(running.values()))
                        and all(d in status for d in job.deps)
                        and all(g in finished_groups for g in job.after_groups)
                        and all(k in status for k in job.after_jobs)
                    ):
                        pending.remove(job)
                        running[pool.submit(self.run, job)] = job
                if not running:
                    if pending and self.cancel.is_set():
                        for job in pending:
                            skip(job, "INTERRUPTED")
                        pending.clear()
                    elif pending:
                        # only waits on groups that wait back remain: start the first job
                        # whose dependencies are done (its reuse will then report the miss)
                        ready = [j for j in pending if all(d in status for d in j.deps)]
                        if not ready:
                            raise RuntimeError("scheduler stalled: dependency cycle")
                        pending.remove(ready[0])
                        running[pool.submit(self.run, ready[0])] = ready[0]
                    if not running:
                        continue
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    job = running.pop(fut)
                    try:
                        result = fut.result()
                    except Exception as exc:  # the runner must not raise; never hang on it
                        self.errors[job.key] = exc
                        result = ModuleStatus.FAILED
                    set_status(job.key, result)
                    if result is ModuleStatus.FAILED and job.strict:
                        failed_groups.add(job.group)
                        dirty = True
            finish_groups()
        return status
