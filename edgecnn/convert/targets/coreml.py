"""Core ML (``.mlpackage``, an ML program) from the eval-mode PyTorch model, through coremltools.

Route: ``torch.export.export(model, (x,)).run_decompositions({})`` → ``coremltools.convert(convert_to="mlprogram")``.
coremltools 9.0 predates torch 2.13 and takes either an ``ExportedProgram`` or a TorchScript trace; both converted
the six seed architectures (alexnet, vgg16, googlenet, mobilenet_v2, resnet50, unet) to the same operators, and
``torch.jit.trace`` is deprecated in torch 2.13, so the ``torch.export`` route (the one ``.tflite`` and ``.pte``
take) is the only one. coremltools refuses an ``ExportedProgram`` in its training dialect: hence the decompositions.

- fp32: ``compute_precision=FLOAT32`` (coremltools' default for ML programs is float16).
- fp16: ``compute_precision=FLOAT16``: weights stored and arithmetic done in half precision.
- int8: the fp32 program's weights through coremltools' ``linear_quantize_weights`` (per-channel symmetric int8;
  tensors under 2048 elements, biases and depthwise kernels, stay float, coremltools' default): 8-bit *weights*,
  dequantized on load; activations stay float. No calibration is used.

Every file is an ML program for iOS 16 / macOS 13 (specification 7, the first whose ops take int8 weights), takes
and returns float32 under the card's input and output names, carries the card in its user-defined metadata (one
key per card key, as an ONNX file's metadata_props), and is written whole: saved into a staging folder beside the
target and renamed into place. It is then read back by ``runtime.coreml.inspect`` and checked against the request.
Core ML predicts on macOS only: here the file is converted and checked structurally, not run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from ...core.card import PREFIX
from ...core.errors import ArtifactError, InputError, first_line
from ...runtime.coreml import NOT_RUN, inspect
from .request import TargetRequest, TargetResult
from .tflite_io import quiet

PRECISIONS = ("fp32", "fp16", "int8")
#: the oldest OS the files load on: iOS 16's ML program (specification 7) is the first with int8 weight ops
MINIMUM_TARGET = "iOS16"
ROUTE = "torch.export (run_decompositions) → coremltools.convert, ML program"
QUANTIZER = "coremltools linear_quantize_weights: per-channel symmetric int8 weights; activations stay float"
#: what coremltools writes beside an ExportedProgram's package: ExecuTorch's debug-handle map (all null here)
_SIDECARS = ("executorch_debug_handle_mapping.json",)
#: how coremltools names an operator it has no conversion for
_UNSUPPORTED = (
    re.compile(r"Unsupported fx node (\w+)"),
    re.compile(r"converting '(\w+)' op"),
    re.compile(r"convert function for op '(\w+)' not implemented"),
)


def _check(request: TargetRequest) -> None:
    if request.precision not in PRECISIONS:
        raise InputError(f".mlpackage precision {request.precision!r} is not one of {', '.join(PRECISIONS)}")
    if request.quantized_io:
        raise InputError("a Core ML int8 file quantizes weights only; its I/O stays float32: drop quantized I/O")
    example = np.asarray(request.example)
    if example.ndim != 4 or example.shape[0] != 1:
        raise InputError(f"the .mlpackage example input must be 1×C×H×W, got shape {example.shape}")
    if Path(request.path).suffix != ".mlpackage":
        raise InputError(f"a Core ML ML program is a folder named *.mlpackage, not {Path(request.path).name}")


def _name(request: TargetRequest) -> str:
    try:
        name = json.loads(request.metadata.get(PREFIX + "model", "null"))
    except json.JSONDecodeError:
        name = None
    return name if isinstance(name, str) and name else type(request.model).__name__


def _io_names(request: TargetRequest) -> tuple[str, str]:
    """The card's input and output names (as the ONNX file's), ``input``/``output`` without a card."""
    names = []
    for key, default in (("input_name", "input"), ("output_name", "output")):
        try:
            value = json.loads(request.metadata.get(PREFIX + key, "null"))
        except json.JSONDecodeError:
            value = None
        names.append(value if isinstance(value, str) and value else default)
    return names[0], names[1]


def _failure(request: TargetRequest, exc: BaseException, lines: list[str], stage: str) -> ArtifactError:
    """One line: the operator coremltools has no conversion for where it names one, else its first line."""
    for text in (str(exc), *lines):
        for pattern in _UNSUPPORTED:
            found = pattern.search(text)
            if found:
                return ArtifactError(
                    f"Core ML cannot take {_name(request)}: coremltools has no conversion for operator "
                    f"{found.group(1)!r}; replace it in the model or export another format"
                )
    return ArtifactError(f"cannot convert {_name(request)} to Core ML ({stage}): {first_line(exc)[:300]}")


def _converted(request: TargetRequest):
    """coremltools' ``MLModel`` for the request (not yet saved), the card in its metadata."""
    stage = "torch.export"
    with quiet() as lines:  # coremltools warns about torch's version and draws progress bars on stderr
        try:
            import coremltools as ct
            import torch

            x = torch.from_numpy(np.ascontiguousarray(request.example, dtype=np.float32))
            program = torch.export.export(request.model.eval(), (x,)).run_decompositions({})
            stage = "coremltools.convert"
            model, err = _mlprogram(ct, program, request), None
        except Exception as exc:  # torch.export's and coremltools' errors share no base class
            err = exc
    if err is not None:
        raise _failure(request, err, lines, stage) from None
    for key, value in (request.metadata or {}).items():
        model.user_defined_metadata[key] = value
    model.short_description = f"edgecnn {_name(request)} ({request.precision})"
    return model


def _mlprogram(ct, program, request: TargetRequest):
    in_name, out_name = _io_names(request)
    half = request.precision == "fp16"
    model = ct.convert(
        program,
        convert_to="mlprogram",
        minimum_deployment_target=getattr(ct.target, MINIMUM_TARGET),
        compute_precision=ct.precision.FLOAT16 if half else ct.precision.FLOAT32,
        # float32 at the edges for every precision, as the ONNX files: fp16 casts inside the program
        inputs=[ct.TensorType(name=in_name, shape=tuple(request.example.shape), dtype=np.float32)],
        outputs=[ct.TensorType(name=out_name, dtype=np.float32)],
        skip_model_load=True,  # Core ML itself is not on Linux; loading is for macOS
    )
    if request.precision != "int8":
        return model
    from coremltools.optimize.coreml import OpLinearQuantizerConfig, OptimizationConfig, linear_quantize_weights

    config = OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel")
    return linear_quantize_weights(model, OptimizationConfig(global_config=config))


def write_package(model, path: Path) -> None:
    """Save ``model`` into a staging folder beside ``path`` and rename it into place: a reader never finds half a
    package, and a failed save leaves the older one (if any) as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".staging", dir=path.parent))
    fresh, old = staging / path.name, staging / "old"
    try:
        with quiet():
            model.save(str(fresh))
        for sidecar in _SIDECARS:
            (fresh / sidecar).unlink(missing_ok=True)
        _readable(fresh)
        if path.exists():  # a folder cannot be renamed over a full one: the old one is moved aside first
            os.replace(path, old)
        try:
            os.replace(fresh, path)
        except OSError:
            if old.exists():
                os.replace(old, path)
            raise
    except Exception as exc:  # coremltools' save raises plain Exceptions as well as OSError
        raise ArtifactError(f"cannot write {path}: {getattr(exc, 'strerror', None) or first_line(exc)}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _readable(folder: Path) -> None:
    """coremltools saves from a temporary folder (files 0600): give the package the modes of any other output."""
    mask = os.umask(0)
    os.umask(mask)
    for item in [folder, *folder.rglob("*")]:
        os.chmod(item, (0o777 if item.is_dir() else 0o666) & ~mask)


def export(request: TargetRequest) -> TargetResult:
    """Write ``request`` as an ``.mlpackage`` (an ML program folder) and check it structurally.

    Raises:
        InputError: an unknown precision, quantized I/O, an example that is not 1×C×H×W, a path not ``*.mlpackage``.
        ArtifactError: coremltools cannot convert the model (one line, the operator where coremltools names it), the
            package cannot be written, or what was written is not what was asked.
    """
    _check(request)
    path = Path(request.path)
    start = time.perf_counter()
    write_package(_converted(request), path)
    seconds = time.perf_counter() - start
    found = inspect(path)
    _agrees(found, request)
    ops = ", ".join(f"{op}×{n}" for op, n in sorted(found["ops"].items()) if not op.startswith("const"))
    notes = [
        f"Core ML ML program for {found['minimum_os']}+ (specification {found['spec_version']}); {NOT_RUN}",
        f"{found['compute_ops']} operators: {ops}",
        f"written in {seconds:.1f} s, {found['size_bytes'] / 1e6:.2f} MB ({ROUTE})",
    ]
    int8 = {}
    if request.precision == "int8":
        int8 = {"quantizer": QUANTIZER, "weights": "int8", "activations": "float", "calibration": None}
        notes.append(f"int8 weights only ({QUANTIZER}): no calibration, compute stays float on the device")
    elif request.precision == "fp16":
        notes.append("fp16: weights stored and arithmetic done in float16; float32 in and out")
    return TargetResult(path, "coreml", request.precision, {}, tuple(notes), int8)


def _agrees(found: dict, request: TargetRequest) -> None:
    """The package takes and gives what was asked (names, shape, float32), in the precision asked, with the card."""
    in_name, out_name = _io_names(request)
    want_in = {"name": in_name, "shape": list(request.example.shape), "dtype": "float32"}
    problems = []
    if found["inputs"] != [want_in]:
        problems.append(f"inputs {found['inputs']} (asked {want_in})")
    if [(o["name"], o["dtype"]) for o in found["outputs"]] != [(out_name, "float32")]:
        problems.append(f"outputs {found['outputs']} (asked one float32 {out_name!r})")
    if found["precision"] != request.precision:
        problems.append(f"weights stored as {found['weights']} (asked {request.precision})")
    if found["card"] != dict(request.metadata or {}):
        problems.append("the card read back differs from the one written")
    if problems:
        raise ArtifactError(f"{found['file']}: coremltools wrote " + "; ".join(problems))
