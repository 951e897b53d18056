"""Charts rendered at build time as inline SVG with pygal (no script, nothing fetched).

pygal draws bar charts well and needs no browser; its tooltip script is turned
off (``js=[]``), so each chart is plain SVG. Colours follow the page: the
backgrounds are transparent and text uses ``currentColor``, so one SVG reads
in the light and the dark scheme. Every chart is paired with a data table in
the page (docs/reference.md "Operator console").
"""

from __future__ import annotations

import itertools
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from markupsafe import Markup

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
_IDS = itertools.count(1)
_CHART_ID = re.compile(r'id="chart-[0-9a-f-]{36}"')
_CHART_REF = re.compile(r"#chart-[0-9a-f-]{36}")


SERIES_COLOURS = ("#d9534f", "#2a9d8f", "#3b7dd8", "#e9a23b", "#8e6bbf", "#6c757d")
SINGLE_COLOUR = ("#3b7dd8",)


def _pygal():
    """pygal, without the import hook it installs.

    ``import pygal`` appends a ``sys.meta_path`` finder for its map plugins that has
    no ``find_spec``; from then on every failed import in the process raises an
    ImportWarning (an error where warnings are errors, as in the tests). The
    console draws no maps, so the hook is taken out again.
    """
    import pygal

    sys.meta_path[:] = [f for f in sys.meta_path if type(f).__module__ != "pygal"]
    return pygal


def _style(colours: tuple[str, ...] = SERIES_COLOURS):
    _pygal()
    from pygal.style import Style

    return Style(
        background="transparent",
        plot_background="transparent",
        foreground="currentColor",
        foreground_strong="currentColor",
        foreground_subtle="rgba(128,128,128,.45)",
        opacity=".9",
        opacity_hover="1",
        colors=colours,
        font_family="system-ui, sans-serif",
        label_font_size=12,
        major_label_font_size=12,
        legend_font_size=13,
        title_font_size=15,
        value_font_size=12,
    )


def _config(title: str, colours: tuple[str, ...] = SERIES_COLOURS, **extra):
    return {
        "title": title,
        "style": _style(colours),
        "js": [],
        "disable_xml_declaration": True,
        "explicit_size": False,
        "width": 760,
        "height": 320,
        "legend_at_bottom": True,
        "print_values": False,
        "show_minor_x_labels": True,
        "truncate_label": 24,
        **extra,
    }


def _finish(svg: str, label: str) -> Markup:
    """Plain SVG: no script, stable ids (pygal draws random ones), an accessible name.

    pygal always embeds a ``<script>`` holding its tooltip config, even with
    ``js=[]``; it is removed from the parsed tree, not by text matching.
    """
    n = next(_IDS)
    ET.register_namespace("", SVG_NS)
    ET.register_namespace("xlink", XLINK_NS)
    root = ET.fromstring(svg)
    for parent in list(root.iter()):
        for child in list(parent):
            if child.tag == f"{{{SVG_NS}}}script":
                parent.remove(child)
    root.set("role", "img")
    root.set("aria-label", label)
    text = ET.tostring(root, encoding="unicode")
    text = _CHART_REF.sub(f"#wmchart-{n}", _CHART_ID.sub(f'id="wmchart-{n}"', text, count=1))
    return Markup(text)


def reset_ids() -> None:
    """Number charts from 1 again (each build is then byte-for-byte repeatable)."""
    global _IDS
    _IDS = itertools.count(1)


def integer_ticks(top: int, most: int = 10) -> list[int]:
    """Axis ticks for counts and credits: 0 to past ``top`` in steps of 1, 2 or 5 × 10^k.

    pygal's own scale picks fractional steps (0.2, 0.4 …) for small counts.
    """
    if top <= 0:
        return [0, 1]
    scale = 1
    while True:
        for m in (1, 2, 5):
            step = m * scale
            if -(-top // step) <= most:
                return list(range(0, -(-top // step) * step + 1, step))
        scale *= 10


def grouped_bars(
    title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[int]]]
) -> Markup:
    """Vertical bars, one group per label and one colour per series."""
    pygal = _pygal()

    top = max((v for _, values in series for v in values), default=0)
    chart = pygal.Bar(
        **_config(
            title,
            x_label_rotation=-30 if len(labels) > 8 else 0,
            y_labels=integer_ticks(top),
        )
    )
    chart.x_labels = list(labels)
    for name, values in series:
        chart.add(name, list(values))
    return _finish(chart.render(is_unicode=True), title)


def horizontal_bars(title: str, items: Sequence[tuple[str, int]]) -> Markup:
    """One bar per item, the first at the top (status counts, failure reasons)."""
    pygal = _pygal()

    height = max(180, 60 + 28 * len(items))
    top = max((v for _, v in items), default=0)
    chart = pygal.HorizontalBar(
        **_config(
            title, SINGLE_COLOUR, height=height, show_legend=False, y_labels=integer_ticks(top)
        )
    )
    bottom_up = list(reversed(items))  # pygal draws the first label at the bottom
    chart.x_labels = [label for label, _ in bottom_up]
    chart.add(title, [v for _, v in bottom_up])
    return _finish(chart.render(is_unicode=True), title)
