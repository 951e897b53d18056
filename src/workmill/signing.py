"""Ed25519 keys and signatures for the registry index and licences (docs/reference.md
"Registry, tiers, licences, quotas, usage").

Keys are PEM files (PKCS#8 private key, SubjectPublicKeyInfo public key) written by
``workmill keygen``. Every signature covers a *purpose* prefix as well as the
message, so a registry index signature can never be replayed as a licence and
vice versa even when one key signs both. ``cryptography`` is imported inside the
functions: commands that never sign or verify do not pay for loading it.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Any

from workmill.errors import WorkmillError
from workmill.fsio import atomic_write_bytes

PURPOSE_INDEX = b"workmill-registry-index-v1\n"
PURPOSE_LICENCE = b"workmill-licence-v1\n"
SIGNATURE_BYTES = 64
ENV_LICENCE_KEY = "WORKMILL_LICENCE_KEY"
_PEM_PRIVATE = b"-----BEGIN PRIVATE KEY-----"
_PEM_PUBLIC = b"-----BEGIN PUBLIC KEY-----"


class KeyFileError(WorkmillError):
    """A key file is missing, unreadable or not an Ed25519 key."""


class SignatureInvalid(WorkmillError):
    """A signature does not verify with the configured public key."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, what: str) -> bytes:
    """Strict base64url (no padding, only the url-safe alphabet); ValueError otherwise."""
    if not text or any(c not in _B64URL for c in text) or len(text) % 4 == 1:
        raise ValueError(f"{what} is not base64url text")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{what} is not base64url text") from exc


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def generate_keypair(out_dir: Path, name: str) -> tuple[Path, Path]:
    """Write ``NAME.key`` (mode 0600, never world-readable, even briefly) and ``NAME.pub``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key_path, pub_path = out_dir / f"{name}.key", out_dir / f"{name}.pub"
    for p in (key_path, pub_path):
        if p.exists():
            raise KeyFileError(f"{p}: already exists; refusing to overwrite a key")
    out_dir.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(key_path, 0o600)
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    atomic_write_bytes(pub_path, public)
    os.chmod(pub_path, 0o644)
    return key_path, pub_path


def _load_private_pem(data: bytes, where: str) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    # the message never quotes the data: it is a secret
    if _PEM_PRIVATE not in data:
        raise KeyFileError(
            f"{where}: not a PEM private key (expected the output of `workmill keygen`)"
        )
    try:
        key = serialization.load_pem_private_key(data.strip() + b"\n", password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{where}: not a readable unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{where}: not an Ed25519 private key")
    return key


def load_private_key(path: Path | None, *, env: str = ENV_LICENCE_KEY) -> Any:
    """The signing key from ``path``, else from the environment variable ``env`` (PEM text)."""
    if path is not None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise KeyFileError(f"{path}: cannot read the private key ({exc.strerror})") from exc
        return _load_private_pem(data, str(path))
    value = os.environ.get(env, "")
    if not value.strip():
        raise KeyFileError(f"no private key: pass --key FILE or set {env}")
    return _load_private_pem(value.encode("utf-8"), f"${env}")


def load_public_key(path: Path) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the public key ({exc.strerror})") from exc
    if _PEM_PUBLIC not in data:
        raise KeyFileError(
            f"{path}: not a PEM public key (expected NAME.pub from `workmill keygen`)"
        )
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not a readable PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path}: not an Ed25519 public key")
    return key


def sign(private_key: Any, purpose: bytes, message: bytes) -> bytes:
    return private_key.sign(purpose + message)


def verify(public_key: Any, purpose: bytes, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is the key's signature of ``purpose + message``."""
    from cryptography.exceptions import InvalidSignature

    if len(signature) != SIGNATURE_BYTES:
        return False
    try:
        public_key.verify(signature, purpose + message)
    except InvalidSignature:
        return False
    return True


def public_key_id(public_key: Any) -> str:
    """A short fingerprint of a public key (first 16 hex of sha256 of its raw bytes)."""
    import hashlib

    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]
