"""The Python API: ``Dashboard(repo=..., sha=..., pr=None, client=...)``.

docs/reference.md "Status dashboard". Updates are recorded as operations and
applied to whatever the store holds when ``save()`` writes, so a concurrent
writer's stages are kept and ours are applied again if one of them erased them.
"""

from __future__ import annotations

import os
from pathlib import Path

from workmill.dashboard._model import (
    MAX_STAGES,
    STAGE_KEY,
    RunSection,
    Stage,
    State,
    Status,
    check_link,
    check_sha,
    check_stage_key,
    clip_note,
    now_stamp,
    parse_stamp,
    parse_status,
    reflects,
)
from workmill.dashboard._render import render
from workmill.dashboard._stores import DashboardStore, GithubCommentStore, LocalStore, mask_env
from workmill.errors import SpecError, UsageError
from workmill.github._client import GithubClient
from workmill.github._config import _REPOSITORY as REPOSITORY
from workmill.repo import PlatformRepo
from workmill.specs import DashboardConfig

LOCAL_DIR = ".workmill/dashboards"


class Dashboard:
    """One commit's dashboard.

    ``repo``: a :class:`PlatformRepo` (or its path) — its ``workmill.yml`` gives
    the stages, and without a ``client`` the dashboard is the local file
    ``.workmill/dashboards/<sha>.md``; or, with a ``client``, the GitHub
    repository ``owner/name``. ``client``: a :class:`GithubClient`: the
    dashboard is a comment on ``pr`` (or on the commit's open PR, else on the
    commit itself).
    """

    def __init__(
        self,
        repo: PlatformRepo | Path | str | None = None,
        sha: str = "",
        pr: int | None = None,
        client: GithubClient | None = None,
        *,
        stages: list[str] | None = None,
        store: DashboardStore | None = None,
    ) -> None:
        self.sha = check_sha(sha)
        if pr is not None and (not isinstance(pr, int) or pr < 1):
            raise UsageError(f"--pr: {pr!r} is not a pull request number")
        self.pr = pr
        platform = _platform(repo, client)
        self.stages = _stage_keys(stages, platform)
        self.store = store or _open_store(repo, platform, self.sha, pr, client)
        self.state = State(sha=self.sha, pr=pr).ordered(self.stages)
        self._ops: list[Stage] = []
        self._run: RunSection | None = None
        self._owned: GithubClient | None = None  # a client open_dashboard made, closed by close()

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()

    def __enter__(self) -> Dashboard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def where(self) -> str:
        return self.store.where

    def load(self) -> Dashboard:
        """Read the stored dashboard (nothing stored yet: every stage pending)."""
        found = self.store.read()
        self.state = (found or State(sha=self.sha, pr=self.pr)).ordered(self.stages)
        for op in self._ops:
            self.state = self.state.with_stage(op)
        if self._run is not None:
            self.state = self.state.model_copy(update={"run": self._run})
        return self

    def update_stage(
        self, key: str, status: Status | str, link: str | None = None, note: str | None = None
    ) -> Stage:
        """Set one stage (saved by :meth:`save`). GitHub's ``cancelled`` is a failure, shown so."""
        check_stage_key(key)
        if key not in self.stages:
            raise UsageError(
                f"--stage: {key!r} is not a dashboard stage (workmill.yml dashboard.stages: "
                f"{', '.join(self.stages)})"
            )
        value, word = parse_status(status)
        stage = Stage(
            key=key,
            status=value,
            link=check_link(mask_env(link) if link else None),
            note=clip_note(mask_env(note) if note else None),
            word=word,
            at=now_stamp(),
        )
        self._ops = [op for op in self._ops if op.key != key] + [stage]
        self.state = self.state.with_stage(stage)
        return stage

    def set_run(self, run: RunSection) -> None:
        """Show an orchestrator run (replaces the previous one; saved by :meth:`save`)."""
        self._run = run
        self.state = self.state.model_copy(update={"run": run})

    def save(self) -> State:
        """Write: create the dashboard, or edit it in place keeping every other writer's stages."""
        self.state = self.store.transact(self._mutate, self._check).ordered(self.stages)
        self._ops, self._run = [], None
        return self.state

    def markdown(self) -> str:
        """The body as it is (or would be) stored."""
        return render(self.state, mask_env)

    # ------------------------------------------------------------ merging
    def _mutate(self, current: State) -> State:
        state = current.ordered(self.stages)
        if state.pr is None and self.pr is not None:
            state = state.model_copy(update={"pr": self.pr})
        for op in self._ops:
            if not reflects(state, op):
                state = state.with_stage(op)
        run = self._run
        if run is not None and (
            state.run is None or parse_stamp(run.at) >= parse_stamp(state.run.at)
        ):
            state = state.model_copy(update={"run": run})
        return state

    def _check(self, stored: State) -> bool:
        if not all(reflects(stored, op) for op in self._ops):
            return False
        if any(stored.stage(k) is None for k in self.stages):
            return False
        run = self._run
        return run is None or (
            stored.run is not None and parse_stamp(stored.run.at) >= parse_stamp(run.at)
        )


def _platform(
    repo: PlatformRepo | Path | str | None, client: GithubClient | None
) -> PlatformRepo | None:
    if isinstance(repo, PlatformRepo):
        return repo
    if client is None:
        return PlatformRepo.open(repo)
    return None


def _stage_keys(stages: list[str] | None, platform: PlatformRepo | None) -> list[str]:
    if stages is None:
        stages = platform.config.dashboard.stages if platform else DashboardConfig().stages
    bad = [k for k in stages if not isinstance(k, str) or not STAGE_KEY.fullmatch(k)]
    if bad or len(stages) > MAX_STAGES or len(set(stages)) != len(stages):
        raise SpecError.at(
            "workmill.yml",
            f"at most {MAX_STAGES} distinct stage keys of lower-case letters, digits, '.', '_', '-'"
            + (f" ({bad[0]!r} is not one)" if bad else ""),
            field="dashboard.stages",
        )
    return list(stages)


def _open_store(
    repo: PlatformRepo | Path | str | None,
    platform: PlatformRepo | None,
    sha: str,
    pr: int | None,
    client: GithubClient | None,
) -> DashboardStore:
    if client is None:
        assert platform is not None
        return LocalStore(platform.root / LOCAL_DIR, sha)
    if isinstance(repo, str) and REPOSITORY.fullmatch(repo):
        return GithubCommentStore(client, repo, sha, pr)
    platform = platform or PlatformRepo.open(repo)
    repository = platform.config.github.repository or os.environ.get("GITHUB_REPOSITORY", "")
    if not REPOSITORY.fullmatch(repository):
        raise SpecError.at(
            "workmill.yml",
            "the dashboard on GitHub needs the repository: set github.repository (owner/name) "
            "or GITHUB_REPOSITORY",
            field="github.repository",
        )
    return GithubCommentStore(client, repository, sha, pr)


def open_dashboard(
    repo: PlatformRepo,
    sha: str,
    pr: int | None = None,
    env: dict[str, str] | None = None,
) -> Dashboard:
    """The dashboard a platform repo's configuration points at (``store: github`` → a comment)."""
    if repo.config.store != "github":
        return Dashboard(repo=repo, sha=sha, pr=pr)
    from workmill.github._config import github_settings

    settings = github_settings(repo, env)
    client = GithubClient(settings.token, settings.api_url)
    stages = repo.config.dashboard.stages
    board = Dashboard(repo=settings.repository, sha=sha, pr=pr, client=client, stages=stages)
    board._owned = client
    return board
