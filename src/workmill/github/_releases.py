"""``GithubReleaseStore``: the release-store seam over the GitHub Releases API.

A tag is a *published* release (not a draft: drafts cannot be fetched by tag
and have no git tag until published) created with ``make_latest: "false"`` so
the billing state and work-order releases never become the repository's
"latest" release. Assets map one to one; create-if-absent is GitHub's own
rule that an asset name is unique within a release (422 ``already_exists``).

Name → id lookups are cached per process: assets are immutable, so a cached
id is either right or gone (a 404 then triggers one fresh listing). Releases
are never deleted by workmill, so their ids and upload URLs are cached too.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from workmill.errors import NotFound, StateError
from workmill.github._client import OCTET, GithubClient, GithubError, GithubNotFound
from workmill.github._config import GithubSettings, github_settings, open_client
from workmill.state.releases import AssetExists, ReleaseStore, check_asset_name

STALE_UPLOAD = timedelta(
    minutes=10
)  # an upload not finished after this is debris (GitHub: "starter")
RELEASE_BODY = "Managed by workmill. Do not edit or delete its assets by hand."


@dataclass(frozen=True)
class _Release:
    id: int
    upload_url: str  # without the {?name,label} template part


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
        rel = _Release(int(body["id"]), str(body["upload_url"]).split("{", 1)[0])
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
        check_asset_name(name)
        rel = self._require(tag)
        for attempt in range(2):
            sent = self.client.send(
                "POST",
                rel.upload_url,
                params={"name": name},
                content=data,
                headers={"Content-Type": OCTET},
            )
            resp = sent.response
            if resp.status_code == 201:
                body = resp.json()
                if body.get("name") != name:
                    raise StateError(
                        f"GitHub stored asset {name!r} of {tag!r} as {body.get('name')!r}"
                    )
                with self._lock:
                    self._assets.setdefault(tag, {})[name] = int(body["id"])
                return
            try:
                self.client.raise_for("POST", resp)
            except GithubError as exc:
                if not exc.has_code("already_exists"):
                    raise StateError(str(exc)) from None
            if sent.ambiguous and self._same_content(tag, name, data):
                return  # an earlier attempt of ours landed before its response was lost
            if attempt == 0 and self._remove_stale_upload(tag, name):
                continue
            raise AssetExists(f"asset {name!r} already exists in release {tag!r}")

    def _same_content(self, tag: str, name: str, data: bytes) -> bool:
        try:
            return self.read_asset(tag, name) == data
        except NotFound:
            return False

    def _remove_stale_upload(self, tag: str, name: str) -> bool:
        """Delete a never-finished upload holding ``name`` (GitHub: "can be safely deleted").

        Only when it is older than ``STALE_UPLOAD``: a younger one may be a
        racer's upload in progress, and then the racer must win.
        """
        for a in self._listing(tag):
            if a.get("name") != name or a.get("state", "uploaded") == "uploaded":
                continue
            updated = str(a.get("updated_at") or a.get("created_at") or "")
            try:
                when = datetime.fromisoformat(updated.replace("Z", "+00:00"))
            except ValueError:
                return False
            if datetime.now(UTC) - when < STALE_UPLOAD:
                return False
            self._delete_id(int(a["id"]))
            return True
        return False

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
