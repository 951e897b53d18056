"""run_module: SPEC §6 outcomes, the output contract, and the safety cases."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from test_runner_support import CODES, catalog, run, step_log
from workmill.runner import ModuleRunRequest, RunnerError, check_outputs, read_manifest
from workmill.runner.contract import check_format
from workmill.runner.logs import CappedLog, Masker
from workmill.runner.outcome import ModuleStatus, RunFacts, decide
from workmill.specs import OutputSpec


def _gone(pid: int, wait: float = 3.0) -> bool:
    """The process no longer runs (exited, or a zombie its new parent has not reaped yet)."""
    end = time.monotonic() + wait
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


PWNED = "$(touch {m}); `touch {m}`; ' \" ; touch {m} #"


# ---------------------------------------------------------------- outcomes


def test_outcome__exit0_no_reason_outputs_ok_completed(tmp_path):
    r = run(
        tmp_path,
        [{"shell": "bash", "run": 'echo \'{"a": 1}\' > "$WM_OUTPUTS_DIR/r.json"'}],
        outputs=[{"name": "r.json", "format": "json"}],
    )
    assert (r.status, r.reason_code) == ("COMPLETED", "")
    m = read_manifest(r.manifest_path)
    assert m.module_id == "001" and m.module_run_id == "Run00001" and m.module_version == "1.0.0"
    assert [(f.path, f.format, f.size_bytes) for f in m.files] == [("r.json", "json", 9)]
    import hashlib

    assert m.files[0].sha256 == hashlib.sha256(b'{"a": 1}\n').hexdigest()


def test_outcome__nonzero_exit_no_reason_module_failed(tmp_path):
    r = run(tmp_path, [{"shell": "bash", "run": "exit 7"}])
    assert (r.status, r.reason_code, r.exit_code) == ("FAILED", CODES["MODULE_FAILED"], 7)
    assert r.manifest_path.exists()  # written after every run


def test_outcome__module_reason_key_with_fail_policy(tmp_path):
    r = run(tmp_path, [{"shell": "bash", "run": 'echo E01 > "$WM_REASON_FILE"; exit 1'}])
    assert (r.status, r.reason_code) == ("FAILED", "102001001")
    assert "INPUT_TOO_LARGE" in r.message


def test_outcome__reason_with_nonfail_policy_exit0_completed_with_exception(tmp_path):
    r = run(
        tmp_path,
        [{"shell": "bash", "run": 'echo W01 > "$WM_REASON_FILE"; echo x > "$WM_OUTPUTS_DIR/o"'}],
        outputs=[{"name": "o"}],
    )
    assert (r.status, r.reason_code) == ("COMPLETED_WITH_EXCEPTION", "102001002")


def test_outcome__reason_full_code_accepted(tmp_path):
    r = run(tmp_path, [{"shell": "bash", "run": 'echo 102001002 > "$WM_REASON_FILE"'}])
    assert (r.status, r.reason_code) == ("COMPLETED_WITH_EXCEPTION", "102001002")


def test_outcome__reason_of_another_module_is_unknown(tmp_path):
    cat = catalog()
    assert cat.resolve_module_reason("002", "E01") is None


def test_outcome__unknown_reason_module_failed_and_logged(tmp_path):
    r = run(tmp_path, [{"shell": "bash", "run": 'echo ZZZ > "$WM_REASON_FILE"'}])
    assert (r.status, r.reason_code) == ("FAILED", CODES["MODULE_FAILED"])
    assert "'ZZZ'" in r.message
    assert "ZZZ" in r.runner_log.read_text()


def test_outcome__missing_declared_output_contract_violation(tmp_path):
    r = run(
        tmp_path, [{"shell": "bash", "run": "true"}], outputs=[{"name": "x.csv", "format": "csv"}]
    )
    assert (r.status, r.reason_code) == ("FAILED", CODES["OUTPUT_CONTRACT_VIOLATION"])
    assert "x.csv: declared output is missing" in r.message


def test_decide__pure_priority_order():
    from workmill.runner.contract import ContractReport

    cat = catalog()
    ok = ContractReport([], [])
    bad = ContractReport([], ["x: missing"])
    assert decide(RunFacts(0), ok, cat, "001").status is ModuleStatus.COMPLETED
    assert decide(RunFacts(0), bad, cat, "001").reason_code == CODES["OUTPUT_CONTRACT_VIOLATION"]
    assert (
        decide(RunFacts(None, timed_out=True, reason_written="E01"), ok, cat, "001").reason_code
        == CODES["MODULE_TIMEOUT"]
    )
    assert (
        decide(RunFacts(None, cancelled=True, timed_out=True), ok, cat, "001").reason_code
        == CODES["INTERRUPTED"]
    )
    assert (
        decide(RunFacts(0, reason_written="W01"), bad, cat, "001").reason_code
        == CODES["OUTPUT_CONTRACT_VIOLATION"]
    )
    assert (
        decide(RunFacts(5, reason_written="W01"), ok, cat, "001").status
        is ModuleStatus.COMPLETED_WITH_EXCEPTION
    )


# ---------------------------------------------------------------- formats


@pytest.mark.parametrize(
    ("fmt", "data", "ok"),
    [
        ("json", b'{"a": [1, 2]}', True),
        ("json", b"{nope", False),
        ("csv", b"a,b\n1,2\n", True),
        ("csv", b"a,b\n1,2,3\n", False),
        ("csv", b'a,b\n"unclosed,2\n', False),
        ("csv", b"", False),
        ("text", "héllo".encode(), True),
        ("md", b"\xff\xfe\x00", False),
        ("svg", b'<?xml version="1.0"?><svg xmlns="x"></svg>', True),
        ("svg", b"<html></html>", False),
        ("html", b"<!doctype html><p>x", True),
        ("html", b"plain words", False),
        ("png", b"\x89PNG\r\n\x1a\n....", True),
        ("png", b"GIF89a", False),
        ("jpeg", b"\xff\xd8\xff\xe0", True),
        ("gif", b"GIF89a...", True),
        ("webp", b"RIFF\x00\x00\x00\x00WEBPVP8 ", True),
        ("wav", b"RIFF\x00\x00\x00\x00WAVEfmt ", True),
        ("wav", b"RIFF\x00\x00\x00\x00WEBP", False),
        ("mp3", b"ID3\x04", True),
        ("mp3", b"\xff\xfb\x90", True),
        ("ogg", b"OggS\x00", True),
        ("pdf", b"%PDF-1.7", True),
        ("pdf", b"%!PS", False),
        ("binary", b"\x00\x01", True),
    ],
)
def test_check_format__by_parse_decode_or_magic(fmt, data, ok):
    assert (check_format(data[:64], data, fmt) is None) is ok


# ---------------------------------------------------------------- hostile outputs


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        ('ln -s /etc/passwd "$WM_OUTPUTS_DIR/o.txt"', "symlink"),
        ('mkfifo "$WM_OUTPUTS_DIR/o.txt"', "fifo"),
        (
            'echo x > "$WM_OUTPUTS_DIR/o.txt"; mkdir "$WM_OUTPUTS_DIR/d"; ln -s .. "$WM_OUTPUTS_DIR/d/up"',
            "symlink",
        ),
    ],
)
def test_output_contract__links_and_fifos_never_read(tmp_path, make, kind):
    r = run(
        tmp_path, [{"shell": "bash", "run": make}], outputs=[{"name": "o.txt", "format": "text"}]
    )
    assert (r.status, r.reason_code) == ("FAILED", CODES["OUTPUT_CONTRACT_VIOLATION"])
    assert f"is a {kind}" in r.message
    assert all(f.path != "o.txt" or kind != "symlink" or "/" in make for f in r.manifest.files)
    assert "passwd" not in r.manifest_path.read_text()


def test_check_outputs__device_is_a_violation(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    try:
        os.mknod(out / "dev", 0o600 | 0o020000, os.makedev(1, 3))  # char device /dev/null
    except PermissionError:
        pytest.skip("mknod needs privileges here")
    rep = check_outputs(out, [OutputSpec(name="dev")])
    assert any("is a device" in p for p in rep.problems) and rep.files == []


def test_check_outputs__nested_declared_output(tmp_path):
    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    (out / "a" / "b.json").write_text("[]")
    rep = check_outputs(out, [OutputSpec(name="a/b.json", format="json")])
    assert rep.ok and [f.path for f in rep.files] == ["a/b.json"]


# ---------------------------------------------------------------- injection


@pytest.mark.parametrize(
    ("shell", "template"),
    [
        ("bash", "echo ${{ inputs.x }}"),
        ("bash", 'echo "value: ${{ inputs.x }}"'),
        ("bash", "echo 'value: ${{ inputs.x }}'"),
        ("bash", "cat <<EOF\n${{ inputs.x }}\nEOF"),
        ("bash", "cat <<'EOF'\n${{ inputs.x }}\nEOF"),
        ("sh", "X=${{ inputs.x }}; echo $X"),
        ("bash", "echo ${{ format('{0}', inputs.x) }}"),
        ("python", "print('${{ inputs.x }}')"),
        ("python", 'print(f"v={1+1} ${{ inputs.x }}")'),
        ("python", "x = ${{ inputs.x }}\nprint(x)"),
        ("python", 'print("""a\n${{ inputs.x }}\n""")'),
    ],
)
def test_injection__param_pasted_into_run_is_data_never_code(tmp_path, shell, template):
    marker = tmp_path / "pwned"
    payload = PWNED.format(m=marker) + "\nimport os; os.system('touch " + str(marker) + "')"
    r = run(
        tmp_path,
        [{"shell": shell, "run": template}],
        params={"x": payload},
        action_kw={"inputs": {"x": {"required": True}}},
    )
    assert not marker.exists()
    assert r.status == "COMPLETED", (r.message, step_log(r))
    assert any("WM_EXPR_1" in w for w in r.warnings)
    assert (
        payload
        not in (r.workspace / "steps").joinpath(os.listdir(r.workspace / "steps")[0]).read_text()
    )


def test_injection__value_arrives_intact_in_bash_and_python(tmp_path):
    value = "a b  $HOME 'q' \"d\" \\n ${x}"
    r = run(
        tmp_path,
        [
            {"shell": "bash", "run": 'printf "%s" "${{ inputs.x }}" > "$WM_OUTPUTS_DIR/b"'},
            {
                "shell": "python",
                "run": "import os\nopen(os.environ['WM_OUTPUTS_DIR'] + '/p', 'w').write('${{ inputs.x }}')",
            },
        ],
        params={"x": value},
        action_kw={"inputs": {"x": {"required": True}}},
    )
    assert (r.outputs_dir / "b").read_text() == value
    assert (r.outputs_dir / "p").read_text() == value


def test_params__reach_module_as_file_and_env(tmp_path):
    r = run(
        tmp_path,
        [
            {
                "shell": "python",
                "run": "import json, os\n"
                "p = json.load(open(os.environ['WM_PARAMS_FILE']))\n"
                "open(os.environ['WM_OUTPUTS_DIR'] + '/o', 'w').write(json.dumps([p, os.environ['WM_PARAM_MY_RATE'], os.environ['WM_PARAM_FLAG']]))",
            }
        ],
        params={"my-rate": 1.5, "flag": True, "nested": {"a": [1]}},
    )
    p, rate, flag = json.loads((r.outputs_dir / "o").read_text())
    assert p == {"my-rate": 1.5, "flag": True, "nested": {"a": [1]}}
    assert (rate, flag) == ("1.5", "true")


# ---------------------------------------------------------------- environment & secrets


def test_environment__clean_allow_list_no_parent_token(tmp_path, monkeypatch):
    monkeypatch.setenv("GH_TOKEN", "ghp_supersecretvalue123")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "leakme")
    r = run(tmp_path, [{"shell": "bash", "run": 'env > "$WM_OUTPUTS_DIR/env.txt"'}])
    env = dict(
        line.split("=", 1)
        for line in (r.outputs_dir / "env.txt").read_text().splitlines()
        if "=" in line
    )
    assert "GH_TOKEN" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    for var in (
        "WM_TENANT_ID", "WM_WORK_ORDER_ID", "WM_MODULE_ID", "WM_MODULE_RUN_ID", "WM_MODULE_VERSION",
        "WM_PARAMS_FILE", "WM_INPUTS_DIR", "WM_OUTPUTS_DIR", "WM_REASON_FILE", "WM_MODE",
        "WM_CACHE_DIR", "GITHUB_ACTION_PATH", "GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH",
        "RUNNER_TEMP",
    ):  # fmt: skip
        assert var in env, var
    assert env["WM_MODE"] == "run" and env["WM_TENANT_ID"] == "Tn0001"
    assert env["WM_CACHE_DIR"] == str((tmp_path / "cache").resolve())


def test_secrets__masked_in_step_and_runner_logs(tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_tokenvalue987")
    r = run(
        tmp_path,
        [
            {
                "shell": "bash",
                "run": 'echo "tok=$GH_TOKEN parent=ghs_tokenvalue987 api=s3cr3t-key"; '
                'printf "split:ghs_token"; sleep 0.05; printf "value987\\n"',
            }
        ],
        extra_env={"GH_TOKEN": "granted-token-abc"},
        secrets=("s3cr3t-key",),
    )
    log = step_log(r)
    assert "granted-token-abc" not in log and "ghs_tokenvalue987" not in log
    assert "s3cr3t-key" not in log
    assert "tok=*** parent=*** api=***" in log and "split:***" in log


def test_masker__secret_split_across_feeds_is_masked(tmp_path):
    log = CappedLog(tmp_path / "l", Masker(["abcdef"]), cap=1000)
    for chunk in (b"xxab", b"cd", b"ef yy abc", b"def"):
        log.feed(chunk)
    log.close()
    assert (tmp_path / "l").read_bytes() == b"xx*** yy ***"


def test_log_cap__100mb_is_truncated_and_child_not_blocked(tmp_path):
    r = run(
        tmp_path,
        [
            {
                "shell": "python",
                "run": "import sys\nb = b'x' * (1 << 20)\nfor _ in range(100): sys.stdout.buffer.write(b)\n"
                "import os\nopen(os.environ['WM_OUTPUTS_DIR'] + '/done', 'w').write('ok')",
            }
        ],
        log_cap_bytes=64 * 1024,
    )
    assert r.status == "COMPLETED"
    size = r.step_logs[0].stat().st_size
    assert size < 64 * 1024 + 200
    assert "log truncated at 65536 bytes" in step_log(r)
    assert (r.outputs_dir / "done").read_text() == "ok"


# ---------------------------------------------------------------- timeout & cancel


def test_timeout__kills_the_group_including_a_forked_daemon(tmp_path):
    pidfile = tmp_path / "daemon.pid"
    t0 = time.monotonic()
    r = run(
        tmp_path,
        [
            {
                "shell": "bash",
                # the main process waits for the daemon's pid file, so a loaded machine cannot
                # time the step out before the daemon exists
                "run": f"(sleep 300 & echo $! > {pidfile}; wait) & "
                f"until [ -s {pidfile} ]; do sleep 0.01; done; sleep 300",
            }
        ],
        timeout_seconds=2,
        sandbox="none",  # the pid file is outside the workspace; bwrap: tests/reliability
    )
    assert time.monotonic() - t0 < 10
    assert (r.status, r.reason_code) == ("FAILED", CODES["MODULE_TIMEOUT"])
    assert _gone(int(pidfile.read_text()))


def test_timeout__fractional_minutes_from_module_yml(tmp_path):
    r = run(tmp_path, [{"shell": "bash", "run": "sleep 60"}], module_kw={"timeout_minutes": 0.01})
    assert r.reason_code == CODES["MODULE_TIMEOUT"] and r.duration_ms < 5000


def test_daemon_left_by_a_successful_step__killed_at_module_end(tmp_path):
    pidfile = tmp_path / "d.pid"
    r = run(
        tmp_path,
        [{"shell": "bash", "run": f"sleep 300 > /dev/null 2>&1 & echo $! > {pidfile}"}],
        sandbox="none",
    )
    assert r.status == "COMPLETED"
    assert _gone(int(pidfile.read_text()))


def test_cancel__interrupted_and_processes_killed(tmp_path):
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    r = run(
        tmp_path,
        [{"shell": "bash", "run": "sleep 60"}, {"if": "always()", "shell": "bash", "run": "true"}],
        cancel=cancel,
    )
    assert (r.status, r.reason_code) == ("FAILED", CODES["INTERRUPTED"])
    assert len(r.steps) == 1


# ---------------------------------------------------------------- workspace


def test_workspace__existing_refused_unless_replace(tmp_path):
    run(tmp_path, [{"shell": "bash", "run": "true"}])
    with pytest.raises(RunnerError, match="already exists"):
        run(tmp_path, [{"shell": "bash", "run": "true"}])
    r = run(tmp_path, [{"shell": "bash", "run": "true"}], replace_existing=True)
    assert r.status == "COMPLETED"


def test_workspace__nothing_outside_touched(tmp_path):
    before = set(tmp_path.iterdir())
    r = run(
        tmp_path,
        [
            {
                "shell": "bash",
                "run": 'echo x > file-in-cwd; echo y > "$TMPDIR/t"; echo z > "$RUNNER_TEMP/u"',
            }
        ],
    )
    assert r.status == "COMPLETED"
    after = set(tmp_path.iterdir())
    assert (
        after - before == {tmp_path / "runtime", tmp_path / "cache", tmp_path / "modules"} - before
    )
    assert (r.workspace / "work" / "file-in-cwd").exists()
    assert r.workspace == tmp_path / "runtime" / "Tn0001" / "Wo000001" / "001"


def test_request__bad_ids_and_incomplete_catalog_refused(tmp_path):
    with pytest.raises(RunnerError, match="module run"):
        run(tmp_path, [{"shell": "bash", "run": "true"}], module_run_id="bad")
    from test_runner_support import action, module
    from workmill.reasons import ReasonCatalog

    req = ModuleRunRequest(
        module_dir=tmp_path, module=module(), action=action([]), tenant_id="Tn0001",
        work_order_id="Wo000001", module_run_id="Run00001", params={},
        runtime_dir=tmp_path / "rt", catalog=ReasonCatalog({}),
    )  # fmt: skip
    from workmill.runner import run_module

    with pytest.raises(RunnerError, match="MODULE_TIMEOUT"):
        run_module(req)


def test_run_module__parallel_threads_do_not_interfere(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int):
        d = tmp_path / f"t{i}"
        d.mkdir()
        return run(
            d,
            [{"shell": "bash", "run": f'echo "{i}" > "$WM_OUTPUTS_DIR/o"; echo "n=$WM_PARAM_N"'}],
            params={"n": i},
            outputs=[{"name": "o", "format": "text"}],
        )

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, range(8)))
    for i, r in enumerate(results):
        assert r.status == "COMPLETED"
        assert (r.outputs_dir / "o").read_text() == f"{i}\n"
        assert f"n={i}" in step_log(r)


def test_public_api__pinned():
    import workmill.runner as runner

    assert set(runner.__all__) >= {
        "run_module",
        "ModuleRunRequest",
        "ModuleRunResult",
        "ModuleStatus",
        "check_outputs",
        "build_manifest",
        "read_manifest",
        "write_manifest",
        "check_action",
        "RunnerError",
        "ExpressionError",
    }
    for name in runner.__all__:
        assert getattr(runner, name) is not None


# ---------------------------------------------------------------- output draining


def test_output__a_background_writer_keeps_logging_after_its_step_ends(tmp_path):
    r = run(
        tmp_path,
        [
            {"shell": "bash", "run": "(sleep 0.3; echo late-from-background) & echo early"},
            {"shell": "bash", "run": "sleep 0.8"},
        ],
    )
    assert r.status == "COMPLETED"
    first = r.step_logs[0].read_text()
    assert "early" in first and "late-from-background" in first


def test_output__last_lines_before_exit_are_in_the_log(tmp_path):
    r = run(tmp_path, [{"shell": "bash", "run": "for i in $(seq 1 2000); do echo line-$i; done"}])
    log = step_log(r)
    assert r.status == "COMPLETED" and "line-1\n" in log and "line-2000\n" in log


def test_output__without_pidfd_a_thread_drains_and_timeouts_still_kill(tmp_path, monkeypatch):
    def no_pidfd(pid: int) -> int:
        raise OSError("pidfd_open unavailable")

    monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    r = run(
        tmp_path / "a", [{"shell": "bash", "run": "echo hello-thread; echo x > $WM_OUTPUTS_DIR/o"}]
    )
    assert r.status == "COMPLETED" and "hello-thread" in step_log(r)
    t0 = time.monotonic()
    r = run(tmp_path / "b", [{"shell": "bash", "run": "sleep 60"}], timeout_seconds=0.5)
    assert r.reason_code == CODES["MODULE_TIMEOUT"] and time.monotonic() - t0 < 10
