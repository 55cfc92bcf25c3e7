"""The recommendation: the fastest row that is right, and why each faster one is not it.

A row qualifies when it ran and its parity passed on the golden inputs (a binding verdict: int8 of random weights
has none), it was timed, and its accuracy is within ``margin`` points of fp32:

- with ``--data``: the low end of the paired bootstrap interval of its difference from the baseline row (fp32
  .onnx on CPU) is above ``-margin`` — the loss is bounded, not just small on this sample;
- without: its top-1 (segmentation: pixel) agreement with fp32 on the golden held-out photos stands in,
  ``1 - agreement <= margin / 100``, and the table says so.

The recommended row is the qualifying one of lowest p50. Every row faster than it gets one line saying why it was
not chosen; when nothing qualifies, every row does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .options import FAILED, NOT_JUDGED, NOT_RUNNABLE
from .result import Row, points


@dataclass(frozen=True)
class Decision:
    """``recommended``: an index into the rows, or ``None``; ``why_not``: ``(label, reason)`` pairs, fastest first."""

    recommended: int | None
    why_not: tuple


def why_not(row: Row, margin: float, with_data: bool, baseline: str | None = None) -> str | None:
    """Why ``row`` cannot be recommended, in one line; ``None`` when it qualifies."""
    if row.status == FAILED:
        return row.reason if row.reason.startswith("parity failed") else f"failed: {row.reason}"
    if row.status == NOT_RUNNABLE:
        return f"not runnable here: {row.reason}"
    if row.status == NOT_JUDGED:
        return f"not judged: {row.reason}"
    if row.p50_ms is None:
        return next((n for n in row.notes if n.startswith("not timed")), "not timed")
    if with_data:
        return _interval_reason(row, margin, baseline)
    agreement = row.agreement()
    if agreement is None or 100.0 * (1.0 - agreement) > margin:
        what = "pixel" if row.parity and row.parity.task == "segmentation" else "top-1"
        shown = "unknown" if agreement is None else f"{100 * agreement:.1f}%"
        return f"{what} agreement with fp32 on the golden photos {shown}: more than {points(margin)} off (no --data)"
    return None


def _interval_reason(row: Row, margin: float, baseline: str | None) -> str | None:
    if row.difference is None:
        return "no accuracy on --data"
    point, low, high = (100.0 * v for v in row.difference)
    if low > -margin:
        return None
    against = f" vs {baseline}" if baseline else ""
    return (
        f"interval [{low:+.2f}, {high:+.2f}] points{against} misses -{margin:g} "
        f"(difference {point:+.2f} points on --data)"
    )


def decide(rows: Sequence[Row], margin: float, with_data: bool, baseline: str | None = None) -> Decision:
    """The fastest qualifying row and the why-not list (see the module docstring)."""
    reasons = [why_not(r, margin, with_data, baseline) for r in rows]
    timed = sorted((i for i, r in enumerate(rows) if r.p50_ms is not None), key=lambda i: rows[i].p50_ms)
    best = next((i for i in timed if reasons[i] is None), None)
    if best is None:
        untimed = [i for i in range(len(rows)) if i not in timed]
        return Decision(None, tuple((rows[i].label, reasons[i]) for i in timed + untimed))
    faster = timed[: timed.index(best)]
    return Decision(best, tuple((rows[i].label, reasons[i]) for i in faster))
