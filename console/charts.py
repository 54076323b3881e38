"""Charts drawn on the server as SVG: no JavaScript, no CDN, nothing to install, works offline.

``daily_chart`` lays out one currency's daily volume as stacked bars (one per day, a segment per kind
of movement); ``console/chart.svg.html`` draws it. Geometry only: every number is computed here, the
template writes the elements, Django escapes the labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from currencies.money import format_amount
from transactions.selectors import DailyMovement

# Stacking order, bottom up; each kind has a CSS class (console/static/console/console.css).
KINDS = ("deposit", "withdrawal", "transfer", "reversal")
WIDTH, HEIGHT = 600, 160
LEFT, RIGHT, TOP, BOTTOM = 4, 4, 18, 20  # room for the scale label above and the dates below
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


@dataclass(frozen=True)
class Segment:
    kind: str
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True)
class Bar:
    day: date
    url: str
    total: str
    count: int
    segments: list[Segment]


@dataclass(frozen=True)
class Chart:
    code: str
    width: int
    height: int
    plot_top: int
    baseline: int
    scale_label: str
    bars: list[Bar]
    labels: list[tuple[float, str, str]]  # (x, text, text-anchor) under the axis
    total: str
    count: int

    @property
    def empty(self) -> bool:
        return self.count == 0


def daily_chart(
    *, code: str, days: Sequence[date], movements: Sequence[DailyMovement], day_url: Callable[[date], str]
) -> Chart:
    """Stacked daily bars of ``movements`` (one currency) over ``days``, scaled to the busiest day."""
    amounts: dict[tuple[date, str], Decimal] = {}
    counts: dict[date, int] = {}
    for movement in movements:
        key = (movement.day, movement.type)
        amounts[key] = amounts.get(key, Decimal(0)) + movement.amount
        counts[movement.day] = counts.get(movement.day, 0) + movement.transaction_count
    totals = {day: sum((amounts.get((day, kind), Decimal(0)) for kind in KINDS), Decimal(0)) for day in days}
    peak = max(totals.values(), default=Decimal(0))
    slot = PLOT_W / max(len(days), 1)
    bar_width = max(slot * 0.8, 1.0)
    baseline = TOP + PLOT_H
    bars = []
    for index, day in enumerate(days):
        x = LEFT + index * slot + (slot - bar_width) / 2
        y = float(baseline)
        segments = []
        for kind in KINDS:
            amount = amounts.get((day, kind), Decimal(0))
            if amount <= 0 or peak <= 0:
                continue
            # Floats for drawing only: the figures in titles and tables stay exact Decimals.
            height = max(float(amount / peak) * PLOT_H, 1.0)
            y -= height
            title = f"{day.isoformat()} {kind}: {format_amount(amount)} {code}"
            segments.append(Segment(kind, round(x, 2), round(y, 2), round(bar_width, 2), round(height, 2), title))
        bars.append(Bar(day, day_url(day), format_amount(totals[day]), counts.get(day, 0), segments))
    # First and last dates anchored inside the plot, so neither is cut at the edge.
    ends = {0: ("start", float(LEFT)), len(days) - 1: ("end", float(WIDTH - RIGHT))}
    labels = [
        (ends.get(index, ("middle", 0.0))[1] or round(LEFT + index * slot + slot / 2, 2),
         days[index].strftime("%d %b"), ends.get(index, ("middle", 0.0))[0])
        for index in sorted({0, len(days) // 2, len(days) - 1})
        if days
    ]  # fmt: skip
    return Chart(
        code=code,
        width=WIDTH,
        height=HEIGHT,
        plot_top=TOP,
        baseline=baseline,
        scale_label=f"busiest day {format_amount(peak)} {code}" if peak > 0 else f"no {code} movements",
        bars=bars,
        labels=labels,
        total=format_amount(sum(totals.values(), Decimal(0))),
        count=sum(counts.values()),
    )
