"""Module 008, Demand forecast (premium): seasonal revenue projection, standard library only.

workmill contract (docs/reference.md "Files of a platform repo"): params come from $WM_PARAMS_FILE (after defaults), outputs
go to $WM_OUTPUTS_DIR. Whether the tenant may run it at all is decided by workmill
before the work order is charged (tier: premium), not here.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
from pathlib import Path

REGIONS = ["North", "South", "East", "West"]


def forecast(horizon: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    rows = []
    for region in REGIONS:
        base = rng.uniform(800, 1600)
        for month in range(1, horizon + 1):
            season = 1 + 0.15 * math.sin(2 * math.pi * month / 12)
            rows.append([region, str(month), f"{base * season * (1.01**month):.2f}"])
    return rows


def main() -> None:
    params = json.loads(Path(os.environ["WM_PARAMS_FILE"]).read_text(encoding="utf-8"))
    horizon = int(params.get("horizon_months", 3))
    if os.environ.get("WM_MODE") == "smoke":
        horizon = min(horizon, 2)
    out = Path(os.environ["WM_OUTPUTS_DIR"]) / "forecast.csv"
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["region", "months_ahead", "revenue"])
        writer.writerows(forecast(horizon, int(params.get("seed", 7))))


if __name__ == "__main__":
    main()
