"""``GithubReleaseStore``: the release-store seam over the GitHub Releases API.

A tag is a *published* release (not a draft: drafts cannot be fetched by tag
and have no git tag until published) created with ``make_latest: "false"`` so
the billing state and work-order releases never become the repository's
"latest" release. Assets map one to one; create-if-absent is GitHub's own
rule that an asset name is unique within a release (422 ``already_exists``).

Name → id lookups are cached per process: assets are immutable, so a cached
id is either right or gone (a 404 then triggers one fresh listing). Releases
are never deleted by workmill, so their ids and upload URLs are cached too.

GitHub's limits are met head on (docs/reference.md "GitHub mode"): uploads
stream from disk and anything of 2 GiB or more is refused before it starts; an
upload that failed half-way (GitHub's REST docs: a 502 can leave a "starter"
asset that "can be safely deleted") is deleted and retried at once, since a
half-uploaded asset never wins the name; a release that is immutable (the
repository setting "release immutability") is a clear error, not a stream of
422s; a release never has more than 1,000 assets.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from workmill.errors import NotFound, StateError
from workmill.github._client import OCTET, GithubClient, GithubError, GithubNotFound
from workmill.github._config import GithubSettings, github_settings, open_client
from workmill.state.releases import (
    AssetExists,
    ReleaseStore,
    check_asset_name,
    check_asset_size,
)

RELEASE_BODY = "Managed by workmill. Do not edit or delete its assets by hand."
MAX_RELEASE_ASSETS = 1000  # GitHub: "each release ... up to 1000 assets"
UPLOAD_BLOCK = 1 << 20  # bytes read from disk per body chunk
STARTER_RETRIES = 3  # delete-and-retry rounds for half-finished uploads holding a name
IMMUTABLE = (
    "release {tag!r} of {repo} is immutable (repository setting 'Enable release "
    "immutability'): no asset can be added or deleted; workmill keeps its billing "
    "state and work-order artifacts in releases it adds to, so turn the setting off "
    "for this repository"
)


@dataclass(frozen=True)
class _Release:
    id: int
    upload_url: str  # without the {?name,label} template part
    immutable: bool = False


def _file_blocks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while block := fh.read(UPLOAD_BLOCK):
            yield block


class GithubReleaseStore(ReleaseStore):
    """Tags are releases of ``repository``; assets are release assets."""

    def __init__(self, client: GithubClient, repository: str) -> None:
        self.client = client
        self.repository = repository
        self._base = f"repos/{repository}"
        self._lock = threading.Lock()
        self._releases: dict[str, _Release] = {}
        self._assets: dict[str, dict[str, int]] = {}

    @classmethod
    def from_settings(cls, settings: GithubSettings) -> GithubReleaseStore:
        return cls(open_client(settings), settings.repository)

    @classmethod
    def from_repo(cls, repo) -> GithubReleaseStore:
        """The store for a PlatformRepo whose workmill.yml says ``store: github``."""
        return cls.from_settings(github_settings(repo))

    def __repr__(self) -> str:
        return f"GithubReleaseStore({self.repository!r})"

    # ------------------------------------------------------------ releases
    def _remember(self, tag: str, body: dict) -> _Release:
        rel = _Release(
            int(body["id"]), str(body["upload_url"]).split("{", 1)[0], bool(body.get("immutable"))
        )
        with self._lock:
            self._releases[tag] = rel
        return rel

    def _release(self, tag: str) -> _Release | None:
        check_asset_name(tag)
        with self._lock:
            cached = self._releases.get(tag)
        if cached is not None:
            return cached
        try:
            resp = self.client.request("GET", f"{self._base}/releases/tags/{quote(tag, safe='')}")
        except GithubNotFound:
            return None
        return self._remember(tag, resp.json())

    def _require(self, tag: str) -> _Release:
        rel = self._release(tag)
        if rel is None:
            raise NotFound(f"release tag {tag!r} does not exist in {self.repository}")
        return rel

    def tag_exists(self, tag: str) -> bool:
        return self._release(tag) is not None

    def list_tags(self) -> list[str]:
        """Every published release tag; past GitHub's 10,000-item listing cap
        ``GithubListingCapped`` says so (callers look tags up directly instead)."""
        tags = {
            str(r["tag_name"])
            for r in self.client.paginate(f"{self._base}/releases")
            if not r.get("draft")
        }
        return sorted(tags)

    def create_tag(self, tag: str) -> None:
        if self._release(tag) is not None:
            return
        payload = {
            "tag_name": tag,
            "name": tag,
            "body": RELEASE_BODY,
            "draft": False,
            "prerelease": False,
            "make_latest": "false",
        }
        sent = self.client.send("POST", f"{self._base}/releases", json=payload)
        resp = sent.response
        if resp.status_code == 422:
            try:
                self.client.raise_for("POST", resp)
            except GithubError as exc:
                # a racer (or our own retried request) created it first: that is success
                if exc.has_code("already_exists") and self._release(tag) is not None:
                    return
                raise StateError(str(exc)) from None
        self.client.raise_for("POST", resp)
        self._remember(tag, resp.json())

    # ------------------------------------------------------------ assets
    def _listing(self, tag: str) -> list[dict]:
        rel = self._require(tag)
        return list(self.client.paginate(f"{self._base}/releases/{rel.id}/assets"))

    def list_assets(self, tag: str) -> list[str]:
        complete = {
            str(a["name"]): int(a["id"])
            for a in self._listing(tag)
            if a.get("state", "uploaded") == "uploaded"
        }
        with self._lock:
            self._assets[tag] = dict(complete)
        return sorted(complete)

    def _asset_id(self, tag: str, name: str, *, refresh: bool) -> int | None:
        with self._lock:
            known = self._assets.get(tag, {}).get(name)
        if known is not None and not refresh:
            return known
        self.list_assets(tag)
        with self._lock:
            return self._assets.get(tag, {}).get(name)

    def _forget(self, tag: str, name: str) -> None:
        with self._lock:
            self._assets.get(tag, {}).pop(name, None)

    def read_asset(self, tag: str, name: str) -> bytes:
        check_asset_name(name)
        for refresh in (False, True):
            asset_id = self._asset_id(tag, name, refresh=refresh)
            if asset_id is None:
                break
            try:
                return self.client.download(f"{self._base}/releases/assets/{asset_id}")
            except GithubNotFound:
                self._forget(tag, name)  # deleted (and perhaps re-created) since we listed
        raise NotFound(f"asset {name!r} not found in release {tag!r}")

    def create_asset(self, tag: str, name: str, data: bytes) -> None:
        check_asset_size(name, len(data))
        self._create(tag, name, len(data), lambda: iter((data,)), lambda: data)

    def create_asset_from_file(self, tag: str, name: str, path: Path) -> None:
        """Upload ``path`` in 1 MiB blocks (never whole in memory); refused at 2 GiB."""
        path = Path(path)
        size = check_asset_size(name, path.stat().st_size)
        self._create(tag, name, size, lambda: _file_blocks(path), path.read_bytes)

    def _create(self, tag: str, name: str, size: int, blocks, whole) -> None:
        """Create-if-absent upload; ``blocks()`` makes a fresh body, ``whole()`` the bytes."""
        check_asset_name(name)
        rel = self._writable(tag)
        for _round in range(STARTER_RETRIES + 1):
            sent = self.client.send(
                "POST",
                rel.upload_url,
                params={"name": name},
                stream=blocks,
                headers={"Content-Type": OCTET, "Content-Length": str(size)},
            )
            resp = sent.response
            if resp.status_code == 201:
                self._uploaded(tag, name, resp.json())
                return
            exists = self._upload_refused(tag, resp)
            if sent.ambiguous and exists and self._same_content(tag, name, whole()):
                return  # an earlier attempt of ours landed before its response was lost
            if not self._remove_starter(tag, name):
                if exists:
                    raise AssetExists(f"asset {name!r} already exists in release {tag!r}")
                self.client.raise_for("POST", resp)
        raise StateError(
            f"asset {name!r} of {tag!r}: uploads keep failing half-way (GitHub left an "
            f"unfinished asset {STARTER_RETRIES} times); try again later"
        )

    def _writable(self, tag: str) -> _Release:
        rel = self._require(tag)
        if rel.immutable:
            raise StateError(IMMUTABLE.format(tag=tag, repo=self.repository))
        return rel

    def _uploaded(self, tag: str, name: str, body: dict) -> None:
        if body.get("name") != name:
            raise StateError(f"GitHub stored asset {name!r} of {tag!r} as {body.get('name')!r}")
        with self._lock:
            self._assets.setdefault(tag, {})[name] = int(body["id"])

    def _upload_refused(self, tag: str, resp) -> bool:
        """True for 422 ``already_exists``; a clear error for the other refusals GitHub gives."""
        if resp.status_code in (201,) or resp.status_code >= 500:
            return False
        try:
            self.client.raise_for("POST", resp)
        except GithubError as exc:
            if exc.has_code("already_exists"):
                return True
            text = str(exc).lower()
            if "immutable" in text:
                raise StateError(IMMUTABLE.format(tag=tag, repo=self.repository)) from None
            if exc.status == 422 and self._asset_count(tag) >= MAX_RELEASE_ASSETS:
                raise StateError(
                    f"release {tag!r} holds GitHub's maximum of {MAX_RELEASE_ASSETS} assets"
                ) from None
            raise StateError(str(exc)) from None
        return False

    def _asset_count(self, tag: str) -> int:
        try:
            return len(self._listing(tag))
        except (GithubError, NotFound):
            return 0

    def _same_content(self, tag: str, name: str, data: bytes) -> bool:
        try:
            return self.read_asset(tag, name) == data
        except NotFound:
            return False

    def _remove_starter(self, tag: str, name: str) -> bool:
        """Delete an unfinished upload (``state`` not ``uploaded``) holding ``name``.

        GitHub documents that a 502 during an upload can leave such a "starter"
        asset, that it can be safely deleted, and that it blocks the name until
        then. It is deleted at once rather than waited out: an unfinished
        upload never wins the name, so a racer whose upload we cut short simply
        meets ``already_exists`` on its retry and loses, as it would have.
        """
        for a in self._listing(tag):
            if a.get("name") == name and a.get("state", "uploaded") != "uploaded":
                self._delete_id(int(a["id"]))
                return True
        return False

    def remote_ids(self, tag: str, names: list[str]) -> tuple[str, dict[str, str]]:
        """GitHub's release id and asset ids (for the id maps); "" for what is not there."""
        try:
            rel = self._release(tag)
            if rel is None:
                return "", {n: "" for n in names}
            with self._lock:
                known = dict(self._assets.get(tag, {}))
            if any(n not in known for n in names):
                self.list_assets(tag)
                with self._lock:
                    known = dict(self._assets.get(tag, {}))
        except (GithubError, NotFound):
            return "", {n: "" for n in names}
        return str(rel.id), {n: str(known[n]) if n in known else "" for n in names}

    def _delete_id(self, asset_id: int) -> None:
        with contextlib.suppress(GithubNotFound):  # already gone: the goal is reached
            self.client.request("DELETE", f"{self._base}/releases/assets/{asset_id}")

    def delete_asset(self, tag: str, name: str) -> None:
        check_asset_name(name)
        if not self.tag_exists(tag):
            return
        asset_id = self._asset_id(tag, name, refresh=False)
        if asset_id is None:
            return
        self._delete_id(asset_id)
        self._forget(tag, name)

    def lock_path(self, tag: str) -> None:
        """None: there is no shared file system; BillingStore locks per machine."""
        return None
