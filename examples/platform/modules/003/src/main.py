"""Module 003, Aggregate sales: totals per region and month.

Reads $WM_INPUTS_DIR/002/clean.csv; writes summary.csv (one row per region and
month) and summary.json (totals by region, by month, and overall). Amounts are
summed as exact decimals and written with two places.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections import defaultdict
from decimal import Decimal
from pathlib import Path


def totals(rows: list[dict[str, str]], key) -> list[dict]:
    acc: dict[str, list] = defaultdict(lambda: [0, 0, Decimal(0)])
    for r in rows:
        a = acc[key(r)]
        a[0] += 1
        a[1] += int(r["quantity"])
        a[2] += Decimal(r["amount"])
    return [
        {"key": k, "orders": o, "units": u, "revenue": f"{rev:.2f}"}
        for k, (o, u, rev) in sorted(acc.items())
    ]


def main() -> None:
    params = json.loads(Path(os.environ["WM_PARAMS_FILE"]).read_text(encoding="utf-8"))
    source = Path(os.environ["WM_INPUTS_DIR"]) / "002" / "clean.csv"
    outputs = Path(os.environ["WM_OUTPUTS_DIR"])
    with source.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        Path(os.environ["WM_REASON_FILE"]).write_text("E01", encoding="utf-8")
        print("clean.csv has no rows", file=sys.stderr)
        sys.exit(1)

    cells = totals(rows, lambda r: f"{r['region']}\t{r['month']}")
    with (outputs / "summary.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["region", "month", "orders", "units", "revenue"])
        for c in cells:
            region, month = c["key"].split("\t")
            writer.writerow([region, month, c["orders"], c["units"], c["revenue"]])

    def relabel(items: list[dict], name: str) -> list[dict]:
        return [{name: i.pop("key"), **i} for i in items]

    summary = {
        "currency": params["currency"],
        "orders": len(rows),
        "units": sum(int(r["quantity"]) for r in rows),
        "revenue": f"{sum(Decimal(r['amount']) for r in rows):.2f}",
        "by_region": relabel(totals(rows, lambda r: r["region"]), "region"),
        "by_month": relabel(totals(rows, lambda r: r["month"]), "month"),
    }
    (outputs / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"{summary['orders']} orders, revenue {summary['revenue']} {summary['currency']}")


if __name__ == "__main__":
    main()
