"""GitHub-native backends (docs/reference.md "GitHub mode"): Releases for state and artifacts, the Actions cache.

Public API:

- :class:`GithubClient` — the REST client (retries, rate limits, pagination, masked errors)
- :class:`GithubReleaseStore` — ``ReleaseStore`` over the Releases API (``store: github``)
- :class:`GithubCacheBackend` — ``CacheBackend`` over the Actions cache REST API
  (``cache_backend: github``; list and delete only)
- :func:`github_settings` — repository, API root and token for a platform repo
- :func:`enable_github` — ``workmill init --github``: config, workflows, pinned install
- :func:`workflow_templates` / :func:`write_workflows` — the shipped workflow files
"""

from __future__ import annotations

from workmill.github._cache import GithubCacheBackend
from workmill.github._client import (
    GithubAuthError,
    GithubClient,
    GithubError,
    GithubListingCapped,
    GithubNotFound,
    GithubRateLimited,
    next_link,
)
from workmill.github._config import GithubSettings, github_settings
from workmill.github._enable import enable_github
from workmill.github._releases import GithubReleaseStore
from workmill.github._workflows import WORKFLOW_NAMES, workflow_templates, write_workflows

__all__ = [
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
