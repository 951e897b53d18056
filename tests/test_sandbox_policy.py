"""The sandbox policy as data: bwrap argv, mode choice and the env denylist, without
starting a process (docs/reference.md "Sandbox and tenant isolation")."""

from __future__ import annotations

import pytest

from workmill.sandbox import (
    SandboxPolicy,
    SandboxUnavailable,
    _mode,
    bwrap_argv,
    choose_sandbox,
    is_credential_name,
    refused_env_name,
    refused_path_entry,
    sandbox_setting,
)


def _policy(**kw) -> SandboxPolicy:
    base = {
        "command": ("/usr/bin/python3", "-I", "/run/workmill/agent.py", "3"),
        "env": {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp"},
        "read_only": ("/srv/rt/T/W/001", "/srv/repo/modules/001"),
        "writable": ("/srv/rt/T/W/001/outputs", "/srv/cache/deps/001"),
        "cwd": "/srv/rt/T/W/001/work",
    }
    base.update(kw)
    return SandboxPolicy(**base)


def _pairs(argv: list[str], opt: str) -> list[tuple[str, str]]:
    return [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == opt]


def test_bwrap_argv__namespaces_and_lifetime():
    argv = bwrap_argv(_policy())
    for flag in (
        "--unshare-pid",
        "--as-pid-1",
        "--unshare-ipc",
        "--unshare-uts",
        "--die-with-parent",
    ):
        assert flag in argv
    assert "--new-session" in argv
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    assert "--unshare-net" not in argv


def test_bwrap_argv__network_false_unshares_net():
    assert "--unshare-net" in bwrap_argv(_policy(network=False))


def test_bwrap_argv__clearenv_then_exactly_the_policy_env():
    argv = bwrap_argv(_policy())
    clear = argv.index("--clearenv")
    sets = _pairs(argv, "--setenv")
    assert dict(sets) == {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp"}
    assert all(argv.index("--setenv") > clear for _ in sets)


def test_bwrap_argv__deny_by_default_only_listed_paths_are_bound():
    argv = bwrap_argv(_policy())
    ro = dict(_pairs(argv, "--ro-bind"))
    rw = dict(_pairs(argv, "--bind"))
    assert set(rw) == {"/srv/rt/T/W/001/outputs", "/srv/cache/deps/001"}
    assert set(ro) == {"/srv/rt/T/W/001", "/srv/repo/modules/001"}
    tried = {src for src, _ in _pairs(argv, "--ro-bind-try")}
    assert "/usr" in tried and "/etc/passwd" in tried
    assert "/etc" not in tried and "/" not in tried and "/home" not in tried
    # nothing of the repo, the store or another workspace is mentioned at all
    assert not any(a.startswith(("/srv/repo/.git", "/srv/rt/T/W/002", "/root")) for a in argv)


def test_bwrap_argv__writable_child_mounted_after_its_read_only_parent():
    argv = bwrap_argv(_policy())
    parent = argv.index("/srv/rt/T/W/001")
    child = argv.index("/srv/rt/T/W/001/outputs")
    assert parent < child


def test_bwrap_argv__fresh_proc_dev_tmp_and_command_last():
    argv = bwrap_argv(_policy())
    assert argv[argv.index("--proc") + 1] == "/proc"
    assert argv[argv.index("--dev") + 1] == "/dev"
    assert argv[argv.index("--tmpfs") + 1] == "/tmp"
    assert argv[argv.index("--chdir") + 1] == "/srv/rt/T/W/001/work"
    sep = argv.index("--")
    assert argv[sep + 1 :] == ["/usr/bin/python3", "-I", "/run/workmill/agent.py", "3"]


def test_bwrap_argv__files_bound_read_only_at_their_inside_path():
    argv = bwrap_argv(_policy(files=(("/opt/wm/_agent.py", "/run/workmill/agent.py"),)))
    assert ("/opt/wm/_agent.py", "/run/workmill/agent.py") in _pairs(argv, "--ro-bind")


@pytest.mark.parametrize(
    ("configured", "env", "works", "mode", "warns"),
    [
        ("none", {}, False, "none", False),
        ("auto", {}, True, "bwrap", False),
        ("bwrap", {}, True, "bwrap", False),
        ("auto", {}, False, "none", True),
        ("auto", {"GITHUB_ACTIONS": "false"}, False, "none", True),
    ],
)
def test_choose_sandbox__modes(monkeypatch, configured, env, works, mode, warns):
    monkeypatch.setattr(
        _mode, "find_bwrap", lambda _env: ("/usr/bin/bwrap", "") if works else (None, "gone")
    )
    choice = choose_sandbox(configured, env)
    assert choice.mode == mode
    assert (choice.warning is not None) == warns


@pytest.mark.parametrize(
    ("configured", "env"),
    [("bwrap", {}), ("auto", {"GITHUB_ACTIONS": "true"}), ("bwrap", {"GITHUB_ACTIONS": "true"})],
)
def test_choose_sandbox__fails_closed(monkeypatch, configured, env):
    monkeypatch.setattr(_mode, "find_bwrap", lambda _env: (None, "bwrap is not installed"))
    with pytest.raises(SandboxUnavailable, match="bwrap is not installed"):
        choose_sandbox(configured, env)


@pytest.mark.parametrize(
    "name",
    [
        "BASH_ENV",
        "ENV",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "NODE_OPTIONS",
        "PERL5OPT",
        "PERL5LIB",
        "RUBYOPT",
        "IFS",
        "PS4",
        "SHELLOPTS",
        "BASHOPTS",
        "WM_OUTPUTS_DIR",
        "GITHUB_TOKEN",
        "RUNNER_TEMP",
        "PATH",
        "HOME",
        "bash_env",
        "BASH_FUNC_ls%%",
        "GIT_SSH_COMMAND",
        "bad name",
    ],
)
def test_refused_env_name__denylist(name):
    assert refused_env_name(name) is not None


@pytest.mark.parametrize("name", ["MY_VAR", "model_size", "FOO1", "_x"])
def test_refused_env_name__ordinary_names_pass(name):
    assert refused_env_name(name) is None


def test_refused_path_entry():
    assert refused_path_entry("/opt/tool/bin") is None
    assert refused_path_entry("bin") is not None
    assert refused_path_entry("/a:/b") is not None


def test_is_credential_name():
    for n in ("GH_TOKEN", "GITHUB_TOKEN", "ACTIONS_RUNTIME_TOKEN", "WORKMILL_LICENCE_KEY"):
        assert is_credential_name(n)
    for n in ("PATH", "HOME", "WORKMILL_NOW"):
        assert not is_credential_name(n)


def test_sandbox_setting__environment_overrides_workmill_yml():
    assert sandbox_setting("auto", {}) == "auto"
    assert sandbox_setting("auto", {"WORKMILL_SANDBOX": "bwrap"}) == "bwrap"
    assert sandbox_setting("bwrap", {"WORKMILL_SANDBOX": "none"}) == "none"
    with pytest.raises(SandboxUnavailable, match="WORKMILL_SANDBOX='strict'"):
        sandbox_setting("auto", {"WORKMILL_SANDBOX": "strict"})
