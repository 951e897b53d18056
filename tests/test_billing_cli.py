"""End to end: the billing commands on a real local store, via subprocess."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import run_cli
from test_billing_support import OTHER, TENANT, make_repo, store_snapshot


@pytest.fixture
def repo(tmp_path, cli):
    root = make_repo(tmp_path / "repo")
    r = cli("state", "bootstrap", cwd=root)
    assert r.returncode == 0, r.stderr
    assert "created billing state" in r.stdout
    return root


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A bootstrapped repo with one 500-credit top-up and a pulled working copy.

    Shared by tests whose commands must be refused (they assert nothing changed).
    """
    root = make_repo(tmp_path_factory.mktemp("seeded") / "repo")
    assert run_cli("state", "bootstrap", cwd=root).returncode == 0
    assert _topup(run_cli, root).returncode == 0
    assert (
        run_cli("state", "pull", "--billing-state-dir", str(root / "wc"), cwd=root).returncode == 0
    )
    return root


def _topup(cli, root, amount="500", ref="inv-1", tenant=TENANT, method="AD", *extra):
    return cli(
        "topup",
        "--tenant-id",
        tenant,
        "--topup-method-id",
        method,
        "--amount-credits",
        amount,
        "--reference",
        ref,
        *extra,
        cwd=root,
    )


def test_state_bootstrap__idempotent(cli, repo):
    before = store_snapshot(repo)
    r = cli("state", "bootstrap", cwd=repo)
    assert r.returncode == 0 and "nothing done" in r.stdout
    assert store_snapshot(repo) == before


def test_topup__credits_and_balance_shows_it(cli, repo):
    r = _topup(cli, repo)
    assert r.returncode == 0, r.stderr
    assert "balance 500" in r.stdout
    r = cli("balance", "--json", cwd=repo)
    assert json.loads(r.stdout)["balances"] == {TENANT: 500, OTHER: 0}
    r = cli("balance", "--tenant-id", OTHER, cwd=repo)
    assert r.stdout.split() == [OTHER, "Tenant", OTHER, "0"]


def test_topup__same_reference_twice_is_one_topup(cli, repo):
    assert _topup(cli, repo).returncode == 0
    before = store_snapshot(repo)
    r = _topup(cli, repo)
    assert r.returncode == 0 and "nothing changed" in r.stdout
    assert store_snapshot(repo) == before
    r = _topup(cli, repo, "501")
    assert r.returncode == 1 and "already used" in r.stderr
    assert store_snapshot(repo) == before


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        # a malformed option value is a usage error: exit 2
        (("0",), "positive integer", 2),
        (("-5",), "positive integer", 2),
        (("12.5",), "positive integer", 2),
        (("1e3",), "positive integer", 2),
        (("abc",), "positive integer", 2),
        (("99999999999999999999999",), "maximum", 2),
        (("5", "r", "bad!"), "tenant id", 2),
        (("5", "bad ref"), "--reference", 2),
        # a well-formed value the repo or the state refuses: exit 1
        (("5", "r", "Qq12Ww"), "not found", 1),
        (("5", "r", TENANT, "ZZ"), "not in topup_methods.csv", 1),
        (("5", "r", TENANT, "OF"), "not active", 1),
    ],
)
def test_topup__bad_input_is_one_line_and_changes_nothing(cli, seeded, args, message, code):
    before = store_snapshot(seeded)
    r = _topup(cli, seeded, *args)
    assert r.returncode == code, r.stdout
    assert message in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert store_snapshot(seeded) == before


def test_ledger_show_and_verify__after_topups(cli, repo):
    _topup(cli, repo, "500", "a")
    _topup(cli, repo, "70", "b", OTHER)
    r = cli("ledger", "show", "--tenant-id", TENANT, "--json", cwd=repo)
    txs = json.loads(r.stdout)["transactions"]
    assert [(t["type"], t["amount_credits"], t["items"][0]["kind"]) for t in txs] == [
        ("TOPUP", "500", "TOPUP")
    ]
    r = cli("ledger", "verify", cwd=repo)
    assert r.returncode == 0 and "ledger OK" in r.stdout


def test_state_pull__plain_tables(cli, repo, tmp_path):
    _topup(cli, repo)
    wc = tmp_path / "wc"
    r = cli("state", "pull", "--billing-state-dir", str(wc), cwd=repo)
    assert r.returncode == 0, r.stderr
    lines = (wc / "transactions.csv").read_text().splitlines()
    assert lines[0].startswith("transaction_id,tenant_id,work_order_id,type,amount_credits")
    assert ",TOPUP,500,500," in lines[1]
    assert json.loads((wc / "state_manifest.json").read_text())["revision"] == 2


def test_state_push__admin_edit_goes_through(cli, repo, tmp_path):
    wc = tmp_path / "wc"
    cli("state", "pull", "--billing-state-dir", str(wc), cwd=repo)
    with (wc / "pricing.csv").open("a") as fh:
        fh.write("002,P02,7,0,true\n")
    r = cli("state", "push", "--billing-state-dir", str(wc), cwd=repo)
    assert r.returncode == 0, r.stderr
    assert "pricing.csv" in r.stdout
    wc2 = tmp_path / "wc2"
    cli("state", "pull", "--billing-state-dir", str(wc2), cwd=repo)
    assert "002,P02,7,0,true" in (wc2 / "pricing.csv").read_text()


def _edit(path, old, new):
    text = path.read_bytes()
    assert old in text
    path.write_bytes(text.replace(old, new))


@pytest.mark.parametrize(
    ("table", "edit", "message"),
    [
        ("transactions.csv", (b",TOPUP,500,500,", b",TOPUP,900,900,"), "append-only"),
        ("transactions.csv", (b",TOPUP,500,500,", b",TOPUP,5x0,500,"), "append-only"),
        ("pricing.csv", (b"003,P03,100", b"003,P03,1oo"), "expected an integer"),
        ("pricing.csv", (b"module_id,", b"\xef\xbb\xbfmodule_id,"), "byte-order mark"),
        ("topup_methods.csv", (b",active\n", b"\n"), "missing column"),
        ("topup_methods.csv", (b"OF,old form", b"AD,old form"), "duplicate"),
        ("tenants_credits.csv", (b",500,", b",800,"), "balance"),
    ],
)
def test_state_push__bad_edits_refused_with_reason_state_unchanged(
    cli, seeded, tmp_path, table, edit, message
):
    wc = tmp_path / "wc"
    shutil.copytree(seeded / "wc", wc)
    _edit(wc / table, *edit)
    before = store_snapshot(seeded)
    r = cli("state", "push", "--billing-state-dir", str(wc), cwd=seeded)
    assert r.returncode == 1, r.stdout
    assert message in r.stderr and "Traceback" not in r.stderr
    assert store_snapshot(seeded) == before


def test_state_push__appended_ledger_rows_that_break_invariants_refused(cli, seeded, tmp_path):
    wc = tmp_path / "wc"
    shutil.copytree(seeded / "wc", wc)
    tx = wc / "transactions.csv"
    last = tx.read_text().splitlines()[-1]
    tx.write_text(tx.read_text() + last + "\n")  # duplicated transaction id
    before = store_snapshot(seeded)
    r = cli("state", "push", "--billing-state-dir", str(wc), cwd=seeded)
    assert r.returncode == 1
    assert "id-unique" in r.stderr and "balance-chain" in r.stderr
    assert store_snapshot(seeded) == before


def test_state_push__stale_working_copy_is_a_conflict(cli, repo, tmp_path):
    wc = tmp_path / "wc"
    cli("state", "pull", "--billing-state-dir", str(wc), cwd=repo)
    _topup(cli, repo)
    with (wc / "pricing.csv").open("a") as fh:
        fh.write("002,P02,7,0,true\n")
    r = cli("state", "push", "--billing-state-dir", str(wc), cwd=repo)
    assert r.returncode == 1 and "pull again" in r.stderr


def test_ledger_verify__reports_every_violation_exit_1(cli, repo):
    _topup(cli, repo)
    d = repo / ".workmill" / "releases" / "billing-state-v1"
    for p in d.glob("t-*-transactions--*.csv"):
        p.write_bytes(p.read_bytes().replace(b",500,500,", b",600,600,"))
    r = cli("ledger", "verify", cwd=repo)
    assert r.returncode == 1
    assert "violation: manifest" in r.stderr and "sha256" in r.stderr


def test_commands__without_bootstrap_say_what_to_do(cli, tmp_path):
    root = make_repo(tmp_path / "fresh")
    r = cli("balance", cwd=root)
    assert r.returncode == 1 and "workmill state bootstrap" in r.stderr


@pytest.mark.parametrize(
    "cmd",
    [
        ("state", "bootstrap"),
        ("state", "pull"),
        ("state", "push"),
        ("topup",),
        ("balance",),
        ("ledger", "show"),
        ("ledger", "verify"),
    ],
)
def test_help__every_billing_command_has_an_example(cli, tmp_path, cmd):
    r = cli(*cmd, "-h", cwd=tmp_path)
    assert r.returncode == 0 and "Example:" in r.stdout
