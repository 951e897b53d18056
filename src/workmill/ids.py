"""The ID policy (docs/reference.md "Files of a platform repo"): random Base62, fixed length, case-insensitively unique."""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Callable, Iterable
from enum import StrEnum

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase

TenantId = str
WorkOrderId = str
ModuleId = str
ReasonCode = str
Credits = int


class IdKind(StrEnum):
    TENANT = "tenant"
    WORK_ORDER = "work order"
    MODULE = "module"
    TRANSACTION = "transaction"
    TRANSACTION_ITEM = "transaction item"
    MODULE_RUN = "module run"
    PAYMENT = "payment"
    REDEMPTION = "redemption"
    RELEASE = "release"
    ASSET = "asset"
    TOPUP_METHOD = "top-up method"
    PRODUCT_CODE = "product code"
    REASON_KEY = "reason key"
    CATEGORY = "category"


LENGTHS: dict[IdKind, int] = {
    IdKind.TENANT: 6,
    IdKind.WORK_ORDER: 8,
    IdKind.MODULE: 3,
    IdKind.TRANSACTION: 8,
    IdKind.TRANSACTION_ITEM: 8,
    IdKind.MODULE_RUN: 8,
    IdKind.PAYMENT: 8,
    IdKind.REDEMPTION: 8,
    IdKind.RELEASE: 8,
    IdKind.ASSET: 8,
    IdKind.TOPUP_METHOD: 2,
    IdKind.PRODUCT_CODE: 3,
    IdKind.REASON_KEY: 3,
    IdKind.CATEGORY: 2,
}

_PATTERNS = {kind: re.compile(rf"[0-9A-Za-z]{{{n}}}") for kind, n in LENGTHS.items()}
_CATEGORY = re.compile(r"(0[1-9]|[1-9][0-9])")
_REASON_CODE = re.compile(
    r"[01](0[1-9]|[1-9][0-9])[0-9A-Za-z]{3}(00[1-9]|0[1-9][0-9]|[1-9][0-9]{2})"
)


def is_valid(kind: IdKind, value: object) -> bool:
    if not isinstance(value, str):
        return False
    if kind is IdKind.CATEGORY:
        return _CATEGORY.fullmatch(value) is not None
    return _PATTERNS[kind].fullmatch(value) is not None


def describe(kind: IdKind) -> str:
    if kind is IdKind.CATEGORY:
        return "a category id: two digits 01-99"
    return f"a {kind.value} id: {LENGTHS[kind]} Base62 characters [0-9A-Za-z]"


def check(kind: IdKind, value: object) -> str | None:
    """None when ``value`` is a valid ID of ``kind``, else the message to show."""
    if is_valid(kind, value):
        return None
    return f"{value!r} is not {describe(kind)}"


def is_reason_code(value: object) -> bool:
    return isinstance(value, str) and _REASON_CODE.fullmatch(value) is not None


def fold(value: str) -> str:
    """The case-insensitive identity of an ID (artifact names are lower-case)."""
    return value.lower()


def generate(kind: IdKind, existing: Iterable[str] = ()) -> str:
    """A fresh random ID of ``kind`` that collides with none of ``existing`` in any case."""
    taken = {fold(x) for x in existing}
    return generate_free(kind, taken.__contains__)


def generate_free(kind: IdKind, is_taken: Callable[[str], bool]) -> str:
    """A fresh random ID of ``kind`` whose folded form ``is_taken`` rejects not."""
    n = LENGTHS[kind]
    if kind is IdKind.CATEGORY:
        free = [f"{i:02d}" for i in range(1, 100) if not is_taken(f"{i:02d}")]
        if not free:
            raise ValueError("all 99 category ids are taken")
        return secrets.choice(free)
    for _ in range(10_000):
        candidate = "".join(secrets.choice(BASE62) for _ in range(n))
        if not is_taken(fold(candidate)):
            return candidate
    raise ValueError(f"could not find a free {kind.value} id")


def next_module_number(existing: Iterable[str]) -> str:
    """The lowest free numeric module id 001-999 (docs/reference.md "Files of a platform repo" default allocation)."""
    taken = {fold(x) for x in existing}
    for i in range(1, 1000):
        if f"{i:03d}" not in taken:
            return f"{i:03d}"
    raise ValueError("all numeric module ids 001-999 are taken; use --random")


def duplicates_ignoring_case(values: Iterable[str]) -> list[list[str]]:
    """Groups of IDs that differ only in case (each group has two or more)."""
    groups: dict[str, list[str]] = {}
    for v in values:
        groups.setdefault(fold(v), []).append(v)
    return [sorted(g) for g in groups.values() if len(g) > 1]
