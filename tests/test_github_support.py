"""A fake GitHub REST API on 127.0.0.1 for the github backends' tests.

It implements, with GitHub's documented request and response shapes, exactly
the endpoints workmill uses: releases by tag / list / create, release assets
list / upload (on a separate "uploads" URL from ``upload_url``) / download
(302 to a signed blob URL for ``Accept: application/octet-stream``) / delete,
and the Actions caches list / delete. Pagination is by ``Link`` header with a
deliberately small page size; faults (5xx, secondary rate limits) are
injected per request pattern. Every request is checked for the API headers
and the bearer token; a violation is recorded, never silently accepted.

GitHub's limits, as its documentation states them, each switchable by a test:
``starter_uploads`` (the next N uploads fail with 502 and leave a "starter"
asset holding the name), ``MAX_ASSETS`` per release (422), ``immutable``
(releases are immutable once published: uploads and deletes answer 422),
``LISTING_CAP`` (a listing page past 10,000 items answers 422), and
``Fault`` for 5xx and rate limits (a secondary limit has no headers).

Other endpoint families register with :meth:`FakeGithub.add_routes` (a
function ``(handler, method, path, query, body) -> (status, json, headers,
raw) | None``, called under the fake's lock before the built-in routes); the
Actions cache service lives in ``tests/fakes/actions_cache.py`` that way.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

OWNER_REPO = "acme/platform"
MAX_ASSETS = 1000  # GitHub: a release holds at most 1000 assets
LISTING_CAP = 10_000  # GitHub: a listing returns at most the first 10,000 items
TOKEN = "ghp_FAKEtoken0123456789abcdefSECRET"
# a job token with `contents: read` (and no write scope): reads work, writes answer 403
READ_TOKEN = "ghs_FAKEreadONLYtoken0123456789abcdef"


@dataclass
class Fault:
    """Answer ``status`` (with ``headers``/``body``) to the next ``times`` matching requests.

    With ``after=True`` the request is carried out first and only its response
    replaced (a lost response: the client cannot know it took effect).
    """

    method: str
    path: str  # regex searched in the path
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=lambda: {"message": "Server Error"})
    times: int = 1
    after: bool = False


class FakeGithub:
    def __init__(self, page_size: int = 2) -> None:
        self.page_size = page_size
        self.lock = threading.Lock()
        self.releases: dict[int, dict[str, Any]] = {}
        self.assets: dict[int, dict[str, Any]] = {}  # id -> asset json + "_data", "_release"
        self.caches: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self.violations: list[str] = []
        self.write_denied: list[str] = []  # writes tried with READ_TOKEN
        self.requests: list[tuple[str, str]] = []
        self.blob_auth_seen = 0
        self._next_id = 1000
        self._signatures: dict[str, int] = {}
        self.starter_uploads = 0  # the next N uploads: 502 after leaving a "starter" asset
        self.immutable = False  # repository setting "release immutability"
        self.extra_routes: list[Any] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeGithub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------ helpers for tests
    def add_routes(self, route) -> None:
        """Serve another endpoint family: ``route(handler, method, path, q, body)`` returns
        ``(status, json, headers, raw)`` or None to fall through to the built-in routes."""
        self.extra_routes.append(route)

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def add_cache(self, key: str, size: int, created: str, ref: str = "refs/heads/main") -> None:
        with self.lock:
            self.caches.append(
                {
                    "id": self.new_id(),
                    "ref": ref,
                    "key": key,
                    "version": secrets.token_hex(32),
                    "last_accessed_at": created,
                    "created_at": created,
                    "size_in_bytes": size,
                }
            )

    def stored_bytes(self) -> list[bytes]:
        with self.lock:
            return [a["_data"] for a in self.assets.values()]

    def release_by_tag(self, tag: str) -> dict[str, Any] | None:
        return next((r for r in self.releases.values() if r["tag_name"] == tag), None)

    # ------------------------------------------------------------ shapes
    def release_json(self, r: dict[str, Any]) -> dict[str, Any]:
        base = f"{self.url}/repos/{OWNER_REPO}"
        return {
            "url": f"{base}/releases/{r['id']}",
            "assets_url": f"{base}/releases/{r['id']}/assets",
            "upload_url": f"{self.url}/uploads/repos/{OWNER_REPO}/releases/{r['id']}/assets{{?name,label}}",
            "html_url": f"https://github.com/{OWNER_REPO}/releases/tag/{r['tag_name']}",
            "id": r["id"],
            "node_id": f"RE_{r['id']}",
            "tag_name": r["tag_name"],
            "target_commitish": "main",
            "name": r["name"],
            "body": r["body"],
            "draft": r["draft"],
            "prerelease": r["prerelease"],
            "created_at": "2026-11-23T12:00:00Z",
            "published_at": "2026-11-23T12:00:00Z",
            "author": {"login": "workmill-bot", "id": 1},
            "immutable": bool(r.get("immutable")),
            "assets": [
                self.asset_json(a) for a in self.assets.values() if a["_release"] == r["id"]
            ],
        }

    def immutable_refusal(self, what: str) -> tuple:
        verb = "upload assets to" if what == "upload" else "modify assets of"
        return (
            422,
            {
                "message": f"Cannot {verb} an immutable release",
                "documentation_url": "https://docs.github.com/rest/releases/assets",
            },
            None,
            None,
        )

    def upload_limit(self, rid: int, name: str, body: bytes) -> tuple | None:
        """GitHub's refusals of an upload that are not about the name (called under the lock)."""
        if self.releases[rid].get("immutable"):
            return self.immutable_refusal("upload")
        if sum(1 for a in self.assets.values() if a["_release"] == rid) >= MAX_ASSETS:
            err = {"resource": "ReleaseAsset", "code": "custom", "field": "name"}
            err["message"] = f"a release can have at most {MAX_ASSETS} assets"
            return 422, {"message": "Validation Failed", "errors": [err]}, None, None
        return None

    def asset_json(self, a: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in a.items() if not k.startswith("_")}

    # ------------------------------------------------------------ handler
    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(
                self,
                status: int,
                body: Any = None,
                headers: dict[str, str] | None = None,
                raw: bytes | None = None,
            ) -> None:
                data = (
                    raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
                )
                self.send_response(status)
                ctype = (
                    "application/octet-stream"
                    if raw is not None
                    else "application/json; charset=utf-8"
                )
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _not_found(self) -> None:
                self._send(
                    404,
                    {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"},
                )

            def _page(
                self,
                items: list[Any],
                query: dict[str, list[str]],
                path: str,
                wrap: str | None = None,
            ) -> None:
                per_page = min(int(query.get("per_page", ["30"])[0]), 100, fake.page_size)
                page = int(query.get("page", ["1"])[0])
                if (page - 1) * per_page >= LISTING_CAP:
                    self._send(
                        422,
                        {
                            "message": f"Only the first {LISTING_CAP} results are available.",
                            "documentation_url": "https://docs.github.com/rest",
                        },
                    )
                    return
                items = items[:LISTING_CAP]
                chunk = items[(page - 1) * per_page : page * per_page]
                links = []
                last = max(1, -(-len(items) // per_page))
                keep = {k: v[0] for k, v in query.items() if k not in ("page", "per_page")}

                def link(p: int, rel: str) -> str:
                    q = urlencode({**keep, "per_page": per_page, "page": p})
                    return f'<{fake.url}{path}?{q}>; rel="{rel}"'

                if page < last:
                    links += [link(page + 1, "next"), link(last, "last")]
                if page > 1:
                    links += [link(1, "first"), link(page - 1, "prev")]
                headers = {"Link": ", ".join(links)} if links else {}
                body = {"total_count": len(items), wrap: chunk} if wrap else chunk
                self._send(200, body, headers)

            def _check_api_headers(self, method: str, path: str) -> bool:
                if path.startswith(("/_blob/", "/_cache", "/twirp/")):
                    if path.startswith("/_") and self.headers.get("Authorization"):
                        fake.blob_auth_seen += 1
                    return True  # not the REST API: their own routes check their own auth
                if self.headers.get("Authorization") == f"Bearer {READ_TOKEN}":
                    if method not in ("GET", "HEAD"):
                        fake.write_denied.append(f"{method} {path}")
                        self._send(
                            403,
                            {
                                "message": "Resource not accessible by integration",
                                "documentation_url": "https://docs.github.com/rest",
                            },
                        )
                        return False
                elif self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self._send(
                        401,
                        {
                            "message": "Bad credentials",
                            "documentation_url": "https://docs.github.com/rest",
                        },
                    )
                    return False
                if self.headers.get("X-GitHub-Api-Version") != "2022-11-28":
                    fake.violations.append(f"{method} {path}: no X-GitHub-Api-Version")
                accept = self.headers.get("Accept", "")
                if accept not in ("application/vnd.github+json", "application/octet-stream"):
                    fake.violations.append(f"{method} {path}: Accept {accept!r}")
                return True

            def _fault(self, method: str, path: str, after: bool) -> Fault | None:
                with fake.lock:
                    for f in fake.faults:
                        if (
                            f.times > 0
                            and f.after == after
                            and f.method == method
                            and re.search(f.path, path)
                        ):
                            f.times -= 1
                            return f
                return None

            def _handle(self, method: str) -> None:
                parts = urlsplit(self.path)
                path, query = parts.path, parse_qs(parts.query)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fake.requests.append((method, path))
                if not self._check_api_headers(method, path):
                    return
                f = self._fault(method, path, after=False)
                if f is not None:
                    self._send(f.status, f.body, f.headers)
                    return
                after = self._fault(method, path, after=True)
                status, out, headers, raw = self._route(method, path, query, body)
                if after is not None:
                    self._send(after.status, after.body, after.headers)
                elif status == "page":
                    self._page(*out)
                else:
                    self._send(status, out, headers, raw)

            def _route(self, method: str, path: str, q: dict[str, list[str]], body: bytes):
                base = f"/repos/{OWNER_REPO}"
                nf = (
                    404,
                    {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"},
                    None,
                    None,
                )
                with fake.lock:
                    for extra in fake.extra_routes:
                        hit = extra(self, method, path, q, body)
                        if hit is not None:
                            return hit
                    if method == "GET" and path.startswith("/_blob/"):
                        aid = fake._signatures.get(q.get("sig", [""])[0])
                        if aid is None or aid not in fake.assets:
                            return 403, {"message": "signature"}, None, None
                        return 200, None, None, fake.assets[aid]["_data"]
                    if method == "GET" and path == f"{base}/releases":
                        items = [
                            fake.release_json(r)
                            for r in sorted(fake.releases.values(), key=lambda r: -r["id"])
                        ]
                        return self._defer_page(items, q, path, None)
                    if method == "POST" and path == f"{base}/releases":
                        data = json.loads(body or b"{}")
                        tag = data.get("tag_name")
                        if not tag:
                            return (
                                422,
                                {
                                    "message": "Validation Failed",
                                    "errors": [
                                        {
                                            "resource": "Release",
                                            "code": "missing_field",
                                            "field": "tag_name",
                                        }
                                    ],
                                },
                                None,
                                None,
                            )
                        if fake.release_by_tag(tag):
                            return (
                                422,
                                {
                                    "message": "Validation Failed",
                                    "errors": [
                                        {
                                            "resource": "Release",
                                            "code": "already_exists",
                                            "field": "tag_name",
                                        }
                                    ],
                                },
                                None,
                                None,
                            )
                        if data.get("make_latest") not in (None, "true", "false", "legacy"):
                            return (
                                422,
                                {
                                    "message": "Validation Failed",
                                    "errors": [
                                        {
                                            "resource": "Release",
                                            "code": "invalid",
                                            "field": "make_latest",
                                        }
                                    ],
                                },
                                None,
                                None,
                            )
                        r = {
                            "id": fake.new_id(),
                            "tag_name": tag,
                            "name": data.get("name") or tag,
                            "body": data.get("body") or "",
                            "draft": bool(data.get("draft")),
                            "prerelease": bool(data.get("prerelease")),
                            "make_latest": data.get("make_latest"),
                            "immutable": fake.immutable and not data.get("draft"),
                        }
                        fake.releases[r["id"]] = r
                        return 201, fake.release_json(r), None, None
                    m = re.fullmatch(rf"{base}/releases/tags/([^/]+)", path)
                    if method == "GET" and m:
                        r = fake.release_by_tag(m.group(1))
                        if r is None or r["draft"]:  # drafts are not found by tag
                            return nf
                        return 200, fake.release_json(r), None, None
                    m = re.fullmatch(rf"{base}/releases/(\d+)/assets", path)
                    if method == "GET" and m:
                        rid = int(m.group(1))
                        if rid not in fake.releases:
                            return nf
                        items = [
                            fake.asset_json(a) for a in fake.assets.values() if a["_release"] == rid
                        ]
                        return self._defer_page(items, q, path, None)
                    m = re.fullmatch(rf"/uploads{base}/releases/(\d+)/assets", path)
                    if method == "POST" and m:
                        rid = int(m.group(1))
                        if rid not in fake.releases:
                            return nf
                        name = q.get("name", [""])[0]
                        limit = fake.upload_limit(rid, name, body)
                        if limit is not None:
                            return limit
                        if not self.headers.get("Content-Type"):
                            return (
                                422,
                                {
                                    "message": "Validation Failed",
                                    "errors": [
                                        {
                                            "resource": "ReleaseAsset",
                                            "code": "missing_field",
                                            "field": "content_type",
                                        }
                                    ],
                                },
                                None,
                                None,
                            )
                        if any(
                            a["name"] == name and a["_release"] == rid for a in fake.assets.values()
                        ):
                            return (
                                422,
                                {
                                    "message": "Validation Failed",
                                    "errors": [
                                        {
                                            "resource": "ReleaseAsset",
                                            "code": "already_exists",
                                            "field": "name",
                                        }
                                    ],
                                },
                                None,
                                None,
                            )
                        aid = fake.new_id()
                        a = {
                            "url": f"{fake.url}{base}/releases/assets/{aid}",
                            "browser_download_url": f"https://github.com/{OWNER_REPO}/releases/download/x/{name}",
                            "id": aid,
                            "node_id": f"RA_{aid}",
                            "name": name,
                            "label": "",
                            "state": "uploaded",
                            "content_type": self.headers.get("Content-Type"),
                            "size": len(body),
                            "download_count": 0,
                            "created_at": "2026-11-23T12:00:00Z",
                            "updated_at": "2026-11-23T12:00:00Z",
                            "uploader": {"login": "workmill-bot", "id": 1},
                            "_data": body,
                            "_release": rid,
                        }
                        fake.assets[aid] = a
                        if fake.starter_uploads > 0:  # the upload breaks half-way
                            fake.starter_uploads -= 1
                            a.update(state="starter", size=0, _data=b"")
                            return 502, {"message": "Server Error"}, None, None
                        return 201, fake.asset_json(a), None, None
                    m = re.fullmatch(rf"{base}/releases/assets/(\d+)", path)
                    if m:
                        aid = int(m.group(1))
                        if aid not in fake.assets:
                            return nf
                        if method == "DELETE":
                            if fake.releases[fake.assets[aid]["_release"]].get("immutable"):
                                return fake.immutable_refusal("delete")
                            del fake.assets[aid]
                            return 204, None, None, None
                        if method == "GET":
                            if self.headers.get("Accept") == "application/octet-stream":
                                sig = secrets.token_hex(8)
                                fake._signatures[sig] = aid
                                return (
                                    302,
                                    None,
                                    {"Location": f"{fake.url}/_blob/{aid}?sig={sig}"},
                                    None,
                                )
                            return 200, fake.asset_json(fake.assets[aid]), None, None
                    if path == f"{base}/actions/caches":
                        if method == "GET":
                            items = sorted(
                                fake.caches, key=lambda c: c["last_accessed_at"], reverse=True
                            )
                            return self._defer_page(items, q, path, "actions_caches")
                        if method == "DELETE":
                            key = q.get("key", [None])[0]
                            if key is None:
                                return 422, {"message": "Validation Failed"}, None, None
                            gone = [c for c in fake.caches if c["key"] == key]
                            if not gone:
                                return nf
                            fake.caches = [c for c in fake.caches if c["key"] != key]
                            return (
                                200,
                                {"total_count": len(gone), "actions_caches": gone},
                                None,
                                None,
                            )
                return nf

            def _defer_page(self, items, q, path, wrap):
                return ("page", (items, q, path, wrap), None, None)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

            def do_PUT(self) -> None:
                self._handle("PUT")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

        return Handler


def github_workmill_yml(url: str, extra: str = "") -> str:
    return (
        f"store: github\ncache_backend: github\ngithub:\n  repository: {OWNER_REPO}\n"
        f"  api_url: {url}\n{extra}"
    )


def test_fake_github__rejects_a_request_without_the_token():
    import httpx

    with FakeGithub() as fake:
        r = httpx.get(f"{fake.url}/repos/{OWNER_REPO}/releases")
        assert r.status_code == 401
        assert r.json()["message"] == "Bad credentials"


# ------------------------------------------------------------------ git data and pull requests
# The endpoints `workmill pin --pull-request` uses (docs.github.com/rest/git and /rest/pulls):
# refs, commits, trees and pulls, with GitHub's 422 for a ref that already exists.


class GitData:
    """Refs, commits, trees and pull requests of the fake repository (registers itself with ``add_routes``)."""

    def __init__(self, fake: FakeGithub, base_branch: str = "dev") -> None:
        self.fake = fake
        self.refs: dict[str, str] = {}
        self.commits: dict[str, dict[str, Any]] = {}
        self.trees: dict[str, dict[str, str]] = {}
        self.pulls: list[dict[str, Any]] = []
        root = self._new_tree({})
        self.refs[f"heads/{base_branch}"] = self._new_commit("initial", root, [])
        fake.add_routes(self)

    def _sha(self) -> str:
        return secrets.token_hex(20)

    def _new_tree(self, files: dict[str, str]) -> str:
        sha = self._sha()
        self.trees[sha] = dict(files)
        return sha

    def _new_commit(self, message: str, tree: str, parents: list[str]) -> str:
        sha = self._sha()
        self.commits[sha] = {"message": message, "tree": tree, "parents": parents}
        return sha

    def add_commit(self, sha: str, files: dict[str, str]) -> None:
        """Make ``sha`` (e.g. the local HEAD a workflow computed from) known to the fake."""
        self.commits[sha] = {"message": "local", "tree": self._new_tree(files), "parents": []}

    def files_at(self, ref: str) -> dict[str, str]:
        return self.trees[self.commits[self.refs[ref]]["tree"]]

    def __call__(self, handler: Any, method: str, path: str, q: dict[str, list[str]], body: bytes):
        base = f"/repos/{OWNER_REPO}"
        if not path.startswith(base + "/git/") and not path.startswith(base + "/pulls"):
            return None
        rest = path[len(base) + 1 :]
        data = json.loads(body or b"{}")
        invalid = (422, {"message": "Validation Failed"}, None, None)
        m = re.fullmatch(r"git/commits/([0-9a-f]{40})", rest)
        if method == "GET" and m:
            c = self.commits.get(m.group(1))
            if c is None:
                return (404, {"message": "Not Found"}, None, None)
            return (
                200,
                {"sha": m.group(1), "tree": {"sha": c["tree"]}, "message": c["message"]},
                None,
                None,
            )
        if method == "POST" and rest == "git/trees":
            if data.get("base_tree") not in self.trees:
                return invalid
            files = dict(self.trees[data["base_tree"]])
            for e in data.get("tree", []):
                if e.get("type") != "blob" or e.get("mode") != "100644" or "content" not in e:
                    return invalid
                files[e["path"]] = e["content"]
            return (201, {"sha": self._new_tree(files)}, None, None)
        if method == "POST" and rest == "git/commits":
            if data.get("tree") not in self.trees or not all(
                p in self.commits for p in data.get("parents", [])
            ):
                return invalid
            sha = self._new_commit(data.get("message", ""), data["tree"], data["parents"])
            return (201, {"sha": sha}, None, None)
        if method == "POST" and rest == "git/refs":
            ref = str(data.get("ref", ""))
            if not ref.startswith("refs/heads/") or data.get("sha") not in self.commits:
                return invalid
            if ref[5:] in self.refs:
                return (422, {"message": "Reference already exists"}, None, None)
            self.refs[ref[5:]] = data["sha"]
            return (201, {"ref": ref, "object": {"sha": data["sha"]}}, None, None)
        m = re.fullmatch(r"git/refs/(heads/.+)", rest)
        if method == "PATCH" and m:
            if m.group(1) not in self.refs or data.get("sha") not in self.commits:
                return invalid
            self.refs[m.group(1)] = data["sha"]
            return (200, {"ref": f"refs/{m.group(1)}", "object": {"sha": data["sha"]}}, None, None)
        if rest == "pulls" and method == "GET":
            head = q.get("head", [""])[0].split(":", 1)[-1]
            found = [p for p in self.pulls if p["head"]["ref"] == head and p["state"] == "open"]
            return (200, found, None, None)
        if rest == "pulls" and method == "POST":
            head, base_ref = data.get("head", ""), data.get("base", "")
            if f"heads/{head}" not in self.refs or f"heads/{base_ref}" not in self.refs:
                return invalid
            if any(p["head"]["ref"] == head and p["state"] == "open" for p in self.pulls):
                return invalid  # GitHub: "A pull request already exists"
            n = len(self.pulls) + 1
            pr = {
                "number": n,
                "state": "open",
                "title": data.get("title", ""),
                "body": data.get("body", ""),
                "head": {"ref": head, "sha": self.refs[f"heads/{head}"]},
                "base": {"ref": base_ref},
                "html_url": f"https://github.com/{OWNER_REPO}/pull/{n}",
            }
            self.pulls.append(pr)
            return (201, pr, None, None)
        return None
