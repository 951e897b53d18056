"""Which store and cache backend a platform repo uses: the one place that picks them.

``state`` and ``cache`` define the seams (``ReleaseStore``, ``CacheBackend``)
and their local implementations; ``github`` implements them on GitHub and so
sits a floor above both. Choosing between them therefore happens here, above
all three, so no lower floor imports an upper one (docs/architecture.md
"Layout").

Two environment switches belong to running inside GitHub Actions
(docs/reference.md "GitHub mode"):

- ``WM_REQUIRE_REMOTE_STORE`` (any non-empty value but ``0``/``false``): refuse
  ``store: local`` / ``cache_backend: local``, whose files would vanish with
  the runner;
- ``WORKMILL_STAGE_RELEASES=DIR``: work-order release assets are written to
  ``DIR`` instead of uploaded (a job without a write token; a later job
  publishes them with ``workmill release publish DIR``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from workmill.errors import SpecError
from workmill.state.releases import LocalReleaseStore, ReleaseStore
from workmill.state.store import BillingStore, use_repo_checks

if TYPE_CHECKING:
    from workmill.cache.backend import CacheBackend

REQUIRE_REMOTE = "WM_REQUIRE_REMOTE_STORE"
STAGE_RELEASES = "WORKMILL_STAGE_RELEASES"


def remote_required(env: dict[str, str] | None = None) -> bool:
    value = (os.environ if env is None else env).get(REQUIRE_REMOTE, "").strip().lower()
    return value not in ("", "0", "false", "no")


def _refuse_local(field: str) -> None:
    raise SpecError.at(
        "workmill.yml",
        f"{field}: local keeps its files on this machine, and {REQUIRE_REMOTE} says this "
        "machine is throwaway (a GitHub Actions runner): set store: github and "
        "cache_backend: github (workmill init --github OWNER/NAME writes both)",
        field=field,
    )


def open_release_store(repo) -> ReleaseStore:
    """The backend ``workmill.yml`` selects (``store: local`` or ``github``)."""
    if repo.config.store == "local":
        if remote_required():
            _refuse_local("store")
        store: ReleaseStore = LocalReleaseStore(repo.local_store_dir)
    else:
        from workmill.github import GithubReleaseStore  # only `store: github` needs httpx

        store = GithubReleaseStore.from_repo(repo)
    stage = os.environ.get(STAGE_RELEASES, "").strip()
    if stage:
        from workmill.state.staging import StagingReleaseStore

        stage_dir = Path(stage)
        store = StagingReleaseStore(
            store,
            stage_dir if stage_dir.is_absolute() else Path.cwd() / stage_dir,
            keep_remote={repo.config.billing_state_tag},
        )
    return store


def open_billing_store(repo) -> BillingStore:
    """The billing state store for ``repo`` (a ``PlatformRepo``)."""
    releases = open_release_store(repo)
    tag = repo.config.billing_state_tag
    lock = releases.lock_path(tag) or repo.root / ".workmill" / "locks" / f"{tag}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    return use_repo_checks(BillingStore(releases, tag, lock), repo)


def open_cache_backend(repo) -> CacheBackend:
    """The backend workmill.yml selects (``cache_backend``)."""
    if repo.config.cache_backend == "local":
        if remote_required():
            _refuse_local("cache_backend")
        from workmill.cache.local import LocalCacheBackend

        return LocalCacheBackend(repo.local_cache_dir)
    from workmill.github import GithubCacheBackend

    return GithubCacheBackend.from_repo(repo)
