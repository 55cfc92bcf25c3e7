"""The result records of a benchmark and their documented JSON shape (``SCHEMA``)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# 2: runtime and delegation added (.tflite on LiteRT, .pte on ExecuTorch timed beside .onnx); model_path may name
# either.
SCHEMA_VERSION = 2


@dataclass(frozen=True)
class LatencyStats:
    """Latency of one configuration over its timed runs, in milliseconds."""

    runs: int
    mean_ms: float
    std_ms: float
    min_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float]) -> LatencyStats:
        a = np.asarray(samples_ms, dtype=np.float64)
        p50, p90, p99 = np.percentile(a, [50, 90, 99])
        return cls(
            runs=int(a.size),
            mean_ms=float(a.mean()),
            std_ms=float(a.std()),
            min_ms=float(a.min()),
            p50_ms=float(p50),
            p90_ms=float(p90),
            p99_ms=float(p99),
            max_ms=float(a.max()),
        )


@dataclass(frozen=True)
class BatchResult:
    """One batch size: latency, throughput, and the PyTorch eager baseline when asked for."""

    batch_size: int
    input_shapes: dict  # input name -> shape fed
    latency: LatencyStats
    throughput_ips: float  # images per second: batch_size / mean latency
    torch_latency: LatencyStats | None
    torch_speedup: float | None  # torch p50 / onnxruntime p50 (> 1: onnxruntime is faster)


@dataclass(frozen=True)
class MemoryStats:
    """Resident memory around one session (MB = 2**20 bytes)."""

    rss_before_mb: float | None
    peak_rss_mb: float | None
    peak_rss_growth_mb: float | None
    peak_rss_scope: str  # "session" (peak reset before the session) or "process" (reset impossible here)
    process_max_rss_mb: float
    gpu_mem_mb: float | None
    gpu_mem_source: str | None


@dataclass(frozen=True)
class ThreadSettings:
    """Threads asked for and set. ``intra_op_num_threads`` 0 means onnxruntime's default (one per core)."""

    requested: int | None
    intra_op_num_threads: int
    inter_op_num_threads: int
    torch_num_threads: int | None
    cpu_affinity: int


@dataclass(frozen=True)
class MachineInfo:
    """Where the numbers were measured."""

    cpu_model: str
    logical_cores: int
    physical_cores: int | None
    platform: str
    python: str
    onnxruntime: str
    onnx: str | None
    numpy: str
    torch: str | None
    gpu: str | None
    date: str  # ISO 8601, UTC


@dataclass(frozen=True)
class BenchResult:
    """Benchmark of one model file on one provider list, for each batch size."""

    schema_version: int
    model_path: str
    model: str | None
    precision: str | None
    file_mb: float
    providers_requested: tuple
    providers: tuple  # session.get_providers(): what the session really used, in priority order
    node_assignment: dict | None  # ORT provider name -> nodes it was given at partitioning; None: unknown
    provider_precision: dict | None  # ORT provider name -> float precision hint it ran with (OpenVINO); None: none
    backend: str  # "onnxruntime", or "openvino runtime" where --ep openvino ran on OpenVINO's own runtime
    runtime: str  # the runner's runtime: "onnxruntime", "openvino", "litert", "executorch"
    delegation: dict | None  # LiteRT/ExecuTorch: what their XNNPACK delegate took; None for ONNX files
    io_binding: bool
    graph_opt: str
    session_create_ms: float
    warmup: int
    method: str
    threads: ThreadSettings
    memory: MemoryStats
    batches: tuple
    machine: MachineInfo

    def to_dict(self) -> dict:
        """Plain JSON-ready data, shaped as ``SCHEMA`` documents."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


# The documented JSON shape of one BenchResult: path, type, meaning. ``x[]`` is a list of x; a type of
# ``object`` marks a mapping whose keys vary (names), documented but not descended into.
SCHEMA: tuple[tuple[str, str, str], ...] = (
    ("schema_version", "int", "version of this shape; bumped when a key changes meaning or goes away"),
    ("model_path", "str", "the model file as given (.onnx, .ort, .tflite or .pte)"),
    ("model", "str or null", "registry name from the file's ModelCard; null without a card"),
    ("precision", "str or null", "fp32 / fp16 / int8 from the card; null without a card"),
    ("file_mb", "float", "size of the file in MiB"),
    ("providers_requested", "str[]", "short names asked for (`--ep`), in priority order"),
    ("providers", "str[]", "`session.get_providers()`: what the session really used, fallbacks included"),
    (
        "node_assignment",
        "object or null",
        "ORT provider name → number of nodes it was given when onnxruntime partitioned the graph; null when "
        "onnxruntime cannot say",
    ),
    (
        "provider_precision",
        "object or null",
        "ORT provider name → the float precision hint it ran with (OpenVINO: `f32` unless "
        "`EDGECNN_OPENVINO_PRECISION` asks for `bf16`/`f16`); null when no provider in the session takes one",
    ),
    (
        "backend",
        "str",
        "what ran the session: `onnxruntime` (any provider, the OpenVINO plugin included), or `openvino runtime` "
        "where `--ep openvino` ran on OpenVINO's own runtime because the plugin offers no device here (non-Intel CPUs)",
    ),
    (
        "runtime",
        "str",
        "the runtime that ran the file: `onnxruntime`, `openvino` (its own runtime), `litert` (.tflite), "
        "`executorch` (.pte)",
    ),
    (
        "delegation",
        "object or null",
        "LiteRT/ExecuTorch: what their XNNPACK delegate took (partitions, delegated nodes, the ops left outside it); "
        "null for ONNX files",
    ),
    ("io_binding", "bool", "inputs/outputs bound once to the provider's device (CUDA/TensorRT) instead of per run"),
    ("graph_opt", "str", "graph optimization level: disable / basic / extended / all"),
    ("session_create_ms", "float", "wall time to create the session (load, optimize, compile/engine build)"),
    ("warmup", "int", "untimed runs per configuration before timing"),
    ("method", "str", "how the timed runs were scheduled and summarised, in words"),
    ("threads.requested", "int or null", "`--threads`; null = library defaults"),
    ("threads.intra_op_num_threads", "int", "set on the session; 0 = onnxruntime's default (one per core)"),
    ("threads.inter_op_num_threads", "int", "set on the session (1: CNNs are a chain)"),
    ("threads.torch_num_threads", "int or null", "`torch.get_num_threads()` for the baseline; null without --torch"),
    ("threads.cpu_affinity", "int", "CPUs this process may run on"),
    ("memory.rss_before_mb", "float or null", "resident set just before the session was created (MiB)"),
    (
        "memory.peak_rss_mb",
        "float or null",
        "peak resident set (VmHWM) from session creation to the end of its warmup (MiB)",
    ),
    ("memory.peak_rss_growth_mb", "float or null", "peak_rss_mb − rss_before_mb: what this session cost at peak"),
    (
        "memory.peak_rss_scope",
        "str",
        "`session` when the peak was reset before the session; `process` when it could not be (peak since start)",
    ),
    ("memory.process_max_rss_mb", "float", "getrusage ru_maxrss at the end: the whole process's lifetime peak"),
    ("memory.gpu_mem_mb", "float or null", "GPU memory held by this process after warmup; null on CPU/unknown"),
    ("memory.gpu_mem_source", "str or null", "where gpu_mem_mb came from (`nvidia-smi`), null when not measured"),
    ("batches[]", "object[]", "one entry per batch size"),
    ("batches[].batch_size", "int", "images per run"),
    ("batches[].input_shapes", "object", "input name → shape fed"),
    ("batches[].latency.runs", "int", "timed runs"),
    ("batches[].latency.mean_ms", "float", "mean latency of one run (ms)"),
    ("batches[].latency.std_ms", "float", "standard deviation (ms)"),
    ("batches[].latency.min_ms", "float", "fastest run (ms)"),
    ("batches[].latency.p50_ms", "float", "median (ms): the headline number"),
    ("batches[].latency.p90_ms", "float", "90th percentile (ms)"),
    ("batches[].latency.p99_ms", "float", "99th percentile (ms)"),
    ("batches[].latency.max_ms", "float", "slowest run (ms)"),
    ("batches[].throughput_ips", "float", "images per second: batch_size × 1000 / mean_ms"),
    (
        "batches[].torch_latency",
        "object or null",
        "same keys as latency, for the PyTorch eager model timed in the same rounds; null without --torch",
    ),
    ("batches[].torch_speedup", "float or null", "torch p50 / onnxruntime p50; > 1 means onnxruntime is faster"),
    ("machine.cpu_model", "str", "from /proc/cpuinfo (platform.processor() elsewhere)"),
    ("machine.logical_cores", "int", "os.cpu_count()"),
    ("machine.physical_cores", "int or null", "distinct (physical id, core id) pairs in /proc/cpuinfo"),
    ("machine.platform", "str", "platform.platform()"),
    ("machine.python", "str", "Python version"),
    ("machine.onnxruntime", "str", "onnxruntime version"),
    ("machine.onnx", "str or null", "onnx version, null when not installed"),
    ("machine.numpy", "str", "numpy version"),
    ("machine.torch", "str or null", "torch version when the baseline ran, else null"),
    ("machine.gpu", "str or null", "GPU name from nvidia-smi when a GPU provider was used, else null"),
    ("machine.date", "str", "when the result was made, ISO 8601 UTC"),
)


def schema_paths() -> list[str]:
    """The documented paths, as ``flatten_keys`` spells them."""
    return [p for p, _, _ in SCHEMA]


def flatten_keys(data: dict, prefix: str = "") -> list[str]:
    """The key paths of a ``BenchResult.to_dict()``, spelled as in ``SCHEMA`` (lists as ``x[]``)."""
    opaque = {p for p, t, _ in SCHEMA if t.split(" ")[0] == "object"}
    out: list[str] = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            out.append(path + "[]")
            seen: list[str] = []
            for item in value:
                for sub in flatten_keys(item, path + "[]."):
                    if sub not in seen:
                        seen.append(sub)
            out.extend(seen)
        elif isinstance(value, dict) and path not in opaque:
            out.extend(flatten_keys(value, path + "."))
        else:
            out.append(path)
    return out


def schema_markdown() -> str:
    """``SCHEMA`` as a markdown table (docs/bench_schema.md holds this exact text)."""
    lines = ["| key | type | meaning |", "|---|---|---|"]
    lines += [f"| `{p}` | {t} | {d} |" for p, t, d in SCHEMA]
    return "\n".join(lines)
