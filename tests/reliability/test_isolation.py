"""Isolation: tenants never read each other's cache entries, assets or releases, and a
module never publishes a file from outside its workspace (SPEC §6, §10)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from reliability_support import RELEASES, check_invariants, cli_run, inprocess, pull_tables

from platform_factory import T1, T2, T3, build_repo, prepare, work_order
from workmill.artifacts.manifest import ReleaseItem, ReleaseManifest
from workmill.cache import service as cache_service
from workmill.cache.local import LocalCacheBackend
from workmill.repo import PlatformRepo

SECRET = b'{"secret": "of T2"}\n'


def _add_module(root: Path, mid: str, run: str, inputs: dict) -> None:
    d = root / "modules" / mid
    d.mkdir(parents=True)
    spec = {
        "module_id": mid,
        "name": f"Leak{mid}",
        "version": "1.0.0",
        "capabilities": {"supports_downloadable_artifacts": True},
        "outputs": [{"name": "y.txt", "format": "text"}],
        "timeout_minutes": 1,
    }
    (d / "module.yml").write_text(json.dumps(spec))
    (d / "validation.yml").write_text('{"reasons": []}')
    action = {
        "name": f"Leak{mid}",
        "inputs": inputs,
        "runs": {"using": "composite", "steps": [{"shell": "bash", "run": run}]},
    }
    (d / "action.yml").write_text(json.dumps(action))
    with (root / "maintenance-state" / "ids" / "module_registry.csv").open("a") as fh:
        fh.write(f"{mid},02,Leak{mid},active,\n")
    with (root / "releases" / "billing-state-v1" / "pricing.csv").open("a") as fh:
        fh.write(f"{mid},L{mid[1:]},3,1,true\n")


def _assets(root: Path, tenant: str, folder: str, content: bytes) -> Path:
    d = root / "tenants" / tenant / "assets" / "outputs" / folder
    d.mkdir(parents=True)
    (d / "data.json").write_bytes(content)
    files = [{"path": "data.json", "size_bytes": len(content), "sha256": _sha(content)}]
    (d / "manifest.json").write_text(json.dumps({"module_id": "001", "files": files}))
    return d


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _codes(root: Path) -> dict[str, str]:
    with (root / "maintenance-state" / "reason_catalog.csv").open() as fh:
        return {r["name"]: r["reason_code"] for r in csv.DictReader(fh)}


def _run(root: Path) -> dict[str, dict]:
    r = cli_run("run", "--json", cwd=root)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    return {w["work_order_id"]: w for w in json.loads(r.stdout)["work_orders"]}


def _forge_release(root: Path, tag_owner: str, wo: str, manifest_owner: str, item: Path) -> str:
    """A release written straight into the store, as an attacker with store access might."""
    tag = f"wo-{tag_owner}-{wo}"
    d = root / RELEASES / tag
    d.mkdir(parents=True)
    data = item.read_bytes()
    name = f"{tag_owner}-{wo}-001-aaaaaaaa-{_sha(data)[:8]}.json".lower()
    (d / name).write_bytes(data)
    m = ReleaseManifest(
        owning_tenant_id=manifest_owner,
        work_order_id=wo,
        release_tag=tag,
        created_at="2026-01-01T00:00:00Z",
        items=[
            ReleaseItem(
                filename=name,
                module_id="001",
                module_version="1.0.0",
                item_id="aaaaaaaa",
                source_name="data.json",
                sha256=_sha(data),
                size_bytes=len(data),
                content_type="application/json",
            )
        ],
    )
    (d / f"{tag_owner}-{wo}-manifest.json".lower()).write_bytes(m.to_bytes())
    return tag


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """One repo, two runs: T1 publishes and caches; then every attack runs at once."""
    root = build_repo(tmp_path_factory.mktemp("iso") / "repo")
    producer_out = root / "runtime" / T1 / "I1aaaaaa" / "001" / "outputs" / "data.json"
    _add_module(
        root,
        "007",
        'ln -s "$WM_PARAM_TARGET" "$WM_OUTPUTS_DIR/y.txt"',
        {"target": {"required": False, "default": "/etc/passwd"}},
    )
    _add_module(
        root,
        "008",
        'echo fine > "$WM_OUTPUTS_DIR/y.txt"\nmkdir -p "$WM_OUTPUTS_DIR/sub"\n'
        'ln -s "$WM_PARAM_TARGET" "$WM_OUTPUTS_DIR/sub/extra.json"',
        {"target": {"required": False, "default": str(producer_out)}},
    )
    secret = _assets(root, T2, "secret-v1", SECRET)
    a1 = root / "tenants" / T1 / "assets" / "outputs"
    a1.mkdir(parents=True)
    (a1 / "linkdir").symlink_to(secret, target_is_directory=True)
    own = _assets(root, T1, "linkfile", SECRET)  # manifest of T1, file is a link to T2's
    (own / "data.json").unlink()
    (own / "data.json").symlink_to(secret / "data.json")
    linkman = a1 / "linkman"
    linkman.mkdir()
    (linkman / "manifest.json").symlink_to(secret / "manifest.json")
    (linkman / "data.json").symlink_to(secret / "data.json")

    cached = [{"module_id": "001", "reuse_output_type": "cache", "params": {"n": 9}}]
    work_order(root, T1, "I1aaaaaa", [{**cached[0], "purchase_release_artifacts": True}])
    prepare(cli_run, root, {T1: 500, T2: 500, T3: 500})
    first = _run(root)
    assert first["I1aaaaaa"]["status"] == "COMPLETED"

    rel = f"wo-{T1}-I1aaaaaa"

    def assets(folder: str) -> list[dict]:
        return [{"module_id": "001", "reuse_output_type": "assets", "assets_folder_name": folder}]

    forged_a = _forge_release(root, T3, "Fg000000", T1, producer_out)  # tag T3, claims T1
    forged_b = _forge_release(root, T1, "Fg000001", T3, producer_out)  # tag T1, claims T3
    orders = {
        "I2aaaaaa": (T3, cached),  # same params, other tenant
        "I3aaaaaa": (T3, [{"module_id": "001", "reuse_output_type": "release", "release_tag": rel}]),
        "I4aaaaaa": (T2, [{"module_id": "001", "reuse_output_type": "release", "release_tag": rel}]),
        "I5aaaaaa": (T1, assets(f"../../../{T2}/assets/outputs/secret-v1")),
        "I6aaaaaa": (T1, assets(str(secret))),
        "I7aaaaaa": (T1, assets("linkdir")),
        "I8aaaaaa": (T1, assets("linkfile")),
        "I9aaaaaa": (T1, assets("linkman")),
        "J1aaaaaa": (T2, [{"module_id": "001", "reuse_output_type": "release", "release_tag": forged_a}]),
        "J2aaaaaa": (T3, [{"module_id": "001", "reuse_output_type": "release", "release_tag": forged_b}]),
        "J3aaaaaa": (T3, [{"module_id": "007", "purchase_release_artifacts": True}]),
        "J4aaaaaa": (T3, [{"module_id": "007", "purchase_release_artifacts": True, "params": {"target": str(producer_out)}}]),
        "J5aaaaaa": (T3, [{"module_id": "008", "purchase_release_artifacts": True}]),
    }  # fmt: skip
    for wo, (tenant, mods) in orders.items():
        work_order(root, tenant, wo, mods)
    return {"root": root, "rows": _run(root), "codes": _codes(root), "producer": producer_out}


def _reason(world: dict, wo: str) -> tuple[str, str]:
    row = world["rows"][wo]
    mod = row["modules"][0] if row["modules"] else {}
    return row["status"], mod.get("reason_code") or row["reason_code"]


def test_isolation__cache_entry_of_another_tenant_is_a_miss(world):
    row = world["rows"]["I2aaaaaa"]
    assert row["status"] == "COMPLETED" and row["modules"][0]["cache_hit"] is False


def test_isolation__tampered_cache_entry_tenant_is_refused(world, tmp_path):
    root = world["root"]
    repo = PlatformRepo.open(root)
    backend = LocalCacheBackend(repo.local_cache_dir)
    req = {"module_id": "001", "params": {"n": 9}, "inputs_dir": None}
    mine = cache_service.build_request(repo, tenant_id=T1, **req)
    theirs = cache_service.build_request(repo, tenant_id=T3, **req)
    assert mine.key != theirs.key  # the tenant is part of the key
    assert cache_service.lookup_and_restore(backend, mine, tmp_path / "ok") is not None
    # (a) T1's entry copied under the key T3 would look up: its entry names T1 → refused
    src, dst = backend.entry_dir(mine.key), backend.entry_dir(theirs.key)
    shutil.rmtree(dst, ignore_errors=True)  # T3's own entry from its miss (I2) is replaced
    shutil.copytree(src, dst)
    problems = []
    hit = cache_service.lookup_and_restore(
        backend, theirs, tmp_path / "a", on_problem=problems.append
    )
    assert hit is None and [p.kind for p in problems] == ["corrupt"]  # it records T1's key
    # ... and with the recorded key forged too, the recorded tenant still refuses it
    entry = dst / "entry.json"
    entry.chmod(0o644)
    entry.write_text(entry.read_text().replace(mine.key, theirs.key))
    problems.clear()
    hit = cache_service.lookup_and_restore(
        backend, theirs, tmp_path / "a", on_problem=problems.append
    )
    assert hit is None and [p.kind for p in problems] == ["tenant_mismatch"]
    assert not any((tmp_path / "a").rglob("*.json"))
    # (b) T1's own entry re-labelled as T3's: T3's key still finds nothing, T1 is refused
    shutil.rmtree(dst)
    entry = src / "entry.json"
    entry.chmod(0o644)
    entry.write_text(entry.read_text().replace(f'"{T1}"', f'"{T3}"'))
    assert T3 in entry.read_text()
    assert cache_service.lookup_and_restore(backend, theirs, tmp_path / "b") is None
    problems.clear()
    hit = cache_service.lookup_and_restore(
        backend, mine, tmp_path / "c", on_problem=problems.append
    )
    assert hit is None and [p.kind for p in problems] == ["tenant_mismatch"]


def test_isolation__release_without_relationship_denied(world):
    codes = world["codes"]
    assert _reason(world, "I3aaaaaa") == ("FAILED", codes["RELEASE_ACCESS_DENIED"])
    assert world["rows"]["I4aaaaaa"]["status"] == "COMPLETED"  # T2 is an allowed consumer


@pytest.mark.parametrize("wo", ["J1aaaaaa", "J2aaaaaa"])
def test_isolation__forged_manifest_owner_denied(world, wo):
    assert _reason(world, wo) == ("FAILED", world["codes"]["RELEASE_ACCESS_DENIED"])
    out = world["root"] / "runtime" / world["rows"][wo]["tenant_id"] / wo / "001" / "outputs"
    assert not any(out.rglob("*.json")) if out.exists() else True


@pytest.mark.parametrize(
    ("wo", "allowed"),
    [
        ("I5aaaaaa", {"REJECTED", "ASSETS_NOT_FOUND"}),
        ("I6aaaaaa", {"REJECTED", "ASSETS_NOT_FOUND"}),
        ("I7aaaaaa", {"REJECTED", "ASSETS_NOT_FOUND", "INTEGRITY_MISMATCH"}),
        ("I8aaaaaa", {"REJECTED", "ASSETS_NOT_FOUND", "INTEGRITY_MISMATCH"}),
        ("I9aaaaaa", {"REJECTED", "ASSETS_NOT_FOUND", "INTEGRITY_MISMATCH"}),
    ],
)
def test_isolation__assets_outside_own_folder_rejected(world, wo, allowed):
    status, code = _reason(world, wo)
    names = {v: k for k, v in world["codes"].items()}
    assert status in {"REJECTED", "FAILED"}, (wo, status)
    assert status in allowed or names.get(code) in allowed, (wo, status, names.get(code))
    out = world["root"] / "runtime" / T1 / wo / "001" / "outputs"
    leaked = [p for p in out.rglob("*") if p.is_file() and p.read_bytes() == SECRET]
    assert not leaked


@pytest.mark.parametrize("wo", ["J3aaaaaa", "J4aaaaaa", "J5aaaaaa"])
def test_isolation__module_symlink_out_of_workspace_never_published(world, wo):
    codes = world["codes"]
    assert _reason(world, wo) == ("FAILED", codes["OUTPUT_CONTRACT_VIOLATION"])
    rel = world["root"] / RELEASES / f"wo-{T3}-{wo}"
    published = [p for p in rel.iterdir() if not p.name.startswith(".")] if rel.exists() else []
    assert published == []
    assert world["rows"][wo]["modules"][0]["artifacts"] == []


def test_isolation__ledger_and_invariants_hold(world, tmp_path):
    root = world["root"]
    assert check_invariants(root, tmp_path / "pulled", finished=True) == []
    assert inprocess("--repo", str(root), "ledger", "verify")[0] == 0
    t = pull_tables(root, tmp_path / "pulled")
    assert {r["tenant_id"] for r in t["cache_index.csv"]} <= {T1, T2, T3}
    assert os.path.exists(world["producer"])
