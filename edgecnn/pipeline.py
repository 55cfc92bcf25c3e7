"""The export pipeline: the one place where the steps are composed.

    build model → reference inputs → torch.onnx → portable ops + onnxsim → metadata → parity
                                                 ├─ fp16 → parity
                                                 └─ int8 (edgecnn.int8: calibrate, sensitivity + fallback,
                                                         speed gate, --int8 auto) → parity

Everything is written to a hidden staging folder beside the output folder and moved into place only when
every step succeeded, so a failed or interrupted export never leaves a half-written artifact where a good
one was. ``export`` returns an ``ExportResult``; ``manifest.json`` holds the same record on disk.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .convert.manifest import (
    build_card,
    build_manifest,
    set_card,  # noqa: F401
    tool_versions,
    weights_record,
    write_manifest,
    write_onnx,
)
from .convert.options import ExportOptions, Int8Options
from .core.artifact import Artifact
from .core.card import ModelCard
from .core.errors import ArtifactError, InputError, ParityError, first_line
from .core.files import sha256_file, staged_output
from .core.paths import is_checkpoint_path
from .core.sizes import parse_batch, parse_hw  # noqa: F401  (parse_batch: re-exported)
from .models.registry import ModelSpec, get_spec, imagenet_labels

_write_onnx, _set_card, _weights_record = write_onnx, set_card, weights_record  # the names other modules import
DEFAULT_SAMPLE_COUNT = 64  # default calibration images (sample photos)
# trained weights: int8's agreement is judged on a held-out quarter (at most 48), and the 97% target tolerates one
# near-tie only from 34 images up; on 16, one image decided between forms (EfficientNet-Lite0: float stems of 3
# and 5 nodes, 0.969 vs 0.945 on 128 crops). 192 images hold out 48, for 3 s more calibration (Lite0 at 224×224).
DEFAULT_TRAINED_SAMPLE_COUNT = 192
DEFAULT_CALIB_LIMIT = 200  # most images read from a --calib folder
PARITY_SAMPLES = 32  # images held out of calibration to judge parity
# Images the BatchNorm statistics of random weights are re-estimated on. Their job is outputs that vary with
# the input; 16 do that as well as 64 (spread of the logits across images, MobileNetV2 0.315 vs 0.326, ResNet50
# 0.319 vs 0.331) at a quarter of the time (MobileNetV2 2.9 vs 11.0 CPU-s).
BATCHNORM_IMAGES = 16


@dataclass(frozen=True)
class ExportResult:
    """What ``export`` produced: the folder, its artifacts and the manifest written beside them."""

    model: str
    out_dir: Path
    artifacts: tuple
    manifest: dict
    warnings: tuple = ()

    @property
    def passed(self) -> bool:
        return all(a.parity.get("passed", False) for a in self.artifacts)

    def path(self, precision: str) -> Path:
        for a in self.artifacts:
            if a.precision == precision:
                return self.out_dir / a.file
        raise KeyError(precision)


@dataclass
class _Run:
    """Mutable bookkeeping of one export (timings, warnings); frozen into the manifest at the end."""

    progress: Callable[[str], None] | None
    timings: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    def step(self, name: str):
        run = self

        class _Timer:
            def __enter__(self):
                if run.progress:
                    run.progress(name)
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                run.timings[name] = round(time.perf_counter() - self.t0, 3)
                return False

        return _Timer()


def parse_input_size(value: str | int | tuple | None, spec: ModelSpec) -> tuple[int, int]:
    """``224``, ``"224"``, ``"256x320"`` or ``(H, W)`` → ``(H, W)``, checked against the architecture."""
    if value is None:
        return tuple(spec.input_size)
    hw = parse_hw(value, "input size")
    mh, mw = spec.min_input_size
    if hw[0] < mh or hw[1] < mw:
        raise InputError(f"{spec.name} needs an input of at least {mh}x{mw}, got {hw[0]}x{hw[1]}")
    if spec.size_multiple > 1 and (hw[0] % spec.size_multiple or hw[1] % spec.size_multiple):
        raise InputError(
            f"{spec.name} needs height and width that are multiples of {spec.size_multiple}, got {hw[0]}x{hw[1]}"
        )
    return hw


_CONVENIENCES = frozenset(
    {
        "weights",
        "num_classes",
        "input_size",
        "batch",
        "opset",
        "fp16",
        "int8",
        "calib",
        "calib_count",
        "calib_method",
        "simplify",
        "force",
        "labels",
        "arch_options",
        "embed_preprocess",
        "bundle",
        "int8_weight_bits",
    }
)


def options_from_keywords(**keywords) -> ExportOptions:
    """The keyword form of ``export`` (``int8=True/'static'/'auto'``, ``calib_method=…``, ``int8_weight_bits=…``)
    → ``ExportOptions``."""
    unknown = set(keywords) - _CONVENIENCES
    if unknown:
        raise TypeError(f"export() got unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    int8 = Int8Options.from_flag(
        keywords.pop("int8", False), keywords.pop("calib_method", None), keywords.pop("int8_weight_bits", None)
    )
    size = keywords.get("input_size")
    if size is not None:
        try:
            parse_hw(size, "input size")
        except InputError as exc:
            if "positive integers" in str(exc) or "one number or HxW" in str(exc):
                raise InputError(f"input size '{size}' is not a number or HxW (e.g. 224 or 256x320)") from None
            raise
    return ExportOptions(int8=int8, **keywords)


def export(
    name: str,
    out_dir: str | Path | None = None,
    options: ExportOptions | None = None,
    *,
    command: str | None = None,
    progress: Callable[[str], None] | None = None,
    **keyword_conveniences,
) -> ExportResult:
    """Export one model to ``out_dir`` (default ``exported/NAME``): fp32, and optionally fp16 and int8.

    Args:
        name: registry name or alias.
        out_dir: output folder; refused if it already holds an export, unless ``options.force``.
        options: an ``ExportOptions`` (see its attributes); or, instead, its fields as keywords: ``weights``,
            ``num_classes``, ``input_size``, ``batch``, ``opset``, ``fp16``, ``int8`` (``True``/``"static"``/
            ``"auto"``), ``calib``, ``calib_count``, ``calib_method``, ``simplify``, ``force``, ``labels``,
            ``arch_options``, ``embed_preprocess``, ``bundle``. Passing both is an error.
        command: the command line to record in the manifest.
        progress: called with the name of each step as it starts.

    Raises:
        EdgeCNNError: bad input (unknown model, bad weights, bad options, unwritable output). A parity failure
            is *not* raised: it is recorded in the result; the CLI turns it into a non-zero exit.
    """
    if options is not None and keyword_conveniences:
        raise TypeError("pass either options=ExportOptions(...) or keyword options to export(), not both")
    if options is None:
        options = options_from_keywords(**keyword_conveniences)
    spec = get_spec(name)
    hw = parse_input_size(options.input_size, spec)
    label_list = _read_labels(options.labels) if options.labels is not None else None
    out_dir = Path(out_dir) if out_dir is not None else Path("exported") / spec.name
    run = _Run(progress)
    inputs = [
        path for path in (options.weights, options.calib, options.labels) if path is not None and os.path.exists(path)
    ]  # "imagenet" names a checkpoint, not a path
    with staged_output(out_dir, options.force, run.warnings, writer="export", inputs=inputs) as staging:
        result = _export_into(staging, spec, options.replace(input_size=hw), run, label_list, command, out_dir)
        failed = [a.file for a in result.artifacts if a.parity.get("judged", True) and not a.parity["passed"]]
        if failed and out_dir.is_dir() and any(out_dir.iterdir()):  # --force: a failing run never replaces a good one
            raise ParityError(
                f"parity failed for {', '.join(failed)}; the export already in '{out_dir}' was kept (nothing replaced)"
            )
        return result


def _read_labels(path: str | Path) -> list[str]:
    try:
        lines = [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines()]
    except OSError as exc:
        raise InputError(
            f"cannot read labels file '{path}' ({exc.strerror}); pass a text file, one name per line"
        ) from None
    return [ln for ln in lines if ln]


@dataclass
class _Built:
    """The model and what was learnt building it."""

    model: object
    load_report: object
    checkpoint: object
    card: ModelCard
    in_channels: int


def _export_into(
    staging: Path, spec: ModelSpec, options: ExportOptions, run: _Run, label_list, command, out_dir: Path
) -> ExportResult:
    built = _build_model(spec, options, run, label_list)
    images, calib_arrays, parity_arrays = _load_images(built.card, options, run)
    if options.weights is None:
        _reestimate_batchnorm(built.model, calib_arrays, run)
    reference = _reference(built.model, parity_arrays, run, half=options.fp16)
    versions = tool_versions()
    weights = weights_record(options.weights, built.load_report, built.checkpoint)
    card = built.card.replace(
        opset=options.opset,
        versions=versions,
        weights=weights,
        extra={"arch_options": options.arch_options} if options.arch_options else {},
    )
    fp32_path = staging / f"{spec.name}.fp32.onnx"
    artifacts = [_export_fp32(built, spec, options, card, fp32_path, parity_arrays, reference, run)]
    if options.fp16:
        artifacts.append(
            _export_fp16(fp32_path, staging / f"{spec.name}.fp16.onnx", card, parity_arrays, reference, run)
        )
    calibration = images.record()
    calibration["used_for_calibration"] = int(len(calib_arrays))
    calibration["held_out_for_parity"] = int(len(parity_arrays))
    calibration["parity_on_calibration_images"] = parity_arrays is calib_arrays
    int8_record = None
    if options.int8 is not None:
        int8_record, artifact = _export_int8(
            fp32_path,
            staging / f"{spec.name}.int8.onnx",
            spec,
            options,
            card,
            images.source,
            calib_arrays,
            parity_arrays,
            reference,
            run,
        )
        artifacts += [artifact] if artifact is not None else []
    if options.embed_preprocess:
        from .deploy.embed import embed_variants

        with run.step("embed preprocessing"):
            artifacts += embed_variants(staging, artifacts, run.warnings)
    bundle_record = _bundle(staging, artifacts, run) if options.bundle else None
    manifest = build_manifest(
        spec=spec,
        options=options,
        card=card,
        command=command,
        weights=weights,
        checkpoint=built.checkpoint,
        calibration=calibration,
        int8=int8_record,
        artifacts=artifacts,
        bundle=bundle_record,
        versions=versions,
        timings=run.timings,
        warnings=run.warnings,
    )
    write_manifest(staging, manifest)
    return ExportResult(spec.name, out_dir, tuple(artifacts), manifest, tuple(run.warnings))


def _build_model(spec: ModelSpec, options: ExportOptions, run: _Run, label_list) -> _Built:
    from .models.registry import create_model_with_report

    weights = options.weights
    import torch

    # Random init from a fixed seed (the caller's RNG state untouched): the same command gives the same model,
    # so a parity verdict on random weights does not flip from run to run.
    with run.step("build model"), torch.random.fork_rng():
        torch.manual_seed(0)
        model, load_report = create_model_with_report(
            spec.name, num_classes=options.num_classes, weights=weights, **options.arch_options
        )
        published = weights is not None and load_report and not is_checkpoint_path(weights)
        checkpoint = spec.checkpoint(weights) if published else None
        n_classes = _num_classes(model, spec, options.num_classes, checkpoint)
        in_channels = int(options.arch_options.get("in_channels", 3))
        labels = label_list
        if labels is None and checkpoint is not None and checkpoint.labels == "imagenet" and n_classes == 1000:
            labels = list(imagenet_labels())
        if labels is not None and len(labels) != n_classes:
            raise InputError(f"the labels file has {len(labels)} names but the model has {n_classes} classes")
        card = build_card(
            spec, options.input_size, n_classes, checkpoint, options.batch, spec.dynamic_hw, labels, in_channels
        )
    return _Built(model, load_report, checkpoint, card, in_channels)


def _load_images(card: ModelCard, options: ExportOptions, run: _Run):
    from .convert.calibration import load_folder, load_samples

    calib = options.calib
    with run.step("load images"):
        samples = DEFAULT_TRAINED_SAMPLE_COUNT if options.weights is not None else DEFAULT_SAMPLE_COUNT
        wanted = options.calib_count or (DEFAULT_CALIB_LIMIT if calib is not None else samples)
        if calib is not None:
            images = load_folder(calib, card, limit=wanted + PARITY_SAMPLES)
            if images.skipped:
                run.warnings.append(f"skipped {len(images.skipped)} unreadable image(s) in {calib}")
        else:
            images = load_samples(card, wanted + PARITY_SAMPLES, seed=0)
            if options.int8 is not None:
                run.warnings.append(
                    "int8 calibrated on the default sample photographs (crops of 5 photos bundled with scikit-learn "
                    "and scikit-image); calibrate on real images from your deployment domain with --calib DIR"
                )
        calib_arrays, parity_arrays = _split(images.arrays, wanted)
    return images, calib_arrays, parity_arrays


def _reestimate_batchnorm(model, calib_arrays: np.ndarray, run: _Run) -> None:
    from .convert.onnx_export import channels_last, recalibrate_batchnorm, to_channels_last

    with run.step("re-estimate batchnorm"), channels_last(model):
        layers = recalibrate_batchnorm(model, [to_channels_last(calib_arrays[:BATCHNORM_IMAGES])])
        if layers:
            run.warnings.append(
                f"random weights: BatchNorm statistics of {layers} layers re-estimated on "
                f"{min(len(calib_arrays), BATCHNORM_IMAGES)} calibration images so that parity is "
                "judged on non-degenerate outputs"
            )
        else:
            run.warnings.append("random weights (no BatchNorm to re-estimate): parity is judged on random-init outputs")


def _reference(model, parity_arrays: np.ndarray, run: _Run, half: bool = False):
    """PyTorch's outputs on the parity images (``convert.reference.TorchOutputs``): fp32 on all of them, and on
    the first few in float64 (and float16 for an fp16 artifact), the yardstick of fp32/fp16 parity."""
    from .convert.reference import torch_outputs

    # fp32 in chunks of 8, not 16: measured on eager ResNet50, its 32 parity images take 1.70 s against 1.94 s
    with run.step("pytorch reference"):
        outputs = torch_outputs(model, parity_arrays, half=half, nhwc=True)
    run.warnings.extend(outputs.notes)
    return outputs


def _export_fp32(
    built: _Built,
    spec: ModelSpec,
    options: ExportOptions,
    card: ModelCard,
    fp32_path: Path,
    parity_arrays,
    reference,
    run: _Run,
) -> Artifact:
    import onnx

    from .convert.onnx_export import export_onnx
    from .convert.simplify import simplify as simplify_graph

    raw_path = fp32_path.with_name(".raw.onnx")
    with run.step("export onnx"):
        traced = export_onnx(
            built.model,
            raw_path,
            input_shape=(built.in_channels, *options.input_size),
            batch=options.batch,
            dynamic_hw=spec.dynamic_hw,
            size_multiple=spec.size_multiple,
            opset=options.opset,
        )
    with run.step("simplify"):
        graph, simp = simplify_graph(onnx.load(str(raw_path)), enabled=options.simplify)
        if options.simplify and not simp.simplified:
            run.warnings.append(simp.message)
        raw_path.unlink()
        write_onnx(graph, card, fp32_path)
    return _check(
        fp32_path,
        "fp32",
        card,
        parity_arrays,
        reference,
        run,
        notes=(
            f"simplified: {simp.simplified}, nodes {simp.nodes_before}→{simp.nodes_after}",
            f"batch axis: {traced.batch_axis}",
            f"BatchNorm folded into the preceding layer before tracing: {traced.folded_batchnorms}",
        ),
    )


def _export_fp16(fp32_path: Path, path: Path, card: ModelCard, parity_arrays, reference, run: _Run) -> Artifact:
    from .convert.fp16 import to_fp16

    with run.step("convert fp16"):
        res = to_fp16(fp32_path, path)
        set_card(path, card.replace(precision="fp16"))
    notes = (f"{res.weights_out_of_range} weights exceed fp16 range",) if res.weights_out_of_range else ()
    return _check(path, "fp16", card, parity_arrays, reference, run, notes=notes)


def _export_int8(
    fp32_path: Path,
    path: Path,
    spec: ModelSpec,
    options: ExportOptions,
    card: ModelCard,
    source,
    calib_arrays,
    parity_arrays,
    reference,
    run: _Run,
) -> tuple[dict, Artifact | None]:
    from .convert.int8 import build_int8

    progress = (lambda m: run.progress(f"quantize int8: {m}")) if run.progress else None
    with run.step("quantize int8"):  # calibration choice, sensitivity, fallback, speed gate: convert.int8
        q = build_int8(
            fp32_path,
            path,
            calib_arrays,
            options.int8,
            task=spec.task,
            input_name=card.input_name,
            batch=options.batch,
            input_size=options.input_size,
            judge_accuracy=options.weights is not None,
            progress=progress,
        )
        run.warnings.extend(q.warnings)
        if q.path is not None:
            set_card(
                path,
                card.replace(
                    precision="int8",
                    extra={
                        **card.extra,
                        "calibration": {
                            "source": source,
                            "count": q.calibration_images,
                            "method": q.method,
                            "form": q.kept,
                        },
                    },
                ),
            )
    if q.path is None:
        return q.to_dict(), None
    return q.to_dict(), _check(
        path, "int8", card, parity_arrays, reference, run, random_weights=options.weights is None, notes=(q.decision,)
    )


def _bundle(staging: Path, artifacts: list, run: _Run) -> dict:
    from .deploy.bundle import make_bundle

    with run.step("bundle"):
        made = make_bundle(staging, [a.file for a in artifacts])
        if not made.selftest.passed:
            run.warnings.append(
                "bundle self-test FAILED: "
                + "; ".join(f"{c.file}: {', '.join(c.failures)}" for c in made.selftest.checks if not c.passed)
            )
        return made.record(staging)


def _num_classes(model, spec: ModelSpec, requested: int | None, checkpoint) -> int:
    if requested:
        return int(requested)
    if checkpoint is not None:
        return checkpoint.num_classes
    return int(getattr(model, "num_classes", None) or spec.num_classes)


def _split(arrays: np.ndarray, calib_count: int) -> tuple[np.ndarray, np.ndarray]:
    """Calibration images first, then up to PARITY_SAMPLES held-out images for parity.

    With too few images to hold any out, parity is judged on the calibration images (said in the manifest).
    """
    n = len(arrays)
    if n >= calib_count + 8:
        return arrays[:calib_count], arrays[calib_count : calib_count + PARITY_SAMPLES]
    if n >= 16:
        k = min(PARITY_SAMPLES, n // 3)
        return arrays[: n - k], arrays[n - k :]
    return arrays, arrays


def run_onnx(path: Path, arrays: np.ndarray, input_name: str | None = None) -> np.ndarray:
    """First output of the artifact at ``path`` on ``arrays`` (CPU provider), through the one batched runner
    (``edgecnn.runtime.session.run_batched``). ``input_name`` defaults to the graph's first input."""
    import onnxruntime as ort

    from .runtime.session import run_batched

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own classes (InvalidProtobuf, Fail, …) for bad files
        raise ArtifactError(f"onnxruntime cannot load {Path(path).name}: {first_line(exc)}") from None
    return run_batched(session, arrays, input_name=input_name)[0]


def _check(
    path: Path,
    precision: str,
    card: ModelCard,
    inputs: np.ndarray,
    reference,
    run: _Run,
    notes: tuple = (),
    random_weights: bool = False,
) -> Artifact:
    """onnx.checker, load in onnxruntime, parity against the PyTorch outputs (``TorchOutputs``: fp32 and fp16
    judged against PyTorch's own error, measured in float64)."""
    import onnx

    from .runtime.compare import compare

    with run.step(f"check {precision}"):
        try:
            onnx.checker.check_model(str(path), full_check=True)
        except onnx.checker.ValidationError as exc:
            raise ArtifactError(f"{path.name} fails onnx.checker: {str(exc).splitlines()[0][:200]}") from None
        outputs = run_onnx(path, inputs, card.input_name)
        report = compare(
            reference.fp32[0],
            outputs,
            task=card.task,
            precision=precision,
            random_weights=random_weights,
            exact=reference.yardstick(precision),
        )
    if not report.judged:
        run.warnings.append(f"{path.name}: {report.note}")
    elif not report.passed:
        run.warnings.append(f"{path.name}: parity FAILED: " + "; ".join(report.failures))
    return Artifact(
        path.name.replace(".staging", ""), precision, path.stat().st_size, sha256_file(path), report.to_dict(), notes
    )
