"""``workmill demo``: copy the example platform repo somewhere fresh and run it end to end."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import workmill
from workmill.backends import open_billing_store
from workmill.errors import NotFound, SpecError
from workmill.maintenance import run_maintenance
from workmill.orchestrator import RunContext, RunOptions, RunResult, run
from workmill.orchestrator.progress import Reporter
from workmill.repo import PlatformRepo
from workmill.yamlio import read_yaml

DEMO_FILE = "demo.yml"


def examples_dir() -> Path:
    """The example platform repo: in the wheel (``_examples``) or beside the source tree."""
    pkg = Path(workmill.__file__).resolve().parent
    for candidate in (pkg / "_examples" / "platform", pkg.parents[1] / "examples" / "platform"):
        if (candidate / "workmill.yml").is_file():
            return candidate
    raise NotFound("the example platform repo is not installed (examples/platform)")


@dataclass
class DemoResult:
    repo: PlatformRepo
    result: RunResult
    balances: dict[str, int]
    mismatches: list[str] = field(default_factory=list)
    # work order -> why demo.yml expects it to fail or be rejected (the deliberate ones)
    deliberate: dict[str, str] = field(default_factory=dict)


def prepare(target: Path | None) -> PlatformRepo:
    if target is None:
        # a fresh folder under the system temp dir: the demo never litters the cwd
        target = Path(tempfile.mkdtemp(prefix="workmill-demo-"))
    if target.exists() and any(target.iterdir()):
        raise SpecError.at(str(target), "directory exists and is not empty; pick another --dir")
    shutil.copytree(
        examples_dir(),
        target,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("runtime", ".workmill", ".billing-state", "__pycache__"),
    )
    return PlatformRepo.open(target)


def _expectations(repo: PlatformRepo) -> dict[str, Any]:
    path = repo.root / DEMO_FILE
    data = read_yaml(path, DEMO_FILE).data if path.exists() else {}
    return data if isinstance(data, dict) else {}


def run_demo(target: Path | None, reporter: Reporter | None = None) -> DemoResult:
    repo = prepare(target)
    run_maintenance(repo)
    store = open_billing_store(repo)
    store.bootstrap(repo.templates_dir)
    demo = _expectations(repo)
    for t in demo.get("topups", []):
        store.commit_with_retry(
            lambda s, t=t: s.topup(
                t["tenant_id"], t["topup_method_id"], int(t["amount_credits"]), t["reference"]
            )
        )
    ctx = RunContext(repo, RunOptions(), reporter=reporter or Reporter())
    result = run(ctx)
    balances = store.load().balances()
    mismatches = []
    got = {r["work_order_id"]: r for r in result.summary_rows()}
    catalog = ctx.catalog
    deliberate = {
        e["work_order_id"]: str(e["why"])
        for e in demo.get("expected", [])
        if e.get("why") and e.get("status") != "COMPLETED"
    }
    for exp in demo.get("expected", []):
        wo = exp["work_order_id"]
        row = got.get(wo)
        if row is None:
            mismatches.append(f"{wo}: not processed")
            continue
        reason = catalog.get(row["reason_code"]).name if catalog.get(row["reason_code"]) else ""
        want = (exp["status"], exp.get("reason") or "", exp["spend_credits"], exp["refund_credits"])
        have = (row["status"], reason, row["spend_credits"] or 0, row["refund_credits"] or 0)
        if want != have:
            mismatches.append(f"{wo}: expected {want}, got {have}")
    for tenant, want_balance in (demo.get("balances") or {}).items():
        if balances.get(tenant, 0) != want_balance:
            mismatches.append(
                f"balance of {tenant}: expected {want_balance}, got {balances.get(tenant, 0)}"
            )
    return DemoResult(repo, result, balances, mismatches, deliberate)
