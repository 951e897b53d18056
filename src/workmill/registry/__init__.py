"""A signed module registry: reproducible archives, an Ed25519-signed index, and safe
installs (docs/reference.md "Registry, tiers, licences, quotas, usage")."""

from workmill.registry._api import (
    Installed,
    Published,
    consumer_key,
    fetch_verified,
    index_memory,
    install,
    load_index,
    open_registry,
    parse_ref,
    publish,
    registry_name,
    search,
    sorted_versions,
)
from workmill.registry._archive import ArchiveRefused, check_members, pack
from workmill.registry._index import Index, ModuleEntry, RegistryRefused, VersionEntry
from workmill.registry._seen import IndexMemory, Seen
from workmill.registry._storage import DirectoryRegistry, RegistryStorage, ReleaseRegistry

__all__ = [
    "ArchiveRefused",
    "DirectoryRegistry",
    "Index",
    "IndexMemory",
    "Installed",
    "ModuleEntry",
    "Published",
    "RegistryRefused",
    "RegistryStorage",
    "ReleaseRegistry",
    "Seen",
    "VersionEntry",
    "check_members",
    "consumer_key",
    "fetch_verified",
    "index_memory",
    "install",
    "load_index",
    "open_registry",
    "pack",
    "parse_ref",
    "publish",
    "registry_name",
    "search",
    "sorted_versions",
]
