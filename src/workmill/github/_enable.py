"""``workmill init --github OWNER/NAME``: switch a platform repo to GitHub mode.

Writes ``store: github``, ``cache_backend: github`` and ``github.repository``
into workmill.yml, the workflows, and the hash-pinned install spec of the
workmill doing the writing (``_install``). Pins are resolved before anything
is written, so a failure leaves the repo as it was. Then, when a token is at
hand, it sets the repository variable ``WORKMILL_PRUNE_DELETE=true`` (the
scheduled cache prune deletes only when it is set) and says so; otherwise it
prints the command that does.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from workmill.errors import SpecError, WorkmillError
from workmill.fsio import atomic_write_text
from workmill.github._client import GithubClient, GithubError
from workmill.github._install import Pin, render_requirements, resolve_pins, write_requirements
from workmill.github._workflows import write_workflows
from workmill.repo import CONFIG_FILE
from workmill.yamlio import dump_yaml, parse_yaml

PRUNE_VARIABLE = "WORKMILL_PRUNE_DELETE"
# GitHub mode enforces pins (the workflows pin on dev and promote to staging, main)
SUPPLY_DEFAULTS = {"require_pinned": True, "environments": ["dev", "staging", "main"]}
_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}")


@dataclass
class Enabled:
    """What ``enable_github`` wrote and what the operator still has to do."""

    written: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def check_repository(repository: str) -> str:
    if not _REPOSITORY.fullmatch(repository) or ".." in repository:
        raise SpecError.at("--github", f"{repository!r} is not OWNER/NAME", field="repository")
    return repository


def _config_text(path: Path, repository: str) -> str:
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    data = parse_yaml(text, str(path)).data if text.strip() else None
    data = data if isinstance(data, dict) else {}
    if not ({"store", "cache_backend", "github", *SUPPLY_DEFAULTS} & set(data)):
        return (
            text.rstrip("\n")
            + "\n\n# GitHub mode (workmill init --github)\nstore: github\ncache_backend: github\n"
            + f"github:\n  repository: {repository}\n"
            + "# supply chain (docs/supply-chain.md): only pinned module files run; pins are\n"
            + "# made on the first environment and promoted unchanged\n"
            + "require_pinned: true\nenvironments: [dev, staging, main]\n"
        )
    data["store"] = "github"
    data["cache_backend"] = "github"
    for key, value in SUPPLY_DEFAULTS.items():  # an operator's own choice is kept
        data.setdefault(key, value)
    gh = data.get("github") if isinstance(data.get("github"), dict) else {}
    data["github"] = {**gh, "repository": repository}
    return "# workmill platform config (rewritten by workmill init --github)\n" + dump_yaml(data)


def _set_prune_variable(repository: str, api_url: str) -> str:
    token = os.environ.get("GH_TOKEN") or os.environ.get("GITHUB_TOKEN") or ""
    command = f"gh variable set {PRUNE_VARIABLE} --body true --repo {repository}"
    if not token:
        return (
            f"set the repository variable {PRUNE_VARIABLE}=true so the nightly cache prune "
            f"deletes expired entries: {command}"
        )
    client = GithubClient(token, api_url, max_attempts=3)
    base = f"repos/{repository}/actions/variables"
    try:
        sent = client.send("POST", base, json={"name": PRUNE_VARIABLE, "value": "true"})
        if sent.response.status_code == 409:  # exists: update it
            client.request("PATCH", f"{base}/{PRUNE_VARIABLE}", json={"value": "true"})
        else:
            client.raise_for("POST", sent.response)
    except (GithubError, WorkmillError) as exc:
        return f"could not set {PRUNE_VARIABLE} ({exc}); set it yourself: {command}"
    finally:
        client.close()
    return f"set repository variable {PRUNE_VARIABLE}=true: the nightly cache prune deletes"


def enable_github(root: Path, repository: str, pins: list[Pin] | None = None) -> Enabled:
    """Switch ``root`` to GitHub mode (see the module doc); nothing is written on failure.

    ``pins`` default to :func:`resolve_pins` from the package index."""
    check_repository(repository)
    root = Path(root)
    pins = resolve_pins(root=root) if pins is None else pins
    config = root / CONFIG_FILE
    text = _config_text(config, repository)
    out = Enabled()
    atomic_write_text(config, text)
    out.written.append(config)
    out.written += write_workflows(root, overwrite=True)
    out.written.append(write_requirements(root, render_requirements(pins)))
    api_url = "https://api.github.com"
    data = parse_yaml(text, str(config)).data
    if isinstance(data, dict) and isinstance(data.get("github"), dict):
        api_url = str(data["github"].get("api_url") or api_url)
    out.notes.append(_set_prune_variable(repository, api_url))
    out.notes += [
        "keep this repository private: the billing state is as visible as its releases",
        "leave 'release immutability' off in the repository settings: workmill adds "
        "assets to its releases",
    ]
    return out
