"""Accuracy (or agreement) against p50 latency as an SVG, written with string formatting: the torch-free device
install has no matplotlib, and a scatter of a dozen points needs none.

One ``<circle class="row">`` per row that was timed and has a y value, its ``<title>`` the row's label (a tooltip
in a browser); the recommended row is ringed and named. Colour says the status: green verified, red failed,
grey not judged.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from .options import FAILED, VERIFIED
from .result import ChooseResult, Row

WIDTH, HEIGHT = 720, 440
LEFT, RIGHT, TOP, BOTTOM = 70, 30, 50, 60
COLOURS = {VERIFIED: "#2a9d4b", FAILED: "#d62728"}
OTHER = "#8c8c8c"
TICKS = 5


def _y_value(row: Row, with_data: bool) -> float | None:
    value = row.accuracy if with_data else row.agreement()
    return None if value is None else 100.0 * value


def svg(result: ChooseResult) -> str:
    """The plot of ``result`` (see the module docstring)."""
    with_data = bool(result.data)
    points = [(r, r.p50_ms, _y_value(r, with_data)) for r in result.rows]
    points = [(r, x, y) for r, x, y in points if x is not None and y is not None]
    what = "pixel accuracy" if result.task == "segmentation" else "top-1"
    y_title = f"{what} on data (%)" if with_data else f"{what} agreement with fp32 on golden photos (%)"
    xs, ys = [x for _, x, _ in points] or [1.0], [y for _, _, y in points] or [100.0]
    x_max = max(xs) * 1.1
    y_low = min(min(ys) - 2.0, 99.0)
    y_low = max(0.0, y_low - (100.0 - y_low) * 0.05)

    def sx(x: float) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * x / x_max

    def sy(y: float) -> float:
        return HEIGHT - BOTTOM - (HEIGHT - TOP - BOTTOM) * (y - y_low) / (100.0 - y_low)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2:.0f}" y="24" text-anchor="middle" font-size="15">'
        f"{escape(result.model)}: {'accuracy' if with_data else 'agreement with fp32'} against p50 latency</text>",
    ]
    parts += _axes(x_max, y_low, sx, sy, y_title)
    chosen = result.recommended.label if result.recommended else None
    for row, x, y in points:
        colour = COLOURS.get(row.status, OTHER)
        parts.append(
            f'<circle class="row" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="5" fill="{colour}">'
            f"<title>{escape(row.label)}: {x:.3f} ms, {y:.2f}% ({escape(row.status)})</title></circle>"
        )
        if row.label == chosen:
            parts.append(
                f'<circle class="recommended" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="10" fill="none" '
                f'stroke="black" stroke-width="2"/>'
                f'<text x="{sx(x) + 13:.1f}" y="{sy(y) - 8:.1f}">recommended: {escape(row.label)}</text>'
            )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _axes(x_max: float, y_low: float, sx, sy, y_title: str) -> list[str]:
    """Both axes with their ticks and titles."""
    x0, x1, y0, y1 = LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, TOP
    out = [
        f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="black"/>',
        f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="black"/>',
    ]
    for k in range(TICKS + 1):
        x = x_max * k / TICKS
        y = y_low + (100.0 - y_low) * k / TICKS
        out.append(f'<text x="{sx(x):.1f}" y="{y0 + 18}" text-anchor="middle">{x:.3g}</text>')
        out.append(f'<text x="{x0 - 8}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.1f}</text>')
        out.append(f'<line x1="{x0}" y1="{sy(y):.1f}" x2="{x1}" y2="{sy(y):.1f}" stroke="#eeeeee"/>')
    out.append(f'<text x="{(x0 + x1) / 2:.0f}" y="{HEIGHT - 18}" text-anchor="middle">p50 latency (ms)</text>')
    out.append(
        f'<text x="18" y="{(y0 + y1) / 2:.0f}" text-anchor="middle" '
        f'transform="rotate(-90 18 {(y0 + y1) / 2:.0f})">{escape(y_title)}</text>'
    )
    return out
