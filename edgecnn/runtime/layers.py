"""Which layers of a model file compute in int8 and which in float: what an int8 export chose, per layer.

A compute node (Conv, Gemm, MatMul, ConvTranspose) is int8 when its weight comes through a DequantizeLinear of an
integer initializer (QDQ form, which onnxruntime fuses into QLinearConv and friends) or when it is a QLinear/
Integer op itself; otherwise it computes in float. Reading the graph needs the ``onnx`` package, which a device
install may lack: ``layer_precisions`` then returns None and callers leave the line out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

_COMPUTE = ("Conv", "Gemm", "MatMul", "ConvTranspose")
_INT8_OPS = ("QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "QGemm")


@dataclass(frozen=True)
class LayerPrecisions:
    int8: tuple  # node names, in graph order
    float: tuple

    def summary(self, most: int = 6) -> str:
        line = f"{len(self.int8)} int8, {len(self.float)} float"
        if self.int8 and self.float:
            names = ", ".join(self.float[:most]) + (
                f", … ({len(self.float) - most} more)" if len(self.float) > most else ""
            )
            line += f" (in float: {names})"
        return line

    def to_dict(self) -> dict:
        return {"int8": list(self.int8), "float": list(self.float)}


def layer_precisions(path: str | Path) -> LayerPrecisions | None:
    if Path(path).suffix.lower() != ".onnx":
        return None  # read from ONNX graphs only: a .tflite/.pte reports its delegate's share instead
    try:
        import onnx
    except ImportError:  # a device install: numpy and onnxruntime only
        return None
    graph = onnx.load(str(path), load_external_data=False).graph
    integer = {i.name for i in graph.initializer if i.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)}
    dequantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in integer}
    int8, flt = [], []
    for node in graph.node:
        if node.op_type in _INT8_OPS:
            int8.append(node.name)
        elif node.op_type in _COMPUTE:
            (int8 if len(node.input) > 1 and node.input[1] in dequantized else flt).append(node.name)
    return LayerPrecisions(tuple(int8), tuple(flt))
