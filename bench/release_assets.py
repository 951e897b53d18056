"""Asset count of the billing-state release against GitHub's 1,000-assets-per-release cap.

Builds a history of 10^3 … 10^6 transactions the way ``run_scale.py`` does
(straight into partitions), then runs ``--rounds`` plan → execute → settle
rounds (2 commits each) so the kept revisions fill up, and prints the number of
assets in the billing-state release, how many the head manifest references,
and the room left under 1,000.

    python bench/release_assets.py [--sizes 1000,100000,1000000] [--rounds 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from run_scale import build_history, compiled_repo, measure

GITHUB_MAX_ASSETS = 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,100000,1000000")
    ap.add_argument("--rounds", type=int, default=8)
    args = ap.parse_args()
    print(f"{'history':>10} {'assets':>7} {'in head':>8} {'revisions':>9} {'room':>6}")
    for n in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            root = compiled_repo(Path(tmp))
            store = build_history(root, n)
            measure(root, args.rounds)
            assets = store.releases.list_assets(store.tag)
            head = store.read_manifest(store.head_revision())
            referenced = len(head.assets())
            print(
                f"{n:>10} {len(assets):>7} {referenced:>8} {len(store.revisions()):>9} "
                f"{GITHUB_MAX_ASSETS - len(assets):>6}",
                flush=True,
            )


if __name__ == "__main__":
    sys.exit(main())
