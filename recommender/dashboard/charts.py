"""Server-rendered SVG charts: the geometry, computed here; the templates draw it. No script is
needed to see a chart, and each chart also has its figures as a table for screen readers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: float
    series: int = 0


def grouped_bars(
    series: Sequence[Sequence[int]], labels: Sequence[str], width: float = 560, height: float = 180
) -> list[Bar]:
    """Bars of several series side by side per label, scaled to the largest value."""
    top = max((v for s in series for v in s), default=0) or 1
    slot = width / max(len(labels), 1)
    bar_width = slot * 0.8 / max(len(series), 1)
    bars = []
    for k, values in enumerate(series):
        for i, value in enumerate(values):
            h = height * value / top
            bars.append(Bar(i * slot + slot * 0.1 + k * bar_width, height - h, bar_width, h, labels[i], value, k))
    return bars


def mastery_bars(values: Sequence[tuple[str, float, float]], width: float = 400) -> list[Bar]:
    """One horizontal bar per skill: (label, mastery now, required) -> bar of mastery * width."""
    return [Bar(0, i * 24, width * min(max(m, 0.0), 1.0), 18, label, m) for i, (label, m, _) in enumerate(values)]


HEAT_STEPS = 8  # style.css colours .h0 (light) to .h7 (dark), each with text of 4.5:1 contrast


def heat(share: float) -> str:
    """The CSS class of a heatmap cell for a share in [0, 1]; "na" where the role does not need
    the skill. Classes, not inline styles: the pages' Content-Security-Policy allows no inline style."""
    if math.isnan(share):
        return "na"
    return f"h{min(int(share * HEAT_STEPS), HEAT_STEPS - 1)}"


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str
    passed: bool = True
    size: float = 4.0


def calibration_points(bins: Sequence[tuple[float, float, int]], size: float = 240) -> list[Point]:
    """Reliability bins in a size x size box (predicted right, observed up), dots scaled by events."""
    total = sum(n for _, _, n in bins) or 1
    return [
        Point(p * size, size - o * size, f"{p:.2f} -> {o:.2f} ({n})", True, 3 + 9 * math.sqrt(n / total))
        for p, o, n in bins
    ]


def timeline(
    events: Sequence[tuple[datetime, float]], pass_score: float, width: float = 560, height: float = 120
) -> list[Point]:
    """Results in time order: x by time, y by score; passed at or above `pass_score`."""
    if not events:
        return []
    start = min(t for t, _ in events).timestamp()
    span = max(max(t for t, _ in events).timestamp() - start, 1.0)
    left, right, bottom, top = 8.0, width - 8.0, height - 8.0, 8.0
    return [
        Point(
            left + (right - left) * (t.timestamp() - start) / span,
            bottom - (bottom - top) * s,
            f"{t:%Y-%m-%d} {s:.2f}",
            s >= pass_score,
        )
        for t, s in events
    ]
