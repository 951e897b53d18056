"""Module 002, Clean sales: dedupe, normalise and validate the raw export.

Reads $WM_INPUTS_DIR/001/sales.csv; writes clean.csv and quality.json to
$WM_OUTPUTS_DIR. Too many dropped rows writes reason E01 (an exception: the
outputs stand); no valid row at all writes E02 (a failure).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import sys
from collections import Counter
from decimal import Decimal, InvalidOperation
from pathlib import Path

OUT_COLUMNS = [
    "order_id",
    "order_date",
    "month",
    "region",
    "product",
    "quantity",
    "unit_price",
    "amount",
]


def check_row(row: dict[str, str]) -> tuple[str | None, dict[str, str]]:
    """(why it is dropped or None, the normalised row)."""
    order_id = (row.get("order_id") or "").strip()
    if not order_id:
        return "missing_order_id", {}
    try:
        date = dt.date.fromisoformat((row.get("order_date") or "").strip())
    except ValueError:
        return "bad_date", {}
    region = " ".join((row.get("region") or "").split()).title()
    if not region:
        return "missing_region", {}
    try:
        quantity = int((row.get("quantity") or "").strip())
    except ValueError:
        return "bad_quantity", {}
    if quantity <= 0:
        return "bad_quantity", {}
    try:
        price = Decimal((row.get("unit_price") or "").strip())
    except InvalidOperation:
        return "bad_price", {}
    if not price.is_finite() or price < 0:
        return "bad_price", {}
    return None, {
        "order_id": order_id,
        "order_date": date.isoformat(),
        "month": date.strftime("%Y-%m"),
        "region": region,
        "product": (row.get("product") or "").strip(),
        "quantity": str(quantity),
        "unit_price": f"{price:.2f}",
        "amount": f"{price * quantity:.2f}",
    }


def main() -> None:
    params = json.loads(Path(os.environ["WM_PARAMS_FILE"]).read_text(encoding="utf-8"))
    source = Path(os.environ["WM_INPUTS_DIR"]) / "001" / "sales.csv"
    outputs = Path(os.environ["WM_OUTPUTS_DIR"])
    with source.open(encoding="utf-8", newline="") as fh:
        raw = list(csv.DictReader(fh))

    dropped: Counter[str] = Counter()
    seen: set[str] = set()
    clean: list[dict[str, str]] = []
    fixed_regions = 0
    for row in raw:
        why, good = check_row(row)
        if why is None and params["dedupe"] and good["order_id"] in seen:
            why = "duplicate"
        if why is not None:
            dropped[why] += 1
            continue
        seen.add(good["order_id"])
        fixed_regions += good["region"] != row.get("region")
        clean.append(good)

    with (outputs / "clean.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, OUT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(clean)

    bad = sum(dropped.values())
    bad_percent = round(100 * bad / len(raw), 2) if raw else 0.0
    report = {
        "rows_in": len(raw),
        "rows_out": len(clean),
        "dropped": dict(sorted(dropped.items())),
        "regions_normalised": fixed_regions,
        "bad_percent": bad_percent,
        "max_bad_percent": params["max_bad_percent"],
    }
    (outputs / "quality.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"kept {len(clean)} of {len(raw)} rows ({bad_percent}% dropped)")

    reason_file = Path(os.environ["WM_REASON_FILE"])
    if not clean:
        reason_file.write_text("E02", encoding="utf-8")
        print("no valid row left", file=sys.stderr)
        sys.exit(1)
    if bad_percent > float(params["max_bad_percent"]):
        # An exception, not a failure: the clean file is good, the source is not.
        reason_file.write_text("E01", encoding="utf-8")
        print(f"{bad_percent}% bad rows > max_bad_percent {params['max_bad_percent']}")


if __name__ == "__main__":
    main()
