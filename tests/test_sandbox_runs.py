"""Module runs in the sandbox, in process: what a step can see, write and reach
(docs/reference.md "Sandbox and tenant isolation")."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
import threading

import pytest

from test_runner_support import request, run
from workmill.runner import run_module
from workmill.sandbox import SandboxUnavailable, choose_sandbox


def read_out(result) -> str:
    return (result.outputs_dir / "out.txt").read_text()


def _bwrap_or_skip() -> None:
    try:
        choose_sandbox("bwrap")
    except SandboxUnavailable as exc:
        pytest.skip(str(exc))


def test_bwrap__step_sees_only_its_run(tmp_path):
    _bwrap_or_skip()
    (tmp_path / "secret.txt").write_text("operator file\n")
    script = (
        f'cat {tmp_path}/secret.txt > "$WM_OUTPUTS_DIR/out.txt" 2>/dev/null || true\n'
        'ls /proc | grep -c "^[0-9]" >> "$WM_OUTPUTS_DIR/out.txt"\n'
        'echo x > "$GITHUB_ACTION_PATH/planted" 2>/dev/null || echo ro >> "$WM_OUTPUTS_DIR/out.txt"\n'
        'echo x > "$WM_CACHE_DIR/ok" && echo cache >> "$WM_OUTPUTS_DIR/out.txt"\n'
    )
    r = run(tmp_path, [{"shell": "bash", "run": script}], sandbox="bwrap")
    assert r.status == "COMPLETED", r.message
    lines = read_out(r).split()
    assert "operator" not in lines
    assert int(lines[0]) < 10  # init, agent, the step's shell and its pipeline
    assert lines[1:] == ["ro", "cache"]
    assert not (tmp_path / "modules" / "001" / "planted").exists()


def test_bwrap__workmill_credentials_absent_extra_env_present(tmp_path, monkeypatch):
    _bwrap_or_skip()
    monkeypatch.setenv("GH_TOKEN", "ghp_parent_token_value_0001")
    script = (
        'env > "$WM_OUTPUTS_DIR/out.txt"\n'
        'cat /proc/[0-9]*/environ >> "$WM_OUTPUTS_DIR/out.txt" 2>/dev/null || true\n'
    )
    r = run(
        tmp_path,
        [{"shell": "bash", "run": script}],
        sandbox="bwrap",
        extra_env={"VOICE_API_KEY": "module-secret-0002"},
    )
    out = read_out(r)
    assert "ghp_parent_token_value_0001" not in out
    assert "VOICE_API_KEY=module-secret-0002" in out


@pytest.mark.parametrize("network", [True, False])
def test_bwrap__network_false_cannot_reach_the_host(tmp_path, network):
    _bwrap_or_skip()
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]

    def accept_one() -> None:
        try:
            conn, _ = srv.accept()
        except OSError:  # closed unused: the module could not connect
            return
        conn.close()

    threading.Thread(target=accept_one, daemon=True).start()
    script = (
        "import os, socket\n"
        "s = socket.socket()\n"
        "s.settimeout(3)\n"
        f"ok = s.connect_ex(('127.0.0.1', {port})) == 0\n"
        "open(os.environ['WM_OUTPUTS_DIR'] + '/out.txt', 'w').write(str(ok))\n"
    )
    r = run(
        tmp_path,
        [{"shell": "python", "run": script}],
        sandbox="bwrap",
        module_kw={"network": network},
    )
    srv.close()
    assert read_out(r) == str(network)


def test_scrub_own_secrets__proc_environ_hidden_live_values_kept():
    """`sandbox: none`: /proc/<workmill>/environ no longer shows the token; workmill and the
    programs it starts itself still have it."""
    code = (
        "import os, subprocess\n"
        "from workmill.sandbox import scrub_own_secrets\n"
        "scrub_own_secrets()\n"
        "raw = open('/proc/self/environ', 'rb').read()\n"
        "child = subprocess.run(['sh', '-c', 'printf %s \"$GH_TOKEN\"'], capture_output=True)\n"
        "print(b'tok_scrub_me_0003' in raw, os.environ['GH_TOKEN'], child.stdout.decode())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"GH_TOKEN": "tok_scrub_me_0003", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["False", "tok_scrub_me_0003", "tok_scrub_me_0003"]


def test_output_cap__file_stopped_at_the_cap_and_run_failed(tmp_path):
    r = run(
        tmp_path,
        [{"shell": "bash", "run": 'head -c 5000000 /dev/zero > "$WM_OUTPUTS_DIR/big.bin"'}],
        sandbox="none",
        max_output_bytes=100_000,
    )
    assert r.status == "FAILED"
    assert "more than max_output_bytes (100000)" in r.message
    assert (r.outputs_dir / "big.bin").stat().st_size == 100_001
    assert r.manifest.files == []


@pytest.mark.parametrize("sandbox", ["bwrap", "none"])
def test_wm_cache_dir__kept_per_tenant_never_shared(tmp_path, sandbox):
    """A module's WM_CACHE_DIR is writable: one tenant's run must not plant files there
    that another tenant's run of the same module then finds."""
    if sandbox == "bwrap":
        _bwrap_or_skip()
    script = (
        'cat "$WM_CACHE_DIR/planted" > "$WM_OUTPUTS_DIR/out.txt" 2>/dev/null'
        ' || echo clean > "$WM_OUTPUTS_DIR/out.txt"\n'
        'echo "from $WM_TENANT_ID" > "$WM_CACHE_DIR/planted"\n'
    )
    seen = []
    for tenant, run_id in (("TnAAAA", "Run00001"), ("TnBBBB", "Run00002"), ("TnAAAA", "Run00003")):
        req = request(tmp_path, [{"shell": "bash", "run": script}], module_run_id=run_id)
        req = dataclasses.replace(
            req, tenant_id=tenant, work_order_id=f"Wo{run_id[2:]}", cache_dir=None, sandbox=sandbox
        )
        result = run_module(req)
        assert result.status == "COMPLETED", result.message
        seen.append(read_out(result).strip())
    assert seen == ["clean", "clean", "from TnAAAA"]
