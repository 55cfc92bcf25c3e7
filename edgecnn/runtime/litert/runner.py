"""LiteRT (formerly TensorFlow Lite) behind the ``Runner`` interface: a ``.tflite`` file on LiteRT's interpreter.

Only numpy and ``ai_edge_litert`` (LiteRT's runtime wheel: no torch, no TensorFlow) are used, the latter imported
when a file is opened, so the device install runs ``.tflite`` files with ``pip install "edgecnn[litert]"``.

What ``--ep`` means here (``PROVIDERS``): ``cpu`` or ``xnnpack`` is LiteRT's default CPU path, the XNNPACK delegate
applied to every part of the graph it supports and LiteRT's own kernels for the rest; ``builtin`` is LiteRT's own
kernels alone (no delegate), for comparison or where XNNPACK misbehaves. ``info()["delegation"]`` says what the
delegate really took, counted from the interpreter's node list: a graph split into several partitions with float
operators between them (an int8 MobileNetV3) runs far slower than one partition, and reports should show it.

The app-facing contract matches the ONNX files: inputs and outputs by the card's names, float32 in and out (a file
with int8 I/O is fed through its own scale and zero point, and its outputs dequantized, here), and a free batch
axis where the interpreter can resize it (checked when the file is opened, not assumed).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ...core.card import PREFIX
from ...core.errors import ArtifactError, InputError, ProviderUnavailableError, first_line
from ..runner import IOSpec, Runner, RunnerOptions
from ..session import ORT_DTYPES
from .flatbuf import read_card

INSTALL = 'pip install "edgecnn[litert]"'
#: ``--ep`` names a .tflite runs on → the path taken (onnxruntime's CPU name is accepted for ``cpu``)
PROVIDERS = {"cpu": "xnnpack", "xnnpack": "xnnpack", "cpuexecutionprovider": "xnnpack", "builtin": "builtin"}
#: what each path is called in ``node_assignment`` (onnxruntime names its providers there)
XNNPACK, LITERT_CPU = "XNNPACK", "LiteRT CPU"
_TYPES = {np.dtype(v): k for k, v in ORT_DTYPES.items()}


def pick_provider(providers: str | Sequence) -> str:
    """``"xnnpack"`` or ``"builtin"`` for ``--ep``'s names (a priority list: the first one decides).

    Raises:
        ProviderUnavailableError: a name a .tflite cannot run on.
    """
    names = providers.replace("+", ",").split(",") if isinstance(providers, str) else list(providers)
    names = [str(n).strip() for n in names if n and str(n).strip()]
    for name in names:
        if name.lower() not in PROVIDERS:
            raise ProviderUnavailableError(
                f"a .tflite runs on LiteRT's CPU only: --ep cpu (or xnnpack: the XNNPACK delegate, the default) or "
                f"--ep builtin (LiteRT's own kernels, no delegate); {name!r} is not one of them"
            )
    return PROVIDERS[names[0].lower()] if names else "xnnpack"


def delegation(ops: Sequence[Mapping]) -> dict:
    """What the delegates took, from ``Interpreter._get_ops_details()``.

    A delegate's node is appended after the original nodes, and the originals it replaced stay listed; its
    inputs and outputs bound its partition, so the originals inside are found by walking producers back from its
    outputs until its inputs.
    """
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    originals = [op for op in ops if op["op_name"] != "DELEGATE"]
    producer = {int(t): int(op["index"]) for op in originals for t in op["outputs"]}
    by_index = {int(op["index"]): op for op in originals}
    inside: set[int] = set()
    for node in delegates:
        bound = {int(t) for t in node["inputs"]}
        stack, seen = [int(t) for t in node["outputs"]], set()
        while stack:
            tensor = stack.pop()
            if tensor in bound or tensor in seen or tensor not in producer:
                continue
            seen.add(tensor)
            index = producer[tensor]
            if index not in inside:
                inside.add(index)
                stack.extend(int(t) for t in by_index[index]["inputs"] if t >= 0)
    outside = Counter(op["op_name"] for op in originals if int(op["index"]) not in inside)
    return {
        "partitions": len(delegates),
        "delegated_nodes": len(inside),
        "other_nodes": sum(outside.values()),
        "other_ops": dict(sorted(outside.items())),
    }


def _quantized(detail: Mapping) -> tuple[float, int] | None:
    """(scale, zero point) of an integer tensor that stands for float values; ``None`` for any other."""
    scale, zero = detail["quantization"]
    if np.dtype(detail["dtype"]).kind in "iu" and scale:
        return float(scale), int(zero)
    return None


def quantize(x: np.ndarray, scale: float, zero: int, dtype) -> np.ndarray:
    """Float values to the integer type as LiteRT's QUANTIZE does (rounding half away from zero, clamped)."""
    info = np.iinfo(dtype)
    q = np.trunc(np.asarray(x, np.float32) / np.float32(scale) + np.copysign(0.5, x)) + zero
    return np.clip(q, info.min, info.max).astype(dtype)


def _card_names(metadata: Mapping[str, str], key: str, count: int) -> list[str] | None:
    """The card's input or output name, for a file with one of them; ``None`` to keep the tensors' names."""
    raw = metadata.get(PREFIX + key)
    if count != 1 or raw is None:
        return None
    try:
        name = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        name = raw
    return [name] if isinstance(name, str) and name else None


@contextlib.contextmanager
def _stderr_captured():
    """LiteRT's C++ side writes to file descriptor 2 directly ("INFO: Created TensorFlow Lite XNNPACK delegate",
    and the reasons a model does not load): held in a file while the interpreter is made, so the terminal stays
    clean and a failure can quote the reason in one line."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        lines: list[str] = []
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read(1 << 16).decode("utf-8", "replace").splitlines())


def _reason(exc: BaseException, captured: Sequence[str]) -> str:
    """The one line that says why LiteRT refused: its own ERROR line where it printed one."""
    errors = [line.strip() for line in captured if line.strip().startswith("ERROR")]
    return errors[0] if errors else first_line(exc)


class LiteRTRunner(Runner):
    """A ``.tflite`` file on LiteRT's interpreter.

    Attributes:
        interpreter: the ``ai_edge_litert.interpreter.Interpreter``.
        name: the file's name, for messages.
        input_quantization / output_quantization: ``(scale, zero point)`` per input/output whose tensor is
            quantized (the runner converts floats through them), ``None`` per float one.
    """

    runtime = "litert"

    def __init__(self, interpreter, *, name: str, provider: str, threads: int, metadata: dict) -> None:
        self.interpreter, self.name = interpreter, name
        self._provider, self._threads = provider, threads
        self.metadata = metadata
        self._in, self._out = interpreter.get_input_details(), interpreter.get_output_details()
        self.input_quantization = tuple(_quantized(d) for d in self._in)
        self.output_quantization = tuple(_quantized(d) for d in self._out)
        self._batch = int(self._in[0]["shape"][0]) if self._in and len(self._in[0]["shape"]) else 1
        self._resizable = self._probe_batch()
        self._delegation = delegation(interpreter._get_ops_details())
        in_names = _card_names(metadata, "input_name", len(self._in)) or [d["name"] for d in self._in]
        out_names = _card_names(metadata, "output_name", len(self._out)) or [d["name"] for d in self._out]
        self.inputs = tuple(self._spec(n, d, q) for n, d, q in zip(in_names, self._in, self.input_quantization))
        self.outputs = tuple(self._spec(n, d, q) for n, d, q in zip(out_names, self._out, self.output_quantization))

    def _spec(self, name: str, detail: Mapping, quant) -> IOSpec:
        shape = [int(s) for s in detail["shape"]]
        if self._resizable and shape:
            shape[0] = "batch"
        dtype = np.dtype(np.float32) if quant else np.dtype(detail["dtype"])
        return IOSpec(name, tuple(shape), dtype, _TYPES.get(dtype, f"tensor({dtype.name})"))

    def _probe_batch(self) -> bool:
        """Whether every input's leading axis can take another batch size: resized to 2, the tensors allocated,
        and every output's leading axis following (a graph that reshapes to a fixed batch refuses or does not
        follow). Left at the batch it came with either way."""
        if not self._in or any(len(d["shape"]) == 0 for d in self._in):
            return False
        first = int(self._in[0]["shape"][0])
        with _stderr_captured():  # a refusal is LiteRT's ERROR lines on stderr: an answer here, not a failure
            try:
                self._resize(2)
                ok = all(len(d["shape"]) and d["shape"][0] == 2 for d in self.interpreter.get_output_details())
            except (RuntimeError, ValueError):
                ok = False
            try:
                self._resize(first)
            except (RuntimeError, ValueError) as exc:
                raise ArtifactError(f"LiteRT cannot allocate {self.name}'s tensors: {first_line(exc)}") from exc
        return ok

    def _resize(self, batch: int) -> None:
        interp = self.interpreter
        for d in self._in:
            interp.resize_tensor_input(d["index"], [batch, *[int(s) for s in d["shape"][1:]]])
        interp.allocate_tensors()
        self._batch = batch

    def _prepare(self, feeds: Mapping[str, np.ndarray]) -> list[tuple[int, np.ndarray]]:
        """(tensor index, array) per input, in the file's type, after resizing to the feeds' batch."""
        arrays = []
        for spec, detail, quant in zip(self.inputs, self._in, self.input_quantization):
            if spec.name not in feeds:
                raise InputError(
                    f"{self.name}: no feed for input {spec.name!r} (inputs: {[s.name for s in self.inputs]})"
                )
            x = np.asarray(feeds[spec.name])
            want = tuple(int(s) for s in detail["shape"])
            if x.ndim != len(want) or x.shape[1:] != want[1:] or (x.shape[0] != self._batch and not self._resizable):
                raise InputError(f"{self.name}: input {spec.name!r} takes shape {spec.shape}, got {tuple(x.shape)}")
            arrays.append(quantize(x, *quant, detail["dtype"]) if quant else np.ascontiguousarray(x, detail["dtype"]))
        batch = {a.shape[0] for a in arrays if a.ndim}
        if len(batch) > 1:
            raise InputError(f"{self.name}: the inputs' batch sizes differ: {sorted(batch)}")
        if batch and batch != {self._batch}:
            self._resize(batch.pop())
        return [(d["index"], a) for d, a in zip(self._in, arrays)]

    def _picks(self, outputs: Sequence[str] | None) -> list[int]:
        if not outputs:
            return list(range(len(self.outputs)))
        names = [s.name for s in self.outputs]
        unknown = [n for n in outputs if n not in names]
        if unknown:
            raise InputError(f"{self.name}: no output {unknown[0]!r} (outputs: {names})")
        return [names.index(n) for n in outputs]

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> list[np.ndarray]:
        interp = self.interpreter
        for index, array in self._prepare(feeds):
            interp.set_tensor(index, array)
        try:
            interp.invoke()
        except RuntimeError as exc:
            raise ArtifactError(f"LiteRT cannot run {self.name}: {first_line(exc)}") from exc
        result = []
        for k in self._picks(outputs):
            y, quant = interp.get_tensor(self._out[k]["index"]), self.output_quantization[k]
            result.append(((y.astype(np.float32) - quant[1]) * np.float32(quant[0])) if quant else y)
        return result

    def bind(self, feeds: Mapping[str, np.ndarray]):
        pairs = self._prepare(feeds)  # resized and quantized once: the timed call is the model alone
        interp, outs = self.interpreter, [d["index"] for d in self._out]

        def call():
            for index, array in pairs:
                interp.set_tensor(index, array)
            interp.invoke()
            return [interp.get_tensor(i) for i in outs]

        return call

    def info(self) -> dict:
        quantized = any(self.input_quantization + self.output_quantization)
        return {
            "runtime": self.runtime,
            "providers": [self._provider],
            "device": "cpu",
            "threads": self._threads,
            "backend": "litert",
            "io": "int8 (quantized by the runner)" if quantized else "float32",
            "delegation": dict(self._delegation),
        }

    def node_assignment(self) -> dict[str, int] | None:
        d = self._delegation
        if self._provider == "builtin":
            return {LITERT_CPU: d["other_nodes"]}
        return {XNNPACK: d["delegated_nodes"], LITERT_CPU: d["other_nodes"]}


def open_litert(source, options: RunnerOptions) -> LiteRTRunner:
    """The ``litert`` opener: ``source`` (a ``.tflite`` path, or its bytes) on LiteRT's interpreter.

    Raises:
        InputError: LiteRT's runtime is not installed.
        ProviderUnavailableError: a provider a .tflite cannot run on.
        ArtifactError: the file is missing, or LiteRT cannot load it (a damaged flatbuffer, an unknown operator).
    """
    provider = pick_provider(options.providers)
    in_memory = isinstance(source, (bytes, bytearray))
    name = "<bytes>" if in_memory else Path(source).name
    if not in_memory and not Path(source).is_file():
        raise ArtifactError(f"model file not found: {source}")
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError as exc:
        raise InputError(f"{name}: running a .tflite needs LiteRT's runtime: {INSTALL}") from exc
    kind = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if provider == "builtin" else OpResolverType.AUTO
    threads = int(options.threads or 1)  # LiteRT's Python interpreter runs 1 thread unless told otherwise
    where = {"model_content": bytes(source)} if in_memory else {"model_path": str(source)}
    with _stderr_captured() as captured:
        try:
            interp = Interpreter(**where, num_threads=threads, experimental_op_resolver_type=kind)
            interp.allocate_tensors()  # the delegate is applied here: a graph it cannot take fails now, not later
        except (RuntimeError, ValueError) as exc:
            err = exc
        else:
            err = None
    if err is not None:
        raise ArtifactError(f"LiteRT cannot load {name}: {_reason(err, captured)}") from err
    return LiteRTRunner(interp, name=name, provider=provider, threads=threads, metadata=read_card(source))
