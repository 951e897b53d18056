"""Crash injection: SIGKILL `workmill run` at random moments, then check every invariant.

A *scenario* is a fresh copy of a repo holding a mixed workload; in it,
`workmill run` is started and killed after a random delay (a *trial*) a few
times, then one run is let finish. After every trial and after the finishing
run an independent checker (reliability_support.check_invariants) reads the
pulled tables and the release store. Some trials set the store's commit
pause hook so the kill lands inside a state commit.

Replay a failure with ``WORKMILL_CRASH_SEED=<seed printed> pytest ...``.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
from reliability_support import (
    History,
    check_invariants,
    cli_run,
    copy_repo,
    kill_alone,
    kill_group,
    popen_workmill,
    prepared_repo,
    read_csv,
    require_slow,
)

from workmill.state.store import ENV_COMMIT_SLEEP

SEED_ENV = "WORKMILL_CRASH_SEED"


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return prepared_repo(cli_run, tmp_path_factory.mktemp("crash") / "template")


def _seed() -> int:
    raw = os.environ.get(SEED_ENV)
    return int(raw) if raw else random.SystemRandom().randrange(1 << 32)


def run_scenario(
    template: Path,
    work: Path,
    rng: random.Random,
    kills: int,
    *,
    rerun: bool = True,
    alone: bool = False,
) -> tuple[int, list[str], int]:
    """Kill `workmill run` ``kills`` times, then finish; returns (trials, violations, kills
    that left a work order charged but not refunded).

    ``alone``: SIGKILL workmill only, never its descendants, and half the scenarios run
    with ``sandbox: none``: no module process may outlive it (docs/architecture.md
    "Threat model"), and money and outputs stay exact."""
    root = copy_repo(template, work / "repo")
    sandbox = rng.choice(["bwrap", "none"]) if alone else "auto"
    with (root / "workmill.yml").open("a") as fh:
        fh.write(f"sandbox: {sandbox}\n")
    pulled = work / "pulled"
    history = History()
    violations: list[str] = []
    trials = 0
    for i in range(kills):
        extra = {}
        if rng.random() < 0.35:
            extra[ENV_COMMIT_SLEEP] = f"{rng.uniform(0.05, 0.4):.3f}"
        delay = rng.uniform(0.05, 2.2)
        proc = popen_workmill(root, "run", "--json", extra_env=extra)
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        found = []
        if alone:
            survivors = kill_alone(proc)
            found += [
                f"sandbox {sandbox}: module process outlived workmill: {x}" for x in survivors
            ]
        else:
            kill_group(proc)
        trials += 1
        found += check_invariants(root, pulled, history)
        if any(r["status"] == "RUNNING" for r in read_csv(pulled / "workorders_log.csv")):
            history.mid_run += 1  # this kill landed between a SPEND and its REFUND
        violations += [f"trial {i} (kill after {delay:.2f}s, env {extra}): {x}" for x in found]
    proc = popen_workmill(root, "run", "--json")
    _out, err = proc.communicate(timeout=120)
    if proc.returncode != 0 or "Traceback" in err:
        violations.append(f"finishing run exit {proc.returncode}: {err.strip()[-800:]}")
    violations += [
        f"after finishing run: {x}" for x in check_invariants(root, pulled, history, finished=True)
    ]
    if not rerun:
        return trials, violations, history.mid_run
    # a processed work order is never charged again
    proc = popen_workmill(root, "run", "--json")
    proc.communicate(timeout=120)
    violations += [
        f"after a second run: {x}" for x in check_invariants(root, pulled, history, finished=True)
    ]
    return trials, violations, history.mid_run


def run_trials(
    template: Path, tmp_path: Path, total: int, *, alone: bool = False
) -> tuple[int, list[str], int]:
    seed = _seed()
    rng = random.Random(seed)
    done, violations, n, mid_run = 0, [], 0, 0
    while done < total:
        kills = min(total - done, rng.randint(1, 3))
        rerun = n % 4 == 0  # a second full run now and then: processed ones are not re-charged
        trials, found, mid = run_scenario(
            template, tmp_path / f"s{n}", rng, kills, rerun=rerun, alone=alone
        )
        done += trials
        mid_run += mid
        violations += [f"scenario {n}: {x}" for x in found]
        n += 1
    print(
        f"crash injection{' (workmill killed alone)' if alone else ''}: {done} trials in {n} scenarios, {mid_run} killed mid-work-order, "
        f"{len(violations)} violations (seed {seed})"
    )
    return seed, violations, done


def test_crash_injection__invariants_hold_after_every_kill(template, tmp_path):
    seed, violations, trials = run_trials(template, tmp_path, 10)
    assert trials == 10
    assert not violations, f"replay with {SEED_ENV}={seed}:\n" + "\n".join(violations)


@pytest.mark.slow
def test_crash_injection__200_trials(template, tmp_path, pytestconfig):
    require_slow(pytestconfig)
    seed, violations, trials = run_trials(template, tmp_path, 200)
    assert trials >= 200
    assert not violations, f"replay with {SEED_ENV}={seed}:\n" + "\n".join(violations)


def test_crash_injection__workmill_killed_alone_leaves_no_process_and_exact_money(
    template, tmp_path
):
    seed, violations, trials = run_trials(template, tmp_path, 10, alone=True)
    assert trials == 10
    assert not violations, f"replay with {SEED_ENV}={seed}:\n" + "\n".join(violations)


@pytest.mark.slow
def test_crash_injection__200_trials_workmill_killed_alone(template, tmp_path, pytestconfig):
    require_slow(pytestconfig)
    seed, violations, trials = run_trials(template, tmp_path, 200, alone=True)
    assert trials >= 200
    assert not violations, f"replay with {SEED_ENV}={seed}:\n" + "\n".join(violations)
