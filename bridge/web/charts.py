"""Small inline SVG plots for the staff pages, drawn on the server (no script, no CDN): escalations
per day stacked by tier and time to acknowledge per week (clinicians); blocked and flagged messages
per label per week and time to review per week (moderators). Waits are a median bar and a p90 tick."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from moderation.casework.stats import LabelWeek
from moderation.escalation.stats import TIERS, DayCount, WeekAck

COLOURS = {"imminent": "#b3261e", "high": "#e8710a", "moderate": "#c9a400"}
W, H, PAD = 560, 180, 28


def _frame(label: str, body: str) -> str:
    return (
        f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{escape(label)}" class="chart">'
        f"<title>{escape(label)}</title>{body}</svg>"
    )


def _stacked(
    columns: Sequence[tuple[str, str, Mapping[str, int]]],
    keys: Sequence[str],
    colour: Mapping[str, str],
    *,
    width: float,
    label_every: int = 1,
) -> str:
    """Stacked bars, one column per ``(axis label, tooltip prefix, counts)``, ``keys[0]`` at the
    bottom, with the largest total as the axis's top."""
    top = max([sum(c.values()) for _, _, c in columns] + [1])
    step = width / max(len(columns), 1)
    parts = [
        f'<text x="{PAD - 6}" y="{PAD + 4}" text-anchor="end">{top}</text>'
        f'<text x="{PAD - 6}" y="{H - PAD}" text-anchor="end">0</text>'
    ]
    for i, (label, tip, counts) in enumerate(columns):
        x = PAD + i * step
        y = float(H - PAD)
        for key in keys:
            n = counts.get(key, 0)
            if not n:
                continue
            h = (H - 2 * PAD) * n / top
            y -= h
            parts.append(
                f'<rect x="{x + 2:.1f}" y="{y:.1f}" width="{step - 4:.1f}" height="{h:.1f}" '
                f'fill="{colour[key]}"><title>{escape(tip)}: {n} {escape(key)}</title></rect>'
            )
        if i % label_every == 0:
            parts.append(f'<text x="{x + step / 2:.1f}" y="{H - 8}" text-anchor="middle">{label}</text>')
    return "".join(parts)


def per_day_svg(days: Sequence[DayCount]) -> str:
    """Stacked bars, one per day, imminent at the bottom."""
    columns = [(d.day.strftime("%d %b"), d.day.isoformat(), d.by_tier) for d in days]
    body = _stacked(columns, TIERS, COLOURS, width=W - 2 * PAD, label_every=2)
    return _frame("Escalations per day by tier, last two weeks", body)


def ack_svg(
    weeks: Sequence[WeekAck],
    label: str = "Time to acknowledge per week: median (bar) and p90 (line), minutes",
    done: str = "acknowledged",
) -> str:
    """Median wait as a bar per week, the p90 as a tick above it (minutes)."""
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
            f"{w.count} {done}</title></rect>"
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
    return _frame(label, axis + "".join(parts))


def review_svg(weeks: Sequence[WeekAck]) -> str:
    """Time from a case opening to a moderator's decision, per week."""
    return ack_svg(weeks, "Time to review per week: median (bar) and p90 (line), minutes", "reviewed")


PALETTE = ("#3b6ea5", "#b3261e", "#e8710a", "#2a9d8f", "#8e44ad", "#c9a400", "#6d6875", "#e76f51")


def weekly_labels_svg(weeks: Sequence[LabelWeek]) -> str:
    """Stacked bars, one per week, a colour per disposition and label (legend on the right)."""
    keys = sorted({k for w in weeks for k in w.counts})
    colour = {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(keys)}
    columns = [
        (w.week_start.strftime("%d %b"), f"week of {w.week_start.strftime('%d %b')}", w.counts) for w in weeks
    ]
    parts = [_stacked(columns, keys, colour, width=W - 2 * PAD - 150)]
    for j, k in enumerate(keys[:12]):
        ly = PAD + j * 11
        parts.append(
            f'<rect x="{W - 150}" y="{ly - 7}" width="8" height="8" fill="{colour[k]}"/>'
            f'<text x="{W - 138}" y="{ly}">{escape(k)}</text>'
        )
    return _frame("Messages blocked and flagged per week, by label", "".join(parts))
