"""``edgecnn predict --ray`` (its body) and ``edgecnn sweep``: the commands that run on Ray.

Ray is imported by ``edgecnn.scale`` only when one of them runs; without the extra they stop with one line,
"Ray is not installed: pip install 'edgecnn[ray]'" (exit 2).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..core.text import text_table
from .app import app, fail, handle_errors, require_export_stack
from .options import Force, InputSize, Json, Precisions


def predict_with_ray(
    model: str,
    source: str,
    ray,
    *,
    top_k: int,
    providers: list[str],
    threads: int | None,
    overrides: dict,
    as_json: bool,
) -> None:
    """What ``predict --ray`` does (``cli.predict`` checked its options): one source into a Parquet folder.

    The exit status is 1 when any image was unreadable.
    """
    from ..scale import predict_dataset
    from ..scale.dataset import DEFAULT_BATCH

    summary = predict_dataset(
        model,
        source,
        ray.output,
        address=ray.address,
        workers=ray.workers,
        threads=threads,
        batch_size=ray.batch_size or DEFAULT_BATCH,
        top_k=top_k,
        ep=providers,
        progress=not as_json,
        **overrides,
    )
    for note in summary.notes:  # an unreadable part set aside and redone: said, never silent
        typer.echo(f"note: {note}", err=True)
    if as_json:
        typer.echo(json.dumps(_summary_record(summary), indent=2))
    else:
        _print_summary(summary)
    if summary.errors:
        typer.echo(
            f"error: {summary.errors} image(s) could not be read (rows with ok = false in {summary.output})", err=True
        )
        raise typer.Exit(1)


def _summary_record(summary) -> dict:
    """``predict --ray --json``: the run's summary (the rows themselves are in the Parquet folder)."""
    return {
        "output": str(summary.output),
        "listed": summary.listed,
        "skipped_already_done": summary.skipped,
        "inferred": summary.inferred,
        "errors": summary.errors,
        "parts": [str(p) for p in summary.parts],
        "workers": summary.workers,
        "threads_per_worker": summary.threads,
        "seconds": round(summary.seconds, 3),
        "images_per_s": round(summary.images_per_s, 1),
        "mask_dir": str(summary.mask_dir) if summary.mask_dir else None,
        "notes": list(summary.notes),
    }


def _print_summary(summary) -> None:
    plan = f"{summary.workers} × {summary.threads}" if summary.workers else "- (nothing to do)"
    counts = [summary.listed, summary.skipped, summary.inferred, summary.errors]
    typer.echo(
        text_table(
            ["listed", "already done", "inferred", "errors", "workers × threads", "images/s"],
            [[*map(str, counts), plan, f"{summary.images_per_s:.1f}"]],
        )
    )
    typer.echo(f"wrote {summary.output}/ ({len(summary.parts)} new part(s))")


SweepOut = Annotated[Path, typer.Option("--out", "-o", help="Sweep folder: OUT/MODEL.PRECISION/ and OUT/sweep.json.")]
Address = Annotated[str | None, typer.Option("--address", help="Ray cluster address (default: a local Ray).")]
Bench = Annotated[bool, typer.Option("--bench", help="Benchmark each artifact, each on a whole node.")]
Runs = Annotated[int, typer.Option("--runs", min=1, help="Timed runs per benchmark (with --bench).")]
ExportCpus = Annotated[int, typer.Option("--export-cpus", min=1, help="CPUs (torch threads) per export task.")]


@app.command("sweep")
@handle_errors
def sweep_cmd(
    models: Annotated[list[str], typer.Argument(help="Model names or aliases ('all' for the whole zoo).")],
    precision: Precisions = "fp32,int8",
    input_size: InputSize = None,
    out: SweepOut = Path("sweep"),
    address: Address = None,
    bench: Bench = False,
    runs: Runs = 20,
    export_cpus: ExportCpus = 1,
    force: Force = False,
    as_json: Json = False,
) -> None:
    """Export models × precisions as Ray tasks (one folder each, atomic), optionally benchmark each on a node."""
    require_export_stack()
    from ..pipeline import ExportOptions
    from ..runtime.bench import BenchOptions
    from ..scale import sweep

    result = sweep(
        models,
        [p.strip() for p in precision.split(",") if p.strip()],
        out,
        options=ExportOptions(input_size=input_size),
        address=address,
        bench=BenchOptions(runs=runs, warmup=3) if bench else None,
        export_cpus=export_cpus,
        force=force,
    )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        _print_sweep(result, out)
    if not result.passed:
        fail(
            "parity failed or export refused for: "
            + ", ".join(f"{r['model']}.{r['precision']}" for r in result.exports if not r.get("passed")),
            1,
        )


def _print_sweep(result, out: Path) -> None:
    typer.echo(
        text_table(
            ["model", "precision", "parity", "node", "seconds", "error"],
            [
                [
                    r["model"],
                    r["precision"],
                    "pass" if r.get("passed") else "FAIL",
                    r.get("hostname", "?"),
                    str(r.get("seconds", "")),
                    (r.get("error") or "")[:60],
                ]
                for r in result.exports
            ],
        )
    )
    if result.benchmarks:
        typer.echo(
            text_table(
                ["model", "precision", "p50 ms", "images/s", "threads", "node"],
                [
                    [
                        b["model"],
                        b["precision"],
                        f"{b.get('p50_ms', float('nan')):.2f}",
                        f"{b.get('throughput_ips', float('nan')):.1f}",
                        str(b.get("threads", "")),
                        b.get("hostname", "?"),
                    ]
                    for b in result.benchmarks
                ],
            )
        )
    typer.echo(f"wrote {out}/sweep.json")
