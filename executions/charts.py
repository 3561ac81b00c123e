"""The admin index chart: executions per hour by status over the last day, as SVG."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from html import escape

from django.db.models import Count
from django.db.models.functions import TruncHour
from django.utils import timezone

from executions.models import FlowExecution

STATUS_COLOURS = {
    "succeeded": "#188038",
    "failed": "#d93025",
    "cancelled": "#9aa0a6",
    "running": "#1a73e8",
    "waiting": "#f29900",
    "pending": "#a142f4",
}
# Sized for the admin dashboard's 600-pixel content column (less the module's padding), so
# all 24 hours show at full size; on narrower screens the picture scales down.
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 576, 220, 36, 36, 12
LEGEND_SPACING = 90


def hourly_counts(now: datetime | None = None) -> tuple[list[datetime], dict[datetime, dict[str, int]]]:
    """The 24 hour slots ending with the current one, and counts per slot and status (one query)."""
    now = now or timezone.now()
    current = now.replace(minute=0, second=0, microsecond=0)
    hours = [current - timedelta(hours=offset) for offset in range(23, -1, -1)]
    rows = (
        FlowExecution.objects.filter(started_at__gte=hours[0])
        .annotate(hour=TruncHour("started_at"))
        .values("hour", "status")
        .annotate(count=Count("id"))
        .order_by()
    )
    counts: dict[datetime, dict[str, int]] = defaultdict(dict)
    for row in rows:
        counts[row["hour"]][row["status"]] = row["count"]
    return hours, counts


def render_chart(now: datetime | None = None) -> str:
    hours, counts = hourly_counts(now)
    totals = [sum(counts[hour].values()) for hour in hours]
    peak = max(totals) or 1
    plot_width, plot_height = WIDTH - LEFT - 10, HEIGHT - BOTTOM - TOP
    slot = plot_width / len(hours)
    parts = [
        f'<svg class="inflow-chart" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT + 24}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT + 24}" role="img" aria-label="Executions per hour by status, last 24 hours" '
        'font-family="sans-serif" font-size="11" style="max-width: 100%; height: auto">',
        f'<line x1="{LEFT}" y1="{TOP + plot_height}" x2="{WIDTH - 10}" y2="{TOP + plot_height}" stroke="#dadce0"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end" fill="#5f6368">{peak}</text>',
        f'<text x="{LEFT - 6}" y="{TOP + plot_height}" text-anchor="end" fill="#5f6368">0</text>',
    ]
    for index, hour in enumerate(hours):
        x = LEFT + index * slot + 2
        y = TOP + plot_height
        for status, colour in STATUS_COLOURS.items():
            count = counts[hour].get(status, 0)
            if not count:
                continue
            height = count / peak * plot_height
            y -= height
            parts.append(
                f'<rect class="inflow-bar" data-hour="{hour:%H}" data-status="{status}" data-count="{count}" '
                f'x="{x:.1f}" y="{y:.1f}" width="{slot - 4:.1f}" height="{height:.1f}" fill="{colour}">'
                f"<title>{hour:%H}:00 {escape(status)}: {count}</title></rect>"
            )
        if (len(hours) - 1 - index) % 3 == 0:  # every third hour, ending with the current one
            parts.append(
                f'<text x="{x + (slot - 4) / 2:.1f}" y="{TOP + plot_height + 14}" text-anchor="middle" '
                f'fill="#5f6368">{hour:%H}h</text>'
            )
    legend_x = LEFT
    for status, colour in STATUS_COLOURS.items():
        parts.append(
            f'<rect x="{legend_x}" y="{HEIGHT + 8}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{legend_x + 14}" y="{HEIGHT + 17}" fill="#202124">{status}</text>'
        )
        legend_x += LEGEND_SPACING
    parts.append("</svg>")
    return "".join(parts)
