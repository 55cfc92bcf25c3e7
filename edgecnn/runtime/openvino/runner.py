"""OpenVINO's own runtime behind the ``Runner`` interface, for machines where the plugin offers no device.

onnxruntime's OpenVINO plugin (runtime/openvino/config.py) offers devices from Intel only: on an AMD CPU it loads,
registers, and lists no device, so ``--ep openvino`` could not run there, although OpenVINO's CPU runtime runs
on any x86-64 (and ARM) CPU. ``OpenVINORunner`` compiles the ONNX file with ``openvino.Core`` and is a
``runtime.runner.Runner`` like onnxruntime's, so predict, validate, selftest, bench and Ray actors run on it
unchanged; ``runtime.runner.open_runner`` picks it where ``config.backend()`` says so.

What differs from the plugin, and is said where it shows: OpenVINO compiles the whole graph or refuses it — there
is no partition with the CPU provider, so ``node_assignment`` is every operation on OpenVINO (counted in
OpenVINO's operations, not onnxruntime's nodes), and a graph OpenVINO cannot compile is an error, never a quiet
run elsewhere. Only ``openvino`` and numpy are imported here, when a session is made.

Shapes: OpenVINO runs a graph with a dynamic axis through its dynamic-shape kernels, which are slower than the
static ones (measured on this AMD EPYC, 2 threads, batch 1: MobileNetV2 int8 2.29 → 2.06 ms, ResNet50 int8
12.45 → 12.05 ms once the batch axis is fixed). So the session compiles a static copy per input shape: batch 1
when the session is made (every other axis being fixed), and another shape the second time it is fed (a shape
seen once, like a short last batch, runs on the dynamic compile instead of paying a compile of its own), at most
``STATIC_SHAPES`` of them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ...core.errors import ProviderUnavailableError
from ..runner import IOSpec, Runner, RunnerOptions
from ..session import ORT_DTYPES
from .config import ORT_NAME  # the provider's identity in results, whichever backend ran it
from .config import RUNTIME as BACKEND
from .config import config as _config
from .config import device as _device

# OpenVINO element types → onnxruntime's type strings (what edgecnn's callers compare against)
_TYPES = {
    "f32": "tensor(float)",
    "f16": "tensor(float16)",
    "f64": "tensor(double)",
    "u8": "tensor(uint8)",
    "i8": "tensor(int8)",
    "i32": "tensor(int32)",
    "i64": "tensor(int64)",
    "boolean": "tensor(bool)",
}
_NOT_COMPUTE = {"Constant", "Parameter", "Result"}
STATIC_SHAPES = 4  # static compiles kept per session (each holds its own copy of the weights)


def _arg(port) -> IOSpec:
    # a dynamic axis reads "?" (onnxruntime gives its symbolic name): anything but a positive int means "free"
    shape = tuple(d.get_length() if d.is_static else "?" for d in port.get_partial_shape())
    kind = port.get_element_type().get_type_name()
    onnx_type = _TYPES.get(kind, f"tensor({kind})")
    dtype = ORT_DTYPES.get(onnx_type)
    return IOSpec(port.get_any_name(), shape, np.dtype(dtype) if dtype else None, onnx_type)


def _metadata(model) -> dict:
    """The ONNX file's metadata_props: OpenVINO's ONNX reader keeps them as text under rt_info["framework"]
    (checked equal to onnxruntime's ``custom_metadata_map`` on our files)."""
    info = model.get_rt_info()
    framework = info["framework"] if "framework" in info else {}
    return {key: value.astype(str) for key, value in framework.items()}


class CompileError(RuntimeError):
    """OpenVINO could not read or compile the file (its own message inside)."""


class OpenVINORunner(Runner):
    """An ONNX file compiled by OpenVINO's runtime on ``device``, with ``config`` (precision hint, threads)."""

    runtime = "openvino"
    backend = BACKEND

    def __init__(self, path: str | Path, *, device: str, config: dict) -> None:
        import openvino as ov

        self._core = ov.Core()
        try:
            self._model = self._core.read_model(str(path))
        except RuntimeError as exc:  # OpenVINO's errors are RuntimeErrors with a long C++ trace in the text
            raise CompileError(" ".join(str(exc).split())[:400]) from exc
        model = self._model
        self.inputs = tuple(_arg(p) for p in model.inputs)
        self.outputs = tuple(_arg(p) for p in model.outputs)
        self.metadata = _metadata(model)
        self._ops = sum(1 for op in model.get_ordered_ops() if op.get_type_name() not in _NOT_COMPUTE)
        self._device, self._config = device, {k: str(v) for k, v in config.items()}
        self._dynamic = model.is_dynamic()
        self._compiled: dict = {}  # shape key (or None: the dynamic compile) -> (compiled model, request, ports)
        self._seen: dict = {}  # shape key -> times fed while not compiled static
        first = self._batch_one_key()
        compiled = self._compile(first)  # a graph OpenVINO cannot compile fails here, when the session is made
        # read back what OpenVINO settled on, not what was asked: these go into reports (the precision comes back
        # as an element type, whose short name is the hint's own spelling: f32, bf16, f16)
        got = {k: compiled.get_property(k) for k in config}
        used = {k: v.get_type_name() if hasattr(v, "get_type_name") else str(v) for k, v in got.items()}
        self._used = used
        threads = used.get("INFERENCE_NUM_THREADS")
        self._threads = int(threads) if threads and threads.isdigit() else 0

    def _batch_one_key(self):
        """The input shapes with a free leading (batch) axis set to 1, when every other axis is fixed; else None
        (U-Net's free height and width: no shape to guess, the dynamic compile serves until shapes repeat)."""
        shapes = []
        for arg in self.inputs:
            dims = [d if isinstance(d, int) else None for d in arg.shape]
            if not dims or any(d is None for d in dims[1:]):
                return None
            shapes.append(tuple([1 if dims[0] is None else dims[0]] + dims[1:]))
        return tuple(shapes)

    def _compile(self, key):
        model = self._model
        if key is not None and not self._dynamic:
            key = None  # a static file: its one compile serves every run
        if key is not None:
            model = model.clone()
            model.reshape({port: list(shape) for port, shape in zip(model.inputs, key)})
        try:
            compiled = self._core.compile_model(model, self._device, self._config)
        except RuntimeError as exc:
            raise CompileError(" ".join(str(exc).split())[:400]) from exc
        # A port answers to every name of its tensor: get_any_name() picks one, and on an fp16 file, whose output
        # comes from a Cast, it picked the Cast's name over the graph's output name ("logits").
        self._compiled[key] = (
            compiled,
            compiled.create_infer_request(),
            {name: p for p in compiled.outputs for name in p.get_names()},
        )
        return compiled

    def _request_for(self, feeds: dict):
        """The static compile for these input shapes (made the second time they are fed), else the dynamic one."""
        if not self._dynamic:
            return self._compiled[None]
        key = tuple(tuple(np.shape(feeds[a.name])) if a.name in feeds else () for a in self.inputs)
        if key in self._compiled:
            return self._compiled[key]
        self._seen[key] = self._seen.get(key, 0) + 1
        statics = sum(1 for k in self._compiled if k is not None)
        if self._seen[key] >= 2 and statics < STATIC_SHAPES:
            try:
                self._compile(key)
                return self._compiled[key]
            except CompileError:
                pass  # a shape OpenVINO will not fix (it refused the reshape): the dynamic compile runs it
        if None not in self._compiled:
            self._compile(None)
        return self._compiled[None]

    @property
    def static_shapes(self) -> list:
        """The input shapes compiled static so far (first input's shape per compile)."""
        return [k[0] for k in self._compiled if k is not None]

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> list[np.ndarray]:
        _, request, ports = self._request_for(feeds)
        names = list(outputs) if outputs else [o.name for o in self.outputs]
        unknown = [n for n in names if n not in ports]
        if unknown:
            raise ValueError(f"no output named {unknown[0]!r}; outputs: {', '.join(o.name for o in self.outputs)}")
        results = request.infer({k: np.ascontiguousarray(v) for k, v in feeds.items()})  # outputs copied
        return [np.asarray(results[ports[n]]) for n in names]

    def info(self) -> dict:
        hint = self._used.get("INFERENCE_PRECISION_HINT")
        return {
            "runtime": self.runtime,
            "providers": [ORT_NAME],
            "device": self._device,
            "threads": self._threads,
            "inter_op_threads": 1,
            "backend": BACKEND,
            "precision": {ORT_NAME: hint} if hint else None,
            "config": dict(self._used),
        }

    def node_assignment(self) -> dict:
        """Every compute operation is OpenVINO's: its runtime compiles whole graphs, with no CPU-provider share."""
        return {ORT_NAME: self._ops}


def open_openvino(source, options: RunnerOptions) -> OpenVINORunner:
    """The ``openvino`` opener registered with ``runtime.runner``: OpenVINO alone, optionally the CPU provider
    after it, which the runtime never needs (it compiles the whole graph or refuses it)."""
    from ..providers import resolve

    if isinstance(source, bytes):
        raise ProviderUnavailableError("OpenVINO's runtime opens model files, not bytes; write the model first")
    if not Path(source).is_file():
        from ...core.errors import ArtifactError

        raise ArtifactError(f"model file not found: {source}")
    resolved = resolve(options.providers, threads=options.threads)
    others = [name for name, _ in resolved if name not in (ORT_NAME, "CPUExecutionProvider")]
    if others:
        raise ProviderUnavailableError(
            f"OpenVINO runs here on its own runtime, which cannot share a session with {', '.join(others)}; "
            "use --ep openvino alone, or a comma between entries to compare them (--ep openvino,cuda)"
        )
    try:  # the latency hint as OpenVINO's docs set it for batch-1 use (tools/peer_bench.py's OV rt does the same)
        return OpenVINORunner(
            source,
            device=_device(),
            config={**_config(options.threads), "PERFORMANCE_HINT": "LATENCY"},
        )
    except CompileError as exc:
        raise ProviderUnavailableError(
            f"OpenVINO's runtime could not compile {os.path.basename(str(source))} for {_device()}: {exc}"
        ) from exc
