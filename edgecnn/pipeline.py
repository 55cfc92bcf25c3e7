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

import datetime as _dt
import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import __version__
from .core.card import ModelCard
from .core.errors import ArtifactError, InputError, first_line
from .core.files import sha256_file, staged_output
from .models.registry import ModelSpec, get_spec, imagenet_labels

MANIFEST = "manifest.json"
DEFAULT_SAMPLE_COUNT = 64  # default calibration images (sample photos)
DEFAULT_CALIB_LIMIT = 200  # most images read from a --calib folder
PARITY_SAMPLES = 32  # images held out of calibration to judge parity


@dataclass(frozen=True)
class Artifact:
    """One exported file."""

    file: str
    precision: str
    size_bytes: int
    sha256: str
    parity: dict
    notes: tuple = ()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["notes"] = list(self.notes)
        return d


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
    if isinstance(value, (tuple, list)):
        hw = tuple(int(v) for v in value)
    else:
        text = str(value).lower().replace(" ", "")
        try:
            parts = [int(p) for p in text.split("x")]
        except ValueError:
            raise InputError(f"input size '{value}' is not a number or HxW (e.g. 224 or 256x320)") from None
        hw = (parts[0], parts[0]) if len(parts) == 1 else tuple(parts)
    if len(hw) != 2 or min(hw) <= 0:
        raise InputError(f"input size '{value}' is not a number or HxW (e.g. 224 or 256x320)")
    mh, mw = spec.min_input_size
    if hw[0] < mh or hw[1] < mw:
        raise InputError(f"{spec.name} needs an input of at least {mh}x{mw}, got {hw[0]}x{hw[1]}")
    if spec.size_multiple > 1 and (hw[0] % spec.size_multiple or hw[1] % spec.size_multiple):
        raise InputError(f"{spec.name} needs height and width that are multiples of {spec.size_multiple}, "
                         f"got {hw[0]}x{hw[1]}")
    return hw


def parse_batch(value: str | int | None) -> int | None:
    """``"dynamic"``/``None`` → ``None``; a positive integer → that fixed batch size."""
    if value is None or str(value).lower() == "dynamic":
        return None
    try:
        batch = int(value)
    except ValueError:
        raise InputError(f"batch '{value}' must be 'dynamic' or a positive integer") from None
    if batch < 1:
        raise InputError(f"batch must be 'dynamic' or a positive integer, got {batch}")
    return batch


def build_card(spec: ModelSpec, hw: tuple[int, int], num_classes: int, checkpoint, batch: int | None,
               dynamic_hw: bool, labels: list | None, in_channels: int = 3) -> ModelCard:
    """The metadata card for an export of ``spec`` at ``hw`` (preprocessing from the checkpoint if published)."""
    mean, std, resize, interpolation = spec.mean, spec.std, spec.resize, "bilinear"
    if checkpoint is not None:
        mean, std, interpolation = checkpoint.mean, checkpoint.std, checkpoint.interpolation
        resize = round(checkpoint.resize * hw[0] / checkpoint.crop)
    elif resize is not None:
        resize = round(resize * hw[0] / spec.input_size[0])  # keep the resize/crop ratio (256/224) at other sizes
    if in_channels != len(mean):
        mean, std = [float(np.mean(mean))] * in_channels, [float(np.mean(std))] * in_channels
    shape = ["batch" if batch is None else batch, in_channels,
             "height" if dynamic_hw else hw[0], "width" if dynamic_hw else hw[1]]
    return ModelCard(
        model=spec.name, task=spec.task, input_name="input", output_name="logits", input_shape=shape,
        color_order="RGB" if in_channels == 3 else "L", mean=list(mean), std=list(std), resize=resize,
        crop=list(hw), interpolation=interpolation, num_classes=num_classes, labels=labels,
    )


def tool_versions() -> dict:
    import onnx
    import onnxruntime
    import torch

    try:
        from importlib.metadata import version

        onnxsim_version = version("onnxsim")
    except Exception:  # onnxsim missing or unreadable: recorded, not fatal
        onnxsim_version = None
    return {"edgecnn": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "onnxsim": onnxsim_version,
            "python": platform.python_version()}


def export(
    name: str,
    out_dir: str | Path | None = None,
    *,
    weights: str | None = None,
    num_classes: int | None = None,
    input_size: str | int | tuple | None = None,
    batch: str | int | None = "dynamic",
    opset: int = 18,
    fp16: bool = False,
    int8: bool | str = False,
    calib: str | Path | None = None,
    calib_count: int | None = None,
    calib_method: str = "minmax",
    simplify: bool = True,
    force: bool = False,
    labels: str | Path | None = None,
    arch_options: dict | None = None,
    embed_preprocess: bool = False,
    bundle: bool = False,
    command: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export one model to ``out_dir`` (default ``exported/NAME``): fp32, and optionally fp16 and int8.

    Args:
        name: registry name or alias.
        out_dir: output folder; refused if it already holds an export, unless ``force``.
        weights: ``None`` (random init, BatchNorm re-estimated for meaningful parity), a checkpoint path,
            or a published checkpoint name (``"imagenet"``).
        num_classes: classifier size (defaults to the spec's or the checkpoint's).
        input_size: ``224`` or ``"HxW"``; defaults to the spec's.
        batch: ``"dynamic"`` or a fixed batch size.
        opset: ONNX opset, 18–21.
        fp16 / int8: also produce those artifacts. ``int8`` may be ``True`` or ``"auto"`` (see quantization docs).
        calib: folder of calibration images (jpg/png/bmp/webp); default: sample photographs (see calibration).
        calib_count: how many calibration images to use.
        calib_method: ``minmax``, ``entropy``, ``percentile`` (or ``auto`` where supported).
        simplify: run onnxsim (a failure keeps the unsimplified graph).
        force: replace an existing export.
        labels: text file with one class name per line.
        arch_options: extra builder options (``width_mult``, ``bilinear``, ``in_channels`` ...).
        embed_preprocess: also write, for each artifact, a twin that takes uint8 N×H×W×C pixels and normalises
            inside the graph (``*.nhwc_uint8.onnx``, see ``edgecnn.embed``).
        bundle: also write a deployment bundle in ``out_dir/bundle`` (see ``edgecnn.bundle``).
        command: the command line to record in the manifest.
        progress: called with the name of each step as it starts.

    Raises:
        EdgeCNNError: bad input (unknown model, bad weights, bad options, unwritable output, parity failure
            is *not* raised: it is recorded in the result; the CLI turns it into a non-zero exit).
    """
    from .convert.onnx_export import check_opset

    spec = get_spec(name)
    hw = parse_input_size(input_size, spec)
    fixed_batch = parse_batch(batch)
    check_opset(opset)
    if calib_count is not None and calib_count < 1:
        raise InputError(f"--calib-count must be at least 1, got {calib_count}")
    int8_policy = None
    if int8:
        from .convert.int8 import check_int8_options

        int8_policy = check_int8_options(int8, calib_method)  # refused here, before anything is written
    label_list = _read_labels(labels) if labels is not None else None
    out_dir = Path(out_dir) if out_dir is not None else Path("exported") / spec.name
    run = _Run(progress)
    with staged_output(out_dir, force) as staging:
        result = _export_into(staging, spec, run, hw=hw, batch=fixed_batch, weights=weights, num_classes=num_classes,
                              opset=opset, fp16=fp16, int8=int8, calib=calib, calib_count=calib_count,
                              calib_method=calib_method, simplify=simplify, label_list=label_list,
                              arch_options=arch_options or {}, command=command, out_dir=out_dir,
                              embed_preprocess=embed_preprocess, bundle=bundle, int8_policy=int8_policy)
    return result


def _read_labels(path: str | Path) -> list[str]:
    try:
        lines = [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines()]
    except OSError as exc:
        raise InputError(f"cannot read labels file '{path}' ({exc.strerror}); pass a text file, one name per line") from None
    return [ln for ln in lines if ln]


def _export_into(staging: Path, spec: ModelSpec, run: _Run, *, hw, batch, weights, num_classes, opset, fp16, int8,
                 calib, calib_count, calib_method, simplify, label_list, arch_options, command, out_dir,
                 embed_preprocess=False, bundle=False, int8_policy=None) -> ExportResult:
    import onnx
    import torch

    from .convert.calibration import load_folder, load_samples
    from .convert.onnx_export import export_onnx, recalibrate_batchnorm
    from .models.registry import create_model_with_report

    with run.step("build model"):
        model, load_report = create_model_with_report(spec.name, num_classes=num_classes, weights=weights, **arch_options)
        checkpoint = spec.checkpoint(weights) if weights is not None and load_report and not _is_path(weights) else None
        n_classes = _num_classes(model, spec, num_classes, checkpoint)
        in_channels = int(arch_options.get("in_channels", 3))
        labels = label_list
        if labels is None and checkpoint is not None and checkpoint.labels == "imagenet" and n_classes == 1000:
            labels = list(imagenet_labels())
        if labels is not None and len(labels) != n_classes:
            raise InputError(f"the labels file has {len(labels)} names but the model has {n_classes} classes")
        card = build_card(spec, hw, n_classes, checkpoint, batch, spec.dynamic_hw, labels, in_channels)

    with run.step("load images"):
        wanted = calib_count or (DEFAULT_CALIB_LIMIT if calib is not None else DEFAULT_SAMPLE_COUNT)
        if calib is not None:
            images = load_folder(calib, card, limit=wanted + PARITY_SAMPLES)
            if images.skipped:
                run.warnings.append(f"skipped {len(images.skipped)} unreadable image(s) in {calib}")
        else:
            images = load_samples(card, wanted + PARITY_SAMPLES, seed=0)
            if int8:
                run.warnings.append(
                    "int8 calibrated on the default sample photographs (crops of 2 photos bundled with scikit-learn); "
                    "calibrate on real images from your deployment domain with --calib DIR")
        calib_arrays, parity_arrays = _split(images.arrays, wanted)

    if weights is None:
        with run.step("re-estimate batchnorm"):
            batches = [torch.from_numpy(calib_arrays[i:i + 16]) for i in range(0, len(calib_arrays), 16)]
            layers = recalibrate_batchnorm(model, batches)
            if layers:
                run.warnings.append(f"random weights: BatchNorm statistics of {layers} layers re-estimated on the "
                                    "calibration images so that parity is judged on non-degenerate outputs")
            else:
                run.warnings.append("random weights (no BatchNorm to re-estimate): parity is judged on random-init outputs")

    with run.step("pytorch reference"):
        with torch.no_grad():
            reference = np.concatenate([model(torch.from_numpy(parity_arrays[i:i + 8])).numpy()
                                        for i in range(0, len(parity_arrays), 8)])

    versions = tool_versions()
    weights_record = _weights_record(weights, load_report, checkpoint)
    card = card.replace(opset=opset, versions=versions, weights=weights_record,
                        extra={"arch_options": arch_options} if arch_options else {})
    base = spec.name
    artifacts = []

    fp32_path = staging / f"{base}.fp32.onnx"
    raw_path = staging / ".raw.onnx"
    with run.step("export onnx"):
        export_onnx(model, raw_path, input_shape=(in_channels, *hw), batch=batch, dynamic_hw=spec.dynamic_hw,
                    size_multiple=spec.size_multiple, opset=opset)
    with run.step("simplify"):
        from .convert.simplify import simplify as simplify_graph

        graph, simp = simplify_graph(onnx.load(str(raw_path)), enabled=simplify)
        if simplify and not simp.simplified:
            run.warnings.append(simp.message)
        raw_path.unlink()
        _write_onnx(graph, card, fp32_path)
    artifacts.append(_check(fp32_path, "fp32", card, parity_arrays, reference, run,
                            notes=(f"simplified: {simp.simplified}, nodes {simp.nodes_before}→{simp.nodes_after}",)))

    if fp16:
        from .convert.quantize import to_fp16

        path = staging / f"{base}.fp16.onnx"
        with run.step("convert fp16"):
            res = to_fp16(fp32_path, path)
            _set_card(path, card.replace(precision="fp16"))
        notes = (f"{res.weights_out_of_range} weights exceed fp16 range",) if res.weights_out_of_range else ()
        artifacts.append(_check(path, "fp16", card, parity_arrays, reference, run, notes=notes))

    calibration_record = images.record()
    calibration_record["used_for_calibration"] = int(len(calib_arrays))
    calibration_record["held_out_for_parity"] = int(len(parity_arrays))
    calibration_record["parity_on_calibration_images"] = parity_arrays is calib_arrays
    int8_record = None
    if int8:
        from .convert.int8 import build_int8

        path = staging / f"{base}.int8.onnx"
        with run.step("quantize int8"):  # calibration choice, sensitivity, fallback, speed gate: edgecnn.int8
            q = build_int8(fp32_path, path, calib_arrays, task=spec.task, method=calib_method,
                           policy=int8_policy, input_name=card.input_name, batch=batch,
                           input_size=hw, judge_accuracy=weights is not None,
                           progress=(lambda m: run.progress(f"quantize int8: {m}")) if run.progress else None)
            run.warnings.extend(q.warnings)
            int8_record = q.to_dict()
            if q.path is not None:
                _set_card(path, card.replace(precision="int8", extra={**card.extra, "calibration": {
                    "source": images.source, "count": q.calibration_images, "method": q.method, "form": q.kept}}))
        if q.path is not None:
            artifacts.append(_check(path, "int8", card, parity_arrays, reference, run, random_weights=weights is None,
                                    notes=(q.decision,)))

    if embed_preprocess:
        from .deploy.embed import embed_variants

        with run.step("embed preprocessing"):
            artifacts += embed_variants(staging, artifacts, run.warnings)
    bundle_record = None
    if bundle:
        from .deploy.bundle import make_bundle

        with run.step("bundle"):
            made = make_bundle(staging, [a.file for a in artifacts])
            bundle_record = made.record(staging)
            if not made.selftest.passed:
                run.warnings.append("bundle self-test FAILED: " + "; ".join(
                    f"{c.file}: {', '.join(c.failures)}" for c in made.selftest.checks if not c.passed))

    manifest = {
        "edgecnn_manifest": 1,
        "model": spec.name,
        "task": spec.task,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command or f"edgecnn.export({spec.name!r})",
        "options": {"input_size": list(hw), "batch": batch or "dynamic", "opset": opset, "fp16": bool(fp16),
                    "int8": int8, "calib_method": calib_method if int8 else None, "simplify": simplify,
                    "num_classes": card.num_classes, "arch_options": arch_options,
                    "embed_preprocess": bool(embed_preprocess), "bundle": bool(bundle)},
        "weights": weights_record,
        "card": {k: v for k, v in asdict(card).items() if k not in ("labels", "versions", "weights")},
        "labels": "imagenet-1k" if card.labels is not None and checkpoint is not None else
                  ("custom" if card.labels else None),
        "calibration": calibration_record,
        "int8": int8_record,
        "artifacts": [a.to_dict() for a in artifacts],
        "bundle": bundle_record,
        "versions": versions,
        "timings_s": run.timings,
        "warnings": run.warnings,
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return ExportResult(spec.name, out_dir, tuple(artifacts), manifest, tuple(run.warnings))


def _is_path(weights: str) -> bool:
    return os.sep in str(weights) or os.path.exists(str(weights)) or str(weights).endswith((".pth", ".pt", ".bin", ".ckpt"))


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
        return arrays[:calib_count], arrays[calib_count:calib_count + PARITY_SAMPLES]
    if n >= 16:
        k = min(PARITY_SAMPLES, n // 3)
        return arrays[: n - k], arrays[n - k:]
    return arrays, arrays


def _weights_record(weights, load_report, checkpoint) -> dict:
    if weights is None:
        return {"source": "random", "sha256": None}
    record = {"source": checkpoint.name if checkpoint is not None else "file",
              "path": load_report.path, "sha256": load_report.sha256, "notes": list(load_report.notes)}
    if checkpoint is not None:
        record.update(url=checkpoint.url, acc1=checkpoint.acc1, acc5=checkpoint.acc5)
    return record


def _write_onnx(model, card: ModelCard, path: Path) -> None:
    import onnx

    _put_metadata(model, card)
    onnx.save(model, str(path))


def _put_metadata(model, card: ModelCard) -> None:
    card.attach(model)
    model.producer_name = "edgecnn"
    model.producer_version = __version__
    model.doc_string = f"{card.model} ({card.precision}) exported by edgecnn {__version__}"


def _set_card(path: Path, card: ModelCard) -> None:
    import onnx

    model = onnx.load(str(path))
    _put_metadata(model, card)
    onnx.save(model, str(path))


def run_onnx(path: Path, arrays: np.ndarray, input_name: str | None = None) -> np.ndarray:
    """Outputs of the artifact at ``path`` on ``arrays`` (CPU provider), in chunks of the graph's batch when it
    is fixed (the last chunk padded), else of 8. ``input_name`` defaults to the graph's first input."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own classes (InvalidProtobuf, Fail, …) for bad files
        raise ArtifactError(f"onnxruntime cannot load {Path(path).name}: {first_line(exc)}") from None
    graph_input = session.get_inputs()[0]
    input_name = input_name or graph_input.name
    batch = graph_input.shape[0] if isinstance(graph_input.shape[0], int) else None
    step = batch or 8
    outs = []
    for i in range(0, len(arrays), step):
        chunk = arrays[i:i + step]
        if batch and len(chunk) < batch:  # pad the last chunk of a fixed-batch graph
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - len(chunk), axis=0)])
            outs.append(session.run(None, {input_name: chunk})[0][: len(arrays) - i])
        else:
            outs.append(session.run(None, {input_name: chunk})[0])
    return np.concatenate(outs)


def _check(path: Path, precision: str, card: ModelCard, inputs: np.ndarray, reference: np.ndarray, run: _Run,
           notes: tuple = (), random_weights: bool = False) -> Artifact:
    """onnx.checker, load in onnxruntime, parity against the PyTorch outputs."""
    import onnx

    from .runtime.compare import compare

    with run.step(f"check {precision}"):
        try:
            onnx.checker.check_model(str(path), full_check=True)
        except onnx.checker.ValidationError as exc:
            raise ArtifactError(f"{path.name} fails onnx.checker: {str(exc).splitlines()[0][:200]}") from None
        outputs = run_onnx(path, inputs, card.input_name)
        report = compare(reference, outputs, task=card.task, precision=precision, random_weights=random_weights)
    if not report.judged:
        run.warnings.append(f"{path.name}: {report.note}")
    elif not report.passed:
        run.warnings.append(f"{path.name}: parity FAILED: " + "; ".join(report.failures))
    return Artifact(path.name.replace(".staging", ""), precision, path.stat().st_size, sha256_file(path),
                    report.to_dict(), notes)


def read_manifest(out_dir: str | Path) -> dict:
    path = Path(out_dir) / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"no {MANIFEST} in '{out_dir}'; is it an edgecnn export folder?") from None
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc.msg}); export again with --force") from None
