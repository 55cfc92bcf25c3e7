"""A ``ChooseResult`` as Markdown: the table, the CPU line, the recommendation, why not the faster ones, the notes."""

from __future__ import annotations

from .options import NOT_JUDGED
from .result import ChooseResult, Row, points


def markdown(result: ChooseResult) -> str:
    """The whole report (what ``edgecnn compare --md`` writes)."""
    where = "bundle" if result.kind == "bundle" else "export folder"
    lines = [f"## {result.model}: which file to ship ({where} `{result.folder}`)", ""]
    lines += _table(result)
    lines += _reasons(result.rows)
    lines += ["", cpu_line(result.machine)]
    if result.method:
        lines.append(f"Timing: one interleaved run: {result.method}.")
    golden = result.golden or {}
    against = "PyTorch's fp32 outputs" if golden.get("source") == "pytorch" else "the fp32 model's expected output"
    lines.append(f"Parity: each file's outputs on {golden.get('images', '?')} golden inputs against {against}.")
    if result.data:
        lines.append(f"Accuracy: {result.images} images of `{result.data}`, differences against {result.baseline}.")
    lines += ["", _recommendation(result)]
    if result.why_not:
        title = "Why not the faster ones:" if result.recommended else "Why not each row:"
        lines += ["", title] + [f"- `{label}`: {reason}" for label, reason in result.why_not]
    notes = _notes(result)
    if notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def cpu_line(machine: dict | None) -> str:
    """``CPU: <model> (<n> cores), VNNI yes/no``: where every number of the table was measured."""
    if not machine:
        return "CPU: unknown"
    vnni = {True: "yes", False: "no"}.get(machine.get("vnni"), "unknown")
    cores = f"{machine.get('logical_cores')} logical cores"
    if machine.get("physical_cores"):
        cores += f", {machine['physical_cores']} physical"
    return f"CPU: {machine.get('cpu_model')} ({cores}), VNNI: {vnni}; onnxruntime {machine.get('onnxruntime')}"


def _table(result: ChooseResult) -> list[str]:
    segmentation = result.task == "segmentation"
    agree = "pixel agr. / mIoU" if segmentation else "top-1 agr."
    metric = "pixel acc." if segmentation else "top-1"
    head = ["file", "runs on", "precision", "status", "MB", "cosine", agree, "max abs", "parity"]
    head += [f"{metric} (data)", "Δ vs fp32 [95%]"] if result.data else []
    head += ["p50 ms", "p90 ms", "images/s", "peak MB", "nodes"]
    chosen = result.recommended.label if result.recommended else None
    rows = [_cells(r, segmentation, bool(result.data), r.label == chosen) for r in result.rows]
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(c) + " |" for c in rows]


def _cells(row: Row, segmentation: bool, with_data: bool, chosen: bool) -> list[str]:
    p = row.parity
    mark = " **(recommended)**" if chosen else ""
    cells = [f"`{row.file}`{mark}", row.where, row.precision, row.status, _num(row.size_mb, 2)]
    if p is None:
        cells += ["-"] * 4
    else:
        agreement = f"{p.pixel_agreement:.4f} / {p.mean_iou:.4f}" if segmentation else f"{p.top1_agreement:.3f}"
        verdict = ("pass" if p.passed else "FAIL") if p.judged else "n/a (not binding)"
        cells += [f"{p.cosine:.6f}", agreement, f"{p.max_abs:.2e}", verdict]
    if with_data:
        cells += [_pct(row.accuracy), _difference(row.difference)]
    cells += [_num(row.p50_ms, 3), _num(row.p90_ms, 3), _num(row.images_per_s, 1), _num(row.peak_rss_mb, 1)]
    cells.append(nodes_text(row))
    return [c.replace("|", "\\|") for c in cells]


def _reasons(rows: tuple) -> list[str]:
    """The one-line reason of each row that is not verified, rows sharing one reason (a provider missing for every
    file) said once."""
    grouped: dict[tuple, list[str]] = {}
    for row in rows:
        if row.reason and row.status != NOT_JUDGED:  # not judged: said once, in the notes
            grouped.setdefault((row.status, row.reason), []).append(f"`{row.label}`")
    if not grouped:
        return []
    return [""] + [f"- {status}: {', '.join(labels)}: {reason}" for (status, reason), labels in grouped.items()]


def nodes_text(row: Row) -> str:
    """What really ran: nodes per provider or delegate, and a delegate's partitions and the ops left outside."""
    if not row.nodes:
        return "-"
    text = ", ".join(f"{name.replace('ExecutionProvider', '')} {n}" for name, n in row.nodes.items())
    d = row.delegation or {}
    export = d.get("export") or {}  # ExecuTorch: the exporter's count beside the runtime's own
    parts = d.get("partitions", export.get("partitions", d.get("delegate_calls")))
    if parts is not None:
        outside = ", ".join(f"{op} {n}" for op, n in (d.get("other_ops") or export.get("other_ops") or {}).items())
        text += f" ({parts} partition{'s' if parts != 1 else ''}" + (f"; outside: {outside})" if outside else ")")
    return text


def _recommendation(result: ChooseResult) -> str:
    r = result.recommended
    if r is None:
        return (
            f"**No recommendation**: no file ran here, passed parity and stayed within {points(result.margin)} "
            "of fp32 (see why below)."
        )
    if result.data:
        _, low, high = (100 * v for v in r.difference)
        accuracy = f"accuracy within {points(result.margin)} of fp32 (interval [{low:+.2f}, {high:+.2f}] points)"
    else:
        accuracy = f"agreement with fp32 {100 * r.agreement():.1f}% on the golden photos (stands in for accuracy)"
    return (
        f"**Recommended: `{r.file}` on {r.where}** — p50 {r.p50_ms:.3f} ms, {r.images_per_s:.0f} images/s, "
        f"parity passed, {accuracy}."
    )


def _notes(result: ChooseResult) -> list[str]:
    notes = []
    if result.stand_in:
        images = (result.golden or {}).get("images", "the")
        notes.append(
            f"No --data: top-1 (segmentation: pixel) agreement with fp32 on {images} golden held-out photos stands in "
            f"for accuracy (a file qualifies when 1 - agreement <= {result.margin:g}/100); give --data for accuracy "
            "with an interval."
        )
    if any(r.status == NOT_JUDGED for r in result.rows):
        notes.append(
            "int8 of random weights: figures shown, verdict not binding (an untrained model's class scores are "
            "near-ties); export trained weights (--weights) to judge it."
        )
    notes += [f"`{r.label}`: {n}" for r in result.rows for n in r.notes]
    notes += [f"left out `{f}`: {why}" for f, why in result.left_out]
    return notes + list(result.notes)


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _difference(diff: tuple | None) -> str:
    if diff is None:
        return "-"
    point, low, high = (100 * v for v in diff)
    return f"{point:+.2f} [{low:+.2f}, {high:+.2f}]"
