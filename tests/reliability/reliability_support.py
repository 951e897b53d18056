"""Shared pieces of the reliability suite: a mixed workload and an independent checker.

The checker deliberately re-derives every invariant from the plain tables
(`workmill state pull`) and the release-store directory with its own code,
so a bug in workmill's own `ledger verify` cannot hide a bug elsewhere.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from platform_factory import T1, T2, T3, T4, build_repo, prepare, work_order
from workmill.cli import main as cli_main

FIXED_NOW = "2026-11-23T12:00:00Z"
TERMINAL = {"COMPLETED", "PARTIALLY_COMPLETED", "FAILED", "REJECTED"}
RELEASES = Path(".workmill") / "releases"
BILLING_TAG = "billing-state-v1"


def _m(mid: str, **kw) -> dict:
    return {"module_id": mid, **kw}


def _assets(root: Path, tenant: str, folder: str, content: bytes) -> None:
    d = root / "tenants" / tenant / "assets" / "outputs" / folder
    d.mkdir(parents=True)
    (d / "data.json").write_bytes(content)
    manifest = {
        "module_id": "001",
        "files": [
            {
                "path": "data.json",
                "size_bytes": len(content),
                "sha256": hashlib.sha256(content).hexdigest(),
                "format": "json",
            }
        ],
    }
    (d / "manifest.json").write_text(json.dumps(manifest))


def mixed_work_orders(root: Path, slow_secs: float = 0.4) -> list[str]:
    """new/cache/release/assets reuse, purchased artifacts, failures, both modes, a slow module."""
    rel = f"wo-{T1}-A1aaaaaa"
    _assets(root, T1, "good-v1", b'{"n": 42}\n')
    specs = [
        (T1, "A1aaaaaa", [_m("001", purchase_release_artifacts=True), _m("002", purchase_release_artifacts=True)], {"promo_codes": ["P10"]}),
        (T1, "A2aaaaaa", [_m("001", reuse_output_type="cache", params={"n": 5})], {}),
        (T1, "A3aaaaaa", [_m("001", reuse_output_type="release", release_tag=rel), _m("002")], {}),
        (T1, "A4aaaaaa", [_m("001", reuse_output_type="assets", assets_folder_name="good-v1"), _m("002", purchase_release_artifacts=True)], {}),
        (T1, "A5aaaaaa", [_m("001"), _m("003", params={"fail": "E01"})], {"mode": "PARTIAL_ALLOWED"}),
        (T1, "A6aaaaaa", [_m("003", params={"fail": "E01"}), _m("001"), _m("002")], {"mode": "STRICT"}),
        (T1, "A7aaaaaa", [_m("004", params={"secs": slow_secs}), _m("001", purchase_release_artifacts=True)], {}),
        (T1, "A8aaaaaa", [_m("005", purchase_release_artifacts=True)], {}),
        (T1, "A9aaaaaa", [_m("001"), _m("002")], {"promo_codes": ["F5"], "mode": "PARTIAL_ALLOWED"}),
        (T2, "B1aaaaaa", [_m("001", reuse_output_type="release", release_tag=rel), _m("002", purchase_release_artifacts=True)], {}),
        (T2, "B2aaaaaa", [_m("001", reuse_output_type="cache", params={"n": 5})], {}),
        (T3, "C1aaaaaa", [_m("001", reuse_output_type="release", release_tag=rel)], {}),
        (T3, "C2aaaaaa", [_m("002"), _m("001")], {}),  # T3 cannot afford both
        (T4, "D1aaaaaa", [_m("001")], {}),  # suspended
    ]  # fmt: skip
    for tenant, wo, mods, extra in specs:
        work_order(root, tenant, wo, mods, **extra)
    return [wo for _, wo, _, _ in specs]


TOPUPS = {T1: 1000, T2: 500, T3: 20}


def prepared_repo(cli, root: Path) -> Path:
    """A repo with the mixed workload, maintained, bootstrapped and topped up."""
    build_repo(root)
    mixed_work_orders(root)
    prepare(cli, root, TOPUPS)
    return root


def copy_repo(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest, symlinks=True)
    return dest


def _cli_env() -> dict[str, str]:
    env = {**os.environ, "WORKMILL_NOW": FIXED_NOW, "PYTHONWARNINGS": "ignore"}
    env.pop("WORKMILL_REPO", None)
    return env


def cli_run(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`workmill ARGS` in a subprocess with the fixed clock (like tests/conftest.py's `cli`)."""
    return subprocess.run(
        [sys.executable, "-m", "workmill", *args],
        cwd=cwd,
        env={**_cli_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def require_slow(config: pytest.Config) -> None:
    """Long runs go only when asked for (``-m slow``): CI runs the plain suite."""
    if "slow" not in (config.getoption("markexpr") or ""):
        pytest.skip("long run: select it with -m slow")


def popen_workmill(root: Path, *args: str, extra_env: dict[str, str] | None = None):
    """`workmill ARGS` in its own session (so its whole process group can be killed)."""
    return subprocess.Popen(
        [sys.executable, "-m", "workmill", *args],
        cwd=root,
        env={**_cli_env(), **(extra_env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children[int(fields[1])].append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the run's process group and every process it started (module steps run in
    sessions of their own): what a crashed machine would do to them."""
    victims = _descendants(proc.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    for pid in victims:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    proc.communicate()


def kill_alone(proc: subprocess.Popen, wait: float = 10.0) -> list[str]:
    """SIGKILL `workmill` ONLY (its descendants are not touched: a crash of the platform,
    not of the machine); then every module process must be gone within ``wait`` seconds.
    Returns the survivors, described (and kills them so later trials start clean)."""
    victims = _descendants(proc.pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    end = time.monotonic() + wait
    alive = [p for p in victims if _alive(p)]
    while alive and time.monotonic() < end:
        time.sleep(0.05)
        alive = [p for p in alive if _alive(p)]
    out = []
    for pid in alive:
        with contextlib.suppress(OSError):
            out.append(f"pid {pid} ({Path(f'/proc/{pid}/cmdline').read_bytes()[:80]!r})")
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return out


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] not in (b"Z", b"X")


def inprocess(*argv: str) -> tuple[int, str, str]:
    """`workmill ARGV` in this process (fast: no interpreter start), capturing its output."""
    out, err = io.StringIO(), io.StringIO()
    saved = os.environ.get("WORKMILL_NOW")
    # the same clock as the runs under test (verify's unsettled check measures against it)
    os.environ["WORKMILL_NOW"] = FIXED_NOW
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli_main(list(argv))
    finally:
        if saved is None:
            os.environ.pop("WORKMILL_NOW", None)
        else:
            os.environ["WORKMILL_NOW"] = saved
    return code, out.getvalue(), err.getvalue()


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def pull_tables(root: Path, dest: Path) -> dict[str, list[dict[str, str]]]:
    if dest.exists():
        shutil.rmtree(dest)
    code, _, err = inprocess("--repo", str(root), "state", "pull", "--billing-state-dir", str(dest))
    if code != 0:
        raise AssertionError(f"state pull failed: {err}")
    return {p.name: read_csv(p) for p in dest.glob("*.csv")}


@dataclass
class History:
    """What earlier checks saw, so later ones can prove nothing processed changed."""

    spend_ids: dict[str, str] = field(default_factory=dict)
    terminal: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    tx_count: int = 0
    mid_run: int = 0  # kills that left a work order charged and not yet refunded


def check_invariants(
    root: Path, pulled: Path, history: History | None = None, *, finished: bool = False
) -> list[str]:
    """Every violated invariant as one line (empty list: all hold)."""
    v: list[str] = []
    code, out, err = inprocess("--repo", str(root), "ledger", "verify")
    if code != 0:
        v.append(f"ledger verify exit {code}: {(err or out).strip()[:500]}")
    t = pull_tables(root, pulled)
    txs = t["transactions.csv"]
    log = t["workorders_log.csv"]

    ids = Counter(x["transaction_id"] for x in txs)
    v += [f"transaction id {i} used {n} times" for i, n in ids.items() if n > 1]

    by_wo: dict[str, Counter[str]] = defaultdict(Counter)
    amounts: dict[tuple[str, str], int] = {}
    for x in txs:
        if x["work_order_id"]:
            by_wo[x["work_order_id"]][x["type"]] += 1
            amounts[(x["work_order_id"], x["type"])] = int(x["amount_credits"])
    rows_by_wo: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in log:
        rows_by_wo[r["work_order_id"]].append(r)

    for wo, rows in rows_by_wo.items():
        statuses = [r["status"] for r in rows]
        terminal = [r for r in rows if r["status"] in TERMINAL]
        c = by_wo.get(wo, Counter())
        if len(terminal) > 1:
            v.append(f"{wo}: {len(terminal)} terminal log rows {statuses}")
        if statuses.count("RUNNING") > 1:
            v.append(f"{wo}: {statuses.count('RUNNING')} RUNNING rows (charged twice?)")
        if statuses == ["REJECTED"]:
            if c:
                v.append(f"{wo}: REJECTED but has transactions {dict(c)}")
            continue
        if c["SPEND"] != 1:
            v.append(f"{wo}: {c['SPEND']} SPEND transactions (log {statuses})")
        if c["REFUND"] > 1:
            v.append(f"{wo}: {c['REFUND']} REFUND transactions")
        if terminal and c["REFUND"] != 1:
            v.append(f"{wo}: settled {terminal[0]['status']} but {c['REFUND']} REFUND")
        if not terminal and c["REFUND"]:
            v.append(f"{wo}: REFUND without a terminal log row")
        if c["REFUND"] == 1 and c["SPEND"] == 1:
            spend, refund = -amounts[(wo, "SPEND")], amounts[(wo, "REFUND")]
            if not 0 <= refund <= spend:
                v.append(f"{wo}: refund {refund} not within [0, spend {spend}]")
        if finished and not terminal:
            v.append(f"{wo}: still {statuses[-1]} after a run that finished")
        if history is not None:
            spend_id = next(
                (
                    x["transaction_id"]
                    for x in txs
                    if x["work_order_id"] == wo and x["type"] == "SPEND"
                ),
                "",
            )
            old = history.spend_ids.setdefault(wo, spend_id)
            if old and spend_id != old:
                v.append(f"{wo}: SPEND changed from {old} to {spend_id} (re-charged)")
            if terminal:
                t0 = terminal[0]
                now = (t0["status"], t0["refund_transaction_id"], t0["finished_at"])
                prev = history.terminal.setdefault(wo, now)
                if prev != now:
                    v.append(f"{wo}: terminal row changed {prev} -> {now}")
    for wo, c in by_wo.items():
        if wo not in rows_by_wo:
            v.append(f"{wo}: transactions {dict(c)} without any workorders_log row")

    # balances: the sum of each tenant's transactions, never below zero
    sums: Counter[str] = Counter()
    for x in txs:
        sums[x["tenant_id"]] += int(x["amount_credits"])
    balances = {r["tenant_id"]: int(r["balance_credits"]) for r in t["tenants_credits.csv"]}
    for tenant in set(sums) | set(balances):
        if balances.get(tenant, 0) != sums.get(tenant, 0):
            v.append(f"tenant {tenant}: balance {balances.get(tenant)} != sum {sums.get(tenant)}")
        if balances.get(tenant, 0) < 0:
            v.append(f"tenant {tenant}: negative balance {balances[tenant]}")
    if history is not None:
        if len(txs) < history.tx_count:
            v.append(f"transactions shrank from {history.tx_count} to {len(txs)}")
        history.tx_count = len(txs)

    v += check_releases(root, t, rows_by_wo)
    return v


def check_releases(
    root: Path, t: dict[str, list[dict[str, str]]], rows_by_wo: dict[str, list[dict[str, str]]]
) -> list[str]:
    """Settled work orders' releases: a manifest naming the tag's owner, every item intact."""
    v: list[str] = []
    store = root / RELEASES
    mapped = defaultdict(set)
    rel_of = {r["release_id"]: r["tag"] for r in t.get("github_releases_map.csv", [])}
    for a in t.get("github_assets_map.csv", []):
        mapped[rel_of.get(a["release_id"], "?")].add((a["asset_name"], a["sha256"]))
    if not store.is_dir():
        return v
    for d in sorted(store.iterdir()):
        if not d.is_dir() or d.name == BILLING_TAG or not d.name.startswith("wo-"):
            continue
        _, tenant, wo = d.name.split("-", 2)
        settled = any(r["status"] in TERMINAL for r in rows_by_wo.get(wo, []))
        files = {p.name for p in d.iterdir() if not p.name.startswith(".")}
        mname = f"{tenant}-{wo}-manifest.json".lower()
        items = files - {mname}
        if not settled:
            continue
        if mname not in files:
            if items:
                v.append(f"{d.name}: settled with {len(items)} published item(s) but no manifest")
            continue
        try:
            m = json.loads((d / mname).read_bytes())
        except ValueError as exc:
            v.append(f"{d.name}: manifest unreadable: {exc}")
            continue
        if m.get("owning_tenant_id") != tenant or m.get("work_order_id") != wo:
            v.append(
                f"{d.name}: manifest names {m.get('owning_tenant_id')}/{m.get('work_order_id')}"
            )
        named = set()
        for it in m.get("items", []):
            named.add(it["filename"])
            p = d / it["filename"]
            if not p.is_file():
                v.append(f"{d.name}: manifest item {it['filename']} missing")
                continue
            data = p.read_bytes()
            if hashlib.sha256(data).hexdigest() != it["sha256"] or len(data) != it["size_bytes"]:
                v.append(f"{d.name}: item {it['filename']} does not match its sha256/size")
        if items - named:
            v.append(f"{d.name}: stray assets not in the manifest: {sorted(items - named)}")
        if d.name in mapped and {n for n, _ in mapped[d.name]} != named:
            v.append(f"{d.name}: github_assets_map names {sorted(mapped[d.name])} != manifest")
    return v
