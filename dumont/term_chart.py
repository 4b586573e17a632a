"""Block charts for the terminal: one per series, with its numbers, a y axis and a time axis.

Each character cell holds one of eight bar heights, so a chart `height` rows tall shows
8 × height levels. The axis under the bars is dotted where the machine sent nothing.
"""

from __future__ import annotations

import math
import time

from rich.text import Text

from dumont.series import (
    Column,
    Metrics,
    Series,
    axis_label,
    bridge_seconds,
    columns,
    span_text,
)

BLOCKS = " ▁▂▃▄▅▆▇█"
BAR_STYLE = "cyan"
MISSING = "·"


def _stats_line(series: Series) -> Text:
    line = Text()
    line.append(series.kind.label, style="bold")
    for name, value in series.summary():
        line.append(f"   {name} ", style="dim")
        line.append(value)
    return line


def _level(value: float, top: float, levels: int) -> int:
    """Cells of 1/8 row a value fills; any non-zero value shows at least one."""
    if value <= 0:
        return 0
    return max(1, min(levels, math.ceil(value / top * levels - 0.5)))


def _time_label(moment: float, with_time: bool) -> str:
    return time.strftime("%m-%d %H:%M" if with_time else "%m-%d", time.localtime(moment))


def _time_axis(start: float, end: float, width: int) -> str:
    """Start, middle and end times placed under their columns."""
    with_time = end - start <= 3 * 86400
    labels = [_time_label(start + (end - start) * f, with_time) for f in (0.0, 0.5, 1.0)]
    line = [" "] * width
    positions = [0, width // 2 - len(labels[1]) // 2, width - len(labels[2])]
    for label, position in zip(labels, positions, strict=True):
        if position < 0 or position + len(label) > width:
            continue
        if any(c != " " for c in line[max(0, position - 1) : position + len(label) + 1]):
            continue  # too narrow for this label: leave it out rather than overlap
        line[position : position + len(label)] = label
    return "".join(line)


def render_series(
    series: Series, start: float, end: float, width: int, height: int = 6, bridge: float = 0.0
) -> Text:
    """The chart of one series, `width` characters wide overall."""
    unit = series.kind.unit
    top = series.scale_top()
    y_labels = {0: axis_label(top, unit), height // 2: axis_label(top / 2, unit)}
    gutter = max(len(label) for label in [*y_labels.values(), axis_label(0.0, unit)]) + 1
    plot_width = max(10, width - gutter - 1)
    cells: list[Column] = columns(series, start, end, plot_width, bridge)
    levels = height * 8
    filled = [_level(c.avg, top, levels) if c.avg is not None else 0 for c in cells]

    chart = _stats_line(series)
    chart.append("\n")
    for row in range(height):
        base = (height - 1 - row) * 8
        label = y_labels.get(row, "")
        chart.append(f"{label:>{gutter}}", style="dim")
        chart.append("┤" if label else "│", style="dim")
        chart.append("".join(BLOCKS[max(0, min(8, f - base))] for f in filled), style=BAR_STYLE)
        chart.append("\n")
    chart.append(f"{axis_label(0.0, unit):>{gutter}}", style="dim")
    chart.append("└", style="dim")
    for cell in cells:
        if cell.avg is None:
            chart.append(MISSING, style="dim")
        else:
            chart.append("─", style="dim")
    chart.append("\n")
    chart.append(" " * (gutter + 1) + _time_axis(start, end, plot_width), style="dim")
    return chart


def render_metrics(metrics: Metrics, width: int, height: int = 6) -> Text:
    """Every series of `metrics`, one under another, after a line naming the span."""
    out = Text()
    step = f", {metrics.step_seconds // 60} min buckets" if metrics.step_seconds >= 60 else ""
    out.append(f"{metrics.machine_id}", style="bold")
    out.append(f"  last {span_text(metrics.end - metrics.start)}{step}\n", style="dim")
    if not any(series.has_data for series in metrics.series):
        out.append("No reports in this range: is the agent running on the machine?\n")
        return out
    for series in metrics.series:
        out.append("\n")
        if not series.has_data:
            out.append(series.kind.label, style="bold")
            out.append("   no data\n", style="dim")
            continue
        out.append_text(
            render_series(
                series, metrics.start, metrics.end, width, height, bridge_seconds(metrics)
            )
        )
        out.append("\n")
    return out
