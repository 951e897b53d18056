"""One contract for every ReleaseStore (local and github), plus the GitHub client's habits."""

from __future__ import annotations

import threading

import httpx
import pytest

from test_github_support import OWNER_REPO, TOKEN, FakeGithub, Fault
from workmill.errors import NotFound, StateError, WorkmillError
from workmill.github import (
    GithubAuthError,
    GithubCacheBackend,
    GithubClient,
    GithubRateLimited,
    GithubReleaseStore,
    next_link,
)
from workmill.state.releases import AssetExists, LocalReleaseStore, ReleaseStore


@pytest.fixture
def fake():
    with FakeGithub() as f:
        yield f


_OPEN: list[GithubClient] = []


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    while _OPEN:
        _OPEN.pop().close()


def _client(fake: FakeGithub, sleeps: list[float] | None = None, **kw) -> GithubClient:
    c = GithubClient(
        TOKEN, fake.url, sleep=(sleeps.append if sleeps is not None else lambda s: None), **kw
    )
    _OPEN.append(c)
    return c


@pytest.fixture(params=["local", "github"])
def store(request, tmp_path) -> ReleaseStore:
    if request.param == "local":
        yield LocalReleaseStore(tmp_path / "releases")
        return
    with FakeGithub() as f:
        s = GithubReleaseStore(_client(f), OWNER_REPO)
        s.fake = f  # type: ignore[attr-defined]
        yield s
        assert f.violations == []


# ------------------------------------------------------------------ the contract


def test_store__create_tag_is_idempotent_and_listed(store):
    assert not store.tag_exists("billing-state-v1")
    store.create_tag("billing-state-v1")
    store.create_tag("billing-state-v1")
    store.create_tag("wo-T1aaaa-Ab12Cd34")
    assert store.tag_exists("billing-state-v1")
    assert store.list_tags() == ["billing-state-v1", "wo-T1aaaa-Ab12Cd34"]
    assert store.list_assets("billing-state-v1") == []


def test_store__asset_round_trip_and_sorted_listing(store):
    store.create_tag("t1")
    blobs = {f"a{i}.csv": bytes([i]) * (i + 1) for i in range(5)}
    for name in ["a3.csv", "a0.csv", "a4.csv", "a1.csv", "a2.csv"]:
        store.create_asset("t1", name, blobs[name])
    assert store.list_assets("t1") == sorted(blobs)  # five names: three pages on the fake
    for name, data in blobs.items():
        assert store.read_asset("t1", name) == data


def test_store__create_under_a_taken_name_raises_asset_exists_and_keeps_the_first(store):
    store.create_tag("t1")
    store.create_asset("t1", "manifest-r000000002.json", b"first")
    with pytest.raises(AssetExists):
        store.create_asset("t1", "manifest-r000000002.json", b"second")
    assert store.read_asset("t1", "manifest-r000000002.json") == b"first"


def test_store__missing_asset_and_missing_tag_are_not_found(store):
    store.create_tag("t1")
    with pytest.raises(NotFound):
        store.read_asset("t1", "nope.csv")
    with pytest.raises(NotFound):
        store.list_assets("no-such-tag")
    with pytest.raises(NotFound):
        store.create_asset("no-such-tag", "x.csv", b"x")


def test_store__delete_is_idempotent_and_frees_the_name(store):
    store.create_tag("t1")
    store.create_asset("t1", "x.csv", b"old")
    store.delete_asset("t1", "x.csv")
    store.delete_asset("t1", "x.csv")
    assert store.list_assets("t1") == []
    store.create_asset("t1", "x.csv", b"new")
    assert store.read_asset("t1", "x.csv") == b"new"


def test_store__invalid_asset_name_is_refused(store):
    store.create_tag("t1")
    with pytest.raises(StateError):
        store.create_asset("t1", "../escape", b"x")


def test_store__racing_creators_of_one_name_have_exactly_one_winner(store):
    store.create_tag("t1")
    results: list[str] = []

    def create(i: int) -> None:
        try:
            store.create_asset("t1", "manifest-r000000007.json", f"writer {i}".encode())
            results.append(f"won {i}")
        except AssetExists:
            results.append("lost")

    threads = [threading.Thread(target=create, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if r.startswith("won")]
    assert len(winners) == 1 and results.count("lost") == 5
    assert store.read_asset("t1", "manifest-r000000007.json") == f"writer {winners[0][4:]}".encode()


def test_store__an_asset_deleted_and_recreated_elsewhere_is_read_fresh(store, tmp_path):
    store.create_tag("t1")
    store.create_asset("t1", "m.json", b"v1")
    assert store.read_asset("t1", "m.json") == b"v1"
    if isinstance(store, GithubReleaseStore):  # another machine: its own process, own cache
        other = GithubReleaseStore(_client(store.fake), OWNER_REPO)
    else:
        other = LocalReleaseStore(store.root)
    other.delete_asset("t1", "m.json")
    other.create_asset("t1", "m.json", b"v2")
    assert store.read_asset("t1", "m.json") == b"v2"


# ------------------------------------------------------------------ GitHub specifics


def test_github_store__release_is_published_and_never_latest(fake):
    s = GithubReleaseStore(_client(fake), OWNER_REPO)
    s.create_tag("billing-state-v1")
    r = fake.release_by_tag("billing-state-v1")
    assert r["draft"] is False and r["make_latest"] == "false"
    assert s.lock_path("billing-state-v1") is None


def test_github_store__download_follows_redirect_without_the_token(fake):
    s = GithubReleaseStore(_client(fake), OWNER_REPO)
    s.create_tag("t1")
    s.create_asset("t1", "a.bin", b"\x00\x01payload")
    assert s.read_asset("t1", "a.bin") == b"\x00\x01payload"
    assert any(p.startswith("/_blob/") for _, p in fake.requests)
    assert fake.blob_auth_seen == 0


def test_github_store__secondary_rate_limit_waits_retry_after_then_succeeds(fake):
    sleeps: list[float] = []
    s = GithubReleaseStore(_client(fake, sleeps), OWNER_REPO)
    fake.faults.append(
        Fault(
            "GET",
            r"/releases/tags/",
            403,
            {"Retry-After": "7"},
            {"message": "You have exceeded a secondary rate limit."},
        )
    )
    fake.faults.append(Fault("POST", r"/releases$", 429, {"Retry-After": "3"}, {"message": "x"}))
    s.create_tag("t1")
    assert sleeps == [7.0, 3.0]
    assert s.tag_exists("t1")


def test_github_client__primary_rate_limit_waits_until_reset(fake, monkeypatch):
    sleeps: list[float] = []
    monkeypatch.setattr("workmill.github._client.time.time", lambda: 1_000_000.0)
    fake.faults.append(
        Fault(
            "GET",
            r"/releases$",
            403,
            {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1000042"},
            {"message": "API rate limit exceeded"},
        )
    )
    list(_client(fake, sleeps).paginate(f"repos/{OWNER_REPO}/releases"))
    assert sleeps == [43.0]


def test_github_client__rate_limit_longer_than_max_wait_is_an_error(fake):
    fake.faults.append(Fault("GET", r"/releases$", 429, {"Retry-After": "3600"}, {"message": "x"}))
    with pytest.raises(GithubRateLimited, match="retry in 3600s"):
        list(_client(fake, max_wait_s=60).paginate(f"repos/{OWNER_REPO}/releases"))


def test_github_client__5xx_is_retried_with_backoff_then_fails_clearly(fake):
    sleeps: list[float] = []
    fake.faults.append(Fault("GET", r"/releases$", 502, times=10))
    with pytest.raises(WorkmillError, match=r"GET /repos/acme/platform/releases: 502"):
        list(_client(fake, sleeps, max_attempts=4).paginate(f"repos/{OWNER_REPO}/releases"))
    assert len(sleeps) == 3 and sleeps[0] < sleeps[1] < sleeps[2] + 1


def test_github_store__upload_whose_response_was_lost_is_not_a_conflict(fake):
    """A 502 after the asset was stored: the retry meets already_exists with our bytes."""
    s = GithubReleaseStore(_client(fake), OWNER_REPO)
    s.create_tag("t1")
    fake.faults.append(Fault("POST", r"/uploads/.*/assets", 502, after=True))
    s.create_asset("t1", "manifest-r000000003.json", b"mine")
    assert s.read_asset("t1", "manifest-r000000003.json") == b"mine"
    # ... but a different writer's bytes under that name stay a conflict
    fake.faults.append(Fault("POST", r"/uploads/.*/assets", 502, after=True))
    s.create_asset("t1", "manifest-r000000004.json", b"theirs")
    with pytest.raises(AssetExists):
        s.create_asset("t1", "manifest-r000000004.json", b"mine")


def test_github_client__bad_token_is_a_clear_error_without_the_token(fake):
    bad = "ghp_wrongTOKEN_abcdefghijklmnop"
    c = GithubClient(bad, fake.url, sleep=lambda s: None)
    _OPEN.append(c)
    with pytest.raises(GithubAuthError) as info:
        GithubReleaseStore(c, OWNER_REPO).list_tags()
    assert "401 Bad credentials" in str(info.value)
    assert bad not in str(info.value) and bad not in repr(c)


def test_github_client__token_in_an_error_body_is_masked(fake):
    fake.faults.append(
        Fault("GET", r"/releases$", 400, body={"message": f"echo Bearer {TOKEN} and {TOKEN}"})
    )
    with pytest.raises(WorkmillError) as info:
        list(_client(fake).paginate(f"repos/{OWNER_REPO}/releases"))
    assert TOKEN not in str(info.value) and "***" in str(info.value)


def test_github_client__no_token_is_refused():
    with pytest.raises(GithubAuthError, match="GH_TOKEN"):
        GithubClient("", "https://api.github.com")


def test_github_client__token_is_never_sent_to_a_foreign_host(fake):
    with pytest.raises(WorkmillError, match="refusing to send the token"):
        _client(fake).request("GET", "https://evil.example.com/x")


def test_next_link__picks_next_among_rels():
    header = (
        '<https://api.github.com/x?page=1>; rel="prev", '
        '<https://api.github.com/x?page=3>; rel="next", <https://api.github.com/x?page=9>; rel="last"'
    )
    assert next_link(header) == "https://api.github.com/x?page=3"
    assert next_link("") is None


def test_github_client__sends_api_version_and_accept_headers():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    c = GithubClient(TOKEN, "https://api.github.com", transport=httpx.MockTransport(handler))
    _OPEN.append(c)
    list(c.paginate("repos/o/r/releases"))
    h = seen[0].headers
    assert h["Accept"] == "application/vnd.github+json"
    assert h["X-GitHub-Api-Version"] == "2022-11-28"
    assert h["Authorization"] == f"Bearer {TOKEN}"
    assert seen[0].url.params["per_page"] == "100"


# ------------------------------------------------------------------ cache backend


def test_github_cache__lists_every_page_merging_refs_and_deletes_by_key(fake):
    k1, k2 = "a" * 64, "b" * 64
    fake.add_cache(k1, 100, "2026-01-01T00:00:00Z")
    fake.add_cache(k1, 50, "2026-02-01T00:00:00Z", ref="refs/pull/1/merge")
    fake.add_cache(k2, 7, "2026-03-01T10:00:00.000Z")
    fake.add_cache("setup-python-Linux-pip-xyz", 9, "2026-03-02T00:00:00Z")
    b = GithubCacheBackend(_client(fake), OWNER_REPO)
    entries = {e.key: e for e in b.list_entries()}
    assert set(entries) == {k1, k2, "setup-python-Linux-pip-xyz"}
    assert entries[k1].size_bytes == 150 and entries[k1].created_at == "2026-01-01T00:00:00Z"
    assert entries[k2].created_at == "2026-03-01T10:00:00Z"
    assert b.delete(k1) is True
    assert b.delete(k1) is False
    assert [e.key for e in b.list_entries()] == sorted([k2, "setup-python-Linux-pip-xyz"])


def test_github_cache__outside_a_job_lookup_misses_and_save_is_refused_cleanly(fake, tmp_path):
    from workmill.cache.backend import CacheUnavailable, EntryManifest

    b = GithubCacheBackend(_client(fake), OWNER_REPO)
    assert b.read_manifest("a" * 64) is None
    assert b.restore("a" * 64, tmp_path) is None
    m = EntryManifest(
        "a" * 64, "T1aaaa", "001", "1", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", 31, ()
    )
    with pytest.raises(CacheUnavailable, match="inside a workflow job"):
        b.save(m, tmp_path)


def test_github__public_api_is_pinned():
    import workmill.github as gh

    assert sorted(gh.__all__) == sorted(
        [
            "WORKFLOW_NAMES",
            "GithubAuthError",
            "GithubCacheBackend",
            "GithubClient",
            "GithubError",
            "GithubListingCapped",
            "GithubNotFound",
            "GithubRateLimited",
            "GithubReleaseStore",
            "GithubSettings",
            "enable_github",
            "github_settings",
            "next_link",
            "workflow_templates",
            "write_workflows",
        ]
    )
    assert issubclass(gh.GithubReleaseStore, ReleaseStore)
