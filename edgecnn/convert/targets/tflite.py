"""LiteRT (``.tflite``) from the eval-mode PyTorch model, through litert-torch (``torch.export`` → StableHLO →
LiteRT's converter; no TensorFlow).

- fp32: ``litert_torch.convert(model, (x,))``.
- fp16: the fp32 file in LiteRT's fp16-weights form (``tflite_io.fp16_weights``): half the size, float32 compute.
- int8: ``pt2e.quantize`` with litert-torch's own PT2E quantizer, calibrated on the request's arrays, converted
  with ``QuantConfig``. litert-torch's result takes and returns int8 tensors; unless ``quantized_io`` is asked, the
  file gets float32 I/O (a QUANTIZE after the input, a DEQUANTIZE before the output, as TFLite's converter makes
  for float inference types), checked against the int8-I/O form before it is written.

Every file carries the card (``tflite_io.set_card``), is written atomically, and is reopened on LiteRT's
interpreter with XNNPACK to say what the delegate took: the manifest's ``delegation`` and a note, because a file
split into many partitions with float operators between them is slow, and a user should read that beside its time.
"""

from __future__ import annotations

import json

import numpy as np

from ...core.card import PREFIX
from ...core.errors import ArtifactError, InputError, first_line
from ...core.files import write_bytes_atomic
from ...runtime.litert import open_litert
from ...runtime.runner import RunnerOptions
from . import tflite_io
from .request import TargetRequest, TargetResult

PRECISIONS = ("fp32", "fp16", "int8")
QUANTIZER = "litert-torch PT2EQuantizer: per-channel symmetric int8 weights, per-tensor int8 activations"
#: float-I/O against int8-I/O: the same int8 graph, so at most one output step apart (rounding at a tie)
STEP_SLACK = 1.0 + 1e-3
CHECK_IMAGES = 8


def export(request: TargetRequest) -> TargetResult:
    """Write ``request`` as a ``.tflite`` file.

    Raises:
        InputError: an unknown precision, or int8 without calibration arrays of the example's shape.
        ArtifactError: litert-torch cannot convert the model (one line: its reason), or the file cannot be written.
    """
    _check(request)
    data, record = _converted(request)
    if request.precision == "fp16":
        data = _fp16(data, request)
    model = tflite_io.load(data)
    rewritten = tflite_io.float_io(model) if request.precision == "int8" and not request.quantized_io else []
    if request.metadata:
        tflite_io.set_card(model, request.metadata)
    out = tflite_io.dump(model)
    if rewritten:
        _check_float_io(data, out, request)
    write_bytes_atomic(request.path, out)
    runner = open_litert(request.path, RunnerOptions(providers="xnnpack"))
    delegation = runner.info()["delegation"]
    notes = [delegation_note(delegation)]
    if request.precision == "int8":
        record["io"] = "int8" if request.quantized_io else "float32"
        record["float_io"] = rewritten
        notes.append(_io_note(runner, rewritten))
    elif request.precision == "fp16":
        halves = tflite_io.float16_tensors(model)
        notes.append(f"fp16 weights: {halves} weight tensors stored as float16, dequantized to float32 at load")
    return TargetResult(request.path, "tflite", request.precision, delegation, tuple(notes), record)


def _fp16(data: bytes, request: TargetRequest) -> bytes:
    with tflite_io.quiet() as lines:  # ai-edge-quantizer draws progress bars and logs its report
        try:
            data, err = tflite_io.fp16_weights(data), None
        except Exception as exc:  # its own errors: ValueError, RuntimeError, KeyError …
            err = exc
    if err is not None:
        raise ArtifactError(f"ai-edge-quantizer cannot cast {_name(request)} to fp16: {_reason(err, lines)}") from err
    return data


def _check(request: TargetRequest) -> None:
    if request.precision not in PRECISIONS:
        raise InputError(f".tflite precision {request.precision!r} is not one of {', '.join(PRECISIONS)}")
    example = np.asarray(request.example)
    if example.ndim != 4 or example.shape[0] != 1:
        raise InputError(f"the .tflite example input must be 1×C×H×W, got shape {example.shape}")
    if request.precision != "int8":
        return
    cal = request.calibration
    if cal is None or len(cal) == 0:
        raise InputError("int8 .tflite needs calibration images (N×C×H×W, preprocessed as the model's inputs)")
    if np.ndim(cal) != 4 or tuple(np.shape(cal)[1:]) != example.shape[1:]:
        raise InputError(f"calibration arrays must be N×{'×'.join(map(str, example.shape[1:]))}, got {np.shape(cal)}")


def _name(request: TargetRequest) -> str:
    raw = request.metadata.get(PREFIX + "model")
    try:
        name = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        name = raw
    return name if isinstance(name, str) and name else type(request.model).__name__


def _converted(request: TargetRequest) -> tuple[bytes, dict]:
    """litert-torch's flatbuffer for the request (quantized first for int8), and the int8 record."""
    record: dict = {}
    with tflite_io.quiet() as lines:
        try:
            import litert_torch
            import torch

            x = torch.from_numpy(np.ascontiguousarray(request.example, dtype=np.float32))
            model, options = request.model.eval(), {}
            if request.precision == "int8":
                model, options, record = _quantized(request)
            data, err = litert_torch.convert(model, (x,), **options).model_content(), None
        except Exception as exc:  # torch.export's and the MLIR converter's errors have no common base
            err = exc
    if err is not None:
        raise ArtifactError(f"litert-torch cannot convert {_name(request)}: {_reason(err, lines)}") from err
    return bytes(data), record


def _quantized(request: TargetRequest) -> tuple[object, dict, dict]:
    """The PT2E-quantized graph, the converter's options for it, and the int8 record."""
    from litert_torch.quantize.quant_config import QuantConfig

    from .pt2e import quantize, record

    graph, quantizer = quantize(
        request.model, request.example, request.calibration, "litert", request.recipe, trained=request.trained
    )
    summary = {
        "quantizer": QUANTIZER,
        "calibration": {"count": int(len(request.calibration))},
        "recipe": record(graph, quantizer),
    }
    return graph, {"quant_config": QuantConfig(pt2e_quantizer=quantizer)}, summary


def _reason(exc: BaseException, lines: list[str]) -> str:
    """The first line of the converter's own error, where it printed one (MLIR's ``error:`` lines say which
    operator), else the exception's first line."""
    said = [line.strip() for line in lines if "error:" in line.lower() and "warning" not in line.lower()]
    return said[0][:300] if said else first_line(exc)[:300]


def _check_float_io(int8_data: bytes, float_data: bytes, request: TargetRequest) -> None:
    """The float-I/O file runs and gives what the int8-I/O file gives (fed through its scale and zero point by
    the runner) within one output step, on the example and a few calibration images."""
    rows = [np.asarray(request.example, np.float32)]
    rows += [np.asarray(r[None], np.float32) for r in request.calibration[: CHECK_IMAGES - 1]]
    q = open_litert(int8_data, RunnerOptions(providers="xnnpack"))
    f = open_litert(float_data, RunnerOptions(providers="xnnpack"))
    for x in rows:
        want = q.run({q.inputs[0].name: x})
        got = f.run({f.inputs[0].name: x})
        for k, (a, b) in enumerate(zip(want, got)):
            step = q.output_quantization[k][0] if q.output_quantization[k] else 0.0
            worst = float(np.max(np.abs(a - b))) if a.size else 0.0
            if worst > step * STEP_SLACK + 1e-7:
                raise ArtifactError(
                    f"{_name(request)}: the float-I/O .tflite differs from its int8-I/O form by {worst:.3g} "
                    f"(one step is {step:.3g}); export with quantized I/O instead"
                )


def delegation_note(d: dict) -> str:
    """One line: what XNNPACK took, and what ran outside it."""
    total = d["delegated_nodes"] + d["other_nodes"]
    head = f"XNNPACK took {d['delegated_nodes']} of {total} nodes in {d['partitions']} partition(s)"
    if not d["other_ops"]:
        return head
    outside = ", ".join(f"{op}×{n}" for op, n in d["other_ops"].items())
    return f"{head}; outside it, on LiteRT's own kernels: {outside}"


def _io_note(runner, rewritten: list[dict]) -> str:
    if rewritten:
        ends = "; ".join(f"{r['side']} scale {r['scale']:.6g} zero point {r['zero_point']}" for r in rewritten)
        return f"float32 I/O: QUANTIZE/DEQUANTIZE inside the file ({ends}), within one step of the int8-I/O form"
    scales = [q for q in runner.input_quantization + runner.output_quantization if q]
    ends = "; ".join(f"scale {s:.6g} zero point {z}" for s, z in scales)
    return f"int8 I/O: the app quantizes inputs and dequantizes outputs itself ({ends})"
