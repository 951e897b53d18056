"""Eight concurrent `workmill topup` processes all succeed and nothing is lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from test_billing_support import TENANT, make_repo


def test_topup__eight_parallel_processes_all_land(cli, tmp_path):
    root = make_repo(tmp_path / "repo")
    assert cli("state", "bootstrap", cwd=root).returncode == 0
    env = {**os.environ, "WORKMILL_NOW": "2026-11-23T12:00:00Z"}
    env.pop("WORKMILL_REPO", None)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "workmill",
                "topup",
                "--tenant-id",
                TENANT,
                "--topup-method-id",
                "AD",
                "--amount-credits",
                str(10 + i),
                "--reference",
                f"par-{i}",
            ],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    results = [(*p.communicate(timeout=120), p.returncode) for p in procs]
    assert all(rc == 0 for _, _, rc in results), results
    r = cli("balance", "--json", cwd=root)
    balances = json.loads(r.stdout)["balances"]
    assert balances[TENANT] == sum(10 + i for i in range(8))
    assert all(v == 0 for t, v in balances.items() if t != TENANT)  # balance lists every tenant
    r = cli("ledger", "show", "--json", cwd=root)
    assert len(json.loads(r.stdout)["transactions"]) == 8
    assert json.loads(r.stdout)["revision"] == 9
    r = cli("ledger", "verify", cwd=root)
    assert r.returncode == 0, r.stderr
