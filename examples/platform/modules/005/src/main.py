"""Module 005, HTML report: one self-contained file a person can open or mail.

The chart is embedded inline (no external file to lose); every text from a param
or the data is HTML-escaped.
"""

from __future__ import annotations

import csv
import json
import os
from html import escape
from pathlib import Path

STYLE = """
body { font-family: Helvetica, Arial, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
table { border-collapse: collapse; margin-top: 1rem; }
th, td { border: 1px solid #ccc; padding: .25rem .6rem; text-align: right; }
th:first-child, td:first-child, td:nth-child(2) { text-align: left; }
.kpi { display: inline-block; margin-right: 2rem; font-size: 1.4rem; }
.kpi small { display: block; font-size: .8rem; color: #666; }
"""


def main() -> None:
    params = json.loads(Path(os.environ["WM_PARAMS_FILE"]).read_text(encoding="utf-8"))
    inputs = Path(os.environ["WM_INPUTS_DIR"])
    summary = json.loads((inputs / "003" / "summary.json").read_text(encoding="utf-8"))
    svg = (inputs / "004" / "chart.svg").read_text(encoding="utf-8")
    svg = svg.split("?>", 1)[1] if svg.lstrip().startswith("<?xml") else svg
    cur = escape(summary.get("currency", ""))
    kpis = [
        ("Revenue", f"{summary['revenue']} {cur}"),
        ("Orders", str(summary["orders"])),
        ("Units", str(summary["units"])),
    ]
    body = [
        f"<h1>{escape(params['title'])}</h1>",
        f"<p>Prepared by {escape(params['author'])} · work order "
        f"{escape(os.environ.get('WM_WORK_ORDER_ID', '-'))}</p>",
        "<div>"
        + "".join(f'<span class="kpi">{v}<small>{k}</small></span>' for k, v in kpis)
        + "</div>",
        f"<figure>{svg}</figure>",
    ]
    if params["include_table"]:
        with (inputs / "003" / "summary.csv").open(encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
        head, data = rows[0], rows[1:]
        body.append("<table><thead><tr>")
        body.append("".join(f"<th>{escape(h)}</th>" for h in head) + "</tr></thead><tbody>")
        body += ["<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in data]
        body.append("</tbody></table>")
    html = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(params['title'])}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
    (Path(os.environ["WM_OUTPUTS_DIR"]) / "report.html").write_text(html, encoding="utf-8")
    print(f"report.html: {len(html)} bytes")


if __name__ == "__main__":
    main()
