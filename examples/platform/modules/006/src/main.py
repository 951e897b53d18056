"""Module 006, Anomaly scan: flag outlier order amounts in the raw export.

``fail_with: E02`` simulates the outside scoring service being down: the module
writes reason E02 (fail: true, refundable: true) and exits 1 without outputs —
the work order gets that module's price back.
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import sys
from pathlib import Path


def main() -> None:
    params = json.loads(Path(os.environ["WM_PARAMS_FILE"]).read_text(encoding="utf-8"))
    reason_file = Path(os.environ["WM_REASON_FILE"])
    if params["fail_with"] == "E02":
        reason_file.write_text("E02", encoding="utf-8")
        print("scoring service unavailable (simulated by fail_with: E02)", file=sys.stderr)
        sys.exit(1)

    with (Path(os.environ["WM_INPUTS_DIR"]) / "001" / "sales.csv").open(
        encoding="utf-8", newline=""
    ) as fh:
        orders = []
        for row in csv.DictReader(fh):
            try:
                orders.append((row["order_id"], int(row["quantity"]) * float(row["unit_price"])))
            except (KeyError, TypeError, ValueError):
                continue  # the raw export is messy; cleaning is module 002's job

    threshold = float(params["z_threshold"])
    flagged = []
    if len(orders) >= 10:
        amounts = [a for _, a in orders]
        mean, sd = statistics.fmean(amounts), statistics.pstdev(amounts)
        for order_id, amount in orders:
            z = (amount - mean) / sd if sd else 0.0
            if abs(z) > threshold:
                flagged.append({"order_id": order_id, "amount": round(amount, 2), "z": round(z, 2)})
    result = {"orders_scanned": len(orders), "z_threshold": threshold, "anomalies": flagged}
    out = Path(os.environ["WM_OUTPUTS_DIR"]) / "anomalies.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"{len(flagged)} anomalies in {len(orders)} orders")
    if len(orders) < 10:
        reason_file.write_text("E01", encoding="utf-8")


if __name__ == "__main__":
    main()
