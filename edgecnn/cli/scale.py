"""``edgecnn predict --ray`` (its body) and ``edgecnn sweep``: the commands that run on Ray.

Ray is imported by ``edgecnn.scale`` only when one of them runs; without the extra they stop with one line,
"Ray is not installed: pip install 'edgecnn[ray]'" (exit 2).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..core.text import text_table
from .app import app, fail, handle_errors, require_export_stack
from .options import force_option, input_size_option, json_option


def predict_with_ray(
    model: str,
    inputs: list[str],
    *,
    output: Path | None,
    address: str | None,
    workers: int | None,
    batch_size: int | None,
    top_k: int,
    providers: list[str],
    threads: int | None,
    overrides: dict,
    as_json: bool,
    save_masks: str | None = None,
) -> None:
    """What ``predict --ray`` does: one source into a Parquet folder; exit 1 when any image was unreadable."""
    from ..scale import predict_dataset
    from ..scale.dataset import DEFAULT_BATCH

    if output is None:
        fail("--ray writes its rows to Parquet: pass --output FILE.parquet")
    if save_masks is not None:
        fail("with --ray, masks are written beside the output (FILE.masks/); drop --save-masks")
    if len(inputs) != 1:
        fail(f"--ray takes one SOURCE (a folder, a glob or a URI such as s3://bucket/images/), got {len(inputs)}")
    summary = predict_dataset(
        model,
        inputs[0],
        output,
        address=address,
        workers=workers,
        threads=threads,
        batch_size=batch_size or DEFAULT_BATCH,
        top_k=top_k,
        ep=providers,
        progress=not as_json,
        **overrides,
    )
    record = {
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
    }
    record["notes"] = list(summary.notes)
    for note in summary.notes:  # an unreadable part set aside and redone: said, never silent
        typer.echo(f"note: {note}", err=True)
    if as_json:
        typer.echo(json.dumps(record, indent=2))
    else:
        plan = f"{summary.workers} × {summary.threads}" if summary.workers else "- (nothing to do)"
        typer.echo(
            text_table(
                ["listed", "already done", "inferred", "errors", "workers × threads", "images/s"],
                [
                    [
                        str(summary.listed),
                        str(summary.skipped),
                        str(summary.inferred),
                        str(summary.errors),
                        plan,
                        f"{summary.images_per_s:.1f}",
                    ]
                ],
            )
        )
        typer.echo(f"wrote {summary.output}/ ({len(summary.parts)} new part(s))")
    if summary.errors:
        typer.echo(
            f"error: {summary.errors} image(s) could not be read (rows with ok = false in {summary.output})", err=True
        )
        raise typer.Exit(1)


@app.command("sweep")
@handle_errors
def sweep_cmd(
    models: list[str] = typer.Argument(..., help="Model names or aliases ('all' for the whole zoo)."),
    precision: str = typer.Option(
        "fp32,int8",
        "--precision",
        help="Comma-separated: fp32, fp16, int8 (one export task and folder per model × precision).",
    ),
    input_size: str | None = input_size_option(),
    out: Path = typer.Option(
        Path("sweep"), "--out", "-o", help="Sweep folder: OUT/MODEL.PRECISION/ and OUT/sweep.json."
    ),
    address: str | None = typer.Option(None, "--address", help="Ray cluster address (default: a local Ray)."),
    bench: bool = typer.Option(False, "--bench", help="Benchmark each artifact, each on a whole node."),
    runs: int = typer.Option(20, "--runs", min=1, help="Timed runs per benchmark (with --bench)."),
    export_cpus: int = typer.Option(1, "--export-cpus", min=1, help="CPUs (torch threads) per export task."),
    force: bool = force_option("Replace existing export folders (each only once its new one is complete)."),
    as_json: bool = json_option("the sweep rows"),
) -> None:
    """Export models × precisions as Ray tasks (one folder each, atomic), optionally benchmark each on a node."""
    require_export_stack()
    from ..convert.options import ExportOptions
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
    if not result.passed:
        fail(
            "parity failed or export refused for: "
            + ", ".join(f"{r['model']}.{r['precision']}" for r in result.exports if not r.get("passed")),
            1,
        )
