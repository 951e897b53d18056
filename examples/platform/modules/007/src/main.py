"""Module 007, Warehouse load: stage orders as SQL after a (simulated) slow upload.

Values are written as SQL string literals with quotes doubled, and the table name
is checked against the params schema's pattern again here, because SQL text built
from data is exactly where injection happens.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

COLUMNS = ["order_id", "order_date", "region", "product", "quantity", "unit_price"]


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def main() -> None:
    params = json.loads(Path(os.environ["WM_PARAMS_FILE"]).read_text(encoding="utf-8"))
    table = str(params["table"])
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", table):
        print(f"bad table name {table!r}", file=sys.stderr)
        sys.exit(2)
    with (Path(os.environ["WM_INPUTS_DIR"]) / "001" / "sales.csv").open(
        encoding="utf-8", newline=""
    ) as fh:
        rows = list(csv.DictReader(fh))
    if any(not re.fullmatch(r"[A-Za-z0-9-]{1,40}", r.get("order_id") or "") for r in rows):
        Path(os.environ["WM_REASON_FILE"]).write_text("E01", encoding="utf-8")
        print("an order id is not a valid warehouse key", file=sys.stderr)
        sys.exit(1)

    if os.environ.get("WM_MODE") != "smoke":
        time.sleep(float(params["delay_seconds"]))  # the "upload"

    lines = [
        f"-- staged by workmill module 007 for work order {os.environ.get('WM_WORK_ORDER_ID', '-')}"
    ]
    lines.append(f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(c + ' TEXT' for c in COLUMNS)});")
    for r in rows:
        values = ", ".join(literal(r.get(c) or "") for c in COLUMNS)
        lines.append(f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES ({values});")
    sql = "\n".join(lines) + "\n"
    outputs = Path(os.environ["WM_OUTPUTS_DIR"])
    (outputs / "staging.sql").write_text(sql, encoding="utf-8")
    receipt = {
        "table": table,
        "rows": len(rows),
        "sha256": hashlib.sha256(sql.encode()).hexdigest(),
    }
    (outputs / "receipt.json").write_text(json.dumps(receipt, indent=2) + "\n", encoding="utf-8")
    print(f"staged {len(rows)} rows into {table}")


if __name__ == "__main__":
    main()
