"""The API: ``benchmark_many`` and ``benchmark`` — stage every configuration, time them together, report."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ...core.errors import ArtifactError, InputError
from ..onnxrt import model_precision
from ..providers import known_provider, resolve
from ..runner import open_runner, runtime_of
from .baseline import Baseline
from .inputs import make_inputs, read_card
from .machine import _affinity, _gpu_mem_mb, _max_rss_mb, _r, _reset_peak_rss, _status_mb, machine_info
from .options import BenchOptions
from .results import SCHEMA_VERSION, BatchResult, BenchResult, LatencyStats, MemoryStats, ThreadSettings
from .timing import Contestant, _parse_io_binding, bound_run, schedule, time_once


def benchmark_many(
    paths: Sequence[str | os.PathLike], options: BenchOptions | None = None, **keywords
) -> list[BenchResult]:
    """Benchmark several model files on several providers, interleaved so that ratios between them are fair.

    Args:
        paths: ``.onnx`` files.
        options: a ``BenchOptions``; ``keywords`` (its field names) are applied on top of it, so
            ``benchmark_many(paths, runs=5, providers=["cpu"])`` works as well. The fields:

            providers: one entry per session to benchmark: a short name (``"cuda"``) or a priority list
                (``("tensorrt", "cuda")``); fallbacks are added as ``providers.resolve`` says. Each file is
                benchmarked on each entry.
            threads: intra-op threads for onnxruntime and ``torch.set_num_threads`` for the baseline
                (``None``: library defaults).
            batch_sizes: batch sizes to time (a fixed-batch file accepts only its own).
            warmup: untimed runs per configuration before timing.
            runs: timed runs per configuration (default 50 when ``seconds`` is not given either).
            seconds: instead of ``runs``, about this much timed work per configuration, estimated from the warmup.
            torch_baseline: also time each file's PyTorch eager model (from its card) in the same rounds; the
                torch side's runner must be registered first (``edgecnn.convert.torch_runner.register()``).
            io_binding: ``"auto"`` (on for CUDA/TensorRT), True or False.
            input_size: ``(H, W)`` for files with dynamic height/width (default: the card's).
            graph_opt: onnxruntime graph optimization level.
            rounds: how many rounds the timed runs are interleaved in.
            cache_dir: TensorRT engine cache folder.
            settle_s: the pause before each chunk (default 100 ms).

    Returns:
        One ``BenchResult`` per (file, provider entry), file-major.

    Raises:
        ProviderUnavailableError: a provider missing from this onnxruntime build, or dropped by it — checked for
            every entry before anything is timed.
        InputError: bad options, or ``torch_baseline`` without the torch runner registered.
        ArtifactError: a file that cannot be read.
    """
    try:
        opts = (options or BenchOptions()).replace(**keywords) if keywords else (options or BenchOptions())
    except TypeError as exc:  # an unknown keyword
        raise InputError(f"benchmark_many: {exc}") from None
    if not paths:
        raise InputError("no model file given")
    return benchmark_pairs([(p, entry) for p in paths for entry in opts.providers], opts)


def benchmark_pairs(pairs: Sequence[tuple], options: BenchOptions | None = None) -> list[BenchResult]:
    """Benchmark an explicit list of ``(file, provider entry)`` pairs in one interleaved run.

    ``benchmark_many`` times every file on every entry; a comparison across runtimes (``runtime.choose``) needs
    only some pairs (an .onnx on CPU and OpenVINO, a .tflite on LiteRT alone), timed together so that their
    ratios are fair. ``options.providers`` is not read; every other field is, as ``benchmark_many`` says.

    Args:
        pairs: ``(path, entry)``: an entry is a short name or a priority list (``("tensorrt", "cuda")``).
        options: a ``BenchOptions``.

    Returns:
        One ``BenchResult`` per pair, in order.

    Raises:
        ProviderUnavailableError, InputError, ArtifactError: as ``benchmark_many``, checked before any timing.
    """
    opts = options or BenchOptions()
    if not pairs:
        raise InputError("no model file given")
    staged = [(Path(p), (entry,) if isinstance(entry, str) else tuple(entry)) for p, entry in pairs]
    for p, _ in staged:
        if not p.exists():  # an .mlpackage is a folder; its runner says what else is wrong
            raise ArtifactError(f"model file not found: {p}")
    for entry in dict.fromkeys(e for p, e in staged if runtime_of(p) is None):  # .tflite/.pte: their runners say
        resolve(list(entry))  # refuse a missing provider before spending minutes on the others

    baseline = Baseline(opts.threads) if opts.torch_baseline else None
    try:
        return _run(staged, opts, baseline)
    finally:
        if baseline is not None:
            baseline.close()  # torch's thread count as it was found


def benchmark(
    path: str | os.PathLike,
    *,
    providers: str | Sequence[str] = ("cpu",),
    threads: int | None = None,
    batch_sizes: Sequence[int] = (1,),
    warmup: int = 10,
    runs: int | None = None,
    seconds: float | None = None,
    torch_baseline: bool = False,
    io_binding="auto",
    input_size: tuple[int, int] | None = None,
    graph_opt: str = "all",
    cache_dir: str | os.PathLike | None = None,
) -> BenchResult:
    """Benchmark one model file on one provider list (see ``benchmark_many`` for the arguments and method).

    ``providers`` is a priority list for one session, e.g. ``("cpu",)``, ``"cuda"`` or ``("tensorrt", "cuda")``.
    """
    entry = [providers] if isinstance(providers, str) else list(providers)
    return benchmark_many(
        [path],
        BenchOptions(
            providers=[entry],
            threads=threads,
            batch_sizes=batch_sizes,
            warmup=warmup,
            runs=runs,
            seconds=seconds,
            torch_baseline=torch_baseline,
            io_binding=io_binding,
            input_size=input_size,
            graph_opt=graph_opt,
            cache_dir=cache_dir,
        ),
    )[0]


@dataclass
class _Staged:
    """One (file, provider entry) before timing: its runner and everything but the timings."""

    path: Path
    entry: tuple
    runner: object
    card: object
    create_ms: float
    memory: MemoryStats
    per_batch: list  # (batch, input shapes, onnxruntime contestant, torch contestant or None)
    io_binding: bool
    assignment: dict | None
    intra: int
    inter: int


class _Planner:
    """Warms contestants up and collects them, in the order they will be scheduled."""

    def __init__(self, opts: BenchOptions):
        self.opts = opts
        self.contestants: list[Contestant] = []

    def add(self, c: Contestant) -> Contestant:
        warm_ms = [time_once(c.run) for _ in range(self.opts.warmup)]
        c.runs = self.opts.planned_runs(warm_ms, lambda: time_once(c.run))
        self.contestants.append(c)
        return c


def _run(pairs: list[tuple[Path, tuple]], opts: BenchOptions, baseline: Baseline | None) -> list[BenchResult]:
    planner = _Planner(opts)
    staged = [_stage(path, entry, opts, planner, baseline) for path, entry in pairs]
    contestants = planner.contestants
    schedule(contestants, opts.rounds, opts.settle_s)

    method = _method(contestants, opts)
    uses_gpu = any(p is not None and p.device == "cuda" for _, entry in pairs for p in map(known_provider, entry))
    eager = baseline.info() if baseline else {}
    machine = machine_info(gpu=uses_gpu, torch_version=eager.get("version"))
    max_rss = _r(_max_rss_mb())
    torch_threads = eager.get("threads")
    return [_result(s, opts, method, machine, max_rss, torch_threads) for s in staged]


def _stage(path: Path, entry: tuple, opts: BenchOptions, planner: _Planner, baseline: Baseline | None) -> _Staged:
    """Open the runner (timed, memory watched), warm up each batch size, and the torch twin when asked."""
    device = _parse_io_binding(opts.io_binding, entry)
    # TensorRT's flags depend on the precision; read it outside the timed session creation.
    tensorrt = runtime_of(path) is None and any(_short(n) == "tensorrt" for n in entry)
    precision = model_precision(path) if tensorrt else None
    rss_before = _status_mb("VmRSS")
    reset = _reset_peak_rss()
    t0 = time.perf_counter()
    runner = open_runner(
        path,
        providers=list(entry),
        threads=opts.threads,
        graph_opt=opts.graph_opt,
        precision=precision,
        cache_dir=opts.cache_dir,
    )
    create_ms = (time.perf_counter() - t0) * 1000.0
    card = read_card(runner, path.name)
    ort_side = []
    for b in opts.batch_sizes:
        feeds = make_inputs(runner, b, input_size=opts.input_size, card=card)
        fn, keep = bound_run(runner, feeds, device)
        ort_side.append((b, feeds, planner.add(Contestant(fn, keep=keep))))  # the OrtValues outlive the binding
    # Read the peak now: the torch baseline below must not count against this session.
    memory = _memory(rss_before, reset, device)
    per_batch = []
    for b, feeds, c in ort_side:
        tc = None
        if baseline is not None:
            tc = baseline.contestant(path, card, b, feeds, opts.input_size)
            if tc.runs == 0:  # new: warm it up and plan its runs
                planner.add(tc)
        per_batch.append((b, {k: list(v.shape) for k, v in feeds.items()}, c, tc))
    info = runner.info()
    return _Staged(
        path,
        entry,
        runner,
        card,
        create_ms,
        memory,
        per_batch,
        device is not None,
        runner.node_assignment(),
        info["threads"],
        info.get("inter_op_threads", 1),
    )


def _short(name: str) -> str:
    """The provider's short name (``"cuda"``), or the name as given where only another runtime knows it."""
    provider = known_provider(name)
    return provider.name if provider is not None else name.strip().lower()


def _memory(rss_before: float | None, reset: bool, device: str | None) -> MemoryStats:
    peak = _status_mb("VmHWM")
    gpu_mb = _gpu_mem_mb() if device == "cuda" else None
    return MemoryStats(
        rss_before_mb=_r(rss_before),
        peak_rss_mb=_r(peak),
        peak_rss_growth_mb=_r(peak - rss_before) if peak is not None and rss_before is not None else None,
        peak_rss_scope="session" if reset else "process",
        process_max_rss_mb=0.0,
        gpu_mem_mb=_r(gpu_mb),
        gpu_mem_source="nvidia-smi" if gpu_mb is not None else None,
    )


def _method(contestants: list[Contestant], opts: BenchOptions) -> str:
    """How the timed runs were scheduled and summarised, in words."""
    n_runs = sorted({c.runs for c in contestants})
    n_text = str(n_runs[0]) if len(n_runs) == 1 else f"{n_runs[0]}-{n_runs[-1]}"
    n_rounds = max(1, min(opts.rounds, min(c.runs for c in contestants)))
    schedule = (
        f"{len(contestants)} configurations interleaved in {n_rounds} rounds, order rotated each round, "
        f"a {opts.settle_s * 1000:.0f} ms pause and one untimed run before each chunk"
        if len(contestants) > 1
        else "one configuration, timed back to back"
    )
    return (
        f"{opts.warmup} untimed warmup runs, then {n_text} timed runs per configuration; {schedule}; "
        "statistics over all timed runs (p50 = median)"
    )


def _result(
    s: _Staged, opts: BenchOptions, method: str, machine, max_rss: float | None, torch_threads: int | None
) -> BenchResult:
    batches = []
    for b, shapes, c, tc in s.per_batch:
        lat = LatencyStats.from_samples(c.samples)
        tlat = LatencyStats.from_samples(tc.samples) if tc is not None else None
        batches.append(
            BatchResult(
                batch_size=b,
                input_shapes=shapes,
                latency=lat,
                throughput_ips=b * 1000.0 / lat.mean_ms,
                torch_latency=tlat,
                torch_speedup=(tlat.p50_ms / lat.p50_ms) if tlat else None,
            )
        )
    card, info = s.card, s.runner.info()
    return BenchResult(
        schema_version=SCHEMA_VERSION,
        model_path=str(s.path),
        model=card.model if card else None,
        precision=card.precision if card else None,
        file_mb=_r(s.path.stat().st_size / 2**20),
        providers_requested=tuple(_short(n) for n in s.entry),
        providers=tuple(info["providers"]),
        node_assignment=s.assignment,
        # the precision hint each provider ran with, read back (OpenVINO defaults to bf16 on some CPUs; a
        # benchmark must say which it measured)
        provider_precision=info.get("precision"),
        backend=info.get("backend", "onnxruntime"),
        runtime=info.get("runtime", "onnxruntime"),
        delegation=info.get("delegation"),
        io_binding=s.io_binding,
        graph_opt=opts.graph_opt,
        session_create_ms=s.create_ms,
        warmup=opts.warmup,
        method=method,
        threads=ThreadSettings(
            requested=opts.threads,
            intra_op_num_threads=s.intra,
            inter_op_num_threads=s.inter,
            torch_num_threads=torch_threads,
            cpu_affinity=_affinity(),
        ),
        memory=dataclasses.replace(s.memory, process_max_rss_mb=max_rss),
        batches=tuple(batches),
        machine=machine,
    )
