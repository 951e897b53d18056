"""Where a platform repo's GitHub backends point: repository, API root and token.

The repository comes from ``workmill.yml`` ``github.repository`` or
``$GITHUB_REPOSITORY``; the token only from ``GH_TOKEN`` / ``GITHUB_TOKEN``
(it is read here and handed to the client, never stored anywhere else).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from workmill.errors import SpecError
from workmill.github._client import GithubAuthError, GithubClient

TOKEN_VARS = ("GH_TOKEN", "GITHUB_TOKEN")
_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}")


@dataclass(frozen=True)
class GithubSettings:
    repository: str  # owner/name
    api_url: str
    token: str = field(repr=False)

    @property
    def repo_path(self) -> str:
        return f"repos/{self.repository}"


def github_settings(repo, env: dict[str, str] | None = None) -> GithubSettings:
    """Resolve the settings for ``repo`` (a PlatformRepo); clear errors for what is missing."""
    env = dict(os.environ if env is None else env)
    cfg = repo.config.github
    repository = cfg.repository or env.get("GITHUB_REPOSITORY", "")
    if not repository:
        raise SpecError.at(
            "workmill.yml",
            "the github backends need the repository: set github.repository (owner/name) "
            "or GITHUB_REPOSITORY",
            field="github.repository",
        )
    if not _REPOSITORY.fullmatch(repository) or ".." in repository:
        raise SpecError.at(
            "workmill.yml",
            f"{repository!r} is not owner/name",
            field="github.repository",
        )
    if not re.match(r"https?://", cfg.api_url):
        raise SpecError.at(
            "workmill.yml", f"{cfg.api_url!r} is not an http(s) URL", field="github.api_url"
        )
    token = next((env[v] for v in TOKEN_VARS if env.get(v)), "")
    if not token:
        raise GithubAuthError(
            "store/cache_backend github needs a token: set GH_TOKEN or GITHUB_TOKEN "
            "(in a workflow: env GH_TOKEN: ${{ github.token }})"
        )
    return GithubSettings(repository, cfg.api_url, token)


def open_client(settings: GithubSettings) -> GithubClient:
    return GithubClient(settings.token, settings.api_url)
