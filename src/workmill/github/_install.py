"""The install spec the workflows use: the exact workmill that wrote them, hash-pinned.

``workmill init --github`` writes ``.github/workmill-requirements.txt``: every
distribution workmill needs (workmill itself and its dependencies, at the
versions installed here) pinned with ``==`` and the sha256 of every file the
package index offers for that version, so ``pip install --require-hashes``
on the runner installs exactly these bytes or nothing (pip's "hash-checking
mode"). The hashes come from the index's JSON API (``/pypi/NAME/VERSION/json``,
``urls[].digests.sha256``), the same data pip-compile ``--generate-hashes``
uses. A plain ``workmill init`` (no network) writes a file that pins nothing
and says so; the workflows refuse to install from it.

The one override (docs/reference.md "GitHub mode"): ``--install-from WHEEL``
pins workmill to a wheel committed in the platform repo (a fork, a build not
on the index) by that file's own sha256; its dependencies are pinned as above.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import httpx

from workmill import __version__
from workmill.errors import WorkmillError

INSTALL_FILE = ".github/workmill-requirements.txt"
INDEX_ENV = "WORKMILL_INDEX_URL"
DEFAULT_INDEX = "https://pypi.org"
UNPINNED_MARK = "# workmill: NOT PINNED"
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass(frozen=True)
class Pin:
    """One requirement line: ``target`` (``name==version`` or ``./file.whl``) and its hashes."""

    target: str
    hashes: tuple[str, ...]

    def line(self) -> str:
        hashes = "".join(f" \\\n    --hash=sha256:{h}" for h in self.hashes)
        return f"{self.target}{hashes}\n"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dependency_closure(root: str = "workmill") -> list[tuple[str, str]]:
    """(name, installed version) of ``root`` and everything it requires here, sorted."""
    seen: dict[str, str] = {}
    todo = [root]
    while todo:
        name = _canonical(todo.pop())
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise WorkmillError(f"cannot pin {name!r}: it is not installed here") from None
        seen[name] = dist.version
        for req in dist.requires or []:
            if ";" in req and not _marker_holds(req.split(";", 1)[1]):
                continue
            m = _NAME.match(req.strip())
            if m:
                todo.append(m.group(1))
    return sorted(seen.items())


def _marker_holds(marker: str) -> bool:
    """Whether an environment marker holds here; extras are never requested."""
    from packaging.markers import Marker  # pip's own marker rules

    try:
        return Marker(marker.strip()).evaluate({"extra": ""})
    except Exception:  # an unparsable marker: keep the requirement (pip would decide)
        return True


def index_hashes(client: httpx.Client, index: str, name: str, version: str) -> tuple[str, ...]:
    """sha256 of every file the index has for ``name`` ``version``."""
    url = f"{index.rstrip('/')}/pypi/{name}/{version}/json"
    try:
        resp = client.get(url)
    except httpx.HTTPError as exc:
        raise WorkmillError(f"cannot reach the package index at {index}: {exc}") from None
    if resp.status_code == 404:
        raise WorkmillError(f"{name} {version} is not on the package index {index}")
    if resp.status_code != 200:
        raise WorkmillError(f"package index {url}: HTTP {resp.status_code}")
    try:
        hashes = sorted({str(u["digests"]["sha256"]) for u in resp.json()["urls"]})
    except (ValueError, KeyError, TypeError):
        raise WorkmillError(f"package index {url}: unexpected answer") from None
    if not hashes:
        raise WorkmillError(f"{name} {version} has no files on the package index {index}")
    return tuple(hashes)


def resolve_pins(
    *, install_from: Path | None = None, root: Path | None = None, index: str | None = None
) -> list[Pin]:
    """Pins for workmill and its dependencies; ``install_from`` (inside ``root``) replaces
    workmill's own line by that wheel and its sha256."""
    index = index or os.environ.get(INDEX_ENV) or DEFAULT_INDEX
    pins: list[Pin] = []
    with httpx.Client(timeout=20.0, follow_redirects=True) as client:
        for name, version in dependency_closure():
            if name == "workmill" and install_from is not None:
                pins.append(_wheel_pin(install_from, root))
                continue
            pins.append(Pin(f"{name}=={version}", index_hashes(client, index, name, version)))
    return pins


def _wheel_pin(wheel: Path, root: Path | None) -> Pin:
    root = Path(root or ".").resolve()
    path = Path(wheel)
    path = (path if path.is_absolute() else Path.cwd() / path).resolve()
    if not path.is_file() or path.suffix != ".whl":
        raise WorkmillError(f"--install-from {wheel}: not a wheel file (.whl)")
    try:
        rel = path.relative_to(root)
    except ValueError:
        raise WorkmillError(
            f"--install-from {wheel}: the wheel must be inside the platform repo {root} "
            "(the workflows install it from their checkout)"
        ) from None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Pin(f"./{rel.as_posix()}", (digest,))


def render_requirements(pins: list[Pin]) -> str:
    head = (
        f"# Written by workmill {__version__} (workmill init --github): the exact workmill\n"
        "# these workflows were written for, and its dependencies, hash-pinned.\n"
        "# Installed with: pip install --require-hashes --no-deps -r <this file>\n"
        "# Re-pin after upgrading workmill: workmill init --github OWNER/NAME\n"
    )
    return head + "".join(p.line() for p in pins)


def unpinned_requirements() -> str:
    return (
        f"{UNPINNED_MARK} (written by workmill {__version__} without network access).\n"
        "# The workflows refuse to install from this file. Pin the exact workmill with\n"
        "#   workmill init --github OWNER/NAME                 (from the package index)\n"
        "#   workmill init --github OWNER/NAME --install-from wheels/workmill-X-py3-none-any.whl\n"
    )


def write_requirements(root: Path, text: str) -> Path:
    from workmill.fsio import atomic_write_text

    path = Path(root) / INSTALL_FILE
    atomic_write_text(path, text)
    return path
