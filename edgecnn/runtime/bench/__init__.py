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

The JSON shape is ``results.SCHEMA``; docs/bench_schema.md shows the same table and a test keeps them equal.

Every configuration runs on a ``runtime.runner.Runner`` made by ``open_runner``; the eager baseline is the
``"torch"`` runtime, registered from the torch side (``edgecnn/convert/torch_runner.py``), so bench imports no
torch.

Modules: ``options`` (the validated ``BenchOptions``), ``inputs`` (random feeds), ``timing`` (the interleaved
loop), ``machine`` (machine info, memory), ``baseline`` (the eager contestants), ``runner`` (the API),
``results`` (records and ``SCHEMA``), ``report`` (table, markdown, JSON), ``layer_times`` (fp32 vs int8 per
layer). The public names are importable from here.
"""

from __future__ import annotations

import time  # noqa: F401  (tests patch bench.time.sleep)

from .inputs import hw_from_card, make_inputs, read_card
from .machine import machine_info
from .options import DEFAULT_RUNS, BenchOptions
from .report import TABLE_HEADERS, TORCH_HEADERS, report_dict, table_rows, to_markdown
from .results import (
    SCHEMA,
    SCHEMA_VERSION,
    BatchResult,
    BenchResult,
    LatencyStats,
    MachineInfo,
    MemoryStats,
    ThreadSettings,
    flatten_keys,
    schema_markdown,
    schema_paths,
)
from .runner import benchmark, benchmark_many, benchmark_pairs
from .timing import SETTLE_S, Contestant, bound_run, schedule, time_once

__all__ = [
    "BenchOptions",
    "BenchResult",
    "BatchResult",
    "LatencyStats",
    "MachineInfo",
    "MemoryStats",
    "ThreadSettings",
    "SCHEMA",
    "SCHEMA_VERSION",
    "SETTLE_S",
    "Contestant",
    "DEFAULT_RUNS",
    "TABLE_HEADERS",
    "TORCH_HEADERS",
    "benchmark",
    "benchmark_many",
    "benchmark_pairs",
    "make_inputs",
    "read_card",
    "hw_from_card",
    "bound_run",
    "schedule",
    "time_once",
    "machine_info",
    "flatten_keys",
    "schema_markdown",
    "schema_paths",
    "report_dict",
    "table_rows",
    "to_markdown",
]
