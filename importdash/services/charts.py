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

# Drawn at this size and scaled to the page's columns (about 540 px wide): fonts large enough to read at that scale.
CHART_WIDTH = 640
# Phones get the same chart drawn narrower (<picture> chooses), so its text keeps its size at about 330 px.
COMPACT_WIDTH = 400
CHART_HEIGHT = 320
WIDE_HEIGHT = 360  # the downstream errors chart: one bar per group, with room for their labels
DAY_LABELS = 8  # day labels along the bottom, about (4 when compact)
LABEL_LENGTH = 48  # characters of a downstream error's label (half when compact); the table below has it whole

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
    label_font_size=15,
    major_label_font_size=15,
    legend_font_size=15,
    value_font_size=15,
    title_font_size=18,
    no_data_font_size=18,
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


def _chart(kind, compact, *, height=CHART_HEIGHT, **options):
    chart = kind(
        style=STYLE,
        width=COMPACT_WIDTH if compact else CHART_WIDTH,
        height=height,
        js=[],
        legend_at_bottom=True,
        legend_at_bottom_columns=2 if compact else 3,
        margin_bottom=36,  # pygal's own 20 leaves the legend's last line cut off at these font sizes
        show_x_guides=False,
        truncate_label=-1,
        no_data_text="No imports in this range",
        max_scale=6,  # about six values on an axis, not sixteen
        **options,
    )
    chart.add_xml_filter(_without_scripts)
    return chart


def _day_labels(days, compact):
    """Short day labels (07-12), with about DAY_LABELS of them shown however many days there are."""
    labels = [day["date"][5:] for day in days]
    every = math.ceil(len(labels) / (DAY_LABELS // 2 if compact else DAY_LABELS))
    return labels, [label for index, label in enumerate(labels) if index % every == 0]


def _day_chart(kind, days, compact, **options):
    chart = _chart(kind, compact, x_label_rotation=0, **options)
    chart.x_labels, chart.x_labels_major = _day_labels(days, compact)
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


def volume(summary: dict, *, compact: bool) -> bytes:
    """Imports per day as bars, rows per day as a line on the right-hand axis."""
    days = summary["days"]
    chart = _day_chart(pygal.Bar, days, compact, title="Imports and rows per day")
    if _has_any(days, lambda day: day["imports"]):
        chart.y_labels = _count_labels(max(day["imports"] for day in days))
        chart.add("Imports", [day["imports"] for day in days])
        chart.add("Rows", [day["rows"] for day in days], secondary=True)
    return chart.render()


def success_rate(summary: dict, *, compact: bool) -> bytes:
    """The share of ended imports that completed, and of delivered rows the downstream accepted, per day."""
    days = summary["days"]
    chart = _day_chart(pygal.Line, days, compact, title="Success rate (%)", range=(0, 100), **LINES)
    if _has_any(days, lambda day: day["success_rate"] is not None or day["delivery_success_rate"] is not None):
        chart.add("Imports completed", [_percent(day["success_rate"]) for day in days])
        chart.add("Rows accepted", [_percent(day["delivery_success_rate"]) for day in days])
    return chart.render()


def durations(summary: dict, *, compact: bool) -> bytes:
    """The average and 95th percentile of the ended imports' durations, per day."""
    days = summary["days"]
    chart = _day_chart(pygal.Line, days, compact, title="Import duration (seconds)", **LINES)
    if _has_any(days, lambda day: day["duration"]["count"]):
        chart.add("Average", [day["duration"]["average_seconds"] for day in days])
        chart.add("95th percentile", [day["duration"]["p95_seconds"] for day in days])
    return chart.render()


def error_categories(summary: dict, *, compact: bool) -> bytes:
    """Error rows per category per day, stacked."""
    days = summary["days"]
    chart = _day_chart(pygal.StackedBar, days, compact, title="Error rows per category")
    if _has_any(days, lambda day: sum(day["errors"].values())):
        chart.y_labels = _count_labels(max(sum(day["errors"].values()) for day in days))
        for category, title in CATEGORY_TITLES.items():
            chart.add(title, [day["errors"][category] for day in days])
    return chart.render()


def delivery_rate(summary: dict, *, compact: bool) -> bytes:
    """Rows per second delivered (sent over the runs' time) per day, against the rate the limit allows."""
    days = summary["days"]
    chart = _day_chart(pygal.Line, days, compact, title="Delivery rate (rows per second)", **LINES)
    if _has_any(days, lambda day: day["rate_used"] is not None):
        used = [day["rate_used"] for day in days]
        chart.add("Used", used)
        if summary["rate_allowed"]:
            # Headroom above the higher line, so the allowed rate is not drawn on the plot's edge.
            chart.range = (0, max([rate for rate in used if rate is not None] + [summary["rate_allowed"]]) * 1.15)
            chart.add(
                "Allowed", [summary["rate_allowed"]] * len(days), show_dots=False, stroke_style={"dasharray": "6,4"}
            )
    return chart.render()


def downstream_errors(summary: dict, *, compact: bool) -> bytes:
    """The most frequent downstream refusals, by status and normalised message."""
    chart = _chart(
        pygal.HorizontalBar, compact, height=WIDE_HEIGHT, title="Most frequent downstream errors", show_legend=False
    )
    errors = summary["downstream_errors"]
    chart.no_data_text = "No downstream errors in this range"
    if errors:
        # Most frequent at the top: pygal draws a horizontal bar chart's first label at the bottom.
        ordered = list(reversed(errors))
        limit = LABEL_LENGTH // 2 if compact else LABEL_LENGTH
        chart.x_labels = [_shorten(f"{error['status']}: {error['message']}", limit) for error in ordered]
        chart.y_labels = _count_labels(errors[0]["count"])
        chart.add("Records", [error["count"] for error in ordered])
    return chart.render()


def throughput(job_rates: dict, *, compact: bool) -> bytes:
    """One job's rows per second over time: each run a level line over its span, seconds since the job started."""
    chart = _chart(
        pygal.XY,
        compact,
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
SUMMARY_CHARTS: dict[str, Callable[..., bytes]] = {
    "volume": volume,
    "success-rate": success_rate,
    "durations": durations,
    "error-categories": error_categories,
    "delivery-rate": delivery_rate,
    "downstream-errors": downstream_errors,
}


def chart_size(name: str, *, compact: bool) -> tuple[int, int]:
    """The width and height a chart is drawn at, for the page's <img> to keep its place while it loads."""
    return COMPACT_WIDTH if compact else CHART_WIDTH, WIDE_HEIGHT if name == "downstream-errors" else CHART_HEIGHT


def _percent(share):
    return None if share is None else round(share * 100, 1)


def _shorten(text, limit):
    return text if len(text) <= limit else text[: limit - 1] + "…"
