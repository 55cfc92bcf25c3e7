"""The one batched runner: a ``Runner`` (``runtime.runner``) over an array of inputs, in chunks the graph can take.

Every place that runs an ONNX file over many inputs (parity, int8 calibration checks, validate, bundles, the
Predictor) goes through ``run_batched``, so they all chunk and pad the same way: a graph with a fixed batch gets
chunks of exactly that size, the last one padded by repeating its last row (real data, so no op sees an
all-zero row it would never see in use), and the padded rows' outputs are dropped.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

# onnxruntime's type strings → numpy dtypes (inputs and outputs of the files edgecnn writes or reads).
ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
}

DEFAULT_CHUNK = 8


def numpy_dtype(ort_type: str) -> type:
    """The numpy dtype of an onnxruntime type string (``"tensor(float)"`` → ``np.float32``)."""
    try:
        return ORT_DTYPES[ort_type]
    except KeyError:
        raise TypeError(f"unsupported ONNX tensor type {ort_type}") from None


def _inputs(runner) -> list:
    # a Runner describes its inputs; an onnxruntime session (the export path's own, before it opens Runners) too
    return list(runner.inputs) if hasattr(runner, "inputs") else runner.get_inputs()


def _run(runner, feeds: dict, outputs: list | None) -> list:
    if hasattr(runner, "inputs"):
        return runner.run(feeds, outputs)
    return runner.run(outputs, feeds)


def fixed_batch(runner) -> int | None:
    """The graph's batch size when its first input fixes one, else ``None``."""
    dim = _inputs(runner)[0].shape[0]
    return dim if isinstance(dim, int) and dim > 0 else None


def iter_batched(
    runner,
    arrays: np.ndarray,
    *,
    input_name: str | None = None,
    outputs: Sequence[str] | None = None,
    chunk: int | None = None,
) -> Iterator[list[np.ndarray]]:
    """Yield each chunk's outputs (a list, one array per output name), padded rows removed.

    ``chunk`` is the size of the pieces for graphs with a dynamic batch (default 8); a fixed-batch graph
    always gets pieces of its own batch size.
    """
    name = input_name or _inputs(runner)[0].name
    batch = fixed_batch(runner)
    step = batch or chunk or DEFAULT_CHUNK
    for start in range(0, len(arrays), step):
        piece = arrays[start : start + step]
        real = len(piece)
        if batch and real < batch:
            piece = np.concatenate([piece, np.repeat(piece[-1:], batch - real, axis=0)])
        results = _run(runner, {name: np.ascontiguousarray(piece)}, list(outputs) if outputs else None)
        yield [r[:real] for r in results]


def run_batched(runner, arrays: np.ndarray, **kwargs) -> list[np.ndarray]:
    """All outputs of ``runner`` (a ``Runner``, or an onnxruntime session) on ``arrays``, each concatenated over
    the chunks (see ``iter_batched``)."""
    parts = list(iter_batched(runner, arrays, **kwargs))
    if not parts:
        raise ValueError("run_batched needs at least one input row")
    return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]
