"""``edgecnn validate``, ``mobile``, ``int8-report``: the commands over an export's artifacts (export stack).

Their heavy imports are inside the commands, so a device install (no torch) still loads the CLI; there they
end in one line naming ``pip install "edgecnn[export]"`` (see ``app.handle_errors``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..core.text import text_table
from .app import app, fail, handle_errors, require_export_stack
from .export import _progress
from .options import EachEp, EpDefaultCpu, Force, InputSize, Json, Out, Weights, provider_entries

Against = Annotated[
    str | None,
    typer.Option("--against", help="Architecture to compare with instead of the file's card (needed without one)."),
]
Data = Annotated[Path | None, typer.Option("--data", help="Folder of images (default: bundled sample photographs).")]
Count = Annotated[int, typer.Option("--count", min=1, help="Images to compare on (at most).")]
FixedBatch = Annotated[int, typer.Option("--batch", min=1, help="Batch size to fix.")]
Top = Annotated[int, typer.Option("--top", min=1, help="How many of the most sensitive layers to list.")]


@app.command("validate")
@handle_errors
def validate_cmd(
    model: Annotated[Path, typer.Argument(help="An exported .onnx file.")],
    against: Against = None,
    weights: Weights = None,
    ep: EpDefaultCpu = None,
    each_ep: EachEp = None,
    data: Data = None,
    count: Count = 32,
    as_json: Json = False,
) -> None:
    """Check an artifact against its PyTorch source, per provider session; exit 0 only when every output passes.

    Weights default to the checkpoint recorded in the file. Exit status: 0 all pass, 1 a parity failure, 2 a
    problem with the input (file, weights, provider).
    """
    require_export_stack()
    from ..convert.validate import validate

    providers = provider_entries(ep, each_ep)
    result = validate(model, against=against, weights=weights, providers=providers, data=data, count=count)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        _print_validation(result)
    failed = _say_failures(result)
    if failed:
        on = ", ".join("+".join(c.requested) for c in failed)
        fail(f"{Path(result.path).name} does not match {result.model} on {on} (see the table)", 1)
    if not as_json:
        on = ", ".join("+".join(c.requested) for c in result.checks)
        typer.echo(f"PASS: {Path(result.path).name} matches {result.model} on {on}")


def _print_validation(result) -> None:
    from ..convert.validate import table_rows

    w = result.weights
    typer.echo(
        f"{result.path}: {result.model} {result.precision} {result.task}, "
        f"{result.inputs['count']} images ({result.inputs['source']})"
    )
    typer.echo(f"reference weights: {w['path'] or w['source']} ({w['origin']})")
    headers, rows = table_rows(result)
    typer.echo(text_table(headers, rows))


def _say_failures(result) -> list:
    """Skipped images, notes and each failing output on stderr; the checks that failed."""
    for skipped in result.inputs["skipped"]:
        typer.echo(f"skipped {skipped['reason']}", err=True)
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    failed = [c for c in result.checks if not c.passed]
    for c in failed:
        for o in c.outputs:
            for reason in o.report.failures:
                typer.echo(f"FAIL {'+'.join(c.requested)} {o.name}: {reason}", err=True)
    return failed


@app.command("mobile")
@handle_errors
def mobile_cmd(
    src: Annotated[
        str, typer.Argument(help="An exported .onnx file, or a model name (exported/NAME, made if need be).")
    ],
    out: Out = None,
    batch: FixedBatch = 1,
    input_size: InputSize = None,
    weights: Weights = None,
    force: Force = False,
    as_json: Json = False,
) -> None:
    """Make mobile artifacts: fixed-shape ONNX, .ort files, an NNAPI/CoreML partition report.

    --out defaults to mobile/ beside the .onnx. --input-size is for models with dynamic height/width (U-Net;
    default: the card's crop), and with a model name the export size; --weights goes with a model name. Also
    writes the required-operators configs for minimal onnxruntime builds. Every artifact is parity-checked
    against the source on the CPU provider; the exit status is 1 when one fails.
    """
    require_export_stack()
    from ..deploy.mobile import render_report
    from ..pipeline import make_mobile

    result = make_mobile(
        src, out, batch=batch, input_size=input_size, weights=weights, force=force, progress=_progress(as_json)
    )
    if as_json:
        typer.echo(json.dumps(result.report, indent=2))
    else:
        typer.echo(render_report(result.report))
        typer.echo(f"wrote {result.out_dir}/ (report.json, report.txt)")
    if not result.passed:
        files = ", ".join(a.file for a in result.artifacts if not a.parity["passed"])
        fail(f"parity failed for: {files} (see {result.out_dir / 'report.json'})", 1)


@app.command("int8-report")
@handle_errors
def int8_report_cmd(
    export_dir: Annotated[Path, typer.Argument(help="An export folder (the one holding manifest.json).")],
    top: Top = 10,
    as_json: Json = False,
) -> None:
    """How an export's int8 artifact was made: calibration, agreement, per-layer sensitivity, fallback, speed gate."""
    from ..convert.int8 import render_report
    from ..core.documents import int8_record

    record = int8_record(export_dir)  # the manifest and its int8 record, types and keys checked (one line if not)
    if not record:
        fail(f"'{export_dir}' holds no int8 record; export with --int8 (or --int8 auto) first")
    typer.echo(json.dumps(record, indent=2) if as_json else render_report(record, top=top))
