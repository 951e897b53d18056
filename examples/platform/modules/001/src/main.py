"""Module 001, Ingest sales: a deterministic synthetic sales export (standard library only).

workmill contract (docs/reference.md "Files of a platform repo"): params come from $WM_PARAMS_FILE (after defaults), outputs
go to $WM_OUTPUTS_DIR, and a business problem is a reason key written to
$WM_REASON_FILE. In smoke mode ($WM_MODE=smoke) only a handful of rows is written.
"""

from __future__ import annotations

import csv
import json
import os
import random
import sys
from pathlib import Path

PRODUCTS = [
    ("Espresso beans 1kg", 18.90),
    ("Filter papers x100", 3.50),
    ("Ceramic mug", 9.00),
    ("Hand grinder", 54.00),
    ("Gift card", 25.00),
]
COLUMNS = ["order_id", "order_date", "region", "product", "quantity", "unit_price"]


def fail(key: str, message: str, exit_code: int = 1) -> None:
    Path(os.environ["WM_REASON_FILE"]).write_text(key, encoding="utf-8")
    print(message, file=sys.stderr)
    sys.exit(exit_code)


def month_add(start: str, offset: int) -> tuple[int, int]:
    year, month = (int(x) for x in start.split("-"))
    index = year * 12 + (month - 1) + offset
    return index // 12, index % 12 + 1


def generate(params: dict, smoke: bool) -> list[list[str]]:
    regions = [r.strip() for r in str(params["regions"]).split(",") if r.strip()]
    if not regions:
        fail("E01", "regions: no region given")
    rows = min(int(params["rows"]), 5) if smoke else int(params["rows"])
    months = int(params["months"])
    bad_share = float(params["bad_row_percent"]) / 100
    # rng.random() only: its sequence is stable across Python versions, so the file
    # (and every cache key built on its sha256) is too.
    rng = random.Random(int(params["seed"]))
    out: list[list[str]] = []
    for i in range(rows):
        year, month = month_add(str(params["start_month"]), int(rng.random() * months))
        day = 1 + int(rng.random() * 28)
        region = regions[int(rng.random() * len(regions))]
        product, price = PRODUCTS[int(rng.random() * len(PRODUCTS))]
        quantity = 1 + int(rng.random() * rng.random() * 12)
        row = [
            f"SO-{i + 1:06d}",
            f"{year:04d}-{month:02d}-{day:02d}",
            region,
            product,
            str(quantity),
            f"{price:.2f}",
        ]
        if rng.random() < bad_share:
            row = make_messy(row, out, rng)
        out.append(row)
    return out


def make_messy(row: list[str], so_far: list[list[str]], rng: random.Random) -> list[str]:
    """One of the faults real exports have; the cleaning step must catch each."""
    kind = int(rng.random() * 5)
    if kind == 0 and so_far:
        return list(so_far[int(rng.random() * len(so_far))])  # duplicate order
    if kind == 1:
        return [row[0], row[1].replace("-", "/"), *row[2:]]  # 2025/03/14
    if kind == 2:
        return [*row[:4], "", row[5]]  # missing quantity
    if kind == 3:
        return [*row[:5], "-" + row[5]]  # negative price
    return [row[0], row[1], "  " + row[2].upper() + " ", *row[3:]]  # fixable: odd region


def main() -> None:
    params = json.loads(Path(os.environ["WM_PARAMS_FILE"]).read_text(encoding="utf-8"))
    rows = generate(params, smoke=os.environ.get("WM_MODE") == "smoke")
    out = Path(os.environ["WM_OUTPUTS_DIR"]) / "sales.csv"
    with out.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    print(f"wrote {len(rows)} orders to sales.csv")


if __name__ == "__main__":
    main()
