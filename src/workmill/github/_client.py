"""A small GitHub REST client on httpx: retries, rate limits, pagination, masked errors.

Only what the release store and the cache backend need. Every failure becomes a
:mod:`workmill.errors` subclass whose message names the request and GitHub's
own message, with the token masked; the token lives in one private attribute
and one request header, never in a URL, a log line or an exception.
"""

from __future__ import annotations

import email.utils
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from workmill.errors import NotFound, WorkmillError

API_VERSION = "2022-11-28"
JSON_ACCEPT = "application/vnd.github+json"
OCTET = "application/octet-stream"
RETRY_STATUSES = frozenset({500, 502, 503, 504})
LISTING_CAP = 10_000  # GitHub returns at most this many items of one listing
SECONDARY_FIRST_WAIT_S = 60.0  # GitHub: "wait at least one minute", then longer each time
_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="([^"]+)"')


class GithubError(WorkmillError):
    """A GitHub API request failed (after retries); the message names it and why."""

    def __init__(self, message: str, status: int | None = None, errors: list | None = None):
        super().__init__(message)
        self.status = status
        self.errors = errors or []

    def has_code(self, code: str) -> bool:
        """True when GitHub's ``errors`` list carries ``code`` (e.g. ``already_exists``)."""
        return any(isinstance(e, dict) and e.get("code") == code for e in self.errors)


class GithubAuthError(GithubError):
    """No token, a token GitHub rejects (401), or one that lacks a permission (403)."""


class GithubRateLimited(GithubError):
    """Rate-limited for longer than this client is willing to wait."""


class GithubListingCapped(GithubError):
    """A listing reached GitHub's 10,000-item cap: what lies beyond it cannot be listed."""


class GithubNotFound(NotFound):
    """404 from GitHub: the repository, release or asset does not exist (or is not visible)."""


@dataclass(frozen=True)
class Sent:
    """A final response, and whether an earlier attempt may have taken effect anyway.

    ``ambiguous`` is set when a non-idempotent request was retried after a
    response (5xx) or a connection failure that does not prove it was not
    applied; a 422 ``already_exists`` that follows may then be our own write.
    """

    response: httpx.Response
    ambiguous: bool


class GithubClient:
    """Synchronous, thread-safe (one httpx.Client) GitHub REST client."""

    def __init__(
        self,
        token: str,
        api_url: str = "https://api.github.com",
        *,
        timeout: float = 30.0,
        max_attempts: int = 5,
        backoff_s: float = 1.0,
        max_wait_s: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not token:
            raise GithubAuthError("no GitHub token: set GH_TOKEN or GITHUB_TOKEN")
        self.__token = token
        self.api_url = api_url.rstrip("/") + "/"
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_wait_s = max_wait_s
        self._sleep = sleep
        self._secondary_lock = threading.Lock()
        self._secondary_hits = 0  # consecutive header-less secondary limits (exponential wait)
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            follow_redirects=False,
            transport=transport,
            headers={"User-Agent": "workmill", "X-GitHub-Api-Version": API_VERSION},
        )

    def __repr__(self) -> str:
        return f"GithubClient({self.api_url!r}, token=***)"

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------ masking
    def mask(self, text: str) -> str:
        """``text`` with the token (and any bearer credential) replaced by ``***``."""
        text = text.replace(self.__token, "***")
        return re.sub(r"(?i)(bearer|token)\s+[A-Za-z0-9_.\-]{8,}", r"\1 ***", text)

    # ------------------------------------------------------------ requests
    def url(self, path_or_url: str) -> str:
        return (
            path_or_url if "://" in path_or_url else urljoin(self.api_url, path_or_url.lstrip("/"))
        )

    def _trusted(self, url: str) -> bool:
        """The token goes only to the API host and GitHub's own upload URLs."""
        api, target = urlsplit(self.api_url), urlsplit(url)
        if (target.scheme, target.netloc) == (api.scheme, api.netloc):
            return True
        return target.scheme == "https" and target.hostname in {"uploads.github.com"}

    def send(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        stream: Callable[[], Iterable[bytes]] | None = None,
        headers: Mapping[str, str] | None = None,
        accept: str = JSON_ACCEPT,
        authorize: bool = True,
    ) -> Sent:
        """One request with retries on 5xx, connection failures and rate limits.

        ``stream`` makes a fresh body iterator for every attempt (a file read in
        blocks), so an upload is never held in memory; the caller sets its
        ``Content-Length``.
        """
        url = self.url(path_or_url)
        hdrs = {"Accept": accept, **(headers or {})}
        if authorize:
            if not self._trusted(url):
                raise GithubError(f"refusing to send the token to {urlsplit(url).netloc}")
            hdrs["Authorization"] = f"Bearer {self.__token}"
        idempotent = method.upper() in {"GET", "HEAD", "DELETE", "PUT"}
        ambiguous = False
        what = f"{method.upper()} {urlsplit(url).path}"
        for attempt in range(1, self.max_attempts + 1):
            last = attempt == self.max_attempts
            try:
                body = stream() if stream is not None else content
                resp = self._http.request(
                    method, url, params=params, json=json, content=body, headers=hdrs
                )
            except httpx.TransportError as exc:
                if not isinstance(exc, httpx.ConnectError) and not idempotent:
                    ambiguous = True
                if last:
                    raise GithubError(
                        self.mask(f"GitHub API {what}: {type(exc).__name__}: {exc}")
                    ) from None
                self._sleep(self._backoff(attempt))
                continue
            wait = self._rate_limit_wait(resp)
            if wait is not None:
                if wait > self.max_wait_s or last:
                    resp.read()
                    raise GithubRateLimited(
                        self._message(what, resp, f"rate limited; retry in {wait:.0f}s"),
                        resp.status_code,
                    )
                self._sleep(wait)
                continue
            self._secondary_done(resp)
            if resp.status_code in RETRY_STATUSES and not last:
                if not idempotent:
                    ambiguous = True
                self._sleep(self._backoff(attempt))
                continue
            return Sent(resp, ambiguous)
        raise AssertionError("unreachable")  # pragma: no cover

    def request(self, method: str, path_or_url: str, **kw: Any) -> httpx.Response:
        """``send`` and raise a translated error for any status >= 300."""
        resp = self.send(method, path_or_url, **kw).response
        self.raise_for(method, resp)
        return resp

    def raise_for(self, method: str, resp: httpx.Response) -> None:
        """Translate a failed response into the workmill error tree."""
        code = resp.status_code
        if code < 300:
            return
        what = f"{method.upper()} {resp.request.url.path}"
        body = _json(resp)
        errors = body.get("errors") if isinstance(body, dict) else None
        errors = errors if isinstance(errors, list) else []
        message = self._message(what, resp)
        if code == 404:
            raise GithubNotFound(message)
        if code == 401:
            raise GithubAuthError(message + " (check GH_TOKEN / GITHUB_TOKEN)", code)
        if code == 403:
            raise GithubAuthError(
                message + " (the token lacks a permission: contents: write for releases, "
                "actions: write for caches)",
                code,
            )
        raise GithubError(message, code, errors)

    def _message(self, what: str, resp: httpx.Response, extra: str = "") -> str:
        body = _json(resp)
        text = body.get("message") if isinstance(body, dict) else None
        if not isinstance(text, str):
            text = resp.reason_phrase
        errs = body.get("errors") if isinstance(body, dict) else None
        if isinstance(errs, list) and errs:
            codes = ", ".join(
                f"{e.get('field', '-')}: {e.get('code', '?')}" for e in errs if isinstance(e, dict)
            )
            text = f"{text} ({codes})"
        msg = f"GitHub API {what}: {resp.status_code} {text}"
        return self.mask(f"{msg}; {extra}" if extra else msg)

    # ------------------------------------------------------------ waiting
    def _backoff(self, attempt: int) -> float:
        return min(30.0, self.backoff_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)

    def _rate_limit_wait(self, resp: httpx.Response) -> float | None:
        """Seconds to wait before retrying, or None when this is not a rate limit.

        As GitHub documents ("Rate limits for the REST API", best practices):
        honour ``retry-after``; else, with ``x-ratelimit-remaining: 0``, wait
        until ``x-ratelimit-reset`` (epoch seconds); else (a secondary limit
        without headers: a 429, or a 403 that says "rate limit") wait at least a
        minute, and exponentially longer while the limit persists.
        """
        if resp.status_code not in (403, 429):
            return None
        h = resp.headers
        retry_after = h.get("retry-after")
        if retry_after is not None:
            return _retry_after_seconds(retry_after)
        if h.get("x-ratelimit-remaining") == "0" and h.get("x-ratelimit-reset", "").isdigit():
            return max(0.0, int(h["x-ratelimit-reset"]) - time.time()) + 1.0
        if resp.status_code != 429:
            resp.read()
            if "rate limit" not in resp.text.lower():
                return None
        with self._secondary_lock:
            self._secondary_hits += 1
            return SECONDARY_FIRST_WAIT_S * 2 ** (self._secondary_hits - 1)

    def _secondary_done(self, resp: httpx.Response) -> None:
        """A response that is not a rate limit ends a run of secondary limits."""
        if self._secondary_hits:
            with self._secondary_lock:
                self._secondary_hits = 0

    # ------------------------------------------------------------ helpers
    def paginate(
        self, path: str, *, params: Mapping[str, Any] | None = None, key: str | None = None
    ) -> Iterator[Any]:
        """Every item of a paginated list, following ``Link: rel="next"`` URLs.

        ``key`` names the array inside an object response (``actions_caches``).
        """
        url: str | None = path
        query: Mapping[str, Any] | None = {"per_page": 100, **(params or {})}
        seen = 0
        while url is not None:
            resp = self.send("GET", url, params=query).response
            if resp.status_code == 422 and seen >= LISTING_CAP - 100:
                raise self._capped(path)
            self.raise_for("GET", resp)
            body = _json(resp)
            items = body.get(key) if key and isinstance(body, dict) else body
            if not isinstance(items, list):
                raise GithubError(
                    f"GitHub API GET {urlsplit(self.url(url)).path}: unexpected response shape"
                )
            yield from items
            seen += len(items)
            url = next_link(resp.headers.get("link", ""))
            if seen >= LISTING_CAP:  # GitHub stops here, silently: the rest is unlisted
                raise self._capped(path)
            query = None  # the next link carries the query
            if url is not None and not self._trusted(url):
                raise GithubError(f"pagination link leaves the API host: {urlsplit(url).netloc}")

    def _capped(self, path: str) -> GithubListingCapped:
        return GithubListingCapped(
            f"GitHub API GET {urlsplit(self.url(path)).path}: GitHub lists at most "
            f"{LISTING_CAP:,} items and this listing reached that; look items up by name instead "
            "(e.g. workmill release download TAG)"
        )

    def download(self, path: str) -> bytes:
        """GET with ``Accept: application/octet-stream``, following a redirect without the token.

        GitHub answers either 200 with the bytes or 302 to a signed storage URL;
        the signed URL needs no credential, so none is sent there.
        """
        resp = self.send("GET", path, accept=OCTET).response
        hops = 0
        while resp.status_code in (301, 302, 303, 307, 308):
            hops += 1
            location = resp.headers.get("location")
            if not location or hops > 5:
                raise GithubError(f"GitHub API GET {urlsplit(self.url(path)).path}: bad redirect")
            target = urljoin(str(resp.request.url), location)
            resp = self.send("GET", target, accept=OCTET, authorize=False).response
        self.raise_for("GET", resp)
        return resp.content


def next_link(header: str) -> str | None:
    """The ``rel="next"`` URL of a Link header, if any."""
    for url, rel in _LINK.findall(header):
        if "next" in rel.split():
            return url
    return None


def _retry_after_seconds(value: str) -> float:
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 60.0
    return max(0.0, when.timestamp() - time.time())


def _json(resp: httpx.Response) -> Any:
    try:
        resp.read()
        return resp.json()
    except ValueError:
        return None
