"""The measurements behind a comparison: each row run on the golden inputs and judged, every row that ran timed in
one interleaved benchmark, and scored on labelled data.

A row that cannot run here (a provider or runtime not installed, Core ML off macOS, ExecuTorch without torch) or a
file its runtime refuses is a row with its status and one line, never an exception: the table is for a machine
that may lack some of them, and one bad file must not hide the others' numbers.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ...core.card import ModelCard
from ...core.errors import ArtifactError, EdgeCNNError, ProviderUnavailableError, first_line
from ...core.files import size_bytes
from ..bench import BenchOptions, benchmark_pairs
from ..evaluate import evaluate
from ..golden import Golden, judge
from ..runner import open_runner
from ..selftest import run_golden
from .options import FAILED, NOT_JUDGED, NOT_RUNNABLE, VERIFIED, ChooseOptions
from .result import Row
from .source import Candidate

#: The runtime each format runs on, where it is not the provider's to say.
FORMAT_RUNTIMES = {"tflite": "litert", "pte": "executorch", "coreml": "coreml"}
COREML_OFF_MAC = "converted, not run: Core ML predicts on macOS only"
#: format -> (module the runtime needs, why not without it), checked in order before a file is opened
_NEEDS = {
    "tflite": (("ai_edge_litert", 'LiteRT\'s runtime is not installed: pip install "edgecnn[litert]"'),),
    "pte": (
        ("torch", "ExecuTorch's runtime needs torch (not on the device install)"),
        ("executorch", 'ExecuTorch\'s runtime is not installed: pip install "edgecnn[executorch]"'),
    ),
}

Progress = Callable[[str], object] | None


def plan_rows(candidates: tuple, eps: tuple) -> list[tuple[Row, Candidate]]:
    """One row per candidate × provider entry (``.onnx``) or per candidate (the formats with their own runtime); a
    file made for one runtime alone runs on the entries of that runtime only."""
    rows = []
    for c in candidates:
        size = _size_mb(c.path)
        if c.format == "onnx":
            rows += [
                (Row(c.file, c.format, c.precision, "onnxruntime", tuple(e), size_mb=size, notes=c.notes), c)
                for e in eps
                if c.made_for is None or c.made_for in e
            ]
        else:
            runtime = FORMAT_RUNTIMES.get(c.format, c.format)
            rows.append((Row(c.file, c.format, c.precision, runtime, size_mb=size, notes=c.notes), c))
    return rows


def _size_mb(path: Path) -> float | None:
    """The file's size in MiB (an ``.mlpackage`` is a folder: all its files)."""
    return round(size_bytes(path) / 2**20, 3) if path.exists() else None


def _cannot_run(row: Row) -> str | None:
    """Why this machine cannot run the row at all, before anything is opened; ``None`` when it may."""
    if row.format == "coreml" and sys.platform != "darwin":
        return COREML_OFF_MAC
    if row.format not in ("onnx", "tflite", "pte", "coreml"):
        return f"no runtime here runs the format {row.format!r}"
    # find_spec looks without importing: the device install never loads torch to learn that it lacks it
    return next((why for module, why in _NEEDS.get(row.format, ()) if importlib.util.find_spec(module) is None), None)


def _coreml_problems(path: Path) -> list[str]:
    """What the structural check (``runtime.coreml``: names, shapes, dtypes, precision, the card) finds wrong."""
    from ..coreml.mlpackage import inspect, structural_problems

    try:
        return [f"structure: {p}" for p in structural_problems(inspect(path))]
    except ArtifactError as exc:
        return [f"structure: {first_line(exc)}"]


def check_row(row: Row, path: Path, golden: Golden, task: str, random_weights: bool | None, threads) -> Row:
    """Open the row's file on its runtime, run the golden inputs through it, judge the outputs.

    ``random_weights`` ``None``: read from the file's card (a bundle records no weights of its own).
    """
    if not path.exists():
        return replace(row, status=FAILED, reason=f"file missing: {path}")
    reason = _cannot_run(row)
    if reason and row.format == "coreml":  # not run here, but a damaged package still fails its structure check
        problems = _coreml_problems(path)
        return replace(row, status=FAILED if problems else NOT_RUNNABLE, reason="; ".join(problems) or reason)
    if reason:
        return replace(row, status=NOT_RUNNABLE, reason=reason)
    try:
        runner = open_runner(path, providers=list(row.providers) or "cpu", threads=threads)
    except ProviderUnavailableError as exc:
        return replace(row, status=NOT_RUNNABLE, reason=first_line(exc))
    except Exception as exc:  # the runtime refuses the file: its own error types vary (onnxruntime, LiteRT …)
        return replace(row, status=FAILED, reason=f"cannot open: {first_line(exc)}")
    try:
        outputs = run_golden(runner, golden.inputs)
        info, nodes = runner.info(), runner.node_assignment()
        card = ModelCard.from_metadata(runner.metadata, path.name)
    except Exception as exc:  # a run error is the file's verdict, not the comparison's end
        return replace(row, status=FAILED, reason=f"run error: {first_line(exc)}")
    finally:
        runner.close()
    if random_weights is None:
        random_weights = bool(card and (card.weights or {}).get("source") == "random")
    report = judge(golden, outputs, task=task, precision=row.precision, random_weights=random_weights)
    status = VERIFIED if report.passed else FAILED
    reason = "" if report.passed else "parity failed: " + "; ".join(report.failures)
    if not report.judged:
        status, reason = (NOT_JUDGED, report.note) if report.passed else (FAILED, reason)
    return replace(
        row,
        status=status,
        reason=reason,
        parity=report,
        runtime=info.get("runtime", row.runtime),
        ran_on=tuple(info.get("providers") or ()),
        nodes=nodes,
        delegation=info.get("delegation"),
    )


def time_rows(rows: list[Row], paths: list[Path], options: ChooseOptions) -> tuple[list[Row], dict, str | None]:
    """Every row that ran on the golden inputs (parity failures too: a wrong file may be the fastest, and the
    table says so), timed in one interleaved benchmark (``bench.benchmark_pairs``).

    Returns:
        The rows with p50/p90, images/s and peak memory; the machine it ran on (bench's ``MachineInfo`` as a
        dict, ``{}`` when nothing was timed); bench's method in words.
    """
    ran = [i for i, r in enumerate(rows) if r.ran]
    if not ran:
        return rows, {}, None
    bench = BenchOptions(threads=options.threads, seconds=options.seconds, warmup=options.warmup, rounds=options.rounds)
    try:
        results = benchmark_pairs([(paths[i], rows[i].providers or ("cpu",)) for i in ran], bench)
    except EdgeCNNError as exc:  # the rows ran once already; a failure here leaves them untimed, said so
        note = f"not timed: {first_line(exc)}"
        return [replace(r, notes=r.notes + (note,)) if k in ran else r for k, r in enumerate(rows)], {}, None
    out = list(rows)
    for i, res in zip(ran, results):
        batch = res.batches[0]
        out[i] = replace(
            rows[i],
            p50_ms=batch.latency.p50_ms,
            p90_ms=batch.latency.p90_ms,
            images_per_s=batch.throughput_ips,
            peak_rss_mb=res.memory.peak_rss_mb,
            nodes=rows[i].nodes or res.node_assignment,
            delegation=rows[i].delegation or res.delegation,
        )
    return out, results[0].to_dict()["machine"], results[0].method


def baseline_index(rows: list[Row]) -> int | None:
    """The row accuracy differences are measured from: fp32 .onnx on CPU, else the first fp32 row, else the first
    row that ran (``None``: nothing ran)."""
    ran = [i for i, r in enumerate(rows) if r.ran]
    for test in (
        lambda r: r.format == "onnx" and r.precision == "fp32" and r.providers == ("cpu",),
        lambda r: r.precision == "fp32",
        lambda r: True,
    ):
        found = next((i for i in ran if test(rows[i])), None)
        if found is not None:
            return found
    return None


def score_rows(rows: list[Row], paths: list[Path], options: ChooseOptions) -> tuple[list[Row], int | None, int]:
    """Every row that ran, scored on ``options.data`` (``runtime.evaluate``), the baseline first so that each
    other row gets its paired bootstrap interval against it.

    Returns:
        The rows with accuracy and difference; the baseline's index (``None``: nothing ran); images scored.

    Raises:
        InputError: data evaluate refuses (no labelled images, labels no class matches).
    """
    base = baseline_index(rows)
    if base is None:
        return rows, None, 0
    order = [base] + [i for i, r in enumerate(rows) if r.ran and i != base]
    result = evaluate(
        [paths[i] for i in order],
        options.data,
        labels_from=options.labels_from,
        batch=options.batch,
        providers_per_model=[rows[i].providers or ("cpu",) for i in order],
    )
    out = list(rows)
    for k, i in enumerate(order):
        model = result.models[k]
        accuracy = model.pixel_accuracy if result.task == "segmentation" else model.top1
        c = result.comparisons[k - 1] if k else None
        difference = (c.difference, c.low, c.high) if c else (0.0, 0.0, 0.0)
        out[i] = replace(rows[i], accuracy=accuracy, difference=difference)
    return out, base, result.n_images
