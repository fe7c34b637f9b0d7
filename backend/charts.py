"""Charts as inline SVG, drawn by pure functions: data in, markup out, nothing fetched.

The dashboard is server-rendered and must work without any network at view time, so there is
no chart library, script or web font: each function returns an ``<svg>`` element (as
``markupsafe.Markup``) that the page embeds. Every bar carries a ``<title>`` (the browser's
tooltip) and ``data-`` attributes with the numbers it stands for, which the tests read. Sizes
are in the SVG's own units; the page scales the chart to its card's width.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

__all__ = [
    "PALETTE",
    "Series",
    "columns",
    "meter",
    "nice_ticks",
    "range_columns",
    "share_columns",
]

# Tableau 10 and two more: distinct hues that stay apart for the common colour blindnesses.
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
    "#86bcb6",
    "#d37295",
)
WIDTH, HEIGHT = 640, 240  # default size; text is 11 units high, so match the card's pixels
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 12, 14, 34
_GAP = 0.25  # share of each slot left empty between columns


@dataclass(frozen=True)
class _Plot:
    """The drawing area of one chart, and where its columns go."""

    width: int
    height: int
    columns: int

    @property
    def plot_width(self) -> float:
        return self.width - _LEFT - _RIGHT

    @property
    def plot_height(self) -> float:
        return self.height - _TOP - _BOTTOM

    @property
    def base(self) -> float:
        return _TOP + self.plot_height

    def column(self, index: int) -> tuple[float, float]:
        """Left edge and width of column ``index``."""
        slot = self.plot_width / max(self.columns, 1)
        return _LEFT + slot * index + slot * _GAP / 2, slot * (1 - _GAP)


@dataclass(frozen=True)
class Series:
    """One bar per column: a stable ``key`` (a persona id), its name, its colour, and per
    column ``(low, value, high)`` (None: no bar there) and the bar's tooltip."""

    key: str
    name: str
    colour: str
    ranges: tuple[tuple[float, float, float] | None, ...]
    titles: tuple[str, ...]


def nice_ticks(top: float, count: int = 4) -> tuple[float, ...]:
    """Axis ticks from 0 in steps of 1, 2 or 5 times a power of ten, the last at least ``top``.

    At most ``count`` steps (one more tick than steps); ``(0, 1)`` when ``top`` is not positive.
    """
    if not top > 0:
        return (0.0, 1.0)
    raw = top / count
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    steps = math.ceil(top / step - 1e-9)
    return tuple(round(step * i, 10) for i in range(steps + 1))


def share_columns(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    description: str,
    empty_titles: Sequence[str],
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Markup:
    """Per label a group of bars, one per series, on a 0-100% axis: each bar up to its value,
    a whisker from its low to its high value (fractions of 1, drawn clamped to [0, 1]).

    A label where no series has a value is drawn as a dashed outline, its tooltip
    ``empty_titles[index]`` (``labels`` may be abbreviated; titles say it in full).
    """
    plot = _Plot(width, height, len(labels))
    parts = _frame(plot, (0, 0.25, 0.5, 0.75, 1), 1, lambda v: f"{v:.0%}")

    def y(value: float) -> float:
        return plot.base - plot.plot_height * min(max(value, 0.0), 1.0)

    for index, label in enumerate(labels):
        x, slot = plot.column(index)
        if all(layer.ranges[index] is None for layer in series):
            parts.append(
                f'<rect class="empty" x="{x:.1f}" y="{_TOP}" width="{slot:.1f}" '
                f'height="{plot.plot_height}"><title>{escape(empty_titles[index])}</title></rect>'
            )
        bar = slot / max(len(series), 1)
        for place, layer in enumerate(series):
            found = layer.ranges[index]
            if found is None:
                continue
            low, value, high = found
            left, centre, cap = x + bar * place, x + bar * (place + 0.5), bar / 4
            parts.append(
                f'<g class="share" data-series="{escape(layer.key)}" '
                f'data-column="{escape(label)}" data-low="{low:g}" data-value="{value:g}" '
                f'data-high="{high:g}"><title>{escape(layer.titles[index])}</title>'
                f'<rect fill="{layer.colour}" x="{left + bar * 0.08:.1f}" y="{y(value):.2f}" '
                f'width="{bar * 0.84:.1f}" height="{plot.base - y(value):.2f}"/>'
                f'<path class="whisker" d="M{centre:.1f} {y(low):.2f}V{y(high):.2f}'
                f"M{centre - cap:.1f} {y(high):.2f}h{2 * cap:.1f}"
                f'M{centre - cap:.1f} {y(low):.2f}h{2 * cap:.1f}"/></g>'
            )
        parts.append(_x_label(plot, x + slot / 2, label))
    return _svg(plot, description, parts)


def columns(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    description: str,
    titles: Sequence[str],
    colour: str,
    label_every: int = 1,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Markup:
    """One bar per value on a count axis from 0.

    Every ``label_every``-th label is written, counting back from the last one.
    """
    ticks = nice_ticks(max(values, default=0))
    top = ticks[-1]
    plot = _Plot(width, height, len(values))
    parts = _frame(plot, ticks, top, _count)
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        x, bar = plot.column(index)
        size = plot.plot_height * value / top
        parts.append(
            f'<rect class="bar" data-column="{escape(label)}" data-value="{value:g}" '
            f'fill="{colour}" x="{x:.1f}" y="{plot.base - size:.2f}" width="{bar:.1f}" '
            f'height="{size:.2f}"><title>{escape(titles[index])}</title></rect>'
        )
        if (len(values) - 1 - index) % label_every == 0:
            parts.append(_x_label(plot, x + bar / 2, label))
    return _svg(plot, description, parts)


def range_columns(
    labels: Sequence[str],
    ranges: Sequence[tuple[float, float, float]],
    *,
    description: str,
    titles: Sequence[str],
    colour: str,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Markup:
    """Per label a bar up to the middle value and a whisker from the low to the high value."""
    ticks = nice_ticks(max((high for _, _, high in ranges), default=0))
    top = ticks[-1]
    plot = _Plot(width, height, len(ranges))
    parts = _frame(plot, ticks, top, _decimal)

    def y(value: float) -> float:
        return plot.base - plot.plot_height * value / top

    for index, (label, (low, mid, high)) in enumerate(zip(labels, ranges, strict=True)):
        x, bar = plot.column(index)
        centre, cap = x + bar / 2, bar / 4
        parts.append(
            f'<g class="range" data-column="{escape(label)}" data-low="{low:g}" '
            f'data-value="{mid:g}" data-high="{high:g}"><title>{escape(titles[index])}</title>'
            f'<rect fill="{colour}" x="{x:.1f}" y="{y(mid):.2f}" width="{bar:.1f}" '
            f'height="{plot.base - y(mid):.2f}"/>'
            f'<path class="whisker" d="M{centre:.1f} {y(low):.2f}V{y(high):.2f}'
            f"M{centre - cap:.1f} {y(high):.2f}h{2 * cap:.1f}"
            f'M{centre - cap:.1f} {y(low):.2f}h{2 * cap:.1f}"/></g>'
        )
        parts.append(_x_label(plot, centre, label))
    return _svg(plot, description, parts)


def meter(percent: float, *, colour: str, description: str) -> Markup:
    """A horizontal bar filled to ``percent`` (0..100), for a rollout share."""
    filled = max(0.0, min(100.0, percent))
    return Markup(
        f'<svg class="meter" viewBox="0 0 100 8" preserveAspectRatio="none" role="img" '
        f'aria-label="{escape(description)}" data-value="{filled:g}">'
        f'<rect class="track" width="100" height="8" rx="4"/>'
        f'<rect fill="{colour}" width="{filled:g}" height="8" rx="4"/></svg>'
    )


def _frame(
    plot: _Plot, ticks: Sequence[float], top: float, fmt: Callable[[float], str]
) -> list[str]:
    """Horizontal grid lines with their labels, and the baseline."""
    right = plot.width - _RIGHT
    parts = []
    for tick in ticks:
        y = plot.base - plot.plot_height * tick / top
        parts.append(
            f'<line class="grid" x1="{_LEFT}" x2="{right}" y1="{y:.2f}" y2="{y:.2f}"/>'
            f'<text class="tick" x="{_LEFT - 6}" y="{y + 4:.2f}" text-anchor="end">'
            f"{escape(fmt(tick))}</text>"
        )
    parts.append(
        f'<line class="axis" x1="{_LEFT}" x2="{right}" y1="{plot.base}" y2="{plot.base}"/>'
    )
    return parts


def _x_label(plot: _Plot, x: float, label: str) -> str:
    return (
        f'<text class="label" x="{x:.1f}" y="{plot.base + 18}" text-anchor="middle">'
        f"{escape(label)}</text>"
    )


def _svg(plot: _Plot, description: str, parts: list[str]) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {plot.width} {plot.height}" role="img" '
        f'aria-label="{escape(description)}">' + "".join(parts) + "</svg>"
    )


def _count(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def _decimal(value: float) -> str:
    return f"{value:g}"
