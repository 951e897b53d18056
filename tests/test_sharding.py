"""Fan-out of `execute` over runners: the split (pure), receipts, and the CLI end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from platform_factory import T1, T2, build_repo, prepare, read_state, work_order
from workmill.orchestrator import shard_receipts, sharding
from workmill.orchestrator.records import ModulePlan, Plan, WorkOrderPlan

# ---------------------------------------------------------------- pure split


def _wo(i: int, n_modules: int, reuse_from: list[str] = ()) -> WorkOrderPlan:
    mods = [
        ModulePlan(
            module_id=f"{j:03d}",
            module_run_id=f"R{i:03d}{j:04d}",
            module_version="1.0.0",
            reuse_output_type="new",
        )
        for j in range(n_modules)
    ]
    mods += [
        ModulePlan(
            module_id=f"9{j:02d}",
            module_run_id=f"X{i:03d}{j:04d}",
            module_version="1.0.0",
            reuse_output_type="release",
            release_tag=tag,
        )
        for j, tag in enumerate(reuse_from)
    ]
    return WorkOrderPlan(
        tenant_id=f"T{i % 3}aaaa",
        work_order_id=f"W{i:03d}aaaa",
        mode="STRICT",
        spend_transaction_id="",
        spend_credits=0,
        started_at="2026-01-01T00:00:00Z",
        modules=mods,
    )


def _tag(i: int) -> str:
    return f"wo-T{i % 3}aaaa-W{i:03d}aaaa"


@st.composite
def plans(draw):
    """Work orders with random sizes and random release links (in the plan, or outside it)."""
    n = draw(st.integers(0, 14))
    sizes = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    wos = []
    for i in range(n):
        refs = draw(st.lists(st.integers(-2, max(n - 1, 0)), max_size=2)) if n else []
        # -1/-2: a tag of a work order not in the plan (no link); i: itself (no link)
        tags = [_tag(r) if r >= 0 else f"wo-Zzzzzz-Out{-r:05d}" for r in refs]
        wos.append(_wo(i, sizes[i], tags))
    return wos


def _linked(wos):
    idx = {wo.key: i for i, wo in enumerate(wos)}
    for i, wo in enumerate(wos):
        for m in wo.modules:
            if m.reuse_output_type == "release" and m.release_tag:
                _, t, w = m.release_tag.split("-")
                if (t, w) in idx:
                    yield i, idx[(t, w)]


@settings(max_examples=200, deadline=None)
@given(plans(), st.integers(1, 8))
def test_split__partitions_keeps_links_together_and_is_deterministic(wos, n):
    shards = sharding.split(wos, n)
    assert len(shards) == n
    where = {}
    for k, shard in enumerate(shards):
        assert [wos.index(w) for w in shard] == sorted(wos.index(w) for w in shard)  # plan order
        for wo in shard:
            assert wo.key not in where, "a work order in two shards"
            where[wo.key] = k
    assert set(where) == {wo.key for wo in wos}, "a work order in no shard"
    for a, b in _linked(wos):
        assert where[wos[a].key] == where[wos[b].key]
    assert sharding.split(list(wos), n) == shards
    comps = sharding.components(wos)
    empty = sum(1 for s in shards if not s)
    assert empty == max(0, n - len(comps))
    count = sharding.shard_count(wos, n)
    assert 1 <= count <= n and count == max(1, min(n, len(comps)))
    assert sharding.matrix(wos, n) == {"shard": [f"{k}/{count}" for k in range(1, count + 1)]}


@settings(max_examples=100, deadline=None)
@given(plans(), st.integers(1, 6))
def test_split__greedy_balance_bound(wos, n):
    """Largest-first greedy: the heaviest shard exceeds the average by less than one component."""
    comps = sharding.components(wos)
    weight = {tuple(c): sum(len(wos[i].modules) for i in c) for c in comps}
    loads = [sum(len(w.modules) for w in s) for s in sharding.split(wos, n)]
    biggest = max(weight.values(), default=0)
    assert max(loads) <= sum(loads) / n + biggest


def test_split__links_are_transitive_and_balance_by_module_count():
    wos = [
        _wo(0, 4),
        _wo(1, 1, [_tag(0)]),  # consumes 0
        _wo(2, 1, [_tag(1)]),  # consumes 1 → all three together
        _wo(3, 3),
        _wo(4, 2),
    ]
    assert sharding.components(wos) == [[0, 1, 2], [3], [4]]
    a, b = sharding.split(wos, 2)
    assert [w.work_order_id for w in a] == ["W000aaaa", "W001aaaa", "W002aaaa"]  # 6 + 2 = 8 modules
    assert [w.work_order_id for w in b] == ["W003aaaa", "W004aaaa"]  # 5
    assert sharding.matrix(wos, 10) == {"shard": ["1/3", "2/3", "3/3"]}
    assert sharding.matrix([], 4) == {"shard": ["1/1"]}


@pytest.mark.parametrize("text", ["", "1", "0/2", "3/2", "1/0", "a/b", "1/2/3", "-1/2"])
def test_parse_shard__rejects(text):
    with pytest.raises(ValueError):
        sharding.parse_shard(text)


def test_parse_shard__accepts():
    assert sharding.parse_shard("2/5") == (2, 5)
    assert sharding.parse_shard(" 1/1 ") == (1, 1)


def test_receipts__only_finished_receipts_of_this_plan_and_split_count(tmp_path):
    wos = [_wo(0, 1), _wo(1, 1)]
    p = Plan(created_at="2026-01-01T00:00:00Z", lease_token="aa", work_orders=wos)
    other = p.model_copy(update={"lease_token": "bb"})
    a, _ = sharding.split(wos, 2)
    r1 = shard_receipts.begin(tmp_path, p, 1, 2, a)
    assert shard_receipts.detect_shard_count(tmp_path, p) == 2
    assert shard_receipts.finished_shards(tmp_path, p, 2) == set()  # started, not finished
    shard_receipts.finish(tmp_path, r1)
    assert shard_receipts.finished_shards(tmp_path, p, 2) == {1}
    assert shard_receipts.finished_shards(tmp_path, other, 2) == set()  # another plan's
    assert shard_receipts.detect_shard_count(tmp_path, other) is None
    shard_receipts.finish(tmp_path, shard_receipts.begin(tmp_path, p, 1, 1, wos))
    with pytest.raises(Exception, match="--shards"):
        shard_receipts.detect_shard_count(tmp_path, p)
    shard_receipts.receipt_path(tmp_path, 1, 2).write_text("{torn")
    assert shard_receipts.finished_shards(tmp_path, p, 2) == set()


# ---------------------------------------------------------------- end to end (CLI)

# What one execute runner uploads (the workflow's upload-artifact paths, relative to runtime/)
UPLOADED = ("shards/*.json", "*/*/journal.jsonl", "*/*/*/outputs_manifest.json", "*/*/*/logs/*")


def _fan_repo(root: Path, shared: Path) -> Path:
    build_repo(root)
    (root / "workmill.yml").write_text(
        f"max_parallel: 1\nlocal_store_dir: {shared / 'store'}\nlocal_cache_dir: {shared / 'cache'}\n"
    )
    m = lambda mid, **kw: {"module_id": mid, **kw}  # noqa: E731
    work_order(root, T1, "R1aaaaaa", [m("001", purchase_release_artifacts=True, params={"n": 7})])
    tag = f"wo-{T1}-R1aaaaaa"
    work_order(
        root, T2, "R2aaaaaa", [m("001", reuse_output_type="release", release_tag=tag), m("002")]
    )
    work_order(root, T1, "F1aaaaaa", [m("003", params={"fail": "E01"}), m("001")])
    work_order(
        root, T1, "P1aaaaaa", [m("001"), m("003", params={"fail": "E01"})], mode="PARTIAL_ALLOWED"
    )
    work_order(root, T2, "C1aaaaaa", [m("001"), m("002")])
    work_order(root, T1, "C2aaaaaa", [m("001", reuse_output_type="cache", params={"n": 9})])
    return root


def _ok(r) -> None:
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr


def _runner(cli, origin: Path, dest: Path, shard: str) -> dict:
    """One execute runner: its own checkout + the plan artifact (a copy of origin's runtime/)."""
    shutil.copytree(origin, dest, symlinks=True)
    r = cli("execute", "--plan-file", "runtime/plan.json", "--shard", shard, "--json", cwd=dest)
    _ok(r)
    return json.loads(r.stdout)


def _download(src_runtime: Path, dest_runtime: Path) -> None:
    """The settle job's download-artifact step: merge one shard's uploaded files."""
    for pattern in UPLOADED:
        for f in src_runtime.glob(pattern):
            target = dest_runtime / f.relative_to(src_runtime)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, target)


def _settle(cli, root: Path, *extra: str):
    r = cli("settle", "--plan-file", "runtime/plan.json", "--json", *extra, cwd=root)
    assert "Traceback" not in r.stderr
    return r, {row["work_order_id"]: row for row in json.loads(r.stdout)["work_orders"]}


def _outcome(rows: dict) -> dict:
    return {
        wo: (
            r["status"],
            r["reason_code"],
            r["spend_credits"],
            r["refund_credits"],
            [(m["module_id"], m["status"], m["reason_code"]) for m in r["modules"]],
        )
        for wo, r in rows.items()
    }


def _money(cli, root: Path, tmp: Path) -> dict[str, tuple[int, int]]:
    t = read_state(cli, root, tmp)
    out: dict[str, list[int]] = {}
    for tx in t["transactions.csv"]:
        if tx["type"] in {"SPEND", "REFUND"}:
            out.setdefault(tx["work_order_id"], []).append((tx["type"], tx["amount_credits"]))
    return {wo: sorted(v) for wo, v in out.items()}


@pytest.fixture
def fanned(cli, tmp_path):
    """A planned repo (origin) sharing its store with the runners; the matrix it printed."""
    origin = _fan_repo(tmp_path / "origin", tmp_path / "shared")
    prepare(cli, origin, {T1: 1000, T2: 1000})
    r = cli("plan", "--plan-file", "runtime/plan.json", "--shards", "2", "--json", cwd=origin)
    _ok(r)
    return origin, json.loads(r.stdout)


def test_fan_out__two_runners_then_settle_equals_one_machine(cli, tmp_path, fanned):
    origin, grid = fanned
    assert grid == {"shard": ["1/2", "2/2"]}
    ran = {}
    for k in (1, 2):
        ran[k] = _runner(cli, origin, tmp_path / f"runner{k}", f"{k}/2")
    assert set(ran[1]).isdisjoint(ran[2]) and len(ran[1]) + len(ran[2]) == 6
    together = [k for k in (1, 2) if f"{T1}/R1aaaaaa" in ran[k]]
    assert together and f"{T2}/R2aaaaaa" in ran[together[0]]  # producer and consumer

    settler = tmp_path / "settler"
    shutil.copytree(origin, settler, symlinks=True)
    for k in (1, 2):
        _download(tmp_path / f"runner{k}" / "runtime", settler / "runtime")
    r, rows = _settle(cli, settler, "--shards", "2")
    _ok(r)
    assert rows["R2aaaaaa"]["status"] == "COMPLETED"  # reused the release made on its runner
    assert rows["F1aaaaaa"]["status"] == "FAILED" and rows["F1aaaaaa"]["refund_credits"] == 40
    assert rows["P1aaaaaa"]["status"] == "PARTIALLY_COMPLETED"
    assert cli("ledger", "verify", cwd=settler).returncode == 0
    money = _money(cli, settler, tmp_path)
    assert all(len(v) == 2 for v in money.values()), money  # one SPEND and one REFUND each

    single = _fan_repo(tmp_path / "single", tmp_path / "single-shared")
    prepare(cli, single, {T1: 1000, T2: 1000})
    r = cli("run", "--json", cwd=single)
    _ok(r)
    alone = {row["work_order_id"]: row for row in json.loads(r.stdout)["work_orders"]}
    assert _outcome(rows) == _outcome(alone)
    assert money == _money(cli, single, tmp_path)


def test_fan_out__missing_shard_is_not_settled_until_it_runs(cli, tmp_path, fanned):
    origin, _ = fanned
    settler = tmp_path / "settler"
    shutil.copytree(origin, settler, symlinks=True)
    first = _runner(cli, origin, tmp_path / "runner1", "1/2")
    _download(tmp_path / "runner1" / "runtime", settler / "runtime")
    # runner 2 died mid-way: it uploaded only the receipt it wrote when it started
    plan = Plan.read(settler / "runtime" / "plan.json")
    shard_receipts.begin(settler / "runtime", plan, 2, 2, sharding.split(plan.work_orders, 2)[1])

    r, rows = _settle(cli, settler)  # N read from runner 1's receipt
    assert r.returncode == 1
    assert "execute --shard 2/2" in r.stderr
    waiting = {wo for wo, row in rows.items() if row["status"] == "UNSETTLED"}
    done = {k.split("/")[1] for k in first}
    assert waiting and waiting.isdisjoint(done) and len(waiting | done) == 6
    t = read_state(cli, settler, tmp_path)
    last = {row["work_order_id"]: row["status"] for row in t["workorders_log.csv"]}
    assert all(last[wo] == "RUNNING" for wo in waiting)
    assert all(last[wo] != "RUNNING" for wo in done)
    money = _money(cli, settler, tmp_path)
    assert all(money[wo] == [("SPEND", money[wo][0][1])] for wo in waiting)  # SPEND kept
    assert cli("ledger", "verify", cwd=settler).returncode == 0

    _runner(cli, origin, tmp_path / "runner2", "2/2")  # the shard runs later
    _download(tmp_path / "runner2" / "runtime", settler / "runtime")
    r, rows = _settle(cli, settler, "--shards", "2")
    _ok(r)
    assert not any(row["status"] == "UNSETTLED" for row in rows.values())
    money = _money(cli, settler, tmp_path)
    assert len(money) == 6 and all(len(v) == 2 for v in money.values()), money
    assert cli("ledger", "verify", cwd=settler).returncode == 0


def test_fan_out__settle_with_shards_and_no_receipts_refunds_nothing(cli, tmp_path, fanned):
    origin, _ = fanned
    r, rows = _settle(cli, origin, "--shards", "2")
    assert r.returncode == 1
    assert {row["status"] for row in rows.values()} == {"UNSETTLED"}
    assert all(len(v) == 1 for v in _money(cli, origin, tmp_path).values())


def test_execute__bad_shard_is_a_usage_error(cli, tmp_path, fanned):
    origin, _ = fanned
    for bad in ("3/2", "0/1", "two"):
        r = cli("execute", "--plan-file", "runtime/plan.json", "--shard", bad, cwd=origin)
        assert r.returncode == 2 and "--shard" in r.stderr and "Traceback" not in r.stderr
