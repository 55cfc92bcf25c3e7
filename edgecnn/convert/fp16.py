"""fp16: onnxruntime's float16 converter with fp32 inputs/outputs kept, and the node order the checker needs."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx


@dataclass(frozen=True)
class Fp16Result:
    weights_out_of_range: int  # fp32 weights whose magnitude exceeds fp16's range (they would become ±inf)


def to_fp16(src: str | Path, dst: str | Path, stamp: Callable[[onnx.ModelProto], None] | None = None) -> Fp16Result:
    """Convert ``src`` to fp16 weights and activations, fp32 inputs/outputs (``keep_io_types``).

    ``stamp`` is called on the converted model just before it is saved (the pipeline's card: written with the
    file, never added by a reload)."""
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
    if stamp is not None:
        stamp(converted)
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
