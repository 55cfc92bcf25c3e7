"""ExecuTorch (``.pte``): ``torch.export`` of the model, lowered to the XNNPACK delegate, written with the card.

fp32: ``torch.export.export`` → ``to_edge_transform_and_lower(partitioner=[XnnpackPartitioner()])`` →
``to_executorch()``. int8: ``pt2e.quantize`` with ExecuTorch's own ``XNNPACKQuantizer`` on the calibration arrays,
then the same lowering; the file takes and returns float32 (XNNPACK quantizes the input inside the delegate), or,
with ``quantized_io``, int8 tensors whose scale and zero point the file carries as constant methods
(``forward_input0_scale`` …, ExecuTorch's own ``QuantizeInputs``/``QuantizeOutputs`` convention).

The card is a constant method, ``edgecnn_card``, returning the JSON string of ``ModelCard.to_metadata()``: the
runtime reads it back without edgecnn (``Program.load_method("edgecnn_card").execute([])``). What XNNPACK took is
read from the lowered program (``get_delegation_info``) and goes into the result and, before the program is
serialized, into the card's ``extra["delegation"]``: one lowering, not two.

fp16 is not offered: XNNPACK's fp16 kernels need the model and its I/O in half precision and run natively only
on CPUs with fp16 arithmetic (ARMv8.2, AVX512-FP16); on other x86 they are emulated, so the file would be neither
float32-in/out nor faster. Export fp32 or int8.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np

from ...core.card import ModelCard
from ...core.errors import ArtifactError, InputError, first_line
from ...core.files import write_bytes_atomic
from ...runtime.executorch import CARD_METHOD
from .request import TargetRequest, TargetResult

PRECISIONS = ("fp32", "int8")
_OPERATOR = re.compile(r"\b(?:aten|quantized_decomposed|dim_order_ops)(?:\.|::)[A-Za-z_0-9]+(?:\.[A-Za-z_0-9]+)?")
# nodes that move values rather than compute: the delegate's own output unpacking
_STRUCTURAL = {"getitem"}


def _check(request: TargetRequest) -> None:
    if request.precision == "fp16":
        raise InputError(
            "fp16 is not offered for .pte: XNNPACK's fp16 needs half-precision I/O and runs natively only on CPUs "
            "with fp16 arithmetic; export fp32 or int8"
        )
    if request.precision not in PRECISIONS:
        raise InputError(f"unknown precision {request.precision!r} for .pte; choose one of {', '.join(PRECISIONS)}")
    if request.precision == "int8" and (request.calibration is None or len(request.calibration) == 0):
        raise InputError("an int8 .pte needs calibration images (request.calibration is empty)")
    if request.quantized_io and request.precision != "int8":
        raise InputError("quantized I/O is an int8 form: export the .pte with int8, or drop quantized I/O")
    example = np.asarray(request.example)
    if example.ndim != 4 or example.shape[0] != 1:
        raise InputError(f"a .pte is static-shape, batch 1: the example must be 1xCxHxW, got {example.shape}")


def _exported(request: TargetRequest):
    """The ``ExportedProgram`` to lower, and the int8 record (``{}`` for fp32)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(request.example, dtype=np.float32))
    model = request.model.eval()
    if request.precision != "int8":
        return torch.export.export(model, (x,)), {}
    from .pt2e import quantize, record

    graph, quantizer = quantize(
        model, request.example, request.calibration, "xnnpack", request.recipe, trained=request.trained
    )
    summary = {
        "quantizer": "executorch XNNPACKQuantizer (per-channel symmetric int8 weights, per-tensor int8 activations)",
        "calibration_count": len(request.calibration),
        "recipe": record(graph, quantizer),
    }
    return torch.export.export(graph, (x,)), summary


def delegation_of(graph_module) -> dict:
    """What XNNPACK took, from ExecuTorch's own count: partitions, delegated nodes, and the nodes (by op name) left
    outside it (the delegate's output unpacking, which computes nothing, not counted)."""
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(graph_module)
    other: dict[str, int] = {}
    for op, stats in info.delegation_by_operator.items():
        if op not in _STRUCTURAL and stats.non_delegated > 0:
            other[op] = int(stats.non_delegated)
    delegated = {op: int(s.delegated) for op, s in info.delegation_by_operator.items() if s.delegated > 0}
    return {
        "backend": "XnnpackBackend",
        "partitions": int(info.num_delegated_subgraphs),
        "delegated_nodes": int(info.num_delegated_nodes),
        "other_nodes": sum(other.values()),
        "other_ops": other,
        "delegated_ops": delegated,
    }


def _lower(program, request: TargetRequest, card: str | None):
    """The lowered ``EdgeProgramManager``; with ``quantized_io`` the input quantize and output dequantize are taken
    out first (they must still be visible, so that form lowers with ``to_edge`` then ``to_backend``)."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge, to_edge_transform_and_lower

    methods = {CARD_METHOD: card} if card is not None else None
    if not request.quantized_io:
        return to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()], constant_methods=methods)
    from executorch.exir.passes.quantize_io_pass import QuantizeInputs, QuantizeOutputs

    edge = to_edge(program, constant_methods=methods)
    edge = edge.transform([QuantizeInputs(edge, [0], "forward"), QuantizeOutputs(edge, [0], "forward")])
    return edge.to_backend(XnnpackPartitioner())


def _io_quantization(edge) -> dict:
    """The scale and zero point of the int8 input and output (what an app quantizes and dequantizes with)."""
    methods = getattr(edge, "_config_methods", None) or {}
    return {
        side: {"scale": float(methods[f"forward_{side}0_scale"]), "zero_point": int(methods[f"forward_{side}0_zp"])}
        for side in ("input", "output")
        if f"forward_{side}0_scale" in methods
    }


def _stamp(edge, metadata: dict, delegation: dict, io: dict) -> bool:
    """Put the delegation (and the int8 I/O scales) into the card the lowered program carries, before it is
    serialized; False where this ExecuTorch keeps its constant methods elsewhere (the card stays as lowered)."""
    methods = getattr(edge, "_config_methods", None)
    card = ModelCard.from_metadata(metadata) if metadata else None
    if card is None or not isinstance(methods, dict) or CARD_METHOD not in methods:
        return False
    extra = {**card.extra, "delegation": delegation, **({"io_quantization": io} if io else {})}
    methods[CARD_METHOD] = json.dumps(card.replace(extra=extra).to_metadata())
    return True


def _failure(exc: Exception, stage: str, path: Path) -> ArtifactError:
    text = str(exc)
    op = _OPERATOR.search(text)
    where = f" at operator {op.group(0)}" if op else ""
    return ArtifactError(f"cannot export {path.name} to ExecuTorch ({stage}{where}): {first_line(exc)}")


def export(request: TargetRequest) -> TargetResult:
    """Write ``request`` as a ``.pte`` lowered to XNNPACK.

    Raises:
        InputError: fp16, an unknown precision, int8 without calibration, quantized I/O on fp32, a batch above 1.
        ArtifactError: ``torch.export`` or ExecuTorch cannot take the model (one line, the operator when named).
    """
    _check(request)
    path = Path(request.path)
    metadata = dict(request.metadata or {})
    start = time.perf_counter()
    try:
        program, int8 = _exported(request)
    except (InputError, ArtifactError):
        raise
    except Exception as exc:
        raise _failure(exc, "torch.export" if request.precision == "fp32" else "int8 quantization", path) from None
    try:
        edge = _lower(program, request, json.dumps(metadata) if metadata else None)
        delegation = delegation_of(edge.exported_program().graph_module)
        io = _io_quantization(edge) if request.quantized_io else {}
        stamped = _stamp(edge, metadata, delegation, io)
        data = edge.to_executorch().buffer
    except Exception as exc:
        raise _failure(exc, "XNNPACK lowering", path) from None
    write_bytes_atomic(path, data)
    seconds = time.perf_counter() - start
    return TargetResult(
        path=path,
        format="pte",
        precision=request.precision,
        delegation=delegation,
        notes=tuple(_notes(delegation, io, stamped, seconds, len(data))),
        int8={**int8, **({"io_quantization": io} if io else {})},
    )


def _notes(delegation: dict, io: dict, stamped: bool, seconds: float, size: int) -> list[str]:
    other = ", ".join(f"{op} x{n}" for op, n in sorted(delegation["other_ops"].items())) or "none"
    notes = [
        f"XNNPACK took {delegation['delegated_nodes']} nodes in {delegation['partitions']} partition(s); "
        f"outside it: {other}",
        f"written in {seconds:.1f} s, {size / 1e6:.2f} MB",
    ]
    if io:
        notes.append(
            "int8 I/O: input scale {:.6g} zero point {}, output scale {:.6g} zero point {}".format(
                io["input"]["scale"], io["input"]["zero_point"], io["output"]["scale"], io["output"]["zero_point"]
            )
        )
    if not stamped:
        notes.append("the card in the file does not record the delegation (no card, or this ExecuTorch hides it)")
    return notes
