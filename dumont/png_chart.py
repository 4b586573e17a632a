"""Line charts of a machine's metrics as one PNG: a panel per series, stacked.

Each panel shows the bucket means as a filled line, the peaks as a thin line above it, the
series' numbers in its title, a labelled y axis and start / middle / end times.
"""

from __future__ import annotations

import time

from dumont.png import Canvas, Colour, text_width
from dumont.series import Metrics, Series, axis_label, bridge_seconds, columns, span_text

WIDTH = 1000
HEADER = 44
PANEL = 230
LEFT = 120  # room for the y labels
RIGHT = 24
TITLE = 34
BOTTOM = 40  # room for the time labels
SCALE = 2  # font scale: 10×14 pixel glyphs

BACKGROUND: Colour = (255, 255, 255)
INK: Colour = (40, 40, 40)
MUTED: Colour = (120, 120, 120)
GRID: Colour = (228, 228, 228)
AVERAGE: Colour = (31, 119, 180)
FILL: Colour = (204, 224, 242)
PEAK: Colour = (255, 127, 14)
NO_DATA: Colour = (200, 200, 200)


def _time_label(moment: float, with_time: bool) -> str:
    return time.strftime("%m-%d %H:%M" if with_time else "%Y-%m-%d", time.localtime(moment))


def _title(series: Series) -> str:
    numbers = "  ".join(f"{name} {value}" for name, value in series.summary())
    return f"{series.kind.label}   {numbers}"


def _panel(
    canvas: Canvas, series: Series, top: int, start: float, end: float, bridge: float
) -> None:
    canvas.text(LEFT, top + 8, _title(series), INK, SCALE)
    x0, x1 = LEFT, WIDTH - RIGHT
    y0, y1 = top + TITLE, top + PANEL - BOTTOM  # y0 is the top of the plot, y1 its baseline
    plot_width, plot_height = x1 - x0 + 1, y1 - y0
    scale_top = series.scale_top()

    for quarter in range(5):
        y = y1 - round(plot_height * quarter / 4)
        canvas.line(x0, y, x1, y, GRID if quarter else MUTED)
        label = axis_label(scale_top * quarter / 4, series.kind.unit)
        canvas.text(x0 - 8 - text_width(label, SCALE), y - 7, label, MUTED, SCALE)

    def height(value: float) -> int:
        return y1 - round(min(value, scale_top) / scale_top * plot_height)

    cells = columns(series, start, end, plot_width, bridge)
    previous: tuple[int, int, int] | None = None  # x, mean y, peak y of the last drawn column
    for offset, cell in enumerate(cells):
        x = x0 + offset
        if cell.avg is None:
            canvas.pixel(x, y1 + 3, NO_DATA)
            previous = None
            continue
        mean_y = height(cell.avg)
        peak_y = height(cell.peak if cell.peak is not None else cell.avg)
        canvas.line(x, mean_y, x, y1 - 1, FILL)
        if previous is None:
            canvas.line(x, peak_y, x, peak_y, PEAK)
            canvas.line(x, mean_y, x, mean_y, AVERAGE, thickness=2)
        else:
            canvas.line(previous[0], previous[2], x, peak_y, PEAK)
            canvas.line(previous[0], previous[1], x, mean_y, AVERAGE, thickness=2)
        previous = (x, mean_y, peak_y)

    with_time = end - start <= 3 * 86400
    for fraction in (0.0, 0.5, 1.0):
        label = _time_label(start + (end - start) * fraction, with_time)
        x = x0 + round((plot_width - 1) * fraction)
        left = min(max(x - text_width(label, SCALE) // 2, x0), x1 - text_width(label, SCALE))
        canvas.line(x, y1, x, y1 + 5, MUTED)
        canvas.text(left, y1 + 12, label, MUTED, SCALE)


def render_png(metrics: Metrics) -> bytes:
    """The PNG file's bytes; a series with no data gets one line that says so."""
    heights = [PANEL if series.has_data else TITLE for series in metrics.series]
    canvas = Canvas(WIDTH, HEADER + sum(heights) + 8, BACKGROUND)
    title = f"{metrics.machine_id}   last {span_text(metrics.end - metrics.start)}"
    canvas.text(16, 14, title, INK, SCALE)
    legend_x = WIDTH - RIGHT - text_width("avg  peak", SCALE) - 40
    canvas.rect(legend_x, 19, legend_x + 14, 22, AVERAGE)
    canvas.text(legend_x + 20, 14, "avg", INK, SCALE)
    canvas.line(legend_x + 70, 20, legend_x + 84, 20, PEAK, thickness=2)
    canvas.text(legend_x + 90, 14, "peak", INK, SCALE)
    top = HEADER
    for series, height in zip(metrics.series, heights, strict=True):
        if series.has_data:
            _panel(canvas, series, top, metrics.start, metrics.end, bridge_seconds(metrics))
        else:
            canvas.text(LEFT, top + 8, f"{series.kind.label}   no data", MUTED, SCALE)
        top += height
    return canvas.png()
