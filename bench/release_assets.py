"""Assets per release of the billing state against GitHub's 1,000-assets-per-release cap.

Builds a history of 10^3 … 10^6 transactions the way ``run_scale.py`` does
(straight into partitions, then ``BillingStore.compact`` moves every chunk to
its home release, as the migration of an old state does), then runs
``--rounds`` plan → execute → settle rounds (2 commits each) so the kept
revisions (and the garbage GC has not collected yet) fill up. Prints, per
release of the state (the head release, its hot segments ``--h?`` and cold
segments ``--c????``), the assets it holds and the room left under 1,000; then
the fullest release. The layout is in docs/architecture.md "Billing-state
release layout".

    python bench/release_assets.py [--sizes 1000,100000,1000000] [--rounds 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from run_scale import build_history, compiled_repo, measure

from workmill.state import BillingStore

GITHUB_MAX_ASSETS = 1000


def per_release(store: BillingStore) -> dict[str, tuple[int, int]]:
    """(assets stored, assets the head revision names) per release tag of the state."""
    head = store.read_manifest(store.head_revision())
    named = {store.release_tag(r): len(a) for r, a in head.assets_by_release().items()}
    tags = [t for t in store.releases.list_tags() if t.split("--")[0] == store.tag]
    return {t: (len(store.releases.list_assets(t)), named.get(t, 0)) for t in sorted(tags)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,100000,1000000")
    ap.add_argument("--rounds", type=int, default=8)
    args = ap.parse_args()
    for n in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            root = compiled_repo(Path(tmp))
            t0 = time.perf_counter()
            store = build_history(root, n)
            built = time.perf_counter() - t0
            measure(root, args.rounds)
            counts = per_release(store)
            print(
                f"history {n:,} transactions (built and migrated in {built:.1f} s), "
                f"{len(store.revisions())} revisions kept, {len(counts)} releases:"
            )
            print(f"  {'release':<28} {'assets':>6} {'in head':>8} {'room':>5}")
            for tag, (stored, named) in counts.items():
                print(f"  {tag:<28} {stored:>6} {named:>8} {GITHUB_MAX_ASSETS - stored:>5}")
            tag, (most, _) = max(counts.items(), key=lambda kv: kv[1][0])
            total = sum(s for s, _ in counts.values())
            print(
                f"  fullest: {tag} with {most} assets, room {GITHUB_MAX_ASSETS - most} "
                f"(all releases: {total} assets)",
                flush=True,
            )


if __name__ == "__main__":
    sys.exit(main())
