"""Graph clean-up after export: portable operator forms, then onnxsim.

onnxsim does not make onnxruntime faster (its own graph optimiser does that work at load time);
it folds constants and shape arithmetic away, which makes graphs smaller, readable and portable to
mobile backends and quantizers. If onnxsim fails, the unsimplified graph is kept and the reason recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper


@dataclass(frozen=True)
class SimplifyResult:
    simplified: bool
    nodes_before: int
    nodes_after: int
    rewrites: dict
    message: str = ""


def use_portable_ops(model: onnx.ModelProto) -> dict:
    """Rewrite ops that mobile backends and quantizers handle poorly into their portable equivalents, in place.

    * ``ReduceMean(axes=[2, 3], keepdims=1)`` on a 4-D tensor (what AdaptiveAvgPool2d(1) exports to) becomes
      ``GlobalAveragePool``: CoreML's NeuralNetwork format and NNAPI lack ReduceMean, and onnxruntime's
      quantizer has an int8 kernel for GlobalAveragePool but none for ReduceMean.
    * ``Reshape(x, [-1, C])`` / ``Reshape(x, [0, -1])`` right after such a pool becomes ``Flatten(axis=1)``.

    Returns counts of each rewrite.
    """
    graph = model.graph
    consts = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:  # opset ≥ 18 exporters may also emit Constant nodes
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    counts = {"ReduceMean->GlobalAveragePool": 0, "Reshape->Flatten": 0}
    pooled = set()
    new_nodes = []
    for node in graph.node:
        if node.op_type == "ReduceMean" and _is_spatial_mean(node, consts):
            new_nodes.append(helper.make_node("GlobalAveragePool", [node.input[0]], list(node.output), name=node.name))
            pooled.add(node.output[0])
            counts["ReduceMean->GlobalAveragePool"] += 1
        elif node.op_type == "Reshape" and node.input[0] in pooled and _is_flatten_shape(consts.get(node.input[1])):
            new_nodes.append(helper.make_node("Flatten", [node.input[0]], list(node.output), name=node.name, axis=1))
            counts["Reshape->Flatten"] += 1
        else:
            new_nodes.append(node)
    if any(counts.values()):
        del graph.node[:]
        graph.node.extend(new_nodes)
        _drop_unused_initializers(model)
    return counts


def _is_spatial_mean(node: onnx.NodeProto, consts: dict) -> bool:
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if attrs.get("keepdims", 1) != 1:
        return False
    axes = attrs.get("axes")  # attribute before opset 18, input from 18 on
    if axes is None and len(node.input) > 1 and node.input[1] in consts:
        axes = consts[node.input[1]].tolist()
    return axes is not None and sorted(int(a) % 4 for a in axes) == [2, 3]


def _is_flatten_shape(shape) -> bool:
    if shape is None or np.asarray(shape).ndim != 1 or len(shape) != 2:
        return False
    first, second = (int(v) for v in shape)
    return (first == -1 and second > 0) or (first == 0 and second == -1)


def _drop_unused_initializers(model: onnx.ModelProto) -> None:
    used = {name for node in model.graph.node for name in node.input}
    keep = [init for init in model.graph.initializer if init.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


def simplify(model: onnx.ModelProto, *, enabled: bool = True) -> tuple[onnx.ModelProto, SimplifyResult]:
    """Portable rewrites, then onnxsim (with its own correctness check). Never raises for a failed onnxsim."""
    before = len(model.graph.node)
    rewrites = use_portable_ops(model)
    if not enabled:
        return model, SimplifyResult(False, before, len(model.graph.node), rewrites, "simplification disabled")
    try:
        import onnxsim

        simplified, ok = onnxsim.simplify(model)
    except Exception as exc:  # onnxsim raises many kinds of errors on graphs it cannot handle
        return model, SimplifyResult(
            False,
            before,
            len(model.graph.node),
            rewrites,
            f"onnxsim failed ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}); "
            "kept the unsimplified graph",
        )
    if not ok:
        return model, SimplifyResult(
            False,
            before,
            len(model.graph.node),
            rewrites,
            "onnxsim's check of the simplified graph failed; kept the unsimplified graph",
        )
    # A second pass: onnxsim may fold constants that expose more spatial means / flattens.
    rewrites2 = use_portable_ops(simplified)
    rewrites = {k: rewrites[k] + rewrites2[k] for k in rewrites}
    return simplified, SimplifyResult(True, before, len(simplified.graph.node), rewrites, "")
