"""Latency, throughput and memory of ONNX models on onnxruntime execution providers.

Method: every configuration — one (model file, provider list, batch size), plus the PyTorch eager model of
each file when ``torch_baseline`` is on — gets its own warmup, then the timed runs of all configurations are
interleaved in rounds (the order rotated each round; before each chunk a short pause, so that the previous
configuration's spinning threads go idle, and one untimed run to refill caches after the switch). Slow drift
of the machine (other processes, clocks, heat) therefore lands on every configuration alike, and side-by-side
ratios (int8/fp32, ours/plain, ONNX/torch) are fair. Statistics pool all timed runs of a configuration; p50 is
the median. Session creation is timed apart from inference.

Memory: Linux ``VmHWM`` (peak resident set) is reset (``/proc/self/clear_refs``) right before each session is
created and read after its warmup, so ``peak_rss_mb`` is this process's peak while that session was built and
first run; ``peak_rss_growth_mb`` subtracts the resident set just before. ``process_max_rss_mb`` is
``getrusage``'s lifetime peak of the whole process. GPU memory comes from ``nvidia-smi`` for this process.

The JSON shape is ``SCHEMA`` below; docs/bench_schema.md shows the same table and a test keeps them equal.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import onnxruntime as ort

from ..core.card import ModelCard
from ..core.errors import ArtifactError, InputError
from .providers import get_provider, make_session, model_precision, node_assignment, resolve

SCHEMA_VERSION = 1

# Pause before each chunk of timed runs when configurations are interleaved. onnxruntime's worker threads
# spin for a while after a session's last run (measured here: about 40 ms of CPU burnt on a 2-core machine),
# and so do OpenMP's after torch; whoever runs next would otherwise share the cores with that spinning.
SETTLE_S = 0.1


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
    def from_samples(cls, samples_ms: Sequence[float]) -> "LatencyStats":
        a = np.asarray(samples_ms, dtype=np.float64)
        p50, p90, p99 = np.percentile(a, [50, 90, 99])
        return cls(runs=int(a.size), mean_ms=float(a.mean()), std_ms=float(a.std()), min_ms=float(a.min()),
                   p50_ms=float(p50), p90_ms=float(p90), p99_ms=float(p99), max_ms=float(a.max()))


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
    ("model_path", "str", "the .onnx file as given"),
    ("model", "str or null", "registry name from the file's ModelCard; null without a card"),
    ("precision", "str or null", "fp32 / fp16 / int8 from the card; null without a card"),
    ("file_mb", "float", "size of the file in MiB"),
    ("providers_requested", "str[]", "short names asked for (`--ep`), in priority order"),
    ("providers", "str[]", "`session.get_providers()`: what the session really used, fallbacks included"),
    ("node_assignment", "object or null",
     "ORT provider name → number of nodes it was given when onnxruntime partitioned the graph; null when "
     "onnxruntime cannot say"),
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
    ("memory.peak_rss_mb", "float or null",
     "peak resident set (VmHWM) from session creation to the end of its warmup (MiB)"),
    ("memory.peak_rss_growth_mb", "float or null", "peak_rss_mb − rss_before_mb: what this session cost at peak"),
    ("memory.peak_rss_scope", "str",
     "`session` when the peak was reset before the session; `process` when it could not be (peak since start)"),
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
    ("batches[].torch_latency", "object or null",
     "same keys as latency, for the PyTorch eager model timed in the same rounds; null without --torch"),
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


# ----------------------------------------------------------------------------------------------- inputs

_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
           "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}


def _read_card(sess: ort.InferenceSession) -> ModelCard | None:
    try:
        return ModelCard.from_metadata(sess.get_modelmeta().custom_metadata_map)
    except (TypeError, ValueError):  # a card written by a newer edgecnn with unknown value types
        return None


def _hw_from_card(card: ModelCard | None) -> tuple[int, int] | None:
    if card is None:
        return None
    shape = list(card.input_shape or [])
    hw = shape[1:3] if card.layout == "NHWC" else shape[2:4]
    if len(hw) == 2 and all(isinstance(v, int) for v in hw):
        return int(hw[0]), int(hw[1])
    if card.crop and len(card.crop) == 2:
        return int(card.crop[0]), int(card.crop[1])
    return None


def make_inputs(sess: ort.InferenceSession, batch_size: int, *, input_size: tuple[int, int] | None = None,
                card: ModelCard | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs of the graph's shapes and dtypes for ``batch_size`` images.

    The first axis is the batch; other dynamic axes (U-Net's height/width) take ``input_size`` ``(H, W)``,
    else the card's input shape or crop. Float inputs are standard normal, integer ones uniform over their range.

    Raises:
        InputError: a fixed batch axis other than ``batch_size``, dynamic axes with no size known, an odd dtype.
    """
    rng = np.random.default_rng(seed)
    hw = tuple(input_size) if input_size else _hw_from_card(card)
    feeds = {}
    for inp in sess.get_inputs():
        dtype = _DTYPES.get(inp.type)
        if dtype is None:
            raise InputError(f"input {inp.name!r} has type {inp.type}; bench feeds float32/float16/uint8/int8 only")
        dims = list(inp.shape)
        if not dims:
            raise InputError(f"input {inp.name!r} is a scalar; bench expects image tensors")
        if isinstance(dims[0], int) and dims[0] > 0 and dims[0] != batch_size:
            raise InputError(f"{inp.name!r} has a fixed batch of {dims[0]}; use --batch {dims[0]}")
        dims[0] = batch_size
        free = [i for i, d in enumerate(dims) if not (isinstance(d, int) and d > 0)]
        if free:
            if hw is None or len(free) != 2:
                raise InputError(f"input {inp.name!r} has dynamic axes {inp.shape}; give the image size "
                                 "with --input-size H,W")
            dims[free[0]], dims[free[1]] = hw
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            feeds[inp.name] = rng.integers(info.min, int(info.max) + 1, size=dims, dtype=dtype)
        else:
            feeds[inp.name] = rng.standard_normal(dims).astype(dtype)
    return feeds


# ------------------------------------------------------------------------------------------ machine info

def _cpuinfo() -> tuple[str, int | None]:
    model, cores = platform.processor() or platform.machine(), set()
    try:
        phys = core = None
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "model name":
                    model = value
                elif key == "physical id":
                    phys = value
                elif key == "core id":
                    core = value
                elif not key and core is not None:
                    cores.add((phys, core))
                    phys = core = None
        if core is not None:
            cores.add((phys, core))
    except OSError:
        pass
    return model, (len(cores) or None)


def _nvidia_smi(*args: str) -> list[str] | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, *args], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [line.strip() for line in out.splitlines() if line.strip()]


def machine_info(*, gpu: bool = False, torch_version: str | None = None) -> MachineInfo:
    """Describe this machine and the library versions; ``gpu`` asks nvidia-smi for the GPU name."""
    cpu_model, physical = _cpuinfo()
    try:
        import onnx

        onnx_version = onnx.__version__
    except ImportError:
        onnx_version = None
    gpu_name = None
    if gpu:
        names = _nvidia_smi("--query-gpu=name", "--format=csv,noheader")
        gpu_name = ", ".join(names) if names else None
    return MachineInfo(
        cpu_model=cpu_model, logical_cores=os.cpu_count() or 1, physical_cores=physical,
        platform=platform.platform(), python=platform.python_version(), onnxruntime=ort.__version__,
        onnx=onnx_version, numpy=np.__version__, torch=torch_version, gpu=gpu_name,
        date=_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat())


# ------------------------------------------------------------------------------------------------ memory

def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _max_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0  # bytes on macOS, kB on Linux


def _gpu_mem_mb() -> float | None:
    rows = _nvidia_smi("--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits")
    if rows is None:
        return None
    total, found = 0.0, False
    for row in rows:
        parts = [p.strip() for p in row.split(",")]
        if len(parts) == 2 and parts[0] == str(os.getpid()):
            try:
                total += float(parts[1])
                found = True
            except ValueError:
                pass
    return total if found else None


# ---------------------------------------------------------------------------------------------- timing

@dataclass
class _Contestant:
    """One timed configuration: a run() closure and the samples it collected."""

    run: Callable[[], object]
    runs: int = 0
    samples: list = dataclasses.field(default_factory=list)
    keep: object = None  # whatever run() needs kept alive (bound OrtValues, the torch model)


def _time_once(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - t0) / 1e6


def _ort_runner(sess: ort.InferenceSession, feeds: dict, device: str | None) -> tuple[Callable, object]:
    """A closure that runs the session once; with ``device``, through IO binding set up once.

    IO binding copies inputs to the device before timing and leaves outputs there, so the timed runs measure
    the model, not host↔device copies (onnxruntime synchronises the device at the end of each run).
    """
    if device is None:
        return (lambda: sess.run(None, feeds)), None
    binding = sess.io_binding()
    keep = []
    for name, x in feeds.items():
        value = ort.OrtValue.ortvalue_from_numpy(x, device, 0)
        keep.append(value)
        binding.bind_ortvalue_input(name, value)
    for out in sess.get_outputs():
        binding.bind_output(out.name, device, 0)
    return (lambda: sess.run_with_iobinding(binding)), keep


def _schedule(contestants: list[_Contestant], rounds: int, settle_s: float = SETTLE_S) -> None:
    """Run every contestant's timed runs, interleaved in rounds with a rotating order.

    Before each chunk: a pause of ``settle_s`` (the previous contestant's threads stop spinning), then one
    untimed run (caches refilled after the switch).
    """
    multi = len(contestants) > 1
    rounds = max(1, min(rounds, min(c.runs for c in contestants)))
    for r in range(rounds):
        order = contestants[r % len(contestants):] + contestants[:r % len(contestants)]
        for c in order:
            n = c.runs * (r + 1) // rounds - c.runs * r // rounds
            if n <= 0:
                continue
            if multi:
                time.sleep(settle_s)
                c.run()
            for _ in range(n):
                c.samples.append(_time_once(c.run))


def _parse_io_binding(io_binding, provider_names: Sequence[str]) -> str | None:
    """The device to bind to, or None for plain session.run."""
    devices = [get_provider(n).device for n in provider_names]
    device = "cuda" if "cuda" in devices else "cpu"
    if io_binding == "auto":
        return "cuda" if device == "cuda" else None
    if io_binding in (True, "on", "true", "yes"):
        return device
    if io_binding in (False, "off", "false", "no", None):
        return None
    raise InputError(f"io_binding must be 'auto', True or False, got {io_binding!r}")


# ------------------------------------------------------------------------------------------- torch side

def _arch_options(card: ModelCard, path: Path) -> dict:
    """Builder options (``width_mult`` …) of the exported model: the card's ``extra["arch_options"]``, else
    the ``manifest.json`` that ``edgecnn export`` writes beside its artifacts, else none (the spec's defaults)."""
    if isinstance(card.extra, dict) and isinstance(card.extra.get("arch_options"), dict):
        return dict(card.extra["arch_options"])
    manifest = path.parent / "manifest.json"
    try:
        data = json.loads(manifest.read_text())
        if data.get("model") == card.model:
            return dict((data.get("options") or {}).get("arch_options") or {})
    except (OSError, ValueError, AttributeError, TypeError):
        pass
    return {}


def _torch_contestant(torch_mod, cache: dict, card: ModelCard | None, path: Path, batch: int, feeds: dict,
                      input_size) -> _Contestant:
    """The eager-model contestant for this file and batch; files of the same architecture share one.

    The model is built from the card (registry name, classes) and ``_arch_options`` with random weights:
    weights do not change the time a CNN takes.
    """
    if card is None:
        raise InputError(f"{path.name} carries no edgecnn card, so its PyTorch model is unknown; "
                         "drop --torch or bench a file made by `edgecnn export`")
    x = _torch_input(card, batch, feeds, input_size)
    arch = _arch_options(card, path)
    key = (card.model, card.num_classes, json.dumps(arch, sort_keys=True), x.shape)
    if key not in cache:
        from ..models import create_model

        model = create_model(card.model, num_classes=card.num_classes, **arch)
        xt = torch_mod.from_numpy(x)

        def run(model=model, xt=xt):
            with torch_mod.inference_mode():
                return model(xt)

        cache[key] = _Contestant(run, keep=model)
    return cache[key]


def _torch_input(card: ModelCard, batch: int, feeds: dict, input_size) -> np.ndarray:
    x = next(iter(feeds.values()))
    if card.layout == "NCHW" and x.dtype == np.float32:
        return x  # the very tensor onnxruntime gets
    hw = tuple(input_size) if input_size else _hw_from_card(card)
    shape = list(card.input_shape or [])
    channels = shape[1] if card.layout == "NCHW" and len(shape) > 1 else shape[-1] if shape else len(card.mean)
    channels = channels if isinstance(channels, int) else len(card.mean)
    return np.random.default_rng(0).standard_normal((batch, channels, *hw)).astype(np.float32)


# -------------------------------------------------------------------------------------------- the API

def benchmark_many(paths: Sequence[str | os.PathLike], *, providers: Sequence[str | Sequence[str]] = ("cpu",),
                   threads: int | None = None, batch_sizes: Sequence[int] = (1,), warmup: int = 10,
                   runs: int | None = None, seconds: float | None = None, torch_baseline: bool = False,
                   io_binding="auto", input_size: tuple[int, int] | None = None, graph_opt: str = "all",
                   rounds: int = 5, cache_dir: str | os.PathLike | None = None) -> list[BenchResult]:
    """Benchmark several model files on several providers, interleaved so that ratios between them are fair.

    Args:
        paths: ``.onnx`` files.
        providers: one entry per session to benchmark: a short name (``"cuda"``) or a priority list
            (``("tensorrt", "cuda")``); fallbacks are added as ``providers.resolve`` says. Each file is
            benchmarked on each entry.
        threads: intra-op threads for onnxruntime and ``torch.set_num_threads`` for the baseline
            (``None``: library defaults).
        batch_sizes: batch sizes to time (a fixed-batch file accepts only its own).
        warmup: untimed runs per configuration before timing.
        runs: timed runs per configuration (default 50 when ``seconds`` is not given either).
        seconds: instead of ``runs``, about this much timed work per configuration, estimated from the warmup.
        torch_baseline: also time each file's PyTorch eager model (from its card) in the same rounds.
        io_binding: ``"auto"`` (on for CUDA/TensorRT), True or False.
        input_size: ``(H, W)`` for files with dynamic height/width (default: the card's).
        graph_opt: onnxruntime graph optimization level.
        rounds: how many rounds the timed runs are interleaved in.
        cache_dir: TensorRT engine cache folder.

    Returns:
        One ``BenchResult`` per (file, provider entry), file-major.

    Raises:
        ProviderUnavailableError: a provider missing from this onnxruntime build, or dropped by it — checked for
            every entry before anything is timed.
        InputError: bad options. ArtifactError: a file that cannot be read.
    """
    if runs is not None and seconds is not None:
        raise InputError("give either runs or seconds, not both")
    if runs is not None and runs < 1:
        raise InputError(f"runs must be at least 1, got {runs}")
    if seconds is not None and seconds <= 0:
        raise InputError(f"seconds must be positive, got {seconds}")
    if warmup < 0:
        raise InputError(f"warmup cannot be negative, got {warmup}")
    batch_sizes = list(dict.fromkeys(int(b) for b in batch_sizes))
    if not batch_sizes or min(batch_sizes) < 1:
        raise InputError(f"batch sizes must be positive integers, got {batch_sizes}")
    if not paths:
        raise InputError("no model file given")
    entries = [[p] if isinstance(p, str) else list(p) for p in providers]
    if not entries:
        raise InputError("no execution provider given")
    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.is_file():
            raise ArtifactError(f"model file not found: {p}")
    for entry in entries:  # refuse a missing provider before spending minutes on the others
        resolve(entry)

    torch_mod = None
    torch_threads_before = None
    if torch_baseline:
        import torch as torch_mod

        torch_threads_before = torch_mod.get_num_threads()
        if threads:
            torch_mod.set_num_threads(threads)
    try:
        return _run(paths, entries, threads, batch_sizes, warmup, runs, seconds, torch_mod, io_binding,
                    input_size, graph_opt, rounds, cache_dir)
    finally:
        if torch_mod is not None:
            torch_mod.set_num_threads(torch_threads_before)


def benchmark(path: str | os.PathLike, *, providers: str | Sequence[str] = ("cpu",), threads: int | None = None,
              batch_sizes: Sequence[int] = (1,), warmup: int = 10, runs: int | None = None,
              seconds: float | None = None, torch_baseline: bool = False, io_binding="auto",
              input_size: tuple[int, int] | None = None, graph_opt: str = "all",
              cache_dir: str | os.PathLike | None = None) -> BenchResult:
    """Benchmark one model file on one provider list (see ``benchmark_many`` for the arguments and method).

    ``providers`` is a priority list for one session, e.g. ``("cpu",)``, ``"cuda"`` or ``("tensorrt", "cuda")``.
    """
    entry = [providers] if isinstance(providers, str) else list(providers)
    return benchmark_many([path], providers=[entry], threads=threads, batch_sizes=batch_sizes, warmup=warmup,
                          runs=runs, seconds=seconds, torch_baseline=torch_baseline, io_binding=io_binding,
                          input_size=input_size, graph_opt=graph_opt, cache_dir=cache_dir)[0]


def _run(paths, entries, threads, batch_sizes, warmup, runs, seconds, torch_mod, io_binding, input_size,
         graph_opt, rounds, cache_dir) -> list[BenchResult]:
    default_runs = 50
    staged = []  # per (path, entry): everything but the timings
    contestants: list[_Contestant] = []
    torch_cache: dict = {}  # (model, classes, arch, shape) -> contestant, shared by files of the same model

    def warm(fn) -> list[float]:
        return [_time_once(fn) for _ in range(warmup)]

    def planned_runs(warm_ms: list[float], fn) -> int:
        if seconds is None:
            return runs or default_runs
        est = float(np.median(warm_ms)) if warm_ms else _time_once(fn)
        return int(max(5, min(100_000, seconds * 1000.0 / max(est, 1e-3))))

    for path in paths:
        for entry in entries:
            device = _parse_io_binding(io_binding, entry)
            # TensorRT's flags depend on the precision; read it outside the timed session creation.
            precision = model_precision(path) if any(get_provider(n).name == "tensorrt" for n in entry) else None
            rss_before = _status_mb("VmRSS")
            reset = _reset_peak_rss()
            t0 = time.perf_counter()
            sess = make_session(path, entry, threads=threads, graph_opt=graph_opt, precision=precision,
                                cache_dir=cache_dir)
            create_ms = (time.perf_counter() - t0) * 1000.0
            card = _read_card(sess)
            ort_side = []
            for b in batch_sizes:
                feeds = make_inputs(sess, b, input_size=input_size, card=card)
                fn, keep = _ort_runner(sess, feeds, device)
                c = _Contestant(fn, keep=keep)  # the OrtValues must outlive the binding
                c.runs = planned_runs(warm(fn), fn)
                contestants.append(c)
                ort_side.append((b, feeds, c))
            # Read the peak now: the torch baseline below must not count against this session.
            peak = _status_mb("VmHWM")
            gpu_mb = _gpu_mem_mb() if device == "cuda" else None
            memory = MemoryStats(
                rss_before_mb=_r(rss_before), peak_rss_mb=_r(peak),
                peak_rss_growth_mb=_r(peak - rss_before) if peak is not None and rss_before is not None else None,
                peak_rss_scope="session" if reset else "process", process_max_rss_mb=0.0,
                gpu_mem_mb=_r(gpu_mb), gpu_mem_source="nvidia-smi" if gpu_mb is not None else None)
            per_batch = []
            for b, feeds, c in ort_side:
                tc = None
                if torch_mod is not None:
                    tc = _torch_contestant(torch_mod, torch_cache, card, path, b, feeds, input_size)
                    if tc.runs == 0:  # new: warm it up and plan its runs
                        tc.runs = planned_runs(warm(tc.run), tc.run)
                        contestants.append(tc)
                per_batch.append((b, {k: list(v.shape) for k, v in feeds.items()}, c, tc))
            so = sess.get_session_options()
            staged.append(dict(path=path, entry=entry, sess=sess, card=card, create_ms=create_ms, memory=memory,
                               per_batch=per_batch, io_binding=device is not None,
                               assignment=node_assignment(sess), intra=so.intra_op_num_threads,
                               inter=so.inter_op_num_threads))

    _schedule(contestants, rounds)

    n_runs = sorted({c.runs for c in contestants})
    n_text = str(n_runs[0]) if len(n_runs) == 1 else f"{n_runs[0]}-{n_runs[-1]}"
    n_rounds = max(1, min(rounds, min(c.runs for c in contestants)))
    schedule = (f"{len(contestants)} configurations interleaved in {n_rounds} rounds, order rotated each round, "
                f"a {SETTLE_S * 1000:.0f} ms pause and one untimed run before each chunk"
                if len(contestants) > 1 else "one configuration, timed back to back")
    method = (f"{warmup} untimed warmup runs, then {n_text} timed runs per configuration; {schedule}; "
              "statistics over all timed runs (p50 = median)")
    uses_gpu = any(get_provider(n).device == "cuda" for entry in entries for n in entry)
    machine = machine_info(gpu=uses_gpu, torch_version=torch_mod.__version__ if torch_mod else None)
    max_rss = _r(_max_rss_mb())
    results = []
    for s in staged:
        batches = []
        for b, shapes, c, tc in s["per_batch"]:
            lat = LatencyStats.from_samples(c.samples)
            tlat = LatencyStats.from_samples(tc.samples) if tc is not None else None
            batches.append(BatchResult(
                batch_size=b, input_shapes=shapes, latency=lat, throughput_ips=b * 1000.0 / lat.mean_ms,
                torch_latency=tlat, torch_speedup=(tlat.p50_ms / lat.p50_ms) if tlat else None))
        card = s["card"]
        results.append(BenchResult(
            schema_version=SCHEMA_VERSION, model_path=str(s["path"]), model=card.model if card else None,
            precision=card.precision if card else None, file_mb=_r(s["path"].stat().st_size / 2**20),
            providers_requested=tuple(get_provider(n).name for n in s["entry"]),
            providers=tuple(s["sess"].get_providers()), node_assignment=s["assignment"],
            io_binding=s["io_binding"], graph_opt=graph_opt, session_create_ms=s["create_ms"], warmup=warmup,
            method=method,
            threads=ThreadSettings(requested=threads, intra_op_num_threads=s["intra"],
                                   inter_op_num_threads=s["inter"],
                                   torch_num_threads=torch_mod.get_num_threads() if torch_mod else None,
                                   cpu_affinity=_affinity()),
            memory=dataclasses.replace(s["memory"], process_max_rss_mb=max_rss),
            batches=tuple(batches), machine=machine))
    return results


def _r(x: float | None, nd: int = 2) -> float | None:
    return None if x is None else round(float(x), nd)


def _affinity() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS / Windows
        return os.cpu_count() or 1


# ------------------------------------------------------------------------------------------- rendering

TABLE_HEADERS = ("model", "precision", "ep", "batch", "p50 ms", "p90 ms", "p99 ms", "mean ms", "img/s",
                 "peak RSS MB", "create ms")
TORCH_HEADERS = ("torch p50 ms", "speedup")


def table_rows(results: Sequence[BenchResult]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows (one per result and batch size) for the CLI table and the markdown report."""
    with_torch = any(b.torch_latency is not None for r in results for b in r.batches)
    headers = list(TABLE_HEADERS) + (list(TORCH_HEADERS) if with_torch else [])
    rows = []
    for r in results:
        name = r.model or Path(r.model_path).stem
        ep = "+".join(r.providers_requested)
        for b in r.batches:
            lat = b.latency
            row = [name, r.precision or "?", ep, str(b.batch_size), f"{lat.p50_ms:.3f}", f"{lat.p90_ms:.3f}",
                   f"{lat.p99_ms:.3f}", f"{lat.mean_ms:.3f}", f"{b.throughput_ips:.1f}",
                   "-" if r.memory.peak_rss_mb is None else f"{r.memory.peak_rss_mb:.0f}",
                   f"{r.session_create_ms:.0f}"]
            if with_torch:
                row += ["-", "-"] if b.torch_latency is None else [f"{b.torch_latency.p50_ms:.3f}",
                                                                    f"{b.torch_speedup:.2f}x"]
            rows.append(row)
    return headers, rows


def to_markdown(results: Sequence[BenchResult]) -> str:
    """A markdown report: the machine and method, then one table row per result and batch size."""
    if not results:
        return "No results.\n"
    m = results[0].machine
    t = results[0].threads
    headers, rows = table_rows(results)
    lines = [
        f"Machine: {m.cpu_model}, {m.physical_cores or '?'} cores / {m.logical_cores} threads"
        + (f", GPU {m.gpu}" if m.gpu else "") + f"; onnxruntime {m.onnxruntime}, onnx {m.onnx}"
        + (f", torch {m.torch}" if m.torch else "") + f"; {m.date}.",
        "",
        f"Threads: {t.requested if t.requested is not None else 'library default'}. Method: {results[0].method}.",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" if i < 3 else "---:" for i in range(len(headers))) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def report_dict(results: Sequence[BenchResult]) -> dict:
    """What ``edgecnn bench --json`` writes: ``{"schema_version": 1, "results": [BenchResult.to_dict(), …]}``."""
    return {"schema_version": SCHEMA_VERSION, "results": [r.to_dict() for r in results]}
