"""How NNAPI and CoreML would partition a graph: onnxruntime's usability checker, read through its results."""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from pathlib import Path

from ...core.errors import ArtifactError, first_line
from .records import EPS, HINTS, Fallback, Partitioning


def partition_report(onnx_path: str | os.PathLike) -> list[Partitioning]:
    """Estimate how NNAPI and CoreML would partition the graph, as onnxruntime's usability checker does.

    The graph is first optimised at onnxruntime's basic level (what ORT-format conversion with runtime
    optimisations keeps) and shape-inferred; nodes count as supported when their operator is on the provider's
    list and their inputs have static shapes (and, for CoreML, rank ≤ 5).
    """
    import onnx
    from onnxruntime.tools.mobile_helpers import usability_checker as uc
    from onnxruntime.tools.onnx_model_utils import is_fixed_size_tensor, optimize_model

    if not Path(onnx_path).is_file():
        raise ArtifactError(f"{onnx_path}: no such model file")
    with tempfile.TemporaryDirectory(prefix="edgecnn-partition-") as tmp:
        opt_path = Path(tmp) / "basic.onnx"
        try:
            optimize_model(Path(onnx_path), opt_path)
            model = onnx.shape_inference.infer_shapes(onnx.load(str(opt_path)), strict_mode=True)
        except Exception as exc:  # onnxruntime or shape inference rejecting the graph
            raise ArtifactError(
                f"cannot analyse {Path(onnx_path).name} for mobile providers: {first_line(exc)}"
            ) from None
    # An omitted optional input (Resize's roi/scales: name "") is absent, not dynamic; the checker, finding no shape
    # for "", would count the node as dynamic. A fixed-shape entry for "" in this private copy says what it is.
    model.graph.value_info.append(onnx.helper.make_tensor_value_info("", onnx.TensorProto.FLOAT, []))
    values = {v.name: v for v in list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info)}
    inits = {i.name for i in model.graph.initializer}

    def fixed(name: str) -> bool:
        return not name or name in inits or (name in values and is_fixed_size_tensor(values[name]))

    consts = {i.name: i for i in model.graph.initializer}
    return [_partitioning(uc, model, label, config, max_rank, consts, values, fixed) for label, config, max_rank in EPS]


def _partitioning(uc, model, label: str, config: str, max_rank: int, consts: dict, values: dict, fixed) -> Partitioning:
    """One provider's estimate, with the reason each node left to the CPU was left there."""
    checker = _checker(uc, config, label, consts)
    info = uc.check_partitioning(model.graph, checker, True, max_rank)
    taken = {id(n) for group in info.supported_groups for n in group}
    reasons: Counter = Counter()
    for node in model.graph.node:
        if id(node) in taken:
            continue
        op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}:{node.op_type}"
        if id(node) in checker.violations:
            why = checker.violations[id(node)]
        elif not checker.is_op_supported(node):
            why = "operator not supported"
            if (label, op) in HINTS:
                why += f"; {HINTS[(label, op)]}"
        elif not all(fixed(i) for i in node.input):
            why = "dynamic input shape"
        elif any(i in values and len(values[i].type.tensor_type.shape.dim) > max_rank for i in node.input):
            why = f"input rank above {max_rank}"
        else:
            why = "left out of the partition by the checker"
        reasons[(op, why)] += 1
    fallbacks = tuple(Fallback(op, n, why) for (op, why), n in sorted(reasons.items(), key=lambda kv: -kv[1]))
    return Partitioning(
        label,
        info.num_nodes,
        info.num_supported_nodes,
        info.num_partitions,
        tuple(len(g) for g in info.supported_groups),
        fallbacks,
        tuple(info.supported_ops_checker.get_caveats()),
        info.suitability().name,
    )


def _checker(uc, config: str, label: str, consts: dict):
    """onnxruntime's operator-list checker, plus the operator conditions edgecnn's models meet in practice.

    The checker judges by operator type only. Two conditions decide real partitions of our models, so they are
    checked here: NNAPI runs Clip only as RELU6/RELU1 (its op builder), and CoreML's NeuralNetwork format runs
    Resize only with ``coordinate_transformation_mode`` ``asymmetric`` (its operator list).
    """
    from onnx import helper, numpy_helper

    class Checker(uc._SupportedOpsChecker):
        def __init__(self) -> None:
            super().__init__(Path(uc.__file__).parent / config)
            self.violations: dict[int, str] = {}

        def is_op_supported(self, node) -> bool:
            if not super().is_op_supported(node):
                return False
            why = _violation(node)
            if why:
                self.violations[id(node)] = why
            return not why

    def const(name: str):
        return float(numpy_helper.to_array(consts[name]).reshape(-1)[0]) if name in consts else None

    def _violation(node) -> str:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if label == "NNAPI" and node.op_type == "Clip":
            lo = const(node.input[1]) if len(node.input) > 1 and node.input[1] else attrs.get("min")
            hi = const(node.input[2]) if len(node.input) > 2 and node.input[2] else attrs.get("max")
            if (lo, hi) not in ((0.0, 6.0), (-1.0, 1.0)):
                return "NNAPI runs Clip only as RELU6 (0, 6) or RELU1 (-1, 1)"
        if label == "CoreML NeuralNetwork" and node.op_type == "Resize":
            mode = attrs.get("coordinate_transformation_mode", b"half_pixel")
            if (mode.decode() if isinstance(mode, bytes) else mode) != "asymmetric":
                return "CoreML NeuralNetwork takes Resize only with coordinate_transformation_mode 'asymmetric'"
        return ""

    return Checker()
