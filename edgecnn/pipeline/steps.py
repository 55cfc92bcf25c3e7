"""The export's steps, each a small function returning a small record; ``pipeline.compose`` runs them in order.

    build model → (random weights: re-estimate BatchNorm) → PyTorch reference on the parity images
      → fp32: torch.onnx → portable ops + onnxsim → card → check
      → fp16 (card stamped as written) → check
      → int8 (``convert.int8.build_int8``: calibrate, sensitivity + fallback, speed gate) → check
      → embedded-preprocessing twins, bundle (``deploy``)

Every file is written with its card (``manifest.write_onnx``/``card_stamp``); ``check`` proves each one
(onnx.checker, a load in the runtime, parity against PyTorch) and returns its ``Artifact``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.artifact import Artifact
from ..core.card import ModelCard
from ..core.errors import ArtifactError, InputError
from ..core.files import sha256_file
from ..core.paths import is_checkpoint_path
from ..models.registry import ModelSpec, imagenet_labels
from .images import ExportImages
from .manifest import build_card, card_stamp, write_onnx
from .options import ExportOptions

# Images the BatchNorm statistics of random weights are re-estimated on. Their job is outputs that vary with
# the input; 16 do that as well as 64 (spread of the logits across images, MobileNetV2 0.315 vs 0.326, ResNet50
# 0.319 vs 0.331) at a quarter of the time (MobileNetV2 2.9 vs 11.0 CPU-s).
BATCHNORM_IMAGES = 16


@dataclass
class Run:
    """Mutable bookkeeping of one export (timings, warnings); frozen into the manifest at the end."""

    progress: Callable[[str], None] | None
    timings: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time the block as step ``name`` (said to ``progress`` as it starts)."""
        if self.progress:
            self.progress(name)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - t0, 3)


@dataclass(frozen=True)
class Job:
    """One export's fixed inputs. ``options`` are the caller's with ``input_size`` filled in (the spec's
    default when not given); the manifest records the caller's own."""

    spec: ModelSpec
    options: ExportOptions
    staging: Path
    run: Run

    def path(self, precision: str) -> Path:
        return self.staging / f"{self.spec.name}.{precision}.onnx"


@dataclass(frozen=True)
class Built:
    """The model and what was learnt building it."""

    model: object
    load_report: object
    checkpoint: object
    card: ModelCard
    in_channels: int


def read_labels(path: str | Path) -> list[str]:
    """The class names in a labels file, one a line (blank lines dropped)."""
    try:
        lines = [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines()]
    except OSError as exc:
        raise InputError(
            f"cannot read labels file '{path}' ({exc.strerror}); pass a text file, one name per line"
        ) from None
    return [ln for ln in lines if ln]


def build_model(spec: ModelSpec, options: ExportOptions, run: Run, label_list: list | None) -> Built:
    """The model (random init from a fixed seed, or the weights asked for) and its card."""
    import torch

    from ..models.registry import create_model_with_report

    weights = options.weights
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
    return Built(model, load_report, checkpoint, card, in_channels)


def _num_classes(model, spec: ModelSpec, requested: int | None, checkpoint) -> int:
    if requested:
        return int(requested)
    if checkpoint is not None:
        return checkpoint.num_classes
    return int(getattr(model, "num_classes", None) or spec.num_classes)


def reestimate_batchnorm(model, calib_arrays: np.ndarray, run: Run) -> None:
    """Random weights: BatchNorm statistics re-estimated on a few calibration images, so outputs vary."""
    from ..convert.onnx_export import channels_last, recalibrate_batchnorm, to_channels_last

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


def reference(model, parity_arrays: np.ndarray, run: Run, half: bool = False):
    """PyTorch's outputs on the parity images (``convert.reference.TorchOutputs``): fp32 on all of them, and on
    the first few in float64 (and float16 for an fp16 artifact), the yardstick of fp32/fp16 parity."""
    from ..convert.reference import torch_outputs

    # fp32 in chunks of 8, not 16: measured on eager ResNet50, its 32 parity images take 1.70 s against 1.94 s
    with run.step("pytorch reference"):
        outputs = torch_outputs(model, parity_arrays, half=half, nhwc=True)
    run.warnings.extend(outputs.notes)
    return outputs


def export_fp32(job: Job, built: Built, card: ModelCard, images: ExportImages, ref) -> Artifact:
    """torch.onnx → portable ops + onnxsim → the fp32 file, written with its card, then checked."""
    import onnx

    from ..convert.onnx_export import export_onnx
    from ..convert.simplify import simplify as simplify_graph

    options, run, path = job.options, job.run, job.path("fp32")
    raw_path = path.with_name(".raw.onnx")
    with run.step("export onnx"):
        traced = export_onnx(
            built.model,
            raw_path,
            input_shape=(built.in_channels, *options.input_size),
            batch=options.batch,
            dynamic_hw=job.spec.dynamic_hw,
            size_multiple=job.spec.size_multiple,
            opset=options.opset,
        )
    with run.step("simplify"):
        graph, simp = simplify_graph(onnx.load(str(raw_path)), enabled=options.simplify)
        if options.simplify and not simp.simplified:
            run.warnings.append(simp.message)
        raw_path.unlink()
        write_onnx(graph, card, path)
    notes = (
        f"simplified: {simp.simplified}, nodes {simp.nodes_before}→{simp.nodes_after}",
        f"batch axis: {traced.batch_axis}",
        f"BatchNorm folded into the preceding layer before tracing: {traced.folded_batchnorms}",
    )
    return check(path, "fp32", card, images.parity, ref, run, notes=notes)


def export_fp16(job: Job, card: ModelCard, images: ExportImages, ref) -> Artifact:
    """The fp16 file (fp32 inputs and outputs), its card stamped as it is written, then checked."""
    from ..convert.fp16 import to_fp16

    path = job.path("fp16")
    with job.run.step("convert fp16"):
        res = to_fp16(job.path("fp32"), path, stamp=card_stamp(card.replace(precision="fp16")))
    notes = (f"{res.weights_out_of_range} weights exceed fp16 range",) if res.weights_out_of_range else ()
    return check(path, "fp16", card, images.parity, ref, job.run, notes=notes)


def export_int8(job: Job, card: ModelCard, images: ExportImages, ref) -> tuple[dict, list]:
    """The int8 step (``convert.int8``): its record for the manifest, and the checked artifacts: the int8 file
    (none when ``--int8 auto`` kept fp32), then each file made for a further ``--int8-for`` runtime."""
    from ..convert.int8 import Int8Request, build_int8

    options, run, path = job.options, job.run, job.path("int8")
    progress = (lambda m: run.progress(f"quantize int8: {m}")) if run.progress else None
    with run.step("quantize int8"):  # calibration choice, sensitivity, fallback, speed gate: convert.int8
        request = Int8Request(
            job.path("fp32"),
            path,
            images.calibration,
            task=job.spec.task,
            input_name=card.input_name,
            batch=options.batch,
            input_size=options.input_size,
            judge_accuracy=options.weights is not None,
            progress=progress,
            stamp=lambda model, q: card_stamp(int8_card(card, images, q))(model),  # the card goes in with the file
        )
        q = build_int8(request, options.int8)
        run.warnings.extend(q.warnings)
    decisions = {r.runtime: f"made for {r.runtime}: {r.decision}" for r in q.runtimes}
    artifacts = [
        check(
            file,
            "int8",
            card,
            images.parity,
            ref,
            run,
            random_weights=options.weights is None,
            notes=(decisions.get(runtime, q.decision),),
        )
        for runtime, file in q.files
    ]
    return q.to_dict(), artifacts


def int8_card(card: ModelCard, images: ExportImages, q) -> ModelCard:
    """The int8 file's card: the export's, with how it was calibrated (``q``: ``convert.int8.Int8Result``)."""
    calibration = {"source": images.images.source, "count": q.calibration_images, "method": q.method, "form": q.kept}
    return card.replace(precision="int8", extra={**card.extra, "calibration": calibration})


def embed(job: Job, artifacts: list) -> list:
    """The uint8 NHWC twins of the float artifacts (``deploy.embed``)."""
    from ..deploy.embed import embed_variants

    with job.run.step("embed preprocessing"):
        return embed_variants(job.staging, artifacts, job.run.warnings)


def bundle(job: Job, artifacts: list) -> dict:
    """A deployment bundle in ``OUT/bundle`` (``deploy.bundle``); its record for the manifest."""
    from ..deploy.bundle import DEVICE_SUFFIXES, make_bundle

    files = [a.file for a in artifacts if Path(a.file).suffix in DEVICE_SUFFIXES]
    left_out = [a.file for a in artifacts if a.file not in files]
    if left_out:
        job.run.warnings.append(
            f"bundle: {', '.join(left_out)} left out (ExecuTorch's runtime needs torch; a bundle is for the "
            "torch-free device install)"
        )
    with job.run.step("bundle"):
        made = make_bundle(job.staging, files)
        if not made.selftest.passed:
            job.run.warnings.append(
                "bundle self-test FAILED: "
                + "; ".join(f"{c.file}: {', '.join(c.failures)}" for c in made.selftest.checks if not c.passed)
            )
        return made.record(job.staging)


def golden(job: Job, images: ExportImages, ref) -> dict:
    """``golden.npz``: the parity photographs and PyTorch's outputs on them (``runtime.golden``), so that a copy
    of the folder is judged on a device without torch (``compare``) by the same rules as here; its manifest entry."""
    from ..runtime.golden import GOLDEN_FILE, Golden, save_golden

    with job.run.step("golden outputs"):
        own = {p: tuple(run[0] for run in runs) for p, runs in ref.own.items()}
        exact = ref.exact[0] if ref.exact is not None else None
        path = save_golden(job.staging / GOLDEN_FILE, Golden(images.parity, ref.fp32[0], exact, own))
    return {
        "file": GOLDEN_FILE,
        "images": int(len(images.parity)),
        "what": "the held-out parity photographs (preprocessed) and PyTorch's fp32 outputs on them",
        "sha256": sha256_file(path),
    }


def run_onnx(path: Path, arrays: np.ndarray, input_name: str | None = None) -> np.ndarray:
    """First output of the artifact at ``path`` on ``arrays`` (CPU provider, opened by the one runner factory
    ``edgecnn.runtime.runner.open_runner``), through the one batched runner (``runtime.session.run_batched``).
    ``input_name`` defaults to the graph's first input.

    Raises:
        ArtifactError: the runtime cannot load the file.
    """
    from ..runtime.runner import open_runner
    from ..runtime.session import run_batched

    return run_batched(open_runner(path, providers="cpu"), arrays, input_name=input_name)[0]


def check(
    path: Path,
    precision: str,
    card: ModelCard,
    inputs: np.ndarray,
    ref,
    run: Run,
    notes: tuple = (),
    random_weights: bool = False,
) -> Artifact:
    """onnx.checker, load in onnxruntime, parity against the PyTorch outputs (``TorchOutputs``: fp32 and fp16
    judged against PyTorch's own error, measured in float64)."""
    import onnx

    from ..runtime.compare import compare

    with run.step(f"check {precision}"):
        try:
            onnx.checker.check_model(str(path), full_check=True)
        except onnx.checker.ValidationError as exc:
            raise ArtifactError(f"{path.name} fails onnx.checker: {str(exc).splitlines()[0][:200]}") from None
        outputs = run_onnx(path, inputs, card.input_name)
        report = compare(
            ref.fp32[0],
            outputs,
            task=card.task,
            precision=precision,
            random_weights=random_weights,
            exact=ref.yardstick(precision),
        )
    if not report.judged:
        run.warnings.append(f"{path.name}: {report.note}")
    elif not report.passed:
        run.warnings.append(f"{path.name}: parity FAILED: " + "; ".join(report.failures))
    return Artifact(path.name.replace(".staging", ""), precision, path.stat().st_size, sha256_file(path), report, notes)
