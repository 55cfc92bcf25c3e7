"""The step: ``make_mobile`` — fixed shapes, ``.ort`` files, partition report and parity, in a staged folder."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ...core.artifact import MANIFEST as EXPORT_MANIFEST
from ...core.artifact import read_manifest
from ...core.card import ModelCard
from ...core.errors import ArtifactError, EdgeCNNError, InputError, first_line
from ...core.files import sha256_file, staged_output
from ...core.paths import inside, refuse_folder_over_inputs
from .ort_format import convert_to_ort
from .partitions import partition_report
from .records import PARITY_SAMPLES, REPORT_JSON, REPORT_TEXT, MobileArtifact, MobileResult
from .render import render_report
from .shapes import fix_shapes, fixed_shape, graph_inputs


def make_mobile(
    src: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    *,
    batch: int = 1,
    input_size: str | int | tuple | None = None,
    force: bool = False,
    weights: str | None = None,
    progress=None,
    export_fn: Callable | None = None,
) -> MobileResult:
    """Make the mobile artifacts of a model: fixed shapes, ``.ort`` files, a partition report.

    Args:
        src: an ``.onnx`` file, or a model name. A name uses the existing export in ``exported/NAME`` when there
            is one (and no ``weights``/``input_size`` are given); otherwise it is exported there first, through
            ``export_fn``, with the batch size fixed.
        out_dir: output folder; default ``mobile/`` beside the source file (``exported/NAME/mobile``).
        batch: the batch size to fix.
        input_size: ``H`` or ``"HxW"`` for sources whose height/width are dynamic (U-Net); default: the card's crop.
        force: replace an existing mobile folder (only once the new one is complete).
        weights: for a model name: the weights to export with (see ``edgecnn.export``).
        progress: called with the name of each step as it starts.
        export_fn: what exports a model name (``edgecnn.pipeline.export``'s signature and result); default
            ``edgecnn.pipeline.export``, looked up only when a name needs exporting.

    Returns:
        ``MobileResult``; ``report.json``/``report.txt`` in ``out_dir`` hold the same record.

    Raises:
        EdgeCNNError: an unreadable source, a shape that cannot be fixed, an unwritable output folder, or a
            conversion that fails. Parity failures are recorded in the result, not raised.
    """
    say = progress or (lambda step: None)
    if int(batch) < 1:
        raise InputError(f"batch must be a positive integer, got {batch}")
    if out_dir is not None and os.path.exists(src):  # before any export or conversion: never over the source
        refuse_folder_over_inputs(out_dir, [src])
    source, export_record = _resolve_source(src, batch, input_size, weights, force, say, export_fn)
    out_dir = Path(out_dir) if out_dir is not None else source.parent / "mobile"
    model = _load(source)
    card = _card_of(model)
    shape = fixed_shape(model, card, int(batch), input_size)
    notes: list[str] = []  # what replacing the folder replaced (an earlier run's sub-folders), or a lock taken over
    with staged_output(out_dir, force, notes, writer="mobile", inputs=[source]) as staging:
        result = _make_into(staging, out_dir, source, model, card, shape, export_record, say)
    return dataclasses.replace(result, warnings=(*result.warnings, *notes)) if notes else result


def _make_into(
    staging: Path,
    out_dir: Path,
    source: Path,
    model,
    card: ModelCard | None,
    shape: list,
    export_record: dict | None,
    say,
) -> MobileResult:
    warnings: list[str] = []
    stem = source.name[: -len(".onnx")] if source.name.endswith(".onnx") else source.stem
    fixed_path = staging / f"{stem}.fixed.onnx"

    say("fix shapes")
    fixed, card, rewrites, dynamic = _fix(model, card, shape, source, fixed_path, warnings)
    say("convert to ORT format")
    orts, configs = convert_to_ort(fixed_path, staging)
    say("partition report")
    partitions = tuple(partition_report(fixed_path))
    source_partitions = tuple(partition_report(source))
    say("parity")
    inputs, input_note = _sample_inputs(fixed, card, shape)
    artifacts = _check_parity(source, [(fixed_path, "onnx")] + list(orts), fixed, card, inputs, warnings)

    report = {
        "edgecnn_mobile_report": 1,
        "model": card.model if card is not None else stem,
        "source": {"file": str(source), "sha256": sha256_file(source), "export": export_record},
        "input": {"name": fixed.graph.input[0].name, "shape": list(shape), "dtype": _input_dtype(fixed)},
        "rewrites": rewrites,
        "dynamic_values": dynamic,
        "artifacts": [a.to_dict() for a in artifacts],
        "required_operators": list(configs),
        "parity_inputs": {
            "count": int(len(inputs)),
            "source": input_note,
            "reference": f"{source.name} on onnxruntime's CPU provider",
        },
        "partitions": {"fixed": [p.to_dict() for p in partitions], "source": [p.to_dict() for p in source_partitions]},
        "warnings": warnings,
    }
    (staging / REPORT_JSON).write_text(json.dumps(report, indent=2) + "\n")
    (staging / REPORT_TEXT).write_text(render_report(report) + "\n")
    return MobileResult(
        report["model"],
        source,
        out_dir,
        tuple(shape),
        tuple(artifacts),
        tuple(configs),
        partitions,
        source_partitions,
        rewrites,
        dynamic,
        report,
        tuple(warnings),
    )


def _fix(model, card: ModelCard | None, shape: list, source: Path, fixed_path: Path, warnings: list):
    """Write the fixed-shape graph (its card updated) to ``fixed_path``: ``(graph, card, rewrites, dynamic)``."""
    fixed, rewrites, dynamic = fix_shapes(model, shape)
    if dynamic:
        warnings.append(
            f"{dynamic} value(s) still have dynamic shapes after fixing the input; "
            "NNAPI will not take the nodes that read them"
        )
    if card is not None:
        card = card.replace(
            input_shape=list(shape),
            extra={**card.extra, "mobile": {"fixed_from": str(source.name), "rewrites": rewrites}},
        )
        card.attach(fixed)
    _save(fixed, fixed_path)
    if card is not None and card.precision == "fp16":
        # Measured: the converter's CPU session wraps fp16 ops in Casts to fp32 (the CPU provider lacks fp16 kernels)
        # and saves them, so the .ort files compute in fp32 and Clip bounds stop being constants NNAPI can read.
        warnings.append(
            "fp16 source: ORT-format conversion bakes in the CPU provider's Casts to fp32 (see the "
            "partitions); for phones convert the fp32 model and let NNAPI/CoreML pick fp16 themselves"
        )
    return fixed, card, rewrites, dynamic


def _check_parity(
    source: Path, files: list, fixed, card: ModelCard | None, inputs: np.ndarray, warnings: list
) -> list[MobileArtifact]:
    """Each written file's outputs against the source's, on the CPU provider; failures noted in ``warnings``."""
    input_name = fixed.graph.input[0].name
    reference = _run(source, inputs, input_name)
    precision = card.precision if card is not None else "fp32"
    task = card.task if card is not None else ("segmentation" if reference.ndim == 4 else "classification")
    random_weights = bool(card is not None and (card.weights or {}).get("source") == "random")
    artifacts = [
        MobileArtifact(
            path.name,
            kind,
            path.stat().st_size,
            sha256_file(path),
            _parity(reference, _run(path, inputs, input_name), task, precision, random_weights),
        )
        for path, kind in files
    ]
    for a in artifacts:
        if a.parity.get("judged", True) and not a.parity["passed"]:
            warnings.append(f"{a.file}: parity FAILED: " + "; ".join(a.parity["failures"]))
    return artifacts


def _input_dtype(model) -> str:
    import onnx

    return onnx.helper.tensor_dtype_to_np_dtype(model.graph.input[0].type.tensor_type.elem_type).name


def _resolve_source(
    src, batch: int, input_size, weights, force: bool, say, export_fn: Callable | None
) -> tuple[Path, dict | None]:
    """The .onnx to work from, and the export record when a model name was exported for it."""
    path = Path(src)
    if path.suffix.lower() in (".tflite", ".pte"):
        raise InputError(
            f"{path.name}: 'mobile' prepares ONNX files (fixed shapes, .ort, NNAPI/Core ML partitions); a "
            f"{path.suffix} file is already the mobile artifact of its runtime (LiteRT, ExecuTorch): ship it as it is"
        )
    if path.suffix.lower() == ".onnx" or path.exists():
        if not path.is_file():
            raise ArtifactError(
                f"{path}: no such model file"
                if not path.exists()
                else f"{path} is a folder; pass an .onnx file or a model name"
            )
        if weights is not None:
            raise InputError("--weights applies to a model name, not to an .onnx file (its weights are in it)")
        return path, None

    from ...models import get_spec

    spec = get_spec(str(src))  # raises UnknownModelError for a name that is neither a file nor a model
    folder = Path("exported") / spec.name
    if (folder / EXPORT_MANIFEST).is_file() and weights is None and input_size is None:
        manifest = read_manifest(folder)  # types and keys checked: a malformed one is one line naming the key
        fp32 = next((a for a in manifest["artifacts"] if a["precision"] == "fp32"), None)
        # a path read from a manifest stays inside its folder (never '../../elsewhere/private.onnx')
        if fp32 is not None and inside(folder, fp32["file"], f"{folder / EXPORT_MANIFEST}: artifact").is_file():
            return folder / fp32["file"], {"reused": str(folder), "parity_vs_pytorch": fp32["parity"]}
    if export_fn is None:  # deploy sits under pipeline and never imports it: the composer passes its export
        raise InputError(
            f"{spec.name} has no export in {folder} to make mobile files from; export it first "
            "(edgecnn export NAME), or call edgecnn.pipeline.make_mobile, which exports on the way"
        )
    say(f"export {spec.name} (batch {batch})")
    result = export_fn(spec.name, folder, weights=weights, input_size=input_size, batch=batch, force=force)
    fp32 = result.artifacts[0]
    return result.path("fp32"), {"exported": str(folder), "batch": batch, "parity_vs_pytorch": fp32.parity.to_dict()}


def _load(path: Path):
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf raises DecodeError and others for truncated or foreign files
        raise ArtifactError(f"{path}: not a readable ONNX model ({first_line(exc)}); export it again") from None
    if not model.graph.node or len(model.graph.input) == 0:
        raise ArtifactError(f"{path}: not a readable ONNX model (no graph in the file); export it again")
    if not model.graph.output:
        raise ArtifactError(f"{path}: the graph has no outputs, so it computes nothing; export the model again")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ArtifactError(f"{path}: the ONNX model is invalid ({first_line(exc)[:200]}); export it again") from None
    inputs = graph_inputs(model)
    if len(inputs) != 1:
        raise ArtifactError(f"{path}: expected a model with one image input, it has {len(inputs)}")
    return model


def _card_of(model) -> ModelCard | None:
    return ModelCard.from_metadata({p.key: p.value for p in model.metadata_props})


def _sample_inputs(model, card: ModelCard | None, shape: list[int]) -> tuple[np.ndarray, str]:
    """Parity inputs: sample photographs through the card's preprocessing; seeded noise without a card."""
    import onnx

    elem = model.graph.input[0].type.tensor_type.elem_type
    n = max(PARITY_SAMPLES, shape[0])
    if card is not None:
        try:
            from ...convert.calibration import sample_photos
            from ...runtime.preprocess import preprocess, preprocess_uint8

            photos = sample_photos(n, seed=1)
            if elem == onnx.TensorProto.UINT8:
                arrays = np.stack([preprocess_uint8(p, card) for p in photos])
                if card.layout != "NHWC":
                    arrays = np.ascontiguousarray(arrays.transpose(0, 3, 1, 2))
            else:
                arrays = np.stack([preprocess(p, card) for p in photos])
            return arrays, "sample photographs through the model's preprocessing"
        except EdgeCNNError:  # no scikit-learn for the sample photos: fall through to noise
            pass
    rng = np.random.default_rng(0)
    full = [n] + list(shape[1:])
    if elem == onnx.TensorProto.UINT8:
        return rng.integers(0, 256, full, dtype=np.uint8), "seeded random pixels"
    return rng.standard_normal(full).astype(np.float32), "seeded standard-normal noise"


def _run(path: Path, arrays: np.ndarray, input_name: str) -> np.ndarray:
    """The first output of the file at ``path`` on ``arrays``, on the CPU provider (``session.run_batched``)."""
    from ...runtime.runner import open_runner
    from ...runtime.session import run_batched

    return run_batched(open_runner(path, providers="cpu"), arrays, input_name=input_name)[0]


def _parity(reference: np.ndarray, outputs: np.ndarray, task: str, precision: str, random_weights: bool) -> dict:
    from ...runtime.compare import compare

    return compare(reference, outputs, task=task, precision=precision, random_weights=random_weights).to_dict()


def _save(model, path: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise ArtifactError(f"the fixed-shape graph fails onnx.checker: {first_line(exc)[:200]}") from None
    onnx.save(model, str(path))
