"""The ``.tflite`` flatbuffer on the export side: the card written in, int8 I/O turned into float32 I/O, fp16
weights, an atomic write, and the converter kept quiet.

These edit LiteRT's object API (``schema_py_generated``'s ``ModelT``, through ``ai_edge_litert.tools``), which
copies the weights into Python objects: fine for a file being written, never done by the runner.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import tempfile
import warnings

from ...runtime.litert import CARD_NAME


def load(data: bytes):
    """A ``ModelT`` (LiteRT's object form of the flatbuffer) from a file's bytes."""
    from ai_edge_litert.tools import flatbuffer_utils

    return flatbuffer_utils.read_model_from_bytearray(bytearray(data))


def dump(model) -> bytes:
    from ai_edge_litert.tools import flatbuffer_utils

    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def set_card(model, metadata: dict) -> None:
    """Store ``metadata`` (``ModelCard.to_metadata()``) as one JSON buffer named ``CARD_NAME``: an older card's
    buffer is overwritten, the converter's own entries (``min_runtime_version`` …) are kept."""
    from ai_edge_litert import schema_py_generated as schema

    data = list(json.dumps(dict(metadata), sort_keys=True).encode("utf-8"))
    entry = next((m for m in model.metadata or [] if _text(m.name) == CARD_NAME), None)
    if entry is not None:
        model.buffers[entry.buffer].data, model.buffers[entry.buffer].offset = data, 0
        model.buffers[entry.buffer].size = 0
        return
    buffer = schema.BufferT()
    buffer.data = data
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = CARD_NAME, len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]


def _text(name) -> str:
    return name.decode() if isinstance(name, bytes) else str(name)


def float_io(model) -> list[dict]:
    """Give every quantized input a QUANTIZE from a new float32 input, and every quantized output a DEQUANTIZE
    to a new float32 output, as TFLite's own converter does for float inference types: an app feeds floats and
    reads floats, the file's int8 scale and zero point applied inside. The float tensors take the old names
    (the int8 ones get ``_int8`` appended), and the signatures point at them.

    Returns:
        One ``{"name", "side", "scale", "zero_point"}`` per tensor rewritten.
    """
    done = []
    for index in sorted({s.subgraphIndex for s in model.signatureDefs or []} or {0}):
        graph, moved = model.subgraphs[index], {}
        for side, ends in (("input", graph.inputs), ("output", graph.outputs)):
            for k, old in enumerate(list(ends)):
                params = _per_tensor_int8(graph.tensors[old])
                if params is None:
                    continue
                new = _float_twin(graph, graph.tensors[old], _empty_buffer(model))
                _convert_op(model, graph, side, new, old)
                ends[k] = moved[old] = new
                name = _text(graph.tensors[new].name)
                done.append({"name": name, "side": side, "scale": params[0], "zero_point": params[1]})
        for sig in model.signatureDefs or []:
            if sig.subgraphIndex == index:
                for io_map in [*(sig.inputs or []), *(sig.outputs or [])]:
                    io_map.tensorIndex = moved.get(io_map.tensorIndex, io_map.tensorIndex)
    return done


def _per_tensor_int8(tensor) -> tuple[float, int] | None:
    """(scale, zero point) of an 8-bit tensor quantized per tensor; ``None`` for any other."""
    from ai_edge_litert import schema_py_generated as schema

    q = tensor.quantization
    if tensor.type not in (schema.TensorType.INT8, schema.TensorType.UINT8) or q is None or q.scale is None:
        return None
    return (float(q.scale[0]), int(q.zeroPoint[0])) if len(q.scale) == 1 else None


def _convert_op(model, graph, side: str, new: int, old: int) -> None:
    """QUANTIZE ``new`` → ``old`` first in the graph (an input), or DEQUANTIZE ``old`` → ``new`` last (an output)."""
    from ai_edge_litert import schema_py_generated as schema

    op = schema.OperatorT()
    if side == "input":
        op.opcodeIndex, op.inputs, op.outputs = _opcode(model, schema.BuiltinOperator.QUANTIZE), [new], [old]
        graph.operators.insert(0, op)
    else:
        op.opcodeIndex, op.inputs, op.outputs = _opcode(model, schema.BuiltinOperator.DEQUANTIZE), [old], [new]
        graph.operators.append(op)


def _float_twin(graph, tensor, buffer: int) -> int:
    """A float32 tensor of ``tensor``'s shape that takes its name; its index."""
    from ai_edge_litert import schema_py_generated as schema

    twin = schema.TensorT()
    twin.name, twin.type, twin.buffer = tensor.name, schema.TensorType.FLOAT32, buffer
    twin.shape = list(tensor.shape) if tensor.shape is not None else None
    twin.shapeSignature = list(tensor.shapeSignature) if tensor.shapeSignature is not None else None
    twin.hasRank = tensor.hasRank
    tensor.name = _text(tensor.name) + "_int8"
    graph.tensors.append(twin)
    return len(graph.tensors) - 1


def _opcode(model, code: int) -> int:
    """The index of builtin ``code`` in the model's operator codes, added when missing."""
    from ai_edge_litert import schema_py_generated as schema

    for k, entry in enumerate(model.operatorCodes):
        if max(entry.builtinCode, entry.deprecatedBuiltinCode) == code:
            return k
    entry = schema.OperatorCodeT()
    entry.builtinCode, entry.deprecatedBuiltinCode, entry.version = code, min(code, 127), 2
    model.operatorCodes.append(entry)
    return len(model.operatorCodes) - 1


def _empty_buffer(model) -> int:
    """A buffer with no data, for tensors computed at run time: buffer 0 (LiteRT's sentinel) when it is empty."""
    from ai_edge_litert import schema_py_generated as schema

    if model.buffers and model.buffers[0].data is None and not model.buffers[0].offset:
        return 0
    model.buffers.append(schema.BufferT())
    return len(model.buffers) - 1


def fp16_weights(data: bytes) -> bytes:
    """LiteRT's fp16-weights form, through ai_edge_quantizer's float-casting recipe: the weights of convolutions
    and fully connected layers stored as float16, each behind a DEQUANTIZE to float32, so compute stays float32
    (XNNPACK folds the DEQUANTIZE into its packed weights) and the file is about half the size."""
    from ai_edge_quantizer import qtyping, quantizer
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    q = quantizer.Quantizer(bytearray(data))
    q.add_weight_only_config(
        regex=".*",
        operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
        num_bits=16,
        algorithm_key=AlgorithmName.FLOAT_CASTING,
    )
    return bytes(q.quantize(enable_progress_bar=False, enable_progress_report=False).quantized_model)


def float16_tensors(model) -> int:
    """How many tensors the model stores as float16 (the fp16 form's weights)."""
    from ai_edge_litert import schema_py_generated as schema

    return sum(t.type == schema.TensorType.FLOAT16 for g in model.subgraphs for t in g.tensors)


@contextlib.contextmanager
def quiet():
    """litert-torch prints progress lines (``rich``), absl and MLIR log from C++ straight to file descriptors 1
    and 2, and torch and the converter warn freely: all of it is held for the time of the call, so the CLI's
    output stays the CLI's. Yields a list that holds the captured lines afterwards (an error quotes them)."""
    lines: list[str] = []
    saved_env = os.environ.get("LITERT_TORCH_SHOW_PROGRESS")
    os.environ["LITERT_TORCH_SHOW_PROGRESS"] = "n"
    text = io.StringIO()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    sink = tempfile.TemporaryFile(mode="w+b")
    disabled = logging.root.manager.disable
    logging.disable(max(disabled, logging.WARNING))  # the converter's records are progress, not the user's
    try:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        with warnings.catch_warnings(), contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
            warnings.simplefilter("ignore")
            yield lines
    finally:
        logging.disable(disabled)
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        sink.seek(0)
        lines.extend(text.getvalue().splitlines())
        lines.extend(sink.read(1 << 20).decode("utf-8", "replace").splitlines())
        sink.close()
        if saved_env is None:
            os.environ.pop("LITERT_TORCH_SHOW_PROGRESS", None)
        else:
            os.environ["LITERT_TORCH_SHOW_PROGRESS"] = saved_env
