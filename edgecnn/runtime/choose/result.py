"""The records of a comparison: one ``Row`` per file × runtime/provider, and the ``ChooseResult`` that holds them
with the recommendation, as JSON-ready data and as a Markdown table."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from ..compare import ParityReport


@dataclass(frozen=True)
class Row:
    """One file on one runtime/provider, and everything measured of it.

    Attributes:
        runtime: what runs it: ``onnxruntime``, ``openvino`` (its own runtime), ``litert``, ``executorch``,
            ``coreml``; after a run, the runner's own word.
        providers: the provider entry asked for (``.onnx`` rows), ``()`` for the formats with their own runtime.
        status: one of ``options.STATUSES``; ``reason`` the one line that explains anything but ``verified``.
        parity: the file's outputs on the golden inputs against the reference (``runtime.golden.judge``).
        accuracy: top-1 (segmentation: pixel accuracy) on ``--data``, a fraction.
        difference: ``(point, low, high)``: accuracy minus the baseline row's, with its paired bootstrap interval.
        nodes: how many nodes each side really ran (the runner's ``node_assignment``: providers, XNNPACK …).
        delegation: LiteRT/ExecuTorch: the delegate's partitions and the operators left outside it.
        ran_on: the providers the runner really used.
    """

    file: str
    format: str
    precision: str
    runtime: str
    providers: tuple = ()
    status: str = ""
    reason: str = ""
    size_mb: float | None = None
    parity: ParityReport | None = None
    accuracy: float | None = None
    difference: tuple | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    images_per_s: float | None = None
    peak_rss_mb: float | None = None
    nodes: dict | None = None
    delegation: dict | None = None
    ran_on: tuple = ()
    notes: tuple = ()

    @property
    def where(self) -> str:
        """The provider entry of an ``.onnx`` row (``cpu``, ``openvino``), else the runtime."""
        return "+".join(self.providers) if self.providers else self.runtime

    @property
    def label(self) -> str:
        """``file [where]``: what names the row in the why-not list and the plot."""
        return f"{self.file} [{self.where}]"

    @property
    def ran(self) -> bool:
        """It ran on the golden inputs (whatever the verdict): it can be timed and scored."""
        return self.parity is not None

    def agreement(self) -> float | None:
        """Top-1 (segmentation: pixel) agreement with the reference on the golden inputs."""
        if self.parity is None:
            return None
        return self.parity.pixel_agreement if self.parity.task == "segmentation" else self.parity.top1_agreement

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out.update(label=self.label, where=self.where, parity=self.parity.to_dict() if self.parity else None)
        return out


@dataclass(frozen=True)
class ChooseResult:
    """A comparison: the rows, the recommendation and why each faster row was not chosen.

    Attributes:
        kind: ``"export"`` or ``"bundle"``.
        recommended: the row recommended, or ``None`` when nothing passes.
        why_not: ``(label, reason)`` of each row faster than the recommended one (every row when there is none).
        left_out: ``(file, reason)`` of the files that are not candidates.
        baseline: the label of the row accuracy differences are measured from (with ``data``).
        images: images scored on ``data``.
        golden: what parity was judged on: ``{"images", "source"}``.
        machine: where it ran: CPU, cores, VNNI, versions.
        method: how the timed runs were scheduled (bench's words).
    """

    folder: str
    kind: str
    model: str
    task: str
    rows: tuple
    recommended: Row | None
    why_not: tuple
    left_out: tuple
    margin: float
    data: str | None = None
    baseline: str | None = None
    images: int | None = None
    golden: dict | None = None
    machine: dict | None = None
    method: str | None = None
    notes: tuple = ()

    @property
    def stand_in(self) -> bool:
        """No ``data``: agreement with fp32 on the golden photos stood in for accuracy."""
        return self.data is None

    def to_dict(self) -> dict:
        """Plain JSON-ready data (non-finite numbers as ``null``: JSON has none)."""
        out = asdict(self)
        out.update(
            rows=[r.to_dict() for r in self.rows],
            recommended=self.recommended.label if self.recommended else None,
            why_not=[{"row": label, "reason": reason} for label, reason in self.why_not],
            left_out=[{"file": f, "reason": r} for f, r in self.left_out],
            stand_in=self.stand_in,
        )
        return _plain(out)

    def to_markdown(self) -> str:
        """The table, the CPU line, the recommendation, the why-not list and the notes."""
        from .report import markdown

        return markdown(self)

    def to_svg(self) -> str:
        """Accuracy (or agreement) against p50 latency, one point per timed row, the recommended one marked."""
        from .plot import svg

        return svg(self)


def points(value: float) -> str:
    """``"1 point"``, ``"2.5 points"``: a margin in words."""
    return f"{value:g} point" + ("" if value == 1 else "s")


def _plain(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
