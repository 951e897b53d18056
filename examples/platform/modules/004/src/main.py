"""Module 004, Bar chart: summary.json → chart.svg, drawn by hand (no plotting library).

Every piece of text that came from a param or the data is XML-escaped, so a
title like ``<script>`` stays text.
"""

from __future__ import annotations

import json
import os
import sys
from decimal import Decimal
from pathlib import Path
from xml.sax.saxutils import escape

FONT = 'font-family="Helvetica, Arial, sans-serif"'


def render(title: str, bars: list[tuple[str, Decimal]], color: str, w: int, h: int, cur: str):
    top, bottom, left, right = 48, 40, 72, 16
    plot_w, plot_h = w - left - right, h - top - bottom
    peak = max((v for _, v in bars), default=Decimal(0)) or Decimal(1)
    slot = plot_w / len(bars)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" role="img" aria-label="{escape(title, {chr(34): "&quot;"})}">',
        f'<rect width="{w}" height="{h}" fill="#ffffff"/>',
        f'<text x="{w / 2:.1f}" y="28" text-anchor="middle" font-size="18" {FONT}>'
        f"{escape(title)}</text>",
        f'<line x1="{left}" y1="{top + plot_h}" x2="{w - right}" y2="{top + plot_h}" '
        'stroke="#333333"/>',
    ]
    for step in range(5):
        value = peak * step / 4
        y = top + plot_h - float(value / peak) * plot_h
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="10" {FONT}>'
            f"{value:,.0f}</text>"
        )
        if step:
            parts.append(
                f'<line x1="{left}" y1="{y:.1f}" x2="{w - right}" y2="{y:.1f}" stroke="#dddddd"/>'
            )
    for i, (label, value) in enumerate(bars):
        bar_h = float(value / peak) * plot_h
        x = left + i * slot + slot * 0.15
        parts.append(
            f'<rect x="{x:.1f}" y="{top + plot_h - bar_h:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{bar_h:.1f}" fill="{color}"><title>{escape(label)}: {value} {cur}'
            "</title></rect>"
        )
        parts.append(
            f'<text x="{x + slot * 0.35:.1f}" y="{top + plot_h + 16}" text-anchor="middle" '
            f'font-size="11" {FONT}>{escape(label)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> None:
    params = json.loads(Path(os.environ["WM_PARAMS_FILE"]).read_text(encoding="utf-8"))
    summary = json.loads(
        (Path(os.environ["WM_INPUTS_DIR"]) / "003" / "summary.json").read_text(encoding="utf-8")
    )
    dim = params["dimension"]
    groups = summary.get(f"by_{dim}") or []
    bars = [(str(g[dim]), Decimal(g["revenue"])) for g in groups]
    if not bars:
        Path(os.environ["WM_REASON_FILE"]).write_text("E01", encoding="utf-8")
        print(f"summary.json has no by_{dim} groups", file=sys.stderr)
        sys.exit(1)
    svg = render(
        params["title"],
        bars,
        params["bar_color"],
        int(params["width"]),
        int(params["height"]),
        summary.get("currency", ""),
    )
    (Path(os.environ["WM_OUTPUTS_DIR"]) / "chart.svg").write_text(svg, encoding="utf-8")
    print(f"chart.svg: {len(bars)} bars by {dim}")


if __name__ == "__main__":
    main()
