"""Sweeps on Ray: one task per export (model × precision), then one whole-node task per benchmark.

Each export task calls ``pipeline.export`` into its own folder ``OUT/MODEL.PRECISION`` — staged and swapped in
atomically, exactly as ``edgecnn export`` does — so a sweep's artifacts are those of exporting one by one. With
random weights, ``export`` itself draws them from a fixed seed, so the same model gets the same weights in every
task and in a one-by-one export.

Benchmark tasks ask Ray for *all* the CPUs of one node and are pinned to it (``NodeAffinitySchedulingStrategy``,
hard), so no other task of the sweep runs there while it times: timings are never shared. Every row, export
or benchmark, records the node (Ray node id and hostname) it ran on. The rows are written to ``OUT/sweep.json``.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import EdgeCNNError, InputError, first_line
from ..core.files import output_lock, refuse_foreign, write_text_atomic
from ..core.owned import write_listing

PRECISIONS = ("fp32", "fp16", "int8")
SWEEP_FILE = "sweep.json"


@dataclass(frozen=True)
class SweepResult:
    """Rows of a sweep: ``exports`` (one per model × precision) and ``benchmarks`` (one per exported artifact)."""

    out_dir: Path
    exports: tuple
    benchmarks: tuple

    @property
    def passed(self) -> bool:
        return all(row.get("passed") for row in self.exports)

    def to_dict(self) -> dict:
        return {"out_dir": str(self.out_dir), "exports": list(self.exports), "benchmarks": list(self.benchmarks)}


def _where() -> dict:
    import ray

    return {"node_id": ray.get_runtime_context().get_node_id(), "hostname": socket.gethostname()}


def export_one(model: str, precision: str, folder: str, options: Any, threads: int) -> dict:
    """A Ray task: one export into its own folder; a user error becomes the row's ``error``."""
    import torch

    from ..pipeline import Int8Options, export

    torch.set_num_threads(max(1, threads))  # the CPUs this task asked Ray for, no more
    opts = options.replace(
        fp16=precision == "fp16", int8=(options.int8 or Int8Options()) if precision == "int8" else None
    )
    row = {"model": model, "precision": precision, "folder": folder, **_where()}
    t0 = time.perf_counter()
    try:
        result = export(model, folder, opts)
    except EdgeCNNError as exc:
        return {**row, "passed": False, "error": str(exc), "seconds": round(time.perf_counter() - t0, 2)}
    artifacts = [
        {
            "file": a.file,
            "precision": a.precision,
            "passed": bool(a.parity.passed),
            "top1_agreement": a.parity.top1_agreement,
            "cosine": a.parity.cosine,
        }
        for a in result.artifacts
    ]
    target = next((a["file"] for a in artifacts if a["precision"] == precision), None)
    return {
        **row,
        "passed": result.passed and target is not None,
        "error": None if target else f"no {precision} artifact was produced (see {folder}/manifest.json)",
        "artifact": target,
        "artifacts": artifacts,
        "seconds": round(time.perf_counter() - t0, 2),
    }


def bench_one(path: str, options: Any, cpus: int) -> dict:
    """A Ray task holding a whole node: benchmark one artifact with that node's CPUs as intra-op threads."""
    from ..runtime.bench import benchmark_many

    if options.torch_baseline:  # a task is its own process: the eager runner registers here, from the torch side
        from ..convert import torch_runner

        torch_runner.register()
    opts = options if options.threads is not None else _with_threads(options, cpus)
    started = time.time()
    result = benchmark_many([path], opts)[0].to_dict()
    first = result["batches"][0]
    return {
        "file": path,
        "threads": opts.threads,
        "batch_size": first["batch_size"],
        "p50_ms": first["latency"]["p50_ms"],
        "throughput_ips": first["throughput_ips"],
        **_where(),
        "node_cpus": cpus,
        "started": started,
        "ended": time.time(),
        "result": result,
    }


def _with_threads(options: Any, cpus: int) -> Any:
    import dataclasses

    return dataclasses.replace(options, threads=cpus)


def sweep(
    models: Sequence[str],
    precisions: Sequence[str] = ("fp32", "int8"),
    out_dir: str | Path = "sweep",
    *,
    options: Any = None,
    address: str | None = None,
    bench: Any = None,
    export_cpus: int = 1,
    force: bool = False,
) -> SweepResult:
    """Export every model × precision as Ray tasks, then benchmark each artifact on a whole node.

    Args:
        models: registry names or aliases (``["all"]`` for the whole zoo).
        precisions: of ``fp32``, ``fp16``, ``int8``; each is its own export folder ``OUT/MODEL.PRECISION``.
        out_dir: the sweep folder; ``sweep.json`` holds every row.
        options: ``ExportOptions`` shared by every export (precision fields are set per task).
        address: Ray cluster address; ``None`` uses or starts a local Ray.
        bench: ``BenchOptions`` (or ``True`` for defaults) to benchmark each artifact; ``None`` skips it.
        export_cpus: CPUs (and torch threads) each export task asks for.
        force: replace existing export folders (only once each new one is complete) and ``sweep.json``.
    """
    from ..pipeline import ExportOptions
    from ._ray import connect, require_ray

    names = check_sweep(models, precisions, options or ExportOptions(), export_cpus, bench)  # before Ray
    require_ray()
    out = Path(out_dir)
    with output_lock(out):  # one sweep per folder: a second one refuses at once, naming the first
        if (out / SWEEP_FILE).exists() and not force:
            raise InputError(f"{out / SWEEP_FILE} exists; pass --force to run the sweep again over it")
        if force:  # --force replaces what edgecnn wrote, nothing else
            refuse_foreign(out)
        options = (options or ExportOptions()).replace(force=force)
        ray = connect(address)
        task = ray.remote(num_cpus=export_cpus)(export_one)
        pairs = [(m, p) for m in names for p in precisions]
        refs = [task.remote(m, p, str(out / f"{m}.{p}"), options, export_cpus) for m, p in pairs]
        exports = [_get(ray, ref, {"model": m, "precision": p}) for ref, (m, p) in zip(refs, pairs)]
        benchmarks = _bench_all(ray, exports, bench) if bench else []
        result = SweepResult(out, tuple(exports), tuple(benchmarks))
        write_text_atomic(out / SWEEP_FILE, json.dumps(result.to_dict(), indent=2, default=str) + "\n")
        write_listing(out, "sweep", files=[SWEEP_FILE])  # the export folders carry listings of their own
    return result


def check_sweep(
    models: Sequence[str], precisions: Sequence[str], options: Any, export_cpus: int, bench: Any = None
) -> list[str]:
    """The model names a sweep exports (``["all"]``: the zoo; repeats dropped), each one and every option checked
    here, before a lock is taken or Ray is started: a typo is one line and exit 2, never a cluster's worth of
    failed tasks ending in "parity failed".

    Raises:
        InputError / UnknownModelError: an unknown model (with the closest name), an unknown precision, an input
            size a model cannot take, a CPU count below 1, bench options that are not ``BenchOptions``.
    """
    from ..models.registry import get_spec
    from ..models.specs import zoo
    from ..pipeline import check_input_size

    names = [spec.name for spec in zoo()] if list(models) == ["all"] else list(dict.fromkeys(models))
    bad = [p for p in precisions if p not in PRECISIONS]
    if not names or not precisions or bad:
        raise InputError(
            f"a sweep needs models and precisions of {', '.join(PRECISIONS)}; got {list(models)} × {list(precisions)}"
        )
    for name in names:
        check_input_size(options.input_size, get_spec(name))  # unknown names, and sizes a model cannot take
    if isinstance(export_cpus, bool) or not isinstance(export_cpus, int) or export_cpus < 1:
        raise InputError(f"export CPUs must be a whole number, 1 or more, got {export_cpus!r}")
    if bench not in (None, False, True):
        from ..runtime.bench import BenchOptions

        if not isinstance(bench, BenchOptions):
            raise InputError(f"bench must be BenchOptions (or True), got {type(bench).__name__}")
    return names


def _get(ray: Any, ref: Any, row: dict) -> dict:
    """A task's row; a crash (not a user error) becomes an error row too, so one export cannot sink a sweep."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as exc:
        return {**row, "passed": False, "error": first_line(exc)}


def _bench_all(ray: Any, exports: list, bench: Any) -> list:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from ..runtime.bench import BenchOptions
    from ._ray import alive_nodes

    options = BenchOptions() if bench is True else bench
    nodes = alive_nodes(ray)
    refs = []
    for i, row in enumerate(r for r in exports if r.get("artifact")):
        node = nodes[i % len(nodes)]
        task = ray.remote(bench_one).options(  # the whole node: nothing else of the sweep runs beside it
            num_cpus=node["cpus"], scheduling_strategy=NodeAffinitySchedulingStrategy(node["node_id"], soft=False)
        )
        path = str(Path(row["folder"]) / row["artifact"])
        refs.append((task.remote(path, options, node["cpus"]), row))
    return [
        {
            "model": row["model"],
            "precision": row["precision"],
            **_get(ray, ref, {"file": str(Path(row["folder"]) / row["artifact"])}),
        }
        for ref, row in refs
    ]
