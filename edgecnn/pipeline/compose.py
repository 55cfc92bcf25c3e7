"""``export``: the steps (``pipeline.steps``) in their order, in a locked staging folder swapped in when all passed.

Everything is written to a hidden staging folder beside the output folder and moved into place only when every
step succeeded, so a failed or interrupted export never leaves a half-written artifact where a good one was.
``export`` returns an ``ExportResult``; ``manifest.json`` holds the same record on disk.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import InputError, ParityError
from ..core.files import staged_output
from ..models.registry import get_spec
from . import steps, targets
from .images import ExportImages, load_images
from .manifest import build_manifest, tool_versions, weights_record, write_manifest
from .options import ExportOptions, check_input_size, options_from_keywords


@dataclass(frozen=True)
class ExportResult:
    """What ``export`` produced: the folder, its artifacts (``Artifact``, parity as ``ParityReport``) and the
    manifest written beside them (the JSON document, as a dict)."""

    model: str
    out_dir: Path
    artifacts: tuple
    manifest: dict
    warnings: tuple = ()

    @property
    def passed(self) -> bool:
        return all(a.parity.passed for a in self.artifacts)

    def path(self, precision: str) -> Path:
        for a in self.artifacts:
            if a.precision == precision:
                return self.out_dir / a.file
        raise KeyError(precision)


def export(
    name: str,
    out_dir: str | Path | None = None,
    options: ExportOptions | None = None,
    *,
    command: str | None = None,
    progress: Callable[[str], None] | None = None,
    writer: str = "export",
    **keywords,
) -> ExportResult:
    """Export one model to ``out_dir`` (default ``exported/NAME``): fp32, and optionally fp16 and int8.

    Args:
        name: registry name or alias.
        out_dir: output folder; refused if it already holds an export, unless ``options.force``.
        options: an ``ExportOptions``, passed whole and written to the manifest as ``options.to_dict()``; or,
            instead, keywords (``options_from_keywords``: its fields, with ``int8`` also ``True``/``"static"``/
            ``"auto"`` beside ``calib_method`` and ``int8_weight_bits``). Passing both is a ``TypeError``.
        command: the command line to record in the manifest.
        progress: called with the name of each step as it starts.
        writer: who the folder's listing names as its writer (``"compare"`` for compare's own folders).

    Raises:
        EdgeCNNError: bad input (unknown model, bad weights, bad options, unwritable output). A parity failure
            is *not* raised: it is recorded in the result; the CLI turns it into a non-zero exit.
    """
    if options is not None and keywords:
        raise TypeError("pass either options=ExportOptions(...) or keyword options to export(), not both")
    if options is None:
        options = options_from_keywords(**keywords)
    spec = get_spec(name)
    hw = check_input_size(options.input_size, spec)
    _check_formats(options)
    label_list = steps.read_labels(options.labels) if options.labels is not None else None
    out_dir = Path(out_dir) if out_dir is not None else Path("exported") / spec.name
    run = steps.Run(progress)
    inputs = [
        path for path in (options.weights, options.calib, options.labels) if path is not None and os.path.exists(path)
    ]  # "imagenet" names a checkpoint, not a path
    with staged_output(out_dir, options.force, run.warnings, writer=writer, inputs=inputs) as staging:
        job = steps.Job(spec, options.replace(input_size=hw), staging, run)
        result = _export_into(job, options, label_list, command, out_dir)
        failed = [a.file for a in result.artifacts if a.failed]
        if failed and out_dir.is_dir() and any(out_dir.iterdir()):  # --force: a failing run never replaces a good one
            raise ParityError(
                f"parity failed for {', '.join(failed)}; the export already in '{out_dir}' was kept (nothing replaced)"
            )
        return result


def _check_formats(options: ExportOptions) -> None:
    """Refuse, before any work, a format this install cannot make, and ONNX-only options without ONNX."""
    from ..convert.targets.request import formats

    missing = [f"{fmt}: {reason}" for fmt, reason in formats().items() if fmt in options.formats and reason]
    if missing:
        raise InputError(f"cannot export {'; '.join(missing)}")
    if "onnx" not in options.formats and options.embed_preprocess:
        raise InputError("--embed-preprocess makes ONNX twins: add onnx to --format, or drop it")
    _check_int8_runtimes(options)


def _check_int8_runtimes(options: ExportOptions) -> None:
    """An int8 .onnx for a runtime this machine cannot run cannot be timed there: refused before any work."""
    from ..runtime import openvino

    runtimes = options.int8.runtimes if options.int8 is not None else ()
    if runtimes not in ((), ("cpu",)):
        if "onnx" not in options.formats:
            raise InputError("--int8-for chooses the int8 .onnx: add onnx to --format, or drop it")
        if not options.int8.speed:
            raise InputError("--int8-for needs the speed gate: the choice for each runtime is made on its timing")
    missing = [r for r in runtimes if r == "openvino" and openvino.backend() is None]
    if missing:
        raise InputError(
            f"--int8-for {missing[0]}: its runtime is not installed here, so the int8 forms cannot be timed on it "
            '(pip install "edgecnn[openvino]"), or drop it'
        )


def _export_into(job: steps.Job, asked: ExportOptions, label_list, command, out_dir: Path) -> ExportResult:
    """The steps in order; ``asked`` (the caller's options) goes to the manifest as it is."""
    options, run = job.options, job.run
    built = steps.build_model(job.spec, options, run, label_list)
    with run.step("load images"):
        images = load_images(built.card, options, run.warnings)
    if options.weights is None:
        steps.reestimate_batchnorm(built.model, images.calibration, run)
    ref = steps.reference(built.model, images.parity, run, half=options.fp16)
    records = {
        "versions": tool_versions(options.formats),
        "weights": weights_record(options.weights, built.load_report, built.checkpoint),
    }
    extra = {"arch_options": options.arch_options} if options.arch_options else {}
    card = built.card.replace(
        opset=options.opset, versions=records["versions"], weights=records["weights"], extra=extra
    )
    artifacts = _artifacts(job, built, card, images, ref, records)
    records["golden"] = steps.golden(job, images, ref)
    records.update(calibration=images.record(), timings_s=run.timings, warnings=run.warnings)
    manifest = build_manifest(
        job.spec, asked, card, command, checkpoint=built.checkpoint, records=records, artifacts=artifacts
    )
    write_manifest(job.staging, manifest)
    return ExportResult(job.spec.name, out_dir, tuple(artifacts), manifest, tuple(run.warnings))


def _artifacts(job: steps.Job, built, card, images: ExportImages, ref, records: dict) -> list:
    """The ONNX files (fp32, then fp16, int8, twins), the other formats' files, and the bundle, as the options
    ask; the int8 and bundle records go to ``records``."""
    options, artifacts = job.options, []
    if "onnx" in options.formats:
        artifacts.append(steps.export_fp32(job, built, card, images, ref))
        if options.fp16:
            artifacts.append(steps.export_fp16(job, card, images, ref))
        if options.int8 is not None:
            records["int8"], made = steps.export_int8(job, card, images, ref)
            artifacts += made
        if options.embed_preprocess:
            artifacts += steps.embed(job, artifacts)
    artifacts += targets.export_targets(job, built, card, images, ref)
    if options.bundle:
        records["bundle"] = steps.bundle(job, artifacts)
    return artifacts
