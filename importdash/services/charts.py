"""The analytics page's charts, drawn as SVG on the server with pygal from the figures services/analytics.py gives.

Each chart is served as an image of its own (<img src>), so the page's Content-Security-Policy is untouched: the
SVG carries pygal's stylesheet inside it and no script at all (pygal's tooltip script and its config script are
taken out; an image could not run them anyway).
"""

import math
from collections.abc import Callable

import pygal
from pygal.style import Style

from ..models import ErrorCategory

CHART_WIDTH = 720
CHART_HEIGHT = 320
WIDE_HEIGHT = 360  # the downstream errors chart: one bar per group, with room for their labels

# The app's own colours (static/css/app.css) in the order series are added.
STYLE = Style(
    background="#ffffff",
    plot_background="#ffffff",
    foreground="#1a1f26",
    foreground_strong="#1a1f26",
    foreground_subtle="#5c6675",
    opacity="0.85",
    opacity_hover="0.95",
    colors=("#4f46e5", "#22c55e", "#ef4444", "#a15c07", "#1d5fd6", "#9aa3b2"),
    font_family='system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif',
    label_font_size=12,
    major_label_font_size=12,
    legend_font_size=12,
    value_font_size=12,
    title_font_size=14,
    no_data_font_size=16,
)

# Lines over days: a day without figures is a gap, the axis starts at 0, and a lone day's dot is easy to see.
LINES = {"allow_interruptions": True, "include_x_axis": True, "dots_size": 4}

CATEGORY_TITLES = {
    ErrorCategory.DUPLICATE.value: "Duplicates",
    ErrorCategory.MISSING_VALUE.value: "Missing values",
    ErrorCategory.INVALID_FORMAT.value: "Invalid format",
    ErrorCategory.OTHER.value: "Other",
}


def _without_scripts(root):
    """Take out every <script> and the tooltip layer that only a script would show (pygal's xml_filters hook)."""
    for parent in list(root.iter()):
        for child in list(parent):
            tag = child.tag if isinstance(child.tag, str) else ""
            if tag.rsplit("}", 1)[-1] == "script" or "tooltip-overlay" in (child.get("class") or ""):
                parent.remove(child)
    return root


def _chart(kind, *, height=CHART_HEIGHT, **options):
    chart = kind(
        style=STYLE,
        width=CHART_WIDTH,
        height=height,
        js=[],
        legend_at_bottom=True,
        legend_at_bottom_columns=3,
        show_x_guides=False,
        truncate_label=-1,
        no_data_text="No imports in this range",
        **options,
    )
    chart.add_xml_filter(_without_scripts)
    return chart


def _day_labels(days):
    """Short day labels (07-12), with about eight of them shown however many days there are."""
    labels = [day["date"][5:] for day in days]
    return labels, [label for index, label in enumerate(labels) if index % max(len(labels) // 8, 1) == 0]


def _day_chart(kind, days, **options):
    chart = _chart(kind, x_label_rotation=0, **options)
    chart.x_labels, chart.x_labels_major = _day_labels(days)
    chart.show_minor_x_labels = False
    return chart


def _has_any(days, value):
    return any(value(day) for day in days)


def _count_labels(largest):
    """Whole-number axis labels from 0 to at least the largest count, about five of them (pygal would show 0.1)."""
    rough = max(largest / 5, 1)
    magnitude = 10 ** math.floor(math.log10(rough))
    step = next(magnitude * factor for factor in (1, 2, 5, 10) if magnitude * factor >= rough)
    return list(range(0, max(largest, 1) + step, step))


def volume(summary: dict) -> bytes:
    """Imports per day as bars, rows per day as a line on the right-hand axis."""
    days = summary["days"]
    chart = _day_chart(pygal.Bar, days, title="Imports and rows per day")
    if _has_any(days, lambda day: day["imports"]):
        chart.y_labels = _count_labels(max(day["imports"] for day in days))
        chart.add("Imports", [day["imports"] for day in days])
        chart.add("Rows", [day["rows"] for day in days], secondary=True)
    return chart.render()


def success_rate(summary: dict) -> bytes:
    """The share of ended imports that completed, and of delivered rows the downstream accepted, per day."""
    days = summary["days"]
    chart = _day_chart(pygal.Line, days, title="Success rate (%)", range=(0, 100), **LINES)
    if _has_any(days, lambda day: day["success_rate"] is not None or day["delivery_success_rate"] is not None):
        chart.add("Imports completed", [_percent(day["success_rate"]) for day in days])
        chart.add("Rows accepted", [_percent(day["delivery_success_rate"]) for day in days])
    return chart.render()


def durations(summary: dict) -> bytes:
    """The average and 95th percentile of the ended imports' durations, per day."""
    days = summary["days"]
    chart = _day_chart(pygal.Line, days, title="Import duration (seconds)", **LINES)
    if _has_any(days, lambda day: day["duration"]["count"]):
        chart.add("Average", [day["duration"]["average_seconds"] for day in days])
        chart.add("95th percentile", [day["duration"]["p95_seconds"] for day in days])
    return chart.render()


def error_categories(summary: dict) -> bytes:
    """Error rows per category per day, stacked."""
    days = summary["days"]
    chart = _day_chart(pygal.StackedBar, days, title="Error rows per category")
    if _has_any(days, lambda day: sum(day["errors"].values())):
        chart.y_labels = _count_labels(max(sum(day["errors"].values()) for day in days))
        for category, title in CATEGORY_TITLES.items():
            chart.add(title, [day["errors"][category] for day in days])
    return chart.render()


def delivery_rate(summary: dict) -> bytes:
    """Rows per second delivered (sent over the runs' time) per day, against the rate the limit allows."""
    days = summary["days"]
    chart = _day_chart(pygal.Line, days, title="Delivery rate (rows per second)", **LINES)
    if _has_any(days, lambda day: day["rate_used"] is not None):
        chart.add("Used", [day["rate_used"] for day in days])
        if summary["rate_allowed"]:
            chart.add(
                "Allowed", [summary["rate_allowed"]] * len(days), show_dots=False, stroke_style={"dasharray": "6,4"}
            )
    return chart.render()


def downstream_errors(summary: dict) -> bytes:
    """The most frequent downstream refusals, by status and normalised message."""
    chart = _chart(pygal.HorizontalBar, height=WIDE_HEIGHT, title="Most frequent downstream errors", show_legend=False)
    errors = summary["downstream_errors"]
    chart.no_data_text = "No downstream errors in this range"
    if errors:
        # Most frequent at the top: pygal draws a horizontal bar chart's first label at the bottom.
        ordered = list(reversed(errors))
        chart.x_labels = [_shorten(f"{error['status']}: {error['message']}") for error in ordered]
        chart.y_labels = _count_labels(errors[0]["count"])
        chart.add("Records", [error["count"] for error in ordered])
    return chart.render()


def throughput(job_rates: dict) -> bytes:
    """One job's rows per second over time: each run a level line over its span, seconds since the job started."""
    chart = _chart(
        pygal.XY,
        title=f"Import #{job_rates['job']['id']}: rows per second",
        x_title="Seconds since the import started",
        allow_interruptions=True,
        include_x_axis=True,
        show_legend=False,
        fill=True,
    )
    chart.no_data_text = "No deliveries yet"
    points = []
    for run in job_rates["runs"]:
        if run["rows_per_second"] is None:
            continue
        if points:
            points.append((None, None))  # a gap between runs
        points += [(run["start_seconds"], run["rows_per_second"]), (run["end_seconds"], run["rows_per_second"])]
    if points:
        chart.add("Rows per second", points)
    return chart.render()


# The charts of the analytics page by the name in their URL.
SUMMARY_CHARTS: dict[str, Callable[[dict], bytes]] = {
    "volume": volume,
    "success-rate": success_rate,
    "durations": durations,
    "error-categories": error_categories,
    "delivery-rate": delivery_rate,
    "downstream-errors": downstream_errors,
}


def _percent(share):
    return None if share is None else round(share * 100, 1)


def _shorten(text, limit=48):
    return text if len(text) <= limit else text[: limit - 1] + "…"
