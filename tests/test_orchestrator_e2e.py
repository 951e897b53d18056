"""End-to-end: the real CLI on a real local store (SPEC §7, §8, §10, §11)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import FIXED_NOW
from platform_factory import T1, T2, T3, T4, build_repo, prepare, read_state, work_order


def _run(cli, root: Path, *extra: str) -> dict:
    r = cli("run", "--json", *extra, cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    return {row["work_order_id"]: row for row in json.loads(r.stdout)["work_orders"]}


def _codes(root: Path) -> dict[str, str]:
    import csv

    with (root / "maintenance-state" / "reason_catalog.csv").open() as fh:
        return {r["name"]: r["reason_code"] for r in csv.DictReader(fh)}


def _txs(tables, wo: str, kind: str):
    return [t for t in tables["transactions.csv"] if t["work_order_id"] == wo and t["type"] == kind]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return build_repo(tmp_path / "repo")


def test_run__statuses_billing_promos_and_rejections(cli, repo, tmp_path):
    m = lambda mid, **kw: {"module_id": mid, **kw}  # noqa: E731
    work_order(
        repo,
        T1,
        "W1aaaaaa",
        [m("001", purchase_release_artifacts=True), m("002", purchase_release_artifacts=True)],
        promo_codes=["P10"],
    )
    work_order(
        repo,
        T1,
        "W2aaaaaa",
        [m("001"), m("003", params={"fail": "E01"})],
        mode="PARTIAL_ALLOWED",
    )
    work_order(repo, T1, "W3aaaaaa", [m("003", params={"fail": "E01"}), m("001"), m("002")])
    work_order(repo, T4, "W4aaaaaa", [m("001")])
    work_order(repo, T2, "W5aaaaaa", [m("001")])
    work_order(repo, T1, "W6aaaaaa", [m("001")], promo_codes=["OLD"])
    work_order(repo, T1, "W7aaaaaa", [m("006")])
    work_order(repo, T1, "W8aaaaaa", [m("005", purchase_release_artifacts=True)])
    work_order(repo, T1, "W9aaaaaa", [m("003", params={"fail": "E02"})])
    work_order(repo, T1, "WAaaaaaa", [m("002")])  # omits its dependency: invalid
    work_order(repo, T1, "WBaaaaaa", [m("001")], enabled=False)
    prepare(cli, repo, {T1: 1000})
    codes = _codes(repo)
    rows = _run(cli, repo)

    assert rows["W1aaaaaa"]["status"] == "COMPLETED"
    assert rows["W1aaaaaa"]["spend_credits"] == 41  # (15 - 1) + (30 - 3)
    assert rows["W1aaaaaa"]["refund_credits"] == 0
    assert rows["W2aaaaaa"]["status"] == "PARTIALLY_COMPLETED"
    assert (rows["W2aaaaaa"]["spend_credits"], rows["W2aaaaaa"]["refund_credits"]) == (40, 30)
    w3 = rows["W3aaaaaa"]
    assert (w3["status"], w3["spend_credits"], w3["refund_credits"]) == ("FAILED", 60, 60)
    assert [x["status"] for x in w3["modules"]] == ["FAILED", "SKIPPED", "SKIPPED"]
    assert [x["reason_code"] for x in w3["modules"][1:]] == [
        codes["STRICT_ABORTED"],
        codes["DEPENDENCY_FAILED"],
    ]
    assert rows["W4aaaaaa"]["reason_code"] == codes["TENANT_SUSPENDED"]
    assert rows["W5aaaaaa"]["reason_code"] == codes["INSUFFICIENT_CREDITS"]
    assert rows["W6aaaaaa"]["reason_code"] == codes["PROMO_INVALID"]
    assert rows["W7aaaaaa"]["reason_code"] == codes["MODULE_NOT_ORDERABLE"]
    for wo in ("W4aaaaaa", "W5aaaaaa", "W6aaaaaa", "W7aaaaaa", "WAaaaaaa"):
        assert rows[wo]["status"] == "REJECTED", wo
    w8 = rows["W8aaaaaa"]
    assert w8["modules"][0]["reason_code"] == codes["ARTIFACTS_NOT_ELIGIBLE"]
    assert (w8["status"], w8["refund_credits"]) == ("FAILED", 10)
    assert rows["W9aaaaaa"]["status"] == "COMPLETED"
    assert rows["W9aaaaaa"]["modules"][0]["status"] == "COMPLETED_WITH_EXCEPTION"
    assert rows["WBaaaaaa"]["status"] == "DISABLED"

    t = read_state(cli, repo, tmp_path)
    for wo in ("W1aaaaaa", "W2aaaaaa", "W3aaaaaa", "W8aaaaaa", "W9aaaaaa"):
        assert len(_txs(t, wo, "SPEND")) == 1 and len(_txs(t, wo, "REFUND")) == 1, wo
    for wo in ("W4aaaaaa", "W5aaaaaa", "W6aaaaaa", "W7aaaaaa", "WAaaaaaa", "WBaaaaaa"):
        assert not [x for x in t["transactions.csv"] if x["work_order_id"] == wo], wo
    spend = _txs(t, "W1aaaaaa", "SPEND")[0]
    items = [
        i for i in t["transaction_items.csv"] if i["transaction_id"] == spend["transaction_id"]
    ]
    kinds = Counter(i["kind"] for i in items)
    assert kinds == {"MODULE": 2, "ARTIFACT": 2, "PROMO": 2}
    assert sum(int(i["amount_credits"]) for i in items) == 41 == -int(spend["amount_credits"])
    refund = _txs(t, "W2aaaaaa", "REFUND")[0]
    assert refund["note"].startswith("refund 30 = module 003 FAILED")
    applied = [r for r in t["promotion_redemptions.csv"] if r["event"] == "APPLIED"]
    assert [(r["promo_code"], r["amount_credits"]) for r in applied] == [("P10", "4")]
    statuses = {r["work_order_id"]: r["status"] for r in t["workorders_log.csv"]}
    assert statuses["W1aaaaaa"] == "COMPLETED" and statuses["W4aaaaaa"] == "REJECTED"
    assert cli("ledger", "verify", cwd=repo).returncode == 0

    # artifacts: names and manifest per SPEC §10
    rel = repo / ".workmill" / "releases" / f"wo-{T1}-W1aaaaaa"
    names = sorted(p.name for p in rel.iterdir() if not p.name.startswith("."))
    manifest_file = f"{T1}-W1aaaaaa-manifest.json".lower()
    assert manifest_file in names and len(names) == 3
    manifest = json.loads((rel / manifest_file).read_text())
    assert manifest["owning_tenant_id"] == T1 and len(manifest["items"]) == 2
    for item in manifest["items"]:
        assert item["filename"] == item["filename"].lower()
        assert item["filename"].startswith(f"{T1}-w1aaaaaa-{item['module_id']}-".lower())
        assert set(item) >= {"module_version", "item_id", "source_name", "sha256", "content_type"}

    # processed once: a second run charges nothing more; rejected ones are planned again,
    # show their reason again, and log nothing new (neither reason nor file changed)
    again = _run(cli, repo)
    rejected = {"W4aaaaaa", "W5aaaaaa", "W6aaaaaa", "W7aaaaaa", "WAaaaaaa"}
    assert {wo for wo, r in again.items() if r["status"] == "REJECTED"} == rejected
    assert again["W5aaaaaa"]["reason_code"] == codes["INSUFFICIENT_CREDITS"]
    assert again["W5aaaaaa"]["reason_name"] == "INSUFFICIENT_CREDITS"
    assert "costs 10" in again["W5aaaaaa"]["message"]
    others = {wo: r["status"] for wo, r in again.items() if wo not in rejected}
    assert set(others.values()) <= {"SKIPPED", "DISABLED"}, others
    t2 = read_state(cli, repo, tmp_path)
    assert len(t2["transactions.csv"]) == len(t["transactions.csv"])
    assert len(t2["workorders_log.csv"]) == len(t["workorders_log.csv"])


def test_run__release_reuse_cross_tenant_allow_deny_and_tamper(cli, repo, tmp_path):
    tag = f"wo-{T1}-R1aaaaaa"
    work_order(
        repo,
        T1,
        "R1aaaaaa",
        [{"module_id": "001", "purchase_release_artifacts": True, "params": {"n": 7}}],
    )
    reuse = [
        {"module_id": "001", "reuse_output_type": "release", "release_tag": tag},
        {"module_id": "002"},
    ]
    work_order(repo, T2, "R2aaaaaa", reuse)  # allowed consumer
    work_order(repo, T3, "R3aaaaaa", reuse)  # not allowed
    work_order(repo, T1, "R4aaaaaa", reuse)  # owner itself
    prepare(cli, repo, {T1: 500, T2: 500, T3: 500})
    codes = _codes(repo)
    rows = _run(cli, repo)
    assert rows["R1aaaaaa"]["status"] == "COMPLETED"
    assert rows["R2aaaaaa"]["status"] == "COMPLETED"
    assert rows["R4aaaaaa"]["status"] == "COMPLETED"
    r3 = rows["R3aaaaaa"]
    assert r3["status"] == "FAILED" and r3["refund_credits"] == r3["spend_credits"] == 30
    assert r3["modules"][0]["reason_code"] == codes["RELEASE_ACCESS_DENIED"]
    assert r3["modules"][1]["reason_code"] == codes["DEPENDENCY_FAILED"]
    out = repo / "runtime" / T2 / "R2aaaaaa" / "002" / "outputs" / "out.txt"
    assert out.read_text() == '{"n": 7}\n{"n": 7}\n'

    # tamper with the published item: a later reuse must refuse it
    rel = repo / ".workmill" / "releases" / tag
    item = next(p for p in rel.iterdir() if p.name.endswith(".json") and "manifest" not in p.name)
    item.chmod(0o644)
    item.write_text('{"n": 666}\n')
    work_order(repo, T2, "R5aaaaaa", reuse)
    rows = _run(cli, repo, "--work-order-id", "R5aaaaaa")
    assert rows["R5aaaaaa"]["modules"][0]["reason_code"] == codes["INTEGRITY_MISMATCH"]
    work_order(
        repo,
        T2,
        "R6aaaaaa",
        [{"module_id": "001", "reuse_output_type": "release", "release_tag": f"wo-{T1}-NoSuchWo"}],
    )
    rows = _run(cli, repo, "--work-order-id", "R6aaaaaa")
    assert rows["R6aaaaaa"]["modules"][0]["reason_code"] == codes["RELEASE_NOT_FOUND"]
    assert cli("ledger", "verify", cwd=repo).returncode == 0


def _assets(repo: Path, tenant: str, folder: str, content: bytes, sha: str | None = None) -> None:
    import hashlib

    d = repo / "tenants" / tenant / "assets" / "outputs" / folder
    d.mkdir(parents=True)
    (d / "data.json").write_bytes(content)
    manifest = {
        "module_id": "001",
        "files": [
            {
                "path": "data.json",
                "size_bytes": len(content),
                "sha256": sha or hashlib.sha256(content).hexdigest(),
                "format": "json",
            }
        ],
    }
    (d / "manifest.json").write_text(json.dumps(manifest))


def test_run__assets_reuse_verifies_hashes(cli, repo):
    _assets(repo, T1, "good-v1", b'{"n": 42}\n')
    _assets(repo, T1, "bad-v1", b'{"n": 42}\n', sha="0" * 64)
    use = lambda f: [  # noqa: E731
        {"module_id": "001", "reuse_output_type": "assets", "assets_folder_name": f},
        {"module_id": "002"},
    ]
    work_order(repo, T1, "S1aaaaaa", use("good-v1"))
    work_order(repo, T1, "S2aaaaaa", use("bad-v1"))
    work_order(repo, T1, "S3aaaaaa", use("missing-v1"))
    prepare(cli, repo, {T1: 500})
    codes = _codes(repo)
    rows = _run(cli, repo)
    assert rows["S1aaaaaa"]["status"] == "COMPLETED"
    assert rows["S1aaaaaa"]["spend_credits"] == 30  # reuse is still charged
    assert rows["S2aaaaaa"]["modules"][0]["reason_code"] == codes["INTEGRITY_MISMATCH"]
    assert rows["S3aaaaaa"]["modules"][0]["reason_code"] == codes["ASSETS_NOT_FOUND"]


def test_run__cache_miss_then_hit_private_to_tenant(cli, repo, tmp_path):
    req = [{"module_id": "001", "reuse_output_type": "cache", "params": {"n": 5}}]
    work_order(repo, T1, "C1aaaaaa", req)
    prepare(cli, repo, {T1: 500, T2: 500})
    first = _run(cli, repo)
    assert first["C1aaaaaa"]["modules"][0]["cache_hit"] is False
    work_order(repo, T1, "C2aaaaaa", req)
    work_order(repo, T2, "C3aaaaaa", req)
    second = _run(cli, repo)
    assert second["C2aaaaaa"]["modules"][0]["cache_hit"] is True
    assert second["C3aaaaaa"]["modules"][0]["cache_hit"] is False
    t = read_state(cli, repo, tmp_path)
    hits = {r["work_order_id"]: r["cache_hit"] for r in t["module_runs_log.csv"]}
    assert hits == {"C1aaaaaa": "false", "C2aaaaaa": "true", "C3aaaaaa": "false"}
    index = t["cache_index.csv"]
    assert {r["tenant_id"] for r in index} == {T1, T2}
    assert [r["last_hit_at"] for r in index if r["tenant_id"] == T1] == [FIXED_NOW]


def test_run__dry_run_writes_nothing(cli, repo, tmp_path):
    work_order(repo, T1, "D1aaaaaa", [{"module_id": "001"}])
    prepare(cli, repo, {T1: 100})
    before = read_state(cli, repo, tmp_path)
    rows = _run(cli, repo, "--dry-run")
    assert rows["D1aaaaaa"]["status"] == "PLANNED" and rows["D1aaaaaa"]["spend_credits"] == 10
    assert read_state(cli, repo, tmp_path) == before
    assert not (repo / "runtime" / T1).exists()


def test_run__stale_maintenance_is_refused(cli, repo):
    work_order(repo, T1, "D2aaaaaa", [{"module_id": "001"}])
    prepare(cli, repo, {T1: 100})
    spec = repo / "modules" / "001" / "module.yml"
    spec.write_text(spec.read_text().replace('"Gen"', '"Gen2"'))
    r = cli("run", cwd=repo)
    assert r.returncode == 1 and "workmill maintenance" in r.stderr


def test_plan_execute_settle__phases_pass_a_plan_file(cli, repo, tmp_path):
    work_order(repo, T1, "P1aaaaaa", [{"module_id": "001"}, {"module_id": "002"}])
    prepare(cli, repo, {T1: 100})
    plan_file = tmp_path / "plan.json"
    assert cli("plan", "--plan-file", str(plan_file), cwd=repo).returncode == 0
    t = read_state(cli, repo, tmp_path)
    assert [r["status"] for r in t["workorders_log.csv"]] == ["RUNNING"]
    assert len(_txs(t, "P1aaaaaa", "SPEND")) == 1
    r = cli("execute", "--plan-file", str(plan_file), "--json", cwd=repo)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {f"{T1}/P1aaaaaa": {"001": "COMPLETED", "002": "COMPLETED"}}
    r = cli("settle", "--plan-file", str(plan_file), "--json", cwd=repo)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["work_orders"][0]["status"] == "COMPLETED"
    assert cli("ledger", "verify", cwd=repo).returncode == 0


def _popen_run(repo: Path) -> subprocess.Popen:
    env = {**os.environ, "WORKMILL_NOW": FIXED_NOW}
    return subprocess.Popen(
        [sys.executable, "-m", "workmill", "run", "--json"],
        cwd=repo,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def test_run__kill9_mid_run_is_finished_by_next_run(cli, repo, tmp_path):
    work_order(
        repo,
        T1,
        "K1aaaaaa",
        [{"module_id": "001"}, {"module_id": "004", "params": {"secs": 3}}],
    )
    prepare(cli, repo, {T1: 100})
    proc = _popen_run(repo)
    journal = repo / "runtime" / T1 / "K1aaaaaa" / "journal.jsonl"
    deadline = time.time() + 30
    while time.time() < deadline and not (journal.exists() and journal.read_text().strip()):
        time.sleep(0.05)
    assert journal.exists(), "module 001 never finished"
    time.sleep(0.3)  # 004 is now sleeping inside its step
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    t = read_state(cli, repo, tmp_path)
    assert [r["status"] for r in t["workorders_log.csv"]] == ["RUNNING"]
    assert len(_txs(t, "K1aaaaaa", "SPEND")) == 1 and not _txs(t, "K1aaaaaa", "REFUND")

    rows = _run(cli, repo)
    assert rows["K1aaaaaa"]["status"] == "COMPLETED"
    lines = [json.loads(x) for x in journal.read_text().splitlines()]
    assert [x["module_id"] for x in lines].count("001") == 1  # not re-run
    t = read_state(cli, repo, tmp_path)
    assert len(_txs(t, "K1aaaaaa", "SPEND")) == 1 and len(_txs(t, "K1aaaaaa", "REFUND")) == 1
    assert cli("ledger", "verify", cwd=repo).returncode == 0


def test_run__concurrent_runs_never_double_charge(cli, repo, tmp_path):
    wos = [f"X{i}aaaaaa" for i in range(6)]
    for wo in wos:
        work_order(
            repo, T1, wo, [{"module_id": "001"}, {"module_id": "004", "params": {"secs": 0.2}}]
        )
    prepare(cli, repo, {T1: 1000})
    procs = [_popen_run(repo) for _ in range(4)]
    for p in procs:
        assert p.wait(timeout=120) == 0
    rows = _run(cli, repo)  # finishes anything a busy overlap left
    t = read_state(cli, repo, tmp_path)
    for wo in wos:
        assert len(_txs(t, wo, "SPEND")) == 1 and len(_txs(t, wo, "REFUND")) == 1, wo
    assert all(r["status"] == "SKIPPED" for r in rows.values())
    assert cli("ledger", "verify", cwd=repo).returncode == 0
    balance = 1000 - 15 * len(wos)
    r = cli("balance", "--tenant-id", T1, "--json", cwd=repo)
    assert str(balance) in r.stdout


def test_release_list_and_download(cli, repo, tmp_path):
    work_order(repo, T1, "L1aaaaaa", [{"module_id": "001", "purchase_release_artifacts": True}])
    prepare(cli, repo, {T1: 100})
    _run(cli, repo)
    r = cli("release", "list", "--json", cwd=repo)
    info = json.loads(r.stdout)
    assert info[0]["tag"] == f"wo-{T1}-L1aaaaaa" and info[0]["complete"] and info[0]["items"] == 1
    dest = tmp_path / "dl"
    r = cli("release", "download", f"wo-{T1}-L1aaaaaa", "--dir", str(dest), cwd=repo)
    assert r.returncode == 0, r.stderr
    assert len(list(dest.iterdir())) == 2
    r = cli("release", "download", "wo-nope", "--dir", str(dest), cwd=repo)
    assert r.returncode == 2 and "Traceback" not in r.stderr  # not a tag: a usage error


def test_demo__runs_the_example_and_meets_its_expectations(cli, tmp_path):
    r = cli("demo", "--dir", str(tmp_path / "demo"), "--json", cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["mismatches"] == []
    assert cli("ledger", "verify", cwd=tmp_path / "demo").returncode == 0


def test_run__invalid_work_order_rejected_with_work_order_invalid(cli, repo):
    work_order(repo, T1, "V1aaaaaa", [{"module_id": "002"}])  # omits dependency 001
    prepare(cli, repo, {T1: 100})
    codes = _codes(repo)
    rows = _run(cli, repo)
    assert rows["V1aaaaaa"]["reason_code"] == codes["WORK_ORDER_INVALID"]
    assert "depends on 001" in rows["V1aaaaaa"]["message"]


def test_examples__committed_maintenance_state_is_current(cli, tmp_path):
    import shutil

    from platform_factory import EXAMPLES

    copy = tmp_path / "platform"
    shutil.copytree(EXAMPLES, copy)
    r = cli("maintenance", "--check", cwd=copy)
    assert r.returncode == 0, r.stdout + r.stderr


def test_execute__rerun_from_scratch_adopts_the_published_manifest(cli, repo, tmp_path):
    """A shard re-run on a fresh runner (no journal) finds the manifest already published:
    a manifest is never replaced, so the outcomes take its items and the new uploads go."""
    work_order(repo, T1, "R1aaaaaa", [{"module_id": "001", "purchase_release_artifacts": True}])
    prepare(cli, repo, {T1: 100})
    plan_file = tmp_path / "plan.json"
    assert cli("plan", "--plan-file", str(plan_file), cwd=repo).returncode == 0
    assert cli("execute", "--plan-file", str(plan_file), cwd=repo).returncode == 0
    tag = f"wo-{T1}-R1aaaaaa"
    first = json.loads(cli("release", "list", "--json", cwd=repo).stdout)
    wo_dir = repo / "runtime" / T1 / "R1aaaaaa"
    for p in wo_dir.iterdir():  # a fresh runner: only the plan travels
        if p.name != "plan.json":
            subprocess.run(["rm", "-rf", str(p)], check=True)
    r = cli("execute", "--plan-file", str(plan_file), cwd=repo)
    assert r.returncode == 0, r.stderr
    journal = [json.loads(x) for x in (wo_dir / "journal.jsonl").read_text().splitlines()]
    dest = tmp_path / "dl"
    assert cli("release", "download", tag, "--dir", str(dest), cwd=repo).returncode == 0
    manifest = json.loads(next(dest.glob("*manifest*")).read_text())
    assert [p["filename"] for p in journal[-1]["published"]] == [
        i["filename"] for i in manifest["items"]
    ]
    assert json.loads(cli("release", "list", "--json", cwd=repo).stdout) == first
    store_assets = sorted(p.name for p in (repo / ".workmill").rglob(f"{tag}/*"))
    assert len(store_assets) == 2, store_assets  # the item and the manifest, no strays
    r = cli("settle", "--plan-file", str(plan_file), "--json", cwd=repo)
    assert json.loads(r.stdout)["work_orders"][0]["status"] == "COMPLETED"
    assert cli("ledger", "verify", cwd=repo).returncode == 0
