"""The GitHub Actions workflows a platform repo runs, shipped as package data.

``workmill init`` writes them to ``.github/workflows/``; they only call the CLI,
so a workflow never does anything an operator cannot do by hand.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from workmill.fsio import atomic_write_text

WORKFLOW_NAMES = (
    "maintenance",
    "orchestrator",
    "run-module",
    "cache-prune",
    "admin-topup",
    "console-pages",
    "pr-commands",
    "pr-checks",
    "build-and-pin",
    "promote",
)
TARGET_DIR = ".github/workflows"


def workflow_templates() -> dict[str, str]:
    """``{file name: text}`` of every shipped workflow."""
    pkg = resources.files("workmill.github") / "workflows"
    return {f"{n}.yml": (pkg / f"{n}.yml").read_text(encoding="utf-8") for n in WORKFLOW_NAMES}


def write_workflows(root: Path, *, overwrite: bool = False) -> list[Path]:
    """Write the workflows under ``root/.github/workflows``; existing files are kept unless told.

    Also writes the install spec they read when there is none yet: one that pins
    nothing and says so (the workflows refuse it) until ``init --github`` pins.
    """
    from workmill.github._install import INSTALL_FILE, unpinned_requirements

    written = []
    spec = Path(root) / INSTALL_FILE
    if not spec.exists():
        atomic_write_text(spec, unpinned_requirements())
        written.append(spec)
    for name, text in workflow_templates().items():
        path = Path(root) / TARGET_DIR / name
        if path.exists() and not overwrite:
            continue
        atomic_write_text(path, text)
        written.append(path)
    return written
