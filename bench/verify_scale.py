"""`workmill ledger verify` at 10^3..10^6 transactions, against `hledger check` and
`bean-check` on the same transactions, with each process's own peak memory.

The history is bench/run_scale.py's (per 10 transactions: 4 top-ups and 3 work
orders with SPEND and REFUND, their items, log and module-run rows, top-up
references and the per-work-order index), written straight into partitions.
The same transactions are exported once per size:

- hledger: one journal entry per transaction, the tenant posting carrying a
  balance assertion (``= balance_after``, so hledger re-checks every running
  balance as workmill does) and one posting per item (so each entry balancing
  is workmill's "items sum to |amount|");
- beancount: the same entries (no per-entry assertion: beancount's ``balance``
  holds at the start of a day, so one per tenant after the last day), ``open``
  directives for every account.

Each round runs the three whole processes one after the other (workmill first,
then the peers), timed wall-clock; the figure per tool is the median of
``--runs`` rounds and the ratio is the median of the per-round ratios. Peak
memory is the process's own ``ru_maxrss`` (``os.wait4``). A peer that is not
installed is skipped: ``apt-get install hledger``; beancount is installed into
bench/.venv-beancount on first use (never a workmill dependency).

    python bench/verify_scale.py [--sizes 1000,10000,100000,1000000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("WORKMILL_NOW", "2026-11-23T12:00:00Z")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from run_scale import build_history, compiled_repo  # noqa: E402

from workmill import billing_tables as bt  # noqa: E402
from workmill.state import BillingStore  # noqa: E402
from workmill.tables import parse_rows  # noqa: E402

VENV = HERE / ".venv-beancount"
BEANCOUNT_REQ = ("beancount>=3,<4",)
WORKMILL = [sys.executable, "-m", "workmill", "ledger", "verify"]


def ensure_beancount() -> Path | None:
    """bean-check from the bench venv, installing beancount there when missing."""
    exe = VENV / "bin" / "bean-check"
    if exe.exists():
        return exe
    print(f"# installing beancount into {VENV} ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [VENV / "bin" / "python", "-m", "pip", "install", "-q", *BEANCOUNT_REQ], check=True
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"# beancount could not be installed ({exc}); bean-check skipped", flush=True)
        return None
    return exe if exe.exists() else None


def _rows(store: BillingStore, table: str) -> Iterator[dict[str, str]]:
    """Stored rows of ``table`` in order, one partition at a time."""
    state = store.load()
    for p in sorted(state.manifest.tables[table].partitions, key=lambda p: p.key):
        header, rows = parse_rows(state.asset_bytes(p.asset), p.asset)
        for r in rows:
            yield dict(zip(header, r, strict=True))


def export(store: BillingStore, journal: Path, beancount: Path) -> int:
    """Write the store's transactions (with their items) as an hledger journal and a
    beancount file; returns the number of transactions."""
    items: dict[str, list[dict[str, str]]] = {}
    for it in _rows(store, bt.TRANSACTION_ITEMS):
        items.setdefault(it["transaction_id"], []).append(it)
    accounts: set[str] = set()
    balances: dict[str, int] = {}
    last_day = ""
    n = 0
    with journal.open("w") as hl, beancount.open("w") as bc:
        bc.write('option "operating_currency" "CR"\n\n')
        for tx in _rows(store, bt.TRANSACTIONS):
            n += 1
            day = tx["created_at"][:10]
            last_day = max(last_day, day)
            tenant = f"Assets:Tenant:{tx['tenant_id']}"
            amount = int(tx["amount_credits"])
            balances[tenant] = int(tx["balance_after"])
            legs = []
            for it in items.get(tx["transaction_id"], []):
                kind = it["kind"].replace("_", "").title()
                other = (
                    f"{'Equity' if kind == 'Topup' else 'Income'}:{kind}:M{it['module_id'] or 'X'}"
                )
                sign = -1 if amount > 0 else 1
                legs.append((other, sign * int(it["amount_credits"])))
            accounts.update([tenant, *(a for a, _ in legs)])
            hl.write(
                f"{day} {tx['transaction_id']}\n    {tenant.lower()}  {amount} CR = {tx['balance_after']} CR\n"
            )
            hl.writelines(f"    {a.lower()}  {v} CR\n" for a, v in legs)
            hl.write("\n")
            bc.write(f'{day} * "{tx["transaction_id"]}"\n  {tenant}  {amount} CR\n')
            bc.writelines(f"  {a}  {v} CR\n" for a, v in legs)
            bc.write("\n")
        bc.writelines(f"2020-01-01 open {a}\n" for a in sorted(accounts))
        after = f"{last_day[:8]}{int(last_day[8:]) + 1:02d}"
        bc.writelines(f"{after} balance {a}  {b} CR\n" for a, b in sorted(balances.items()))
    return n


GNU_TIME = shutil.which("time") or ""


def timed(cmd: list[str], cwd: Path) -> tuple[float, int, int]:
    """(wall s, peak RSS KiB of that process, exit code).

    The peak comes from GNU time (``%M``) when it is installed: a direct child of this
    Python process would count this process's own memory, which a fork copies and
    ``exec`` records as the child's peak so far. Without it, ``os.wait4``'s figure
    (an upper bound) is shown.
    """
    wrap = [GNU_TIME, "-f", "PEAK_KIB=%M"] if GNU_TIME else []
    t0 = time.perf_counter()
    p = subprocess.Popen([*wrap, *cmd], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode(errors="replace") if p.stderr else ""
    peak = usage.ru_maxrss
    for line in err.splitlines():
        if line.startswith("PEAK_KIB="):
            peak = int(line.removeprefix("PEAK_KIB="))
    if code != 0:
        print(f"# {Path(cmd[0]).name} exited {code}: {err.strip()[:300]}", flush=True)
    return wall, peak, code


def measure(root: Path, tmp: Path, runs: int, peers: dict[str, list[str]]) -> dict[str, list]:
    results: dict[str, list[tuple[float, int, int]]] = {"workmill": [], **{k: [] for k in peers}}
    for _ in range(runs):
        results["workmill"].append(timed(WORKMILL, root))
        for name, cmd in peers.items():
            results[name].append(timed(cmd, tmp))
    return results


def report(n: int, results: dict[str, list[tuple[float, int, int]]]) -> None:
    mine = results["workmill"]
    wall = statistics.median(r[0] for r in mine)
    peak = max(r[1] for r in mine) / 1024
    ok = all(r[2] == 0 for r in mine)
    line = f"{n:>9} {wall:>11.3f} {peak:>9.0f}{'' if ok else ' FAILED'}"
    for name in ("hledger", "bean-check"):
        if name not in results:
            line += f" {'-':>10} {'-':>8} {'-':>9}"
            continue
        theirs = results[name]
        ratio = statistics.median(m[0] / t[0] for m, t in zip(mine, theirs, strict=True))
        line += (
            f" {statistics.median(t[0] for t in theirs):>10.3f} {ratio:>8.2f}"
            f" {max(t[1] for t in theirs) / 1024:>9.0f}"
        )
    print(line, flush=True)
    print(
        f"SUMMARY verify n={n} workmill_s={wall:.3f} workmill_peak_mib={peak:.0f} "
        + " ".join(
            f"{k}_s={statistics.median(t[0] for t in v):.3f}"
            for k, v in results.items()
            if k != "workmill"
        ),
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000,1000000")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-peers", action="store_true", help="time workmill only")
    args = ap.parse_args()
    hledger = None if args.no_peers else shutil.which("hledger")
    bean = None if args.no_peers else ensure_beancount()
    if not args.no_peers and hledger is None:
        print("# hledger not installed (apt-get install hledger): skipped", flush=True)
    load = os.getloadavg()[0]
    print(f"# load average {load:.2f} at start; {args.runs} paired rounds per size")
    print(
        f"{'txs':>9} {'workmill s':>11} {'peak MiB':>9} {'hledger s':>10} {'ratio':>8} "
        f"{'peak MiB':>9} {'bean s':>10} {'ratio':>8} {'peak MiB':>9}"
    )
    for n in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp_:
            tmp = Path(tmp_)
            root = compiled_repo(tmp)
            store = build_history(root, n)
            peers: dict[str, list[str]] = {}
            if hledger or bean:
                count = export(store, tmp / "ledger.journal", tmp / "ledger.beancount")
                print(f"# {n}: {count} transactions exported to hledger/beancount", flush=True)
            if hledger:
                peers["hledger"] = [hledger, "-f", str(tmp / "ledger.journal"), "check"]
            if bean:
                peers["bean-check"] = [str(bean), str(tmp / "ledger.beancount")]
            report(n, measure(root, tmp, args.runs, peers))
    print(f"# load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
