"""Validate an exported artifact against its PyTorch source, on each requested execution provider.

``validate("exported/resnet18/resnet18.int8.onnx", providers=("cpu", "cuda"))`` rebuilds the PyTorch model the
file was exported from — architecture, classes, builder options and input size from the file's ``ModelCard``,
weights from the checkpoint the card records — runs both on the same images, and judges every output with the
rules of the file's precision (``runtime.compare``), the same as the export's: fp32 and fp16 against the error
PyTorch itself makes at that precision (measured against the model in float64 on the first 8 images), int8 at
task level.

Where the weights come from, in order:

1. ``weights=`` (``--weights``): a checkpoint file, or a published checkpoint name (``"imagenet"``; downloaded
   into torch.hub's cache if it is not there — asked for explicitly, so allowed).
2. The checkpoint file named in the card, if it is still there and its SHA-256 is the one recorded at export.
   A file at that path with another hash is refused: it is no longer the source of the artifact.
3. The published checkpoint named in the card, if it is already in torch.hub's cache (never downloaded
   implicitly: a validation should not start a 500 MB download behind the user's back).

An artifact exported with **random weights** cannot be validated on its own, and ``validate`` says so rather
than guess: random initialisation is not recorded anywhere (and the export re-estimated the BatchNorm
statistics), so the PyTorch model it came from cannot be rebuilt. Rebuilding it from the artifact's own
initializers would be circular — a corrupted weight would be copied into the reference and never caught.
Export from a checkpoint (``edgecnn export NAME --weights CKPT``), or pass the checkpoint with ``--weights``.

Inputs are images: a folder (``data=``) through the card's own preprocessing, else the default sample
photographs (``edgecnn.convert.calibration.sample_photos``). A provider missing from this onnxruntime build, or dropped
by it at load time, is an error before anything is judged (``runtime.runner.open_runner`` never falls back).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..core.card import ModelCard, check_classes
from ..core.errors import ArtifactError, InputError
from ..core.sizes import check_input_shape
from ..runtime.compare import ParityReport, compare
from .reference import rebuild_reference, torch_outputs

DEFAULT_COUNT = 32  # images per validation: enough for top-1 agreement to mean something, quick on VGG
_CHUNK = 8  # images per onnxruntime call on a dynamic-batch graph


@dataclass(frozen=True)
class OutputCheck:
    """Parity of one graph output on one provider."""

    name: str
    report: ParityReport

    def to_dict(self) -> dict:
        return {"name": self.name, **self.report.to_dict()}


@dataclass(frozen=True)
class ProviderCheck:
    """The artifact on one provider entry (a short name, or a priority list such as ``tensorrt+cuda``)."""

    requested: tuple  # short names asked for
    providers: tuple  # runner.providers: what really ran, fallbacks included
    outputs: tuple  # OutputCheck per graph output

    @property
    def passed(self) -> bool:
        return all(o.report.passed for o in self.outputs)

    def to_dict(self) -> dict:
        return {
            "requested": list(self.requested),
            "providers": list(self.providers),
            "passed": self.passed,
            "outputs": [o.to_dict() for o in self.outputs],
        }


@dataclass(frozen=True)
class ValidationResult:
    """What ``validate`` found.

    Attributes:
        path: the artifact.
        model: registry name of the PyTorch model it was compared with.
        task / precision: from the card (precision picks the tolerances).
        weights: where the reference weights came from: ``origin`` (``argument``, ``card path``, ``published
            cache``), ``path``, ``sha256``, ``matches_card`` (``None`` when the card records no hash).
        inputs: ``source``, ``count``, ``skipped`` (unreadable images, with reasons).
        checks: one ``ProviderCheck`` per requested provider entry.
        notes: things the user should know (a checkpoint other than the recorded one, a different architecture …).
    """

    path: str
    model: str
    task: str
    precision: str
    weights: dict
    inputs: dict
    checks: tuple
    notes: tuple = ()

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def to_dict(self) -> dict:
        """Plain JSON-ready data; non-finite numbers (int8's unlimited ``max_rel`` tolerance, an infinite error)
        become ``None``, since strict JSON readers (jq, browsers) reject ``Infinity``/``NaN``."""
        d = asdict(self)
        d["checks"] = [c.to_dict() for c in self.checks]
        d["notes"] = list(self.notes)
        d["passed"] = self.passed
        return _finite(d)


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


@dataclass(frozen=True)
class _Inputs:
    onnx: np.ndarray  # what the graph takes (float NCHW, or uint8 NHWC for embedded preprocessing)
    torch: np.ndarray  # float32 NCHW, normalised
    record: dict = field(default_factory=dict)


def validate(
    path: str | os.PathLike,
    *,
    against: str | None = None,
    weights: str | None = None,
    providers: str | Sequence[str | Sequence[str]] = ("cpu",),
    data: str | os.PathLike | None = None,
    count: int = DEFAULT_COUNT,
    seed: int = 0,
    arch_options: dict | None = None,
    tolerances: dict | None = None,
    threads: int | None = None,
) -> ValidationResult:
    """Check an exported ``.onnx`` file against the PyTorch model it was exported from.

    Args:
        path: the artifact (``.onnx``).
        against: registry name of the architecture to compare with (required for a file without a card).
        weights: checkpoint file or published checkpoint name; default: the one recorded in the card.
        providers: provider entries, each checked on its own: ``("cpu", "cuda")``, ``"cpu,cuda"``; an entry may
            be a priority list (``("tensorrt", "cuda")`` or ``"tensorrt+cuda"``).
        data: folder of images (jpg/png/bmp/webp, searched recursively); default: the sample photographs.
        count: at most this many images.
        seed: which sample photographs (without ``data``).
        arch_options: builder options (``width_mult`` …) replacing the card's; needed only for files without a card.
        tolerances: overrides of individual parity thresholds (see ``edgecnn.runtime.compare.TOLERANCES``).
        threads: onnxruntime intra-op threads (``None``: its default).

    Returns:
        A ``ValidationResult``; ``result.passed`` is True only when every output passes on every provider.

    Raises:
        ProviderUnavailableError: a provider unknown, missing from this onnxruntime build, or dropped by it.
        CheckpointError: the reference weights cannot be found or do not fit (random-weight artifacts included).
        ArtifactError / InputError / UnknownModelError: an unreadable file, bad images or options, unknown model.
    """
    from ..runtime.runner import open_runner

    path = Path(path)
    entries = _checked_entries(path, providers, count)
    runner = open_runner(path, providers=entries[0], threads=threads)
    graph_input = runner.inputs[0]  # its declared size, bounded before images are made that size
    check_input_shape(list(graph_input.shape), f"{path.name}: input '{graph_input.name}'")
    card, spec, notes = _identify(runner, path, against, arch_options)
    model, weights_record, weight_notes = rebuild_reference(spec, card, weights, path)
    notes += weight_notes
    inputs = _load_inputs(card, data, count, seed)
    reference = torch_outputs(model, inputs.torch, half=card.precision == "fp16")
    notes += list(reference.notes)
    del model  # VGG's 550 MB need not stay while the runners run

    checks = []
    for i, entry in enumerate(entries):
        if i:
            runner = open_runner(path, providers=entry, threads=threads)
        checks.append(_check(runner, entry, path, spec, card, reference, inputs, tolerances))
        runner = None  # one runner at a time
    return ValidationResult(
        str(path), spec.name, card.task, card.precision, weights_record, inputs.record, tuple(checks), tuple(notes)
    )


def _checked_entries(path: Path, providers, count: int) -> list:
    """The provider entries to check, after the cheap refusals: a missing file, a bad count, a missing provider
    (before anything is built)."""
    from ..runtime.providers import parse_entries, resolve

    if not path.is_file():
        raise ArtifactError(f"model file not found: {path}")
    if count < 1:
        raise InputError(f"count must be at least 1, got {count}")
    entries = parse_entries(providers)
    for entry in entries:
        resolve(entry)
    return entries


def _check(runner, entry, path: Path, spec, card: ModelCard, reference, inputs: _Inputs, tolerances) -> ProviderCheck:
    """Every output of the artifact on one provider entry, judged against the PyTorch reference."""
    names = [o.name for o in runner.outputs]
    if len(names) != len(reference.fp32):
        raise ArtifactError(
            f"{path.name} has {len(names)} outputs but the PyTorch {spec.name} has "
            f"{len(reference.fp32)}; is --against the right architecture?"
        )
    outputs = _run_onnx(runner, inputs.onnx, card)
    reports = tuple(
        OutputCheck(
            n,
            compare(
                ref,
                out,
                task=card.task,
                precision=card.precision,
                tolerances=tolerances,
                exact=reference.yardstick(card.precision, k),
            ),
        )
        for k, (n, ref, out) in enumerate(zip(names, reference.fp32, outputs))
    )
    return ProviderCheck(tuple(entry), tuple(runner.providers), reports)


# --------------------------------------------------------------------------------- what the file is


def _identify(runner, path: Path, against: str | None, arch_options: dict | None):
    """The card (read from the file, or made from ``against`` and the graph), the spec, and notes."""
    from ..models import get_spec

    notes: list[str] = []
    # a card whose values are of the wrong type or range is refused in one line naming the key
    card = ModelCard.from_metadata(runner.metadata, path.name)
    if card is not None:
        shapes = {o.name: list(o.shape) for o in runner.outputs}
        check_classes(path.name, card, shapes.get(card.output_name, list(runner.outputs[0].shape)))
    if card is None and against is None:
        raise ArtifactError(
            f"{path.name} carries no edgecnn card, so its PyTorch source is unknown; pass "
            "--against NAME (and --weights CKPT) to say which architecture and checkpoint it is"
        )
    spec = get_spec(against if against is not None else card.model)
    if card is None:
        card = _card_from_graph(runner, spec, path)
        notes.append(
            f"{path.name} has no edgecnn card: input size, classes and precision were read from the "
            f"graph, preprocessing is {spec.name}'s default"
        )
    elif spec.name != card.model:
        notes.append(f"compared with {spec.name}, not the card's {card.model}")
    if arch_options is not None:
        card = card.replace(extra={**card.extra, "arch_options": dict(arch_options)})
    return card, spec, notes


def _card_from_graph(runner, spec, path: Path) -> ModelCard:
    """A card for a file without one: shapes from the graph, preprocessing from the spec, precision guessed."""
    inp, out = runner.inputs[0], runner.outputs[0]
    shape = list(inp.shape)
    if len(shape) != 4:
        raise ArtifactError(f"{path.name}: input {inp.name!r} has shape {shape}; expected N×C×H×W")
    hw = [d if isinstance(d, int) else s for d, s in zip(shape[2:], spec.input_size)]
    classes = out.shape[1] if len(out.shape) > 1 and isinstance(out.shape[1], int) else spec.num_classes
    resize = None if spec.resize is None else round(spec.resize * hw[0] / spec.input_size[0])
    channels = shape[1] if isinstance(shape[1], int) else 3
    mean = list(spec.mean) if channels == len(spec.mean) else [float(np.mean(spec.mean))] * channels
    std = list(spec.std) if channels == len(spec.std) else [float(np.mean(spec.std))] * channels
    return ModelCard(
        model=spec.name,
        task=spec.task,
        input_name=inp.name,
        output_name=out.name,
        input_shape=[d if isinstance(d, int) else n for d, n in zip(shape, ["batch", 3, "height", "width"])],
        mean=mean,
        std=std,
        resize=resize,
        crop=hw,
        num_classes=int(classes),
        precision=_graph_precision(path),
        weights={},
    )


def _graph_precision(path: Path) -> str:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger") for n in model.graph.node):
        return "int8"
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        return "fp16"
    return "fp32"


# --------------------------------------------------------------------------------- inputs and runs


def _load_inputs(card: ModelCard, data, count: int, seed: int) -> _Inputs:
    """Images through the card's preprocessing: float NCHW for torch, and what the graph takes."""
    from ..runtime.preprocess import list_images, load_image, preprocess, preprocess_uint8
    from .calibration import DEFAULT_SOURCE, sample_photos

    embedded = bool(card.preprocess_embedded) or card.input_dtype == "uint8"
    skipped: list[dict] = []
    if data is None:
        images = sample_photos(count, seed)
        source, available = f"{DEFAULT_SOURCE}, seed {seed}", count
    else:
        folder = Path(data)
        if not folder.is_dir():
            raise InputError(f"--data '{folder}' is not a folder; pass a folder of .jpg/.png images")
        files = list_images(folder)
        if not files:
            raise InputError(f"--data folder '{folder}' has no images (.jpg .jpeg .png .bmp .webp)")
        images = []
        for f in files:
            if len(images) >= count:
                break
            try:
                images.append(load_image(f))
            except InputError as exc:  # a broken image is skipped and named, not fatal
                skipped.append({"name": str(f.relative_to(folder)), "reason": str(exc)})
        if not images:
            raise InputError(
                f"none of the {len(files)} images in '{folder}' could be read "
                f"(first: {skipped[0]['reason']}); pass a folder of valid images"
            )
        source, available = str(folder.resolve()), len(files)
    torch_in = np.stack([preprocess(im, card) for im in images])
    onnx_in = np.stack([preprocess_uint8(im, card) for im in images]) if embedded else torch_in
    record = {"source": source, "count": int(len(images)), "available": int(available), "skipped": skipped}
    return _Inputs(onnx_in, torch_in, record)


_FEED_TYPES = ("tensor(float)", "tensor(float16)", "tensor(uint8)", "tensor(double)")  # image inputs validate feeds


def _run_onnx(runner, arrays: np.ndarray, card: ModelCard) -> list[np.ndarray]:
    """The artifact's outputs on ``arrays`` (float32), through the one batched runner (``iter_batched``)."""
    from ..runtime.session import ORT_DTYPES, iter_batched

    inp = runner.inputs[0]
    if inp.type not in _FEED_TYPES:
        raise ArtifactError(f"input {inp.name!r} has type {inp.type}; validate feeds float32/float16/uint8 images")
    feed = arrays.astype(ORT_DTYPES[inp.type], copy=False)
    chunks = [
        [np.asarray(o, dtype=np.float32) for o in outs]
        for outs in iter_batched(runner, feed, input_name=inp.name, chunk=_CHUNK)
    ]
    return [np.concatenate(parts) for parts in zip(*chunks)]


# --------------------------------------------------------------------------------- rendering


def table_rows(result: ValidationResult) -> tuple[list[str], list[list[str]]]:
    """Headers and one row per (provider, output) for the CLI table."""
    headers = ["ep", "session providers", "output", "max abs", "max rel", "cosine", "agreement", "verdict"]
    rows = []
    for check in result.checks:
        for o in check.outputs:
            r = o.report
            if r.task == "segmentation":
                agree = f"pixel {r.pixel_agreement:.4f} mIoU {r.mean_iou:.4f}"
            else:
                decisive = (
                    "" if r.decisive_top1 is None else f" (decisive {r.decisive_top1:.3f} of {r.decisive_samples})"
                )
                agree = f"top1 {r.top1_agreement:.3f} top5 {r.top5_agreement:.3f}{decisive}"
            rows.append(
                [
                    "+".join(check.requested),
                    ",".join(p.replace("ExecutionProvider", "") for p in check.providers),
                    o.name,
                    f"{r.max_abs:.2e}",
                    f"{r.max_rel:.2e}",
                    f"{r.cosine:.6f}",
                    agree,
                    "PASS" if r.passed else "FAIL",
                ]
            )
    return headers, rows
