"""The module registry through the CLI: publish → search → versions → install on a second
platform repo, and every way a registry can lie being refused before anything is unpacked
(docs/reference.md "Registry, tiers, licences, quotas, usage")."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from platform_factory import EXAMPLES
from test_github_support import TOKEN, FakeGithub, github_workmill_yml
from workmill import signing
from workmill.registry import (
    ArchiveRefused,
    Index,
    IndexMemory,
    RegistryRefused,
    check_members,
    pack,
)
from workmill.registry._archive import MAX_ARCHIVE_BYTES
from workmill.registry._index import sign_index


@pytest.fixture
def two_repos(tmp_path: Path, cli):
    """A publisher (the example platform) and a fresh consumer repo, and the key pair."""
    pub = tmp_path / "publisher"
    shutil.copytree(EXAMPLES, pub, ignore=shutil.ignore_patterns("__pycache__", ".workmill"))
    assert cli("init", str(tmp_path / "consumer"), cwd=tmp_path).returncode == 0
    assert (
        cli("keygen", "--out", str(tmp_path / "keys"), "--name", "pub", cwd=tmp_path).returncode
        == 0
    )
    con = tmp_path / "consumer"
    with (con / "workmill.yml").open("a") as fh:
        fh.write(f"registry_public_key: {tmp_path / 'keys' / 'pub.pub'}\n")
    return pub, con, tmp_path / "keys" / "pub.key"


def _ok(r) -> str:
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    return r.stdout


def _refused(r, *words: str) -> None:
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: "), r.stderr
    for w in words:
        assert w in r.stderr, r.stderr


def _publish_and_install(cli, pub: Path, con: Path, key: Path, where: list[str]) -> None:
    out = _ok(
        cli(
            "registry",
            "publish",
            "008",
            "--key",
            str(key),
            "--keyword",
            "forecast",
            *where,
            cwd=pub,
        )
    )
    assert out.startswith("published demand-forecast@1.0.0")
    again = _ok(cli("registry", "publish", "008", "--key", str(key), *where, cwd=pub))
    assert again.startswith("already published")
    found = json.loads(_ok(cli("registry", "search", "forecast", "--json", *where, cwd=con)))
    assert [(m["name"], m["tier"], m["latest"]) for m in found] == [
        ("demand-forecast", "premium", "1.0.0")
    ]
    assert (
        json.loads(_ok(cli("registry", "search", "nothing-like-it", "--json", *where, cwd=con)))
        == []
    )
    versions = json.loads(
        _ok(cli("registry", "versions", "demand-forecast", "--json", *where, cwd=con))
    )
    assert [v["version"] for v in versions] == ["1.0.0"]
    assert versions[0]["sha256"] and versions[0]["size_bytes"] > 0
    shown = json.loads(
        _ok(cli("registry", "show", "demand-forecast@1.0.0", "--json", *where, cwd=con))
    )
    assert shown["keywords"] == ["forecast"] and list(shown["versions"]) == ["1.0.0"]
    out = _ok(
        cli("registry", "install", "demand-forecast@1.0.0", "--category-id", "03", *where, cwd=con)
    )
    assert "installed demand-forecast@1.0.0 as modules/008" in out
    from workmill.digest import module_digest

    digest = module_digest(pub / "modules" / "008")
    assert module_digest(con / "modules" / "008") == digest
    registry_csv = (con / "maintenance-state" / "ids" / "module_registry.csv").read_text()
    assert f"008,03,Demand forecast,active,{digest}" in registry_csv
    _ok(cli("maintenance", cwd=con))
    _ok(cli("validate", cwd=con))


def _configure(repos: tuple[Path, ...], drop: tuple[str, ...], add: str) -> None:
    """Point both repos at one shared store: replace the workmill.yml keys in ``drop``."""
    for repo in repos:
        lines = (repo / "workmill.yml").read_text().splitlines()
        kept = "\n".join(x for x in lines if not x.startswith(drop))
        (repo / "workmill.yml").write_text(f"{kept}\n{add}")


def _write_signed(reg: Path, body: bytes, key_path: Path) -> None:
    """Write an index and a valid signature of it (the publisher's key signs anything)."""
    (reg / "index.json").write_bytes(body)
    (reg / "index.json.sig").write_bytes(sign_index(body, signing.load_private_key(key_path)))


def test_registry__publish_search_install_on_a_second_repo_directory(cli, two_repos, tmp_path):
    pub, con, key = two_repos
    _publish_and_install(cli, pub, con, key, ["--registry", str(tmp_path / "reg")])
    assert sorted(p.name for p in (tmp_path / "reg").iterdir() if not p.name.startswith(".")) == [
        "demand-forecast-1.0.0.tar.gz",
        "index.json",
        "index.json.sig",
    ]


def test_registry__publish_install_through_the_local_store_release(cli, two_repos, tmp_path):
    pub, con, key = two_repos
    shared = tmp_path / "shared-store"
    _configure((pub, con), ("local_store_dir:",), f"local_store_dir: {shared}\n")
    _publish_and_install(cli, pub, con, key, [])
    names = sorted(os.listdir(shared / "registry-v1"))
    assert "index-r000000001.json" in names and "index-r000000001.json.sig" in names


def test_registry__publish_install_through_fake_github(cli, two_repos, tmp_path):
    pub, con, key = two_repos
    with FakeGithub() as fake:
        _configure((pub, con), ("store:", "cache_backend:"), github_workmill_yml(fake.url))
        env = {"GH_TOKEN": TOKEN}
        run = lambda *a, cwd: cli(*a, cwd=cwd, env=env)  # noqa: E731
        _publish_and_install(run, pub, con, key, [])
        assert fake.release_by_tag("registry-v1") is not None
        assert fake.violations == []


# ------------------------------------------------------------------ refusals


@pytest.fixture
def published(cli, two_repos, tmp_path):
    pub, con, key = two_repos
    reg = tmp_path / "reg"
    _ok(cli("registry", "publish", "008", "--key", str(key), "--registry", str(reg), cwd=pub))
    return con, reg, key


def _install(cli, con: Path, reg: Path, *extra: str):
    r = cli("registry", "install", "demand-forecast@1.0.0", "--category-id", "03",
            "--registry", str(reg), *extra, cwd=con)  # fmt: skip
    return r


def _nothing_unpacked(con: Path) -> None:
    assert not (con / "modules" / "008").exists()
    assert [p.name for p in (con / "modules").iterdir() if p.name.startswith(".install")] == []
    assert "008," not in (con / "maintenance-state" / "ids" / "module_registry.csv").read_text()


def test_registry__tampered_archive_refused(cli, published):
    con, reg, _ = published
    archive = reg / "demand-forecast-1.0.0.tar.gz"
    data = bytearray(archive.read_bytes())
    data[-20] ^= 0xFF
    archive.write_bytes(bytes(data))
    _refused(_install(cli, con, reg), "does not match the signed index")
    _nothing_unpacked(con)


def test_registry__tampered_index_refused(cli, published):
    con, reg, _ = published
    index = reg / "index.json"
    index.write_text(index.read_text().replace("A premium module", "A harmless module"))
    _refused(_install(cli, con, reg), "does not verify")
    _nothing_unpacked(con)


def test_registry__unsigned_index_refused(cli, published):
    con, reg, _ = published
    (reg / "index.json.sig").unlink()
    _refused(_install(cli, con, reg), "not signed")
    _refused(cli("registry", "search", "--registry", str(reg), cwd=con), "not signed")
    _nothing_unpacked(con)


def test_registry__wrong_key_refused(cli, published, tmp_path):
    con, reg, _ = published
    assert cli("keygen", "--out", str(tmp_path / "other"), cwd=tmp_path).returncode == 0
    other = str(tmp_path / "other" / "workmill.pub")
    _refused(_install(cli, con, reg, "--public-key", other), "does not verify")
    text = (con / "workmill.yml").read_text()
    (con / "workmill.yml").write_text(
        "\n".join(x for x in text.splitlines() if "registry_public_key" not in x) + "\n"
    )
    _refused(_install(cli, con, reg), "no registry_public_key")
    _nothing_unpacked(con)


def _evil_archive(entries: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for e in entries:
            if isinstance(e, tarfile.TarInfo):
                tar.addfile(e)
            else:
                info = tarfile.TarInfo(e[0])
                info.size = len(e[1])
                tar.addfile(info, io.BytesIO(e[1]))
    return buf.getvalue()


def _resign_with(reg: Path, key_path: Path, archive: bytes) -> None:
    """Replace the archive and re-sign an index that pins it: only the entry check is left."""
    from workmill.fsio import sha256_bytes

    (reg / "demand-forecast-1.0.0.tar.gz").write_bytes(archive)
    index = Index.model_validate_json((reg / "index.json").read_bytes())
    data = json.loads(index.to_bytes())
    v = data["modules"]["demand-forecast"]["versions"]["1.0.0"]
    v["sha256"], v["size_bytes"] = sha256_bytes(archive), len(archive)
    _write_signed(reg, Index.model_validate(data).to_bytes(), key_path)


def test_registry__traversal_entry_refused_even_when_signed(cli, published, tmp_path):
    con, reg, key = published
    _resign_with(reg, key, _evil_archive([("module.yml", b"x"), ("../../evil.txt", b"pwned")]))
    _refused(_install(cli, con, reg), "'../../evil.txt'", "leaves the module folder")
    _nothing_unpacked(con)
    assert not (con.parent / "evil.txt").exists() and not (con / "evil.txt").exists()


def test_registry__symlink_entry_refused_even_when_signed(cli, published):
    con, reg, key = published
    link = tarfile.TarInfo("src/main.py")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    _resign_with(reg, key, _evil_archive([("module.yml", b"x"), link]))
    _refused(_install(cli, con, reg), "'src/main.py' is a link")
    _nothing_unpacked(con)


def test_archive__checks_refuse_absolute_hardlink_device_and_oversize():
    hard = tarfile.TarInfo("b")
    hard.type, hard.linkname = tarfile.LNKTYPE, "a"
    dev = tarfile.TarInfo("d")
    dev.type = tarfile.CHRTYPE
    for entries, words in (
        ([("/etc/cron.d/x", b"x")], "absolute"),
        ([("a", b"x"), hard], "is a link"),
        ([dev], "device"),
        ([("a", b"x"), ("a", b"y")], "listed twice"),
        ([("a\\b", b"x")], "absolute or malformed"),
    ):
        with pytest.raises(ArchiveRefused, match=words):
            check_members(_evil_archive(entries), "t")
    with pytest.raises(ArchiveRefused, match="larger than"):
        check_members(b"\0" * (MAX_ARCHIVE_BYTES + 1), "t")
    with pytest.raises(ArchiveRefused, match="not a readable"):
        check_members(b"not a tarball", "t")


def test_pack__same_module_version_always_same_bytes(tmp_path):
    src = EXAMPLES / "modules" / "008"
    copy = tmp_path / "008"
    shutil.copytree(src, copy)
    for p in copy.rglob("*"):  # other times, other permissions on the directories
        os.utime(p, (time.time() - 86400 * 400, time.time() - 86400 * 400))
    (copy / "src").chmod(0o700)
    first, second, third = pack(src), pack(src), pack(copy)
    assert first == second == third
    with tarfile.open(fileobj=io.BytesIO(first), mode="r:gz") as tar:
        names = [m.name for m in tar]
    assert names == sorted(names)
    members = check_members(first, "t")
    assert {m.path for m in members} >= {"module.yml", "action.yml", "src/main.py"}


# ------------------------------------------------------------------ rollback and freshness


def _names(cli, con: Path, where: list[str]) -> list[str]:
    found = json.loads(_ok(cli("registry", "search", "--json", *where, cwd=con)))
    return [m["name"] for m in found]


def _two_revisions(cli, pub: Path, con: Path, key: Path, where: list[str]) -> None:
    """Revision 1 (008) read by the consumer, then revision 2 (008 and 001) read too."""
    _ok(cli("registry", "publish", "008", "--key", str(key), *where, cwd=pub))
    assert _names(cli, con, where) == ["demand-forecast"]
    _ok(cli("registry", "publish", "001", "--key", str(key), *where, cwd=pub))
    assert _names(cli, con, where) == ["demand-forecast", "ingest-sales"]


def _rollback_refused(cli, con: Path, where: list[str], *forget: str) -> None:
    """Revision 1 served again: every read refuses it until the record is forgotten."""
    for args in (("search",), ("versions", "demand-forecast"), ("show", "demand-forecast")):
        _refused(
            cli("registry", *args, *where, cwd=con),
            "index revision 1",
            "older than revision 2",
            f"workmill registry forget{''.join(' ' + a for a in forget)}",
        )
    _refused(_install_from(cli, con, where), "older than revision 2")
    _nothing_unpacked(con)
    out = _ok(cli("registry", "forget", *forget, cwd=con))
    assert out.startswith("forgot revision 2 (signed ")
    assert _names(cli, con, where) == ["demand-forecast"]  # deliberately accepted again
    assert _ok(cli("registry", "forget", *forget, cwd=con)).startswith("forgot revision 1")
    assert _ok(cli("registry", "forget", *forget, cwd=con)).startswith("nothing remembered")


def _install_from(cli, con: Path, where: list[str]):
    return cli("registry", "install", "demand-forecast@1.0.0", "--category-id", "03", *where,
               cwd=con)  # fmt: skip


def test_registry__rollback_to_an_older_signed_index_refused_directory(cli, two_repos, tmp_path):
    pub, con, key = two_repos
    reg = tmp_path / "reg"
    where = ["--registry", str(reg)]
    _ok(cli("registry", "publish", "008", "--key", str(key), *where, cwd=pub))
    assert _names(cli, con, where) == ["demand-forecast"]
    old = {n: (reg / n).read_bytes() for n in ("index.json", "index.json.sig")}
    _ok(cli("registry", "publish", "001", "--key", str(key), *where, cwd=pub))
    assert _names(cli, con, where) == ["demand-forecast", "ingest-sales"]
    newer = {n: (reg / n).read_bytes() for n in old}
    # the record lives in the repo's local state (.workmill/registry/)
    records = list((con / ".workmill" / "registry").glob("*.json"))
    assert len(records) == 1 and json.loads(records[0].read_text())["revision"] == 2
    for name, body in old.items():  # a validly signed, older index served again
        (reg / name).write_bytes(body)
    _rollback_refused(cli, con, where, "--registry", str(reg))
    for name, body in newer.items():
        (reg / name).write_bytes(body)
    assert _names(cli, con, where) == ["demand-forecast", "ingest-sales"]
    # another index signed under the same revision 2 (one revision, two contents): refused
    forked = Index.model_validate_json(newer["index.json"]).model_copy(
        update={"updated_at": "2026-11-23T13:00:00Z"}
    )
    _write_signed(reg, forked.to_bytes(), key)
    _refused(cli("registry", "search", *where, cwd=con), "two different indexes")


def test_registry__rollback_refused_through_the_local_store_release(cli, two_repos, tmp_path):
    pub, con, key = two_repos
    shared = tmp_path / "shared-store"
    _configure((pub, con), ("local_store_dir:",), f"local_store_dir: {shared}\n")
    _two_revisions(cli, pub, con, key, [])
    for suffix in ("", ".sig"):  # the newest revision withheld: the older one is served
        (shared / "registry-v1" / f"index-r000000002.json{suffix}").unlink()
    _rollback_refused(cli, con, [])


def test_registry__rollback_refused_through_fake_github(cli, two_repos):
    pub, con, key = two_repos
    with FakeGithub() as fake:
        _configure((pub, con), ("store:", "cache_backend:"), github_workmill_yml(fake.url))
        run = lambda *a, cwd: cli(*a, cwd=cwd, env={"GH_TOKEN": TOKEN})  # noqa: E731
        _two_revisions(run, pub, con, key, [])
        with fake.lock:  # the release now serves revision 1 as its newest index
            for aid in [
                i for i, a in fake.assets.items() if a["name"].startswith("index-r000000002")
            ]:
                del fake.assets[aid]
        _rollback_refused(run, con, [])
        assert fake.violations == []


def test_registry__an_index_without_revision_or_time_refused(cli, published):
    con, reg, key = published
    data = json.loads((reg / "index.json").read_bytes())
    for field, value in (("revision", 0), ("updated_at", "")):
        _write_signed(reg, Index.model_validate({**data, field: value}).to_bytes(), key)
        _refused(_install(cli, con, reg), "no revision or no updated_at")
    _nothing_unpacked(con)


def test_registry__install_refuses_a_module_id_taken_by_another_module(cli, published):
    from workmill.digest import module_digest

    con, reg, _ = published
    ids = con / "maintenance-state" / "ids" / "module_registry.csv"
    before = ids.read_bytes()
    ours = con / "modules" / "008"
    shutil.copytree(EXAMPLES / "modules" / "001", ours)
    digest = module_digest(ours)
    _refused(
        _install(cli, con, reg),
        "demand-forecast@1.0.0 is published as module 008",
        "modules/008 already holds a different module ('Ingest sales')",
    )
    assert module_digest(ours) == digest and ids.read_bytes() == before
    shutil.rmtree(ours)
    # no folder, but the id is registered to another module (e.g. one retired here)
    ids.write_bytes(before + b"008,03,Old scorer,retired,\n")
    _refused(_install(cli, con, reg), "module_registry.csv already registers 008 ('Old scorer'")
    assert ids.read_bytes().endswith(b"008,03,Old scorer,retired,\n")
    assert not ours.exists()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 6), st.sampled_from("ab")), min_size=1, max_size=12))
def test_index_memory__accepted_revisions_never_go_down_nor_fork(tmp_path_factory, served):
    """Whatever order indexes are served in, what is accepted only moves forward."""
    memory = IndexMemory(tmp_path_factory.mktemp("repo"), "directory /r", "reset")
    accepted: list[tuple[int, str]] = []
    for revision, content in served:
        index = Index(revision=revision, updated_at="2026-11-23T12:00:00Z")
        data = index.to_bytes() + content.encode()  # two contents under one revision
        highest = max(accepted, default=(0, ""))
        try:
            memory.accept(index, data, "r")
        except RegistryRefused as exc:
            assert "\n" not in str(exc) and "reset" in str(exc)
            assert revision < highest[0] or (revision == highest[0] and content != highest[1])
            continue
        assert revision > highest[0] or (revision, content) == highest
        accepted.append((revision, content))
    seen = memory.read()
    assert seen is not None and seen.revision == max(r for r, _ in accepted)


def test_index_memory__a_damaged_record_is_refused_in_one_line_and_forgotten(tmp_path):
    memory = IndexMemory(tmp_path, "directory /r", "workmill registry forget --registry /r")
    memory.path.parent.mkdir(parents=True)
    memory.path.write_text("{not json")
    index = Index(revision=1, updated_at="2026-11-23T12:00:00Z")
    with pytest.raises(RegistryRefused, match=r"^\.workmill/registry/[0-9a-f]{24}\.json: not a"):
        memory.accept(index, index.to_bytes(), "r")
    assert memory.forget() == (True, None) and not memory.path.exists()
    memory.accept(index, index.to_bytes(), "r")  # accepted as new after the reset
    assert memory.read().revision == 1
