from __future__ import annotations

import threading
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from workmill.orchestrator.dag import Job, Scheduler
from workmill.orchestrator.statuses import ModuleStatus, WorkOrderStatus, work_order_status

OK, FAIL = ModuleStatus.COMPLETED, ModuleStatus.FAILED


def _run(jobs, outcomes=None, max_parallel=1, delay=0.0):
    order, skips = [], {}
    lock = threading.Lock()

    def run(job):
        with lock:
            order.append(job.key)
        time.sleep(delay)
        return (outcomes or {}).get(job.key, OK)

    final = Scheduler(jobs, max_parallel, run, lambda j, s: skips.__setitem__(j.key, s.reason))
    return final.execute(), order, skips


def test_scheduler__max_parallel_one_runs_listed_order_dependencies_first():
    jobs = [
        Job("b", "w", deps=("c",)),
        Job("a", "w"),
        Job("c", "w"),
    ]
    status, order, _ = _run(jobs)
    assert order == ["a", "c", "b"]
    assert set(status.values()) == {OK}


def test_scheduler__strict_failure_aborts_unstarted_and_skips_dependents():
    jobs = [Job("a", "w"), Job("b", "w", deps=("a",)), Job("c", "w")]
    status, order, skips = _run(jobs, {"a": FAIL})
    assert order == ["a"]
    assert skips == {"b": "DEPENDENCY_FAILED", "c": "STRICT_ABORTED"}
    assert status["c"] is ModuleStatus.SKIPPED


def test_scheduler__partial_allowed_keeps_independent_branch():
    jobs = [
        Job("a", "w", strict=False),
        Job("b", "w", deps=("a",), strict=False),
        Job("c", "w", strict=False),
    ]
    status, order, skips = _run(jobs, {"a": FAIL})
    assert order == ["a", "c"]
    assert skips == {"b": "DEPENDENCY_FAILED"}
    assert status["c"] is OK


def test_scheduler__strict_failure_in_one_work_order_does_not_touch_another():
    jobs = [Job("a", "w1"), Job("b", "w1"), Job("x", "w2")]
    status, _, skips = _run(jobs, {"a": FAIL})
    assert skips == {"b": "STRICT_ABORTED"} and status["x"] is OK


def test_scheduler__runs_in_parallel_up_to_limit():
    jobs = [Job(i, "w") for i in range(4)]
    t0 = time.perf_counter()
    _run(jobs, max_parallel=4, delay=0.2)
    assert time.perf_counter() - t0 < 0.6


def test_scheduler__runner_exception_is_failed_not_a_hang():
    def boom(job):
        raise RuntimeError("x")

    sched = Scheduler([Job("a", "w"), Job("b", "w", deps=("a",))], 2, boom, lambda j, s: None)
    status = sched.execute()
    assert status == {"a": FAIL, "b": ModuleStatus.SKIPPED}
    assert "a" in sched.errors


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_scheduler__every_job_gets_exactly_one_final_status(data):
    n = data.draw(st.integers(1, 8))
    jobs = []
    for i in range(n):
        deps = tuple(data.draw(st.sets(st.integers(0, i - 1), max_size=3))) if i else ()
        jobs.append(Job(i, "w", deps=deps, strict=data.draw(st.booleans())))
    fails = data.draw(st.sets(st.integers(0, n - 1)))
    status, order, skips = _run(jobs, {k: FAIL for k in fails}, max_parallel=2)
    assert set(status) == set(range(n))
    assert set(order).isdisjoint(skips) and set(order) | set(skips) == set(range(n))
    for job in jobs:  # nothing ran before its dependencies succeeded
        if job.key in order:
            assert all(status[d].succeeded for d in job.deps)


def test_work_order_status__rules():
    C, X, F, S = (
        ModuleStatus.COMPLETED,
        ModuleStatus.COMPLETED_WITH_EXCEPTION,
        ModuleStatus.FAILED,
        ModuleStatus.SKIPPED,
    )
    assert work_order_status("STRICT", [C, X]) is WorkOrderStatus.COMPLETED
    assert work_order_status("STRICT", [C, F]) is WorkOrderStatus.FAILED
    assert work_order_status("PARTIAL_ALLOWED", [C, S]) is WorkOrderStatus.PARTIALLY_COMPLETED
    assert work_order_status("PARTIAL_ALLOWED", [F, S]) is WorkOrderStatus.FAILED


def test_scheduler__after_groups_waits_for_other_work_order_and_calls_group_done():
    done_groups = []
    order = []

    def run(job):
        order.append(job.key)
        return OK

    jobs = [Job("consumer", "w2", after_groups=("w1",)), Job("p1", "w1"), Job("p2", "w1")]
    sched = Scheduler(jobs, 1, run, lambda j, s: None, on_group_done=done_groups.append)
    sched.execute()
    assert order == ["p1", "p2", "consumer"]
    assert done_groups == ["w1", "w2"]


def test_scheduler__initial_statuses_are_not_rerun():
    order = []

    def run(job):
        order.append(job.key)
        return OK

    jobs = [Job("a", "w"), Job("b", "w", deps=("a",))]
    Scheduler(jobs, 1, run, lambda j, s: None, initial={"a": OK}).execute()
    assert order == ["b"]


def test_scheduler__after_jobs_waits_for_a_possible_cache_writer():
    order = []

    def run(job):
        time.sleep(0.05 if job.key == "w1-001" else 0)
        order.append(job.key)
        return OK

    jobs = [Job("w1-001", "w1"), Job("w2-001", "w2", after_jobs=("w1-001",))]
    Scheduler(jobs, 2, run, lambda j, s: None).execute()
    assert order == ["w1-001", "w2-001"]


def _prepared_run(jobs, max_parallel, outcomes=None):
    """(events, skips): ("prep"|"run"|"done", key) in order, from one execute."""
    events, skips = [], {}
    lock = threading.Lock()

    def note(kind, key):
        with lock:
            events.append((kind, key))

    def run(job):
        note("run", job.key)
        time.sleep(0.02)
        note("done", job.key)
        return (outcomes or {}).get(job.key, OK)

    Scheduler(
        jobs,
        max_parallel,
        run,
        lambda j, s: skips.__setitem__(j.key, s.reason),
        prepare=lambda job: note("prep", job.key),
    ).execute()
    return events, skips


def test_scheduler__prepares_the_next_job_of_a_chain_while_its_dependency_runs():
    jobs = [Job("a", "w"), Job("b", "w", deps=("a",)), Job("c", "w", deps=("b",))]
    events, _ = _prepared_run(jobs, 1)
    assert [k for kind, k in events if kind == "prep"] == ["b", "c"]
    assert events.index(("prep", "b")) < events.index(("run", "b"))
    assert events.index(("prep", "c")) < events.index(("run", "c"))
    # c is next up only once b runs: never prepared while b was still waiting on a
    assert events.index(("prep", "c")) > events.index(("done", "a"))


def test_scheduler__keeps_at_most_max_parallel_prepared_jobs_waiting():
    jobs = [Job(f"j{i}", "w") for i in range(12)]
    release = threading.Event()
    prepped: list[str] = []

    def run(job):
        release.wait(10)
        return OK

    sched = Scheduler(jobs, 2, run, lambda j, s: None, prepare=lambda j: prepped.append(j.key))
    t = threading.Thread(target=sched.execute)
    t.start()
    end = time.monotonic() + 10
    while len(prepped) < 2 and time.monotonic() < end:
        time.sleep(0.01)
    time.sleep(0.1)  # j0 and j1 run (held): only the next two are prepared
    assert prepped == ["j2", "j3"]
    release.set()
    t.join(10)
    # later jobs may start before being prepared (a worker was free); none twice
    assert len(set(prepped)) == len(prepped) and set(prepped) <= {f"j{i}" for i in range(12)}


def test_scheduler__does_not_prepare_a_job_whose_dependency_failed():
    jobs = [Job("a", "w", strict=False), Job("b", "w", deps=("a",), strict=False)]
    events, skips = _prepared_run([*jobs, Job("c", "w", deps=("b",), strict=False)], 1, {"a": FAIL})
    assert skips == {"b": "DEPENDENCY_FAILED", "c": "DEPENDENCY_FAILED"}
    assert [k for kind, k in events if kind == "prep"] == ["b"]  # while a ran; c never
