"""Reduced precision: fp16 conversion and static int8 quantization (QDQ).

fp16 uses onnxruntime's float16 converter with fp32 inputs/outputs kept, so apps feed the same arrays.
int8 is static QDQ: ``quant_pre_process`` (shape inference + graph optimisation) first, then
``quantize_static`` with per-channel S8 weights and U8 activations, calibrated on preprocessed images.
(Dynamic quantization, ConvInteger, is 2–11× slower than fp32 for CNNs on onnxruntime's CPU provider, and
S8 activations are slower than U8 on x86: neither is offered.)
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


@dataclass(frozen=True)
class Fp16Result:
    weights_out_of_range: int  # fp32 weights whose magnitude exceeds fp16's range (they would become ±inf)


def to_fp16(src: str | Path, dst: str | Path) -> Fp16Result:
    """Convert ``src`` to fp16 weights and activations, fp32 inputs/outputs (``keep_io_types``)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    too_big = 0
    for init in model.graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT:
            arr = onnx.numpy_helper.to_array(init)
            too_big += int((np.abs(arr) > 65504).sum())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converted = convert_float_to_float16(model, keep_io_types=True)
    toposort(converted.graph)  # the converter appends its input casts at the end of the node list
    onnx.save(converted, str(dst))
    return Fp16Result(too_big)


def toposort(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` so every node comes after the producers of its inputs (in place)."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise ValueError("graph has a cycle or an input no node produces")
        for n in ready:
            ordered.append(n)
            available.update(n.output)
        pending = [n for n in pending if n not in ready]
    del graph.node[:]
    graph.node.extend(ordered)


def preprocess_for_quantization(src: str | Path, dst: str | Path) -> None:
    """onnxruntime's recommended pre-processing: symbolic shape inference and graph optimisation."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, dst = Path(src).resolve(), Path(dst).resolve()
    # On failure the symbolic shape inferencer dumps its model (and external-data files) into the current
    # directory; run it from a scratch directory so nothing lands in the user's folder.
    with _quiet(), tempfile.TemporaryDirectory(prefix="edgecnn-quant-") as scratch, _cwd(scratch):
        try:
            quant_pre_process(str(src), str(dst), skip_optimization=False, skip_onnx_shape=False,
                              skip_symbolic_shape=False)
        except Exception:
            # Symbolic shape inference gives up on some dynamic axes (U-Net's height/width); ONNX's own
            # shape inference is enough for the quantizer there.
            quant_pre_process(str(src), str(dst), skip_optimization=False, skip_onnx_shape=False,
                              skip_symbolic_shape=True)


def quantize_int8(src: str | Path, dst: str | Path, reader, *, method: str = "minmax",
                  per_channel: bool = True, exclude_nodes: tuple = (), extra_options: dict | None = None) -> None:
    """Static QDQ quantization of ``src`` (already pre-processed) to ``dst``.

    Args:
        reader: a fresh CalibrationDataReader (they are single-use).
        method: ``minmax``, ``entropy`` or ``percentile``.
        exclude_nodes: node names left in float (sensitivity fallback).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    options = {"ActivationSymmetric": False, "WeightSymmetric": True}
    if method == "percentile":
        options["CalibPercentile"] = 99.999
    options.update(extra_options or {})
    with _quiet():
        quantize_static(
            str(src), str(dst), reader, quant_format=QuantFormat.QDQ, per_channel=per_channel,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=methods[method],
            nodes_to_exclude=list(exclude_nodes), extra_options=options,
        )


@contextlib.contextmanager
def _cwd(path: str):
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


@contextlib.contextmanager
def _quiet():
    """onnxruntime's quantization tools log and print freely; keep that out of the user's terminal."""
    sink = io.StringIO()
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)
