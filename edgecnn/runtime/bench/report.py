"""Rendering results: the CLI table, the markdown report and the JSON document."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .results import SCHEMA_VERSION, BenchResult

TABLE_HEADERS = (
    "model",
    "precision",
    "ep",
    "batch",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "mean ms",
    "img/s",
    "peak RSS MB",
    "create ms",
)
TORCH_HEADERS = ("torch p50 ms", "speedup")


def table_rows(results: Sequence[BenchResult]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows (one per result and batch size) for the CLI table and the markdown report."""
    with_torch = any(b.torch_latency is not None for r in results for b in r.batches)
    headers = list(TABLE_HEADERS) + (list(TORCH_HEADERS) if with_torch else [])
    rows = []
    for r in results:
        name = r.model or Path(r.model_path).stem
        ep = "+".join(r.providers_requested)
        if r.provider_precision:  # OpenVINO's float precision hint: "openvino(f32)"
            ep += "(" + ",".join(sorted(set(r.provider_precision.values()))) + ")"
        if r.backend != "onnxruntime":  # OpenVINO's own runtime, not onnxruntime's plugin
            ep += " [" + r.backend + "]"
        for b in r.batches:
            lat = b.latency
            row = [
                name,
                r.precision or "?",
                ep,
                str(b.batch_size),
                f"{lat.p50_ms:.3f}",
                f"{lat.p90_ms:.3f}",
                f"{lat.p99_ms:.3f}",
                f"{lat.mean_ms:.3f}",
                f"{b.throughput_ips:.1f}",
                "-" if r.memory.peak_rss_mb is None else f"{r.memory.peak_rss_mb:.0f}",
                f"{r.session_create_ms:.0f}",
            ]
            if with_torch:
                row += (
                    ["-", "-"]
                    if b.torch_latency is None
                    else [f"{b.torch_latency.p50_ms:.3f}", f"{b.torch_speedup:.2f}x"]
                )
            rows.append(row)
    return headers, rows


def to_markdown(results: Sequence[BenchResult]) -> str:
    """A markdown report: the machine and method, then one table row per result and batch size."""
    if not results:
        return "No results.\n"
    m = results[0].machine
    t = results[0].threads
    headers, rows = table_rows(results)
    lines = [
        f"Machine: {m.cpu_model}, {m.physical_cores or '?'} cores / {m.logical_cores} threads"
        + (f", GPU {m.gpu}" if m.gpu else "")
        + f"; onnxruntime {m.onnxruntime}, onnx {m.onnx}"
        + (f", torch {m.torch}" if m.torch else "")
        + f"; {m.date}.",
        "",
        f"Threads: {t.requested if t.requested is not None else 'library default'}. Method: {results[0].method}.",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" if i < 3 else "---:" for i in range(len(headers))) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def report_dict(results: Sequence[BenchResult]) -> dict:
    """What ``edgecnn bench --json`` writes: ``{"schema_version": 1, "results": [BenchResult.to_dict(), …]}``."""
    return {"schema_version": SCHEMA_VERSION, "results": [r.to_dict() for r in results]}
