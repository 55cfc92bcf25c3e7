"""The export's files beyond ONNX: ``.tflite`` (LiteRT) and ``.pte`` (ExecuTorch), from the same model, card and
images as the ONNX files, each checked on its own runtime against the same PyTorch reference by the same rules.

    for each format asked (``--format tflite,pte``): fp32, fp16 (LiteRT's fp16-weights form; with ``--fp16``),
    int8 (with ``--int8``: PT2E through the runtime's own quantizer, ``convert.targets.pt2e``, calibrated on the
    export's calibration images) → reopened by ``open_runner`` on its own runtime → parity.

The card travels inside every file (the flatbuffer's metadata in a ``.tflite``, a constant method in a ``.pte``),
so the runners read it back as they read an ONNX file's. Files are batch 1, static shape (``Job`` input size).
"""

from __future__ import annotations

from ..core.artifact import Artifact
from ..core.card import ModelCard
from .images import ExportImages
from .steps import Built, Job, Run

#: The formats written in fp16 too with ``--fp16`` (LiteRT: fp16 weights; Core ML: fp16 compute).
FP16_FORMATS = ("tflite", "coreml")


def wanted(job: Job) -> list[tuple[str, str]]:
    """``(format, precision)`` for every file beyond ONNX the options ask for, in the order they are made."""
    options, out = job.options, []
    for fmt in (f for f in options.formats if f != "onnx"):
        out.append((fmt, "fp32"))
        if options.fp16 and fmt in FP16_FORMATS:
            out.append((fmt, "fp16"))
        if options.int8 is not None:
            out.append((fmt, "int8"))
    return out


def skipped_notes(job: Job) -> list[str]:
    """What ``--fp16`` does not make, said once (``.pte`` has no fp16 form here)."""
    options = job.options
    missing = [f for f in options.formats if options.fp16 and f not in FP16_FORMATS and f != "onnx"]
    return [f"--fp16: no fp16 .{f} is written (ExecuTorch's XNNPACK fp16 is for ARM)" for f in missing]


def export_targets(job: Job, built: Built, card: ModelCard, images: ExportImages, ref) -> list[Artifact]:
    """Every ``.tflite``/``.pte`` the options ask for, each exported then checked on its own runtime (an int8
    ``.tflite``/``.pte`` chosen among its forms on that runtime: ``pipeline.target_int8``)."""
    job.run.warnings.extend(skipped_notes(job))
    made = [export_one(job, built, card, images, ref, fmt, precision) for fmt, precision in wanted(job)]
    return [a for a in made if a is not None]


def export_one(job: Job, built: Built, card: ModelCard, images: ExportImages, ref, fmt: str, precision: str):
    """One file (``None``: the auto int8 policy kept fp32 for this format)."""
    from ..convert.targets import SUFFIXES
    from .target_int8 import GATED, export_int8_target

    if precision == "int8" and fmt in GATED:
        return export_int8_target(job, built, card, images, ref, fmt)
    path = job.staging / f"{job.spec.name}.{precision}{SUFFIXES[fmt]}"
    return make_target(job, built, card, images, ref, fmt, precision, path)


def make_target(
    job: Job, built: Built, card: ModelCard, images: ExportImages, ref, fmt: str, precision: str, path, recipe=None
) -> Artifact:
    """``convert.targets.export_target`` to ``path`` (int8: with ``recipe``, ``None``: ``pt2e`` chooses), then
    ``check_target``."""
    from ..convert.targets import TargetRequest, export_target

    options = job.options
    file_card = card.replace(precision=precision, input_shape=[1, built.in_channels, *options.input_size])
    if precision == "int8" and fmt != "coreml":  # Core ML's int8 is weights only: no calibration
        calibration = {"source": images.images.source, "count": int(len(images.calibration)), "method": "pt2e"}
        file_card = file_card.replace(extra={**card.extra, "calibration": calibration})
    request = TargetRequest(
        model=built.model,
        example=images.parity[:1],
        path=path,
        precision=precision,
        metadata=file_card.to_metadata(),
        calibration=images.calibration if precision == "int8" else None,
        quantized_io=options.quantized_io and fmt == "tflite" and precision == "int8",
        trained=options.weights is not None,
        recipe=recipe,
    )
    with job.run.step(f"export {fmt} {precision}"):
        made = export_target(fmt, request)
    return check_target(made, card, images, ref, job.run, random_weights=options.weights is None)


def check_target(made, card: ModelCard, images: ExportImages, ref, run: Run, random_weights: bool) -> Artifact:
    """Reopen the file on its own runtime and judge it against PyTorch like an ONNX file of its precision (a Core ML
    package where Core ML cannot predict: read back and held to its card, ``pipeline.coreml_check``)."""
    from .coreml_check import check_coreml, runnable_here, size_and_digest

    if made.format == "coreml" and not runnable_here():
        return check_coreml(made, card, run)
    from ..runtime.compare import compare
    from ..runtime.runner import open_runner
    from ..runtime.session import run_batched

    path, precision = made.path, made.precision
    with run.step(f"check {made.format} {precision}"):
        runner = open_runner(path, providers="cpu")
        try:
            outputs = run_batched(runner, images.parity)[0]
            info = runner.info()
        finally:
            runner.close()
        report = compare(
            ref.fp32[0],
            outputs,
            task=card.task,
            precision=precision,
            random_weights=random_weights and precision == "int8",
            exact=ref.yardstick(precision),
        )
    if not report.judged:
        run.warnings.append(f"{path.name}: {report.note}")
    elif not report.passed:
        run.warnings.append(f"{path.name}: parity FAILED: " + "; ".join(report.failures))
    runtime = {**info, "int8": made.int8} if made.int8 else info
    size, digest = size_and_digest(path)  # an .mlpackage is a folder
    return Artifact(path.name, precision, size, digest, report, made.notes, format=made.format, runtime=runtime)
