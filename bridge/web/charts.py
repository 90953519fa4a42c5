"""Two small inline SVG plots for the clinicians' dashboard, drawn on the server (no script, no CDN):
escalations per day stacked by tier, and time to acknowledge per week (median bar, p90 tick)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from moderation.escalation.stats import TIERS, DayCount, WeekAck

COLOURS = {"imminent": "#b3261e", "high": "#e8710a", "moderate": "#c9a400"}
W, H, PAD = 560, 180, 28


def _frame(label: str, body: str) -> str:
    return (
        f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{escape(label)}" class="chart">'
        f"<title>{escape(label)}</title>{body}</svg>"
    )


def per_day_svg(days: Sequence[DayCount]) -> str:
    """Stacked bars, one per day, imminent at the bottom."""
    top = max([d.total for d in days] + [1])
    step = (W - 2 * PAD) / max(len(days), 1)
    bars = []
    for i, d in enumerate(days):
        x = PAD + i * step
        y = float(H - PAD)
        for tier in TIERS:
            n = d.by_tier.get(tier, 0)
            if not n:
                continue
            h = (H - 2 * PAD) * n / top
            y -= h
            bars.append(
                f'<rect x="{x + 2:.1f}" y="{y:.1f}" width="{step - 4:.1f}" height="{h:.1f}" '
                f'fill="{COLOURS[tier]}"><title>{d.day.isoformat()}: {n} {tier}</title></rect>'
            )
        if i % 2 == 0:
            bars.append(
                f'<text x="{x + step / 2:.1f}" y="{H - 8}" text-anchor="middle">{d.day.strftime("%d %b")}</text>'
            )
    axis = f'<text x="{PAD - 6}" y="{PAD + 4}" text-anchor="end">{top}</text><text x="{PAD - 6}" y="{H - PAD}" text-anchor="end">0</text>'
    return _frame("Escalations per day by tier, last two weeks", axis + "".join(bars))


def ack_svg(weeks: Sequence[WeekAck]) -> str:
    """Median time to acknowledge as a bar per week, the p90 as a tick above it (minutes)."""
    top = max([w.p90_seconds or 0 for w in weeks] + [60]) / 60
    step = (W - 2 * PAD) / max(len(weeks), 1)
    parts = []
    for i, w in enumerate(weeks):
        x = PAD + i * step
        label = w.week_start.strftime("%d %b")
        parts.append(f'<text x="{x + step / 2:.1f}" y="{H - 8}" text-anchor="middle">{label}</text>')
        if w.median_seconds is None or w.p90_seconds is None:
            continue
        med, p90 = w.median_seconds / 60, w.p90_seconds / 60
        h = (H - 2 * PAD) * med / top
        parts.append(
            f'<rect x="{x + 6:.1f}" y="{H - PAD - h:.1f}" width="{step - 12:.1f}" height="{h:.1f}" '
            f'fill="#3b6ea5"><title>week of {label}: median {med:.1f} min, p90 {p90:.1f} min, '
            f"{w.count} acknowledged</title></rect>"
        )
        y90 = H - PAD - (H - 2 * PAD) * p90 / top
        parts.append(
            f'<line x1="{x + 4:.1f}" x2="{x + step - 4:.1f}" y1="{y90:.1f}" y2="{y90:.1f}" '
            'stroke="#1d3557" stroke-width="3"/>'
        )
    axis = (
        f'<text x="{PAD - 6}" y="{PAD + 4}" text-anchor="end">{top:.0f}m</text>'
        f'<text x="{PAD - 6}" y="{H - PAD}" text-anchor="end">0</text>'
    )
    return _frame("Time to acknowledge per week: median (bar) and p90 (line), minutes", axis + "".join(parts))
