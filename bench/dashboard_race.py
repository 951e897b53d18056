"""Concurrent dashboard writers against the fake GitHub: lost stages, duplicates, time, requests.

    python bench/dashboard_race.py [--writers 8] [--rounds 20] [--latency 0.15] [--settle 0,1]

Each round, ``--writers`` threads (one GithubClient each) set one distinct stage of a
fresh commit's dashboard at the same moment, through ``Dashboard.save()``. The fake
adds ``--latency`` seconds (×0.5–1.5) to every request, as a remote API would. For
each settle delay it prints: rounds that ended with a stage missing, rounds that ended
with more than one comment, the median wall time of a round and the requests per write.
The settle delay is the wait before a writer re-reads to confirm its stage survived
(docs/architecture.md "Status dashboard"); 0 shows what the confirmation alone buys.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from dashboard_fake import DashboardFake
from test_github_support import OWNER_REPO, TOKEN
from workmill.dashboard import Dashboard, GithubCommentStore, marker
from workmill.dashboard._render import read_body
from workmill.github import GithubClient


def one_round(fake: DashboardFake, n: int, sha: str, settle: float) -> tuple[bool, bool, float]:
    stages = [f"s{i}" for i in range(n)]
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def writer(key: str) -> None:
        client = GithubClient(TOKEN, fake.url, backoff_s=0.05)
        try:
            store = GithubCommentStore(client, OWNER_REPO, sha, 7, settle_s=settle)
            board = Dashboard(repo=OWNER_REPO, sha=sha, pr=7, client=client, stages=stages,
                              store=store)  # fmt: skip
            board.update_stage(key, "success")
            barrier.wait()
            board.save()
        except BaseException as exc:
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=writer, args=(k,)) for k in stages]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    mine = [b for b in fake.bodies("issue", 7) if b.startswith(marker(sha))]
    state = read_body(mine[0], sha) if mine else None
    done = state is not None and all(
        (s := state.stage(k)) is not None and s.status.value == "success" for k in stages
    )
    return (not done or bool(errors)), len(mine) > 1, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--latency", type=float, default=0.15)
    ap.add_argument("--settle", default="0,1", help="settle delays to compare, seconds")
    args = ap.parse_args()
    print(f"{args.writers} writers × {args.rounds} rounds, request latency ~{args.latency}s")
    print(f"{'settle s':>9} {'lost':>6} {'dupes':>6} {'median s':>9} {'req/write':>10}")
    for settle in (float(x) for x in args.settle.split(",")):
        with DashboardFake(page_size=100) as fake:
            fake.latency = args.latency
            lost = dupes = 0
            walls = []
            for r in range(args.rounds):
                bad, dup, wall = one_round(fake, args.writers, f"{r:08x}" * 5, settle)
                lost += bad
                dupes += dup
                walls.append(wall)
            per_write = len(fake.requests) / (args.writers * args.rounds)
            print(
                f"{settle:>9.2f} {lost:>6} {dupes:>6} {statistics.median(walls):>9.2f} "
                f"{per_write:>10.1f}"
            )


if __name__ == "__main__":
    main()
