"""Licences for premium modules, end to end through the CLI (docs/reference.md
"Registry, tiers, licences, quotas, usage")."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import FIXED_NOW
from platform_factory import T1, T2, T3, build_repo, prepare, read_state, work_order
from workmill import signing
from workmill.licences import LicenceInvalid, decode, decode_unverified

T5 = "T5eeee"
PREMIUM = "005"


def _codes(root: Path) -> dict[str, str]:
    import csv

    with (root / "maintenance-state" / "reason_catalog.csv").open() as fh:
        return {r["name"]: r["reason_code"] for r in csv.DictReader(fh)}


def _make_premium(root: Path) -> None:
    """Module 005 becomes premium; the env dump shows what a module can see."""
    yml = root / "modules" / PREMIUM / "module.yml"
    data = json.loads(yml.read_text())
    yml.write_text(json.dumps({**data, "tier": "premium"}))
    action = root / "modules" / PREMIUM / "action.yml"
    a = json.loads(action.read_text())
    a["runs"]["steps"][0]["run"] = 'env > "$WM_OUTPUTS_DIR/x.txt"'
    action.write_text(json.dumps(a))


def _keys(cli, root: Path, tmp: Path) -> tuple[Path, Path]:
    r = cli("keygen", "--out", str(tmp / "keys"), "--name", "ops", cwd=tmp)
    assert r.returncode == 0, r.stderr
    key, pub = tmp / "keys" / "ops.key", tmp / "keys" / "ops.pub"
    assert key.stat().st_mode & 0o777 == 0o600
    (root / "keys").mkdir(exist_ok=True)
    (root / "keys" / "ops.pub").write_bytes(pub.read_bytes())
    with (root / "workmill.yml").open("a") as fh:
        fh.write("licence_public_key: keys/ops.pub\n")
    return key, pub


def _issue(cli, cwd: Path, *args: str, env: dict | None = None) -> str:
    r = cli("licence", "issue", "--licensee", "Acme", *args, cwd=cwd, env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def _run(cli, root: Path, env: dict | None = None):
    r = cli("run", "--json", cwd=root, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    return {row["work_order_id"]: row for row in json.loads(r.stdout)["work_orders"]}, r


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = build_repo(tmp_path / "repo")
    _make_premium(root)
    tdir = root / "tenants" / T5 / "workorders"
    tdir.mkdir(parents=True)
    (tdir.parent / "tenant.yml").write_text(json.dumps({"tenant_id": T5, "name": "Five"}))
    return root


def test_licence__valid_runs_wrong_tenant_module_or_forged_rejected_key_never_leaks(
    cli, repo, tmp_path
):
    key, _pub = _keys(cli, repo, tmp_path)
    pem = key.read_text()
    env = {"WORKMILL_LICENCE_KEY": pem}
    (repo / "licences").mkdir()
    exp = ("--expires-at", "2027-06-30T00:00:00Z")
    # issued with the key from the environment, written with --out
    r = cli(
        "licence", "issue", "--licensee", "Acme", "--tenant-id", T1, "--module-id", PREMIUM,
        *exp, "--out", str(repo / "licences" / "t1.lic"), cwd=tmp_path, env=env,
    )  # fmt: skip
    assert r.returncode == 0 and "written to" in r.stdout, r.stderr
    # T2: a licence for another module; T3: nothing (T1's licence names T1 only)
    (repo / "licences" / "t2.lic").write_text(
        _issue(cli, tmp_path, "--key", str(key), "--tenant-id", T2, "--module-id", "001", *exp)
    )
    # T5: a token signed by someone else's key
    other = tmp_path / "other"
    assert cli("keygen", "--out", str(other), cwd=tmp_path).returncode == 0
    forged = _issue(cli, tmp_path, "--key", str(other / "workmill.key"), "--tenant-id", T5, *exp)
    for tenant, wo in ((T1, "L1aaaaaa"), (T2, "L2aaaaaa"), (T3, "L3aaaaaa"), (T5, "L5aaaaaa")):
        work_order(repo, tenant, wo, [{"module_id": PREMIUM}])
    prepare(cli, repo, {T1: 100, T2: 100, T3: 100, T5: 100})
    rows, run = _run(cli, repo, env={**env, "WORKMILL_LICENCE": forged})
    codes = _codes(repo)
    assert rows["L1aaaaaa"]["status"] == "COMPLETED"
    for wo in ("L2aaaaaa", "L3aaaaaa", "L5aaaaaa"):
        assert (rows[wo]["status"], rows[wo]["reason_code"]) == (
            "REJECTED",
            codes["LICENCE_REQUIRED"],
        ), wo
    assert f"no valid licence covers tenant {T3}" in rows["L3aaaaaa"]["message"]
    assert "signature does not verify" in rows["L5aaaaaa"]["message"]
    tables = read_state(cli, repo, tmp_path)
    charged = {t["work_order_id"] for t in tables["transactions.csv"] if t["type"] == "SPEND"}
    assert charged == {"L1aaaaaa"}  # rejected before charge
    # the private key is nowhere: not in any file of the repo (state, logs, module outputs)
    body = "".join(pem.strip().splitlines()[1:-1])
    needles = [body.encode(), body[:24].encode()]
    for path in [*repo.rglob("*"), *(tmp_path / "pulled").rglob("*")]:
        if path.is_file():
            data = path.read_bytes()
            assert not any(n in data for n in needles), path
    assert not any(n.decode() in run.stdout + run.stderr for n in needles)
    assert "WORKMILL_LICENCE_KEY" not in (next((repo / "runtime").rglob("x.txt")).read_text()), (
        "a module must not see the licence key"
    )


def test_licence__grace_warns_then_rejects_before_charge(cli, repo, tmp_path):
    key, _ = _keys(cli, repo, tmp_path)
    (repo / "licences").mkdir()
    # expired one hour before FIXED_NOW: inside the 72 h grace period
    token = _issue(
        cli, tmp_path, "--key", str(key), "--tenant-id", "*", "--expires-at", "2026-11-23T11:00:00Z"
    )
    (repo / "licences" / "all.lic").write_text(token + "\n")
    work_order(repo, T1, "G1aaaaaa", [{"module_id": PREMIUM}])
    prepare(cli, repo, {T1: 100})
    rows, run = _run(cli, repo)
    assert rows["G1aaaaaa"]["status"] == "COMPLETED"
    assert "expired at 2026-11-23T11:00:00Z" in run.stdout + run.stderr
    assert "grace period ends at 2026-11-26T11:00:00Z" in run.stdout + run.stderr
    # exactly at the end of the grace period: REJECTED, nothing charged
    work_order(repo, T1, "G2aaaaaa", [{"module_id": PREMIUM}])
    rows, _ = _run(cli, repo, env={"WORKMILL_NOW": "2026-11-26T11:00:00Z"})
    assert rows["G2aaaaaa"]["status"] == "REJECTED"
    assert "grace period ended at 2026-11-26T11:00:00Z" in rows["G2aaaaaa"]["message"]
    tables = read_state(cli, repo, tmp_path)
    assert [t["work_order_id"] for t in tables["transactions.csv"] if t["type"] == "SPEND"] == [
        "G1aaaaaa"
    ]
    # a core module needs no licence at all
    work_order(repo, T1, "G3aaaaaa", [{"module_id": "001"}])
    rows, _ = _run(cli, repo, env={"WORKMILL_NOW": "2026-11-27T00:00:00Z"})
    assert rows["G3aaaaaa"]["status"] == "COMPLETED"


def test_licence_verify_and_show__one_line_errors(cli, repo, tmp_path):
    key, pub = _keys(cli, repo, tmp_path)
    token = _issue(
        cli, tmp_path, "--key", str(key), "--tenant-id", T1, "--expires-at", "2027-01-01T00:00:00Z"
    )
    r = cli("licence", "verify", token, "--json", cwd=repo)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert (info["status"], info["tenant_ids"], info["module_ids"]) == ("VALID", [T1], "*")
    assert info["issued_at"] == FIXED_NOW
    head, payload, sig = token.split(".")
    tampered = f"{head}.{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{sig}"
    for bad in (tampered, "wml1.x.y", "not-a-token", token + "x"):
        r = cli("licence", "verify", bad, cwd=repo)
        assert r.returncode == 1, bad
        assert r.stderr.count("\n") == 1 and "licence" in r.stderr, r.stderr
    (repo / "licences").mkdir()
    (repo / "licences" / "a.lic").write_text(f"# two tokens\n{token}\n{tampered}\n")
    r = cli("licence", "show", "--json", cwd=repo)
    shown = json.loads(r.stdout)
    assert [s["status"] for s in shown] == ["VALID", "INVALID"]
    r = cli("licence", "verify", token, cwd=repo, env={"WORKMILL_NOW": "2027-01-05T00:00:00Z"})
    assert r.returncode == 1 and "expired past its grace period" in r.stderr
    r = cli("licence", "issue", "--licensee", "x", "--tenant-id", T1, "--expires-at", "2027-01-01",
            cwd=repo, env={"WORKMILL_LICENCE_KEY": ""})  # fmt: skip
    assert r.returncode == 1 and "WORKMILL_LICENCE_KEY" in r.stderr
    r = cli("licence", "issue", "--key", str(pub), "--licensee", "x", "--tenant-id", T1,
            "--expires-at", "2027-01-01", cwd=repo)  # fmt: skip
    assert r.returncode == 1 and "not a PEM private key" in r.stderr


class _Tokens(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def test_licence_url__fetched_cached_for_the_ttl_and_used_offline(cli, repo, tmp_path):
    key, _ = _keys(cli, repo, tmp_path)
    token = _issue(
        cli, tmp_path, "--key", str(key), "--tenant-id", T1, "--expires-at", "2027-01-01T00:00:00Z"
    )
    _Tokens.body = (token + "\n").encode()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Tokens)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/licences"
    with (repo / "workmill.yml").open("a") as fh:
        fh.write(f"licence_url: {url}\n")
    try:
        r = cli("licence", "show", "--json", cwd=repo)
        assert [s["source"] for s in json.loads(r.stdout)] == ["licence_url"], r.stderr
    finally:
        server.shutdown()
        server.server_close()
    # within the TTL: the cache, no fetch, no warning
    r = cli("licence", "show", "--json", cwd=repo, env={"WORKMILL_NOW": "2026-11-23T12:30:00Z"})
    assert [s["status"] for s in json.loads(r.stdout)] == ["VALID"] and r.stderr == ""
    # past the TTL with the server gone: a warning, and the cached licence still counts
    r = cli("licence", "show", "--json", cwd=repo, env={"WORKMILL_NOW": "2026-11-23T14:00:00Z"})
    assert [s["status"] for s in json.loads(r.stdout)] == ["VALID"]
    assert "using the cached licences" in r.stderr


# ------------------------------------------------------------------ hostile tokens


@pytest.fixture(scope="module")
def public_key(tmp_path_factory):
    d = tmp_path_factory.mktemp("k")
    _key, pub = signing.generate_keypair(d, "k")
    return signing.load_public_key(pub)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=300),
        st.builds(
            lambda a, b: f"wml1.{a}.{b}",
            st.text(alphabet="ABCabc012-_=.+/ \n\x00é", max_size=120),
            st.text(alphabet="ABCabc012-_=.", max_size=120),
        ),
    )
)
def test_token_parsing__hostile_text_is_one_licence_error(public_key, text):
    for parse in (decode_unverified, lambda t: decode(t, public_key)):
        try:
            parse(text)
        except LicenceInvalid as exc:
            assert "\n" not in str(exc)
        else:  # pragma: no cover - a random string is never a signed token
            raise AssertionError(text)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400))
def test_token_parsing__any_payload_bytes_are_refused_cleanly(public_key, blob):
    token = f"wml1.{signing.b64url(blob or b'x')}.{signing.b64url(bytes(64))}"
    with pytest.raises(LicenceInvalid):
        decode(token, public_key)  # a zero signature never verifies
    with pytest.raises(LicenceInvalid):
        decode_unverified(token)  # and random bytes are never a valid payload
