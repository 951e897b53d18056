"""GitHub's limits, as the fake answers them like GitHub does, and how workmill meets each."""

from __future__ import annotations

import os

import pytest

from test_github_support import LISTING_CAP, MAX_ASSETS, OWNER_REPO, TOKEN, FakeGithub, Fault
from workmill.errors import StateError
from workmill.github import GithubClient, GithubListingCapped, GithubRateLimited, GithubReleaseStore
from workmill.state.releases import MAX_ASSET_BYTES, AssetExists
from workmill.state.staging import StagingReleaseStore, publish_staged


@pytest.fixture
def fake():
    with FakeGithub() as f:
        yield f
        assert f.violations == []


@pytest.fixture
def clients():
    made: list[GithubClient] = []
    yield made
    for c in made:
        c.close()


@pytest.fixture
def store(fake, clients):
    c = GithubClient(TOKEN, fake.url, sleep=lambda s: None)
    clients.append(c)
    return GithubReleaseStore(c, OWNER_REPO)


def _uploads(fake: FakeGithub) -> int:
    return sum(1 for m, p in fake.requests if m == "POST" and p.startswith("/uploads/"))


def test_fake_github__a_taken_name_is_422_already_exists(fake, store):
    store.create_tag("t1")
    store.create_asset("t1", "a.bin", b"1")
    sent = store.client.send(
        "POST",
        f"{fake.url}/uploads/repos/{OWNER_REPO}/releases/{store._require('t1').id}/assets",
        params={"name": "a.bin"},
        content=b"2",
        headers={"Content-Type": "application/octet-stream"},
    )
    body = sent.response.json()
    assert sent.response.status_code == 422
    assert body["errors"] == [
        {"resource": "ReleaseAsset", "code": "already_exists", "field": "name"}
    ]
    with pytest.raises(AssetExists):
        store.create_asset("t1", "a.bin", b"2")


def test_starter_asset_after_a_502_is_deleted_and_the_upload_retried_at_once(fake, store):
    store.create_tag("t1")
    fake.starter_uploads = 1  # the upload breaks and leaves a "starter" asset on the name
    store.create_asset("t1", "manifest-r000000002.json", b"mine")
    assets = [a for a in fake.assets.values() if a["name"] == "manifest-r000000002.json"]
    assert [(a["state"], a["_data"]) for a in assets] == [("uploaded", b"mine")]
    assert any(m == "DELETE" for m, _ in fake.requests)  # the starter was removed, not waited out


def test_starter_assets_every_time_give_up_with_a_clear_error(fake, store):
    store.create_tag("t1")
    fake.starter_uploads = 100
    with pytest.raises(StateError, match="keep failing half-way"):
        store.create_asset("t1", "x.bin", b"data")


def test_a_complete_asset_is_never_deleted_as_a_starter(fake, store):
    store.create_tag("t1")
    store.create_asset("t1", "x.bin", b"first")
    with pytest.raises(AssetExists):
        store.create_asset("t1", "x.bin", b"second")
    assert store.read_asset("t1", "x.bin") == b"first"


def test_release_at_the_1000_asset_cap_is_a_clear_error(fake, store):
    store.create_tag("t1")
    rid = store._require("t1").id
    with fake.lock:
        for i in range(MAX_ASSETS):
            aid = fake.new_id()
            fake.assets[aid] = {"id": aid, "name": f"f{i}", "state": "uploaded", "_release": rid}
    with pytest.raises(StateError, match="maximum of 1000 assets"):
        store.create_asset("t1", "one-more.bin", b"x")


def test_immutable_release_is_a_clear_error_before_any_upload(fake, store):
    fake.immutable = True
    store.create_tag("wo-Ab12Cd-Qw3Er5Ty")
    with pytest.raises(StateError, match=r"immutable.*turn the setting off"):
        store.create_asset("wo-Ab12Cd-Qw3Er5Ty", "x.bin", b"x")
    assert _uploads(fake) == 0


def test_immutable_release_found_out_at_upload_time_is_the_same_clear_error(fake, store):
    store.create_tag("t1")  # created before the setting was switched on
    with fake.lock:
        fake.release_by_tag("t1")["immutable"] = True
    with pytest.raises(StateError, match="immutable"):
        store.create_asset("t1", "x.bin", b"x")


def test_listing_past_10000_releases_is_a_clear_error_and_tags_are_looked_up_directly(
    fake, clients
):
    fake.page_size = 100
    with fake.lock:
        for i in range(LISTING_CAP + 5):
            rid = fake.new_id()
            fake.releases[rid] = {
                "id": rid,
                "tag_name": f"wo-Ab12Cd-{i:08d}",
                "name": "",
                "body": "",
                "draft": False,
                "prerelease": False,
            }
    c = GithubClient(TOKEN, fake.url, sleep=lambda s: None)
    clients.append(c)
    store = GithubReleaseStore(c, OWNER_REPO)
    with pytest.raises(GithubListingCapped, match="at most 10,000"):
        store.list_tags()
    assert store.tag_exists("wo-Ab12Cd-00000001")  # the oldest, beyond the cap: one GET


def test_secondary_limit_without_headers_backs_off_exponentially(fake, clients):
    sleeps: list[float] = []
    c = GithubClient(TOKEN, fake.url, sleep=sleeps.append, max_wait_s=300)
    clients.append(c)
    body = {"message": "You have exceeded a secondary rate limit. Please wait a few minutes."}
    fake.faults.append(Fault("GET", r"/releases/tags/", 403, {}, body, times=3))
    assert GithubReleaseStore(c, OWNER_REPO).tag_exists("nope") is False
    assert sleeps == [60.0, 120.0, 240.0]
    fake.faults.append(Fault("GET", r"/releases/tags/", 403, {}, body, times=4))
    sleeps.clear()
    with pytest.raises(GithubRateLimited):
        GithubReleaseStore(c, OWNER_REPO).tag_exists("nope2")
    assert sleeps == [60.0, 120.0, 240.0]  # the next wait (480 s) is past max_wait_s


def test_upload_streams_from_disk_and_over_2_gib_is_refused_before_upload(fake, store, tmp_path):
    store.create_tag("t1")
    small = tmp_path / "small.bin"
    small.write_bytes(os.urandom(3 << 20))
    store.create_asset_from_file("t1", "small.bin", small)
    assert store.read_asset("t1", "small.bin") == small.read_bytes()
    big = tmp_path / "big.bin"
    with big.open("wb") as fh:  # sparse: 2 GiB without writing it
        fh.truncate(MAX_ASSET_BYTES + 1)
    before = _uploads(fake)
    with pytest.raises(StateError, match="under 2 GiB"):
        store.create_asset_from_file("t1", "big.bin", big)
    assert _uploads(fake) == before


def test_remote_ids_are_githubs_own(fake, store):
    store.create_tag("t1")
    store.create_asset("t1", "a.bin", b"a")
    rel, ids = store.remote_ids("t1", ["a.bin", "missing.bin"])
    r = fake.release_by_tag("t1")
    aid = next(a["id"] for a in fake.assets.values() if a["name"] == "a.bin")
    assert (rel, ids) == (str(r["id"]), {"a.bin": str(aid), "missing.bin": ""})
    assert store.remote_ids("nope", ["x"]) == ("", {"x": ""})


def test_staged_releases_publish_manifest_last_and_a_second_publish_changes_nothing(
    fake, store, tmp_path
):
    tag = "wo-Ab12Cd-Qw3Er5Ty"
    staging = StagingReleaseStore(store, tmp_path / "publish", keep_remote={"billing-state-v1"})
    staging.create_tag(tag)
    staging.create_asset(tag, "ab12cd-qw3er5ty-manifest.json", b"{}")
    staging.create_asset(tag, "ab12cd-qw3er5ty-001-x-1.txt", b"one")
    with pytest.raises(AssetExists):
        staging.create_asset(tag, "ab12cd-qw3er5ty-001-x-1.txt", b"again")
    assert not store.tag_exists(tag) and _uploads(fake) == 0  # nothing left the job
    assert staging.list_assets(tag) == sorted(
        ["ab12cd-qw3er5ty-001-x-1.txt", "ab12cd-qw3er5ty-manifest.json"]
    )
    report = publish_staged(store, tmp_path / "publish")
    names = [a["name"] for a in sorted(fake.assets.values(), key=lambda a: a["id"])]
    assert names == ["ab12cd-qw3er5ty-001-x-1.txt", "ab12cd-qw3er5ty-manifest.json"]
    assert len(report.uploaded) == 2
    again = publish_staged(store, tmp_path / "publish")
    assert again.uploaded == [] and len(again.already_there) == 2
