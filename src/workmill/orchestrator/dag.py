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
    # called in the scheduling thread for up to max_parallel pending jobs that can start
    # as soon as the running ones finish, so their set-up overlaps the running jobs
    prepare: Callable[[Job], None] | None = None

    def _has_room(self, job: Job, running: Sequence[Job]) -> bool:
        pool = self.pool_of(job)
        if pool is None:
            return True
        busy = sum(1 for j in running if (p := self.pool_of(j)) is not None and p[0] == pool[0])
        return busy < pool[1]

    def execute(self) -> dict[Hashable, ModuleStatus]:
        """Run every job (or skip it); returns each job's final status."""
        self._check_known()
        book = _Book(self)
        with ThreadPoolExecutor(max_workers=max(1, self.max_parallel)) as pool:
            while book.pending or book.running:
                book.skip_blocked()
                book.finish_groups()
                book.start_ready(pool)
                book.prepare_next()
                if not book.running:
                    book.unstick(pool)
                    if not book.running:
                        continue
                book.collect()
            book.finish_groups()
        return book.status

    def _check_known(self) -> None:
        known = {j.key for j in self.jobs}
        for job in self.jobs:
            missing = [d for d in job.deps if d not in known]
            missing += [k for k in job.after_jobs if k not in known]
            if missing:
                raise ValueError(f"job {job.key} depends on unknown {missing}")


class _Book:
    """The bookkeeping of one ``Scheduler.execute``: statuses, what is pending and running,
    and which groups are done. Incremental, so one completion costs O(its group), not
    O(all jobs). Resumed jobs (``initial``) start with their status and are never run."""

    def __init__(self, sched: Scheduler) -> None:
        self.sched = sched
        self.status: dict[Hashable, ModuleStatus] = dict(sched.initial)
        self.failed_groups: set[Hashable] = {
            j.group
            for j in sched.jobs
            if j.strict and self.status.get(j.key) is ModuleStatus.FAILED
        }
        self.pending = [j for j in sched.jobs if j.key not in self.status]
        members: dict[Hashable, list[Hashable]] = {}
        self.groups_of: dict[Hashable, list[Hashable]] = {}
        for j in sched.jobs:
            members.setdefault(j.group, []).append(j.key)
            self.groups_of.setdefault(j.key, []).append(j.group)
        self.order = {g: i for i, g in enumerate(members)}
        # keys of each group without a status yet, and groups that just ran out of them
        self.left = {g: {k for k in keys if k not in self.status} for g, keys in members.items()}
        self.complete = {g for g, keys in self.left.items() if not keys}
        # groups a job may wait for but that are not in this run count as finished
        self.finished_groups = {g for j in sched.jobs for g in j.after_groups} - set(members)
        self.running: dict[Future[ModuleStatus], Job] = {}
        self.prepared: set[Hashable] = set()  # pending jobs handed to sched.prepare
        self.dirty = True  # a new unsuccessful status may skip pending jobs: rescan only then

    def set_status(self, key: Hashable, value: ModuleStatus) -> None:
        self.status[key] = value
        if not value.succeeded:
            self.dirty = True
        for g in self.groups_of[key]:
            self.left[g].discard(key)
            if not self.left[g]:
                self.complete.add(g)

    def finish_groups(self) -> None:
        for group in sorted(self.complete, key=self.order.__getitem__):
            if group not in self.finished_groups:
                self.finished_groups.add(group)
                self.sched.on_group_done(group)
        self.complete.clear()

    def skip(self, job: Job, reason: str) -> None:
        self.prepared.discard(job.key)
        self.set_status(job.key, ModuleStatus.SKIPPED)
        self.sched.on_skip(job, Skip(reason))

    def skip_blocked(self) -> None:
        """Skip pending jobs a failure blocks, until a scan skips nothing more."""
        while self.dirty:
            self.dirty = False
            for job in list(self.pending):
                if any(d in self.status and not self.status[d].succeeded for d in job.deps):
                    self.pending.remove(job)
                    self.skip(job, DEPENDENCY_FAILED)
                elif job.strict and job.group in self.failed_groups:
                    self.pending.remove(job)
                    self.skip(job, STRICT_ABORTED)

    def _ready(self, job: Job) -> bool:
        return (
            all(d in self.status for d in job.deps)
            and all(g in self.finished_groups for g in job.after_groups)
            and all(k in self.status for k in job.after_jobs)
        )

    def _submit(self, pool: ThreadPoolExecutor, job: Job) -> None:
        self.pending.remove(job)
        self.prepared.discard(job.key)
        self.running[pool.submit(self.sched.run, job)] = job

    def start_ready(self, pool: ThreadPoolExecutor) -> None:
        """Start ready jobs in listed order, up to ``max_parallel`` at once and within each
        job's pool cap (a tenant's max_parallel_modules)."""
        for job in list(self.pending):
            if len(self.running) >= self.sched.max_parallel or self.sched.cancel.is_set():
                break
            if self._ready(job) and self.sched._has_room(job, list(self.running.values())):
                self._submit(pool, job)

    def _next_up(self, job: Job, running: set[Hashable]) -> bool:
        """Whether ``job`` can start once the running jobs finish (if they succeed)."""
        return (
            all(d in running or self.status.get(d, ModuleStatus.FAILED).succeeded for d in job.deps)
            and all(g in self.finished_groups for g in job.after_groups)
            and all(k in self.status or k in running for k in job.after_jobs)
        )

    def prepare_next(self) -> None:
        """Hand ``sched.prepare`` the first pending jobs that are next up, keeping at most
        ``max_parallel`` prepared jobs waiting."""
        if self.sched.prepare is None or self.sched.cancel.is_set():
            return
        room = max(1, self.sched.max_parallel) - len(self.prepared)
        running = {j.key for j in self.running.values()}
        for job in self.pending:
            if room <= 0:
                return
            if job.key not in self.prepared and self._next_up(job, running):
                self.prepared.add(job.key)
                room -= 1
                self.sched.prepare(job)

    def unstick(self, pool: ThreadPoolExecutor) -> None:
        """Nothing runs: a cancel skips what is left; otherwise only waits on groups that
        wait back remain, so start the first job whose dependencies are done (its reuse
        will then report the miss)."""
        if not self.pending:
            return
        if self.sched.cancel.is_set():
            for job in self.pending:
                self.skip(job, "INTERRUPTED")
            self.pending.clear()
            return
        ready = [j for j in self.pending if all(d in self.status for d in j.deps)]
        if not ready:
            raise RuntimeError("scheduler stalled: dependency cycle")
        self._submit(pool, ready[0])

    def collect(self) -> None:
        """Wait for at least one running job and record its status."""
        done, _ = wait(self.running, return_when=FIRST_COMPLETED)
        for fut in done:
            job = self.running.pop(fut)
            try:
                result = fut.result()
            except Exception as exc:  # the runner must not raise; never hang on it
                self.sched.errors[job.key] = exc
                result = ModuleStatus.FAILED
            self.set_status(job.key, result)
            if result is ModuleStatus.FAILED and job.strict:
                self.failed_groups.add(job.group)
                self.dirty = True
