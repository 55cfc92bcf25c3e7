"""``edgecnn export``, ``mobile``, ``int8-report``, ``validate``: the commands that need the export stack.

Their heavy imports are inside the commands, so a device install (no torch) still loads the CLI; there they
end in one line naming ``pip install "edgecnn[export]"`` (see ``app.handle_errors``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer
import typer.core

from ..core.errors import EdgeCNNError
from ..core.text import text_table
from .app import app, fail, handle_errors, require_export_stack
from .options import (
    each_ep_option,
    ep_option,
    force_option,
    input_size_option,
    json_option,
    out_option,
    provider_entries,
    weights_option,
)


class _OptionalValueCommand(typer.core.TyperCommand):
    """Lets ``--int8`` be given bare (static QDQ) or as ``--int8 auto``: Typer has no optional-value options."""

    def parse_args(self, ctx, args):
        fixed = []
        for i, arg in enumerate(args):
            nxt = args[i + 1] if i + 1 < len(args) else None
            fixed.append("--int8=static" if arg == "--int8" and nxt not in ("auto", "static") else arg)
        return super().parse_args(ctx, fixed)


def _progress(quiet: bool):
    t0 = time.perf_counter()
    return None if quiet else (lambda step: typer.echo(f"  [{time.perf_counter() - t0:6.1f}s] {step}", err=True))


@app.command("export", cls=_OptionalValueCommand)
@handle_errors
def export_cmd(
    name: str = typer.Argument(..., help="Model name or alias, or 'all' for every model."),
    weights: str | None = weights_option(
        "Checkpoint file, or a published checkpoint name ('imagenet'). Default: random init."
    ),
    num_classes: int | None = typer.Option(
        None, "--num-classes", help="Classifier size (default: the model's or checkpoint's)."
    ),
    input_size: str | None = input_size_option(),
    batch: str = typer.Option("dynamic", "--batch", help="'dynamic' or a fixed batch size."),
    opset: int = typer.Option(18, "--opset", help="ONNX opset (18-21)."),
    fp16: bool = typer.Option(False, "--fp16", help="Also write an fp16 artifact (fp32 inputs/outputs kept)."),
    int8: str | None = typer.Option(
        None,
        "--int8",
        metavar="[auto]",
        help="Also write an int8 artifact (static QDQ). '--int8 auto' keeps the fastest form that meets parity.",
    ),
    calib: Path | None = typer.Option(
        None, "--calib", help="Folder of calibration images (jpg/png/bmp/webp). Default: bundled sample photographs."
    ),
    calib_count: int | None = typer.Option(None, "--calib-count", help="Number of calibration images to use."),
    calib_method: str = typer.Option("minmax", "--calib-method", help="minmax, entropy, percentile or auto."),
    int8_weight_bits: int = typer.Option(
        7,
        "--int8-weight-bits",
        help="7 (default: correct on every CPU) or 8 (a little more accurate; only for targets with VNNI or ARM: "
        "x86 CPUs without VNNI saturate 8-bit weights).",
    ),
    no_simplify: bool = typer.Option(False, "--no-simplify", help="Skip onnxsim."),
    out: Path | None = out_option("Output folder (default: exported/NAME; with 'all', the parent folder)."),
    force: bool = force_option("Replace an existing export (only once the new one has succeeded)."),
    labels: Path | None = typer.Option(None, "--labels", help="Text file with one class name per line."),
    embed_preprocess: bool = typer.Option(
        False,
        "--embed-preprocess",
        help="Also write twins (*.nhwc_uint8.onnx) that take uint8 NHWC pixels, already resized/cropped, and "
        "normalise inside the graph.",
    ),
    bundle: bool = typer.Option(
        False,
        "--bundle",
        help="Also write a deployment bundle (OUT/bundle: models, labels, golden input/output, bundle.json); "
        "check it with 'edgecnn selftest'.",
    ),
    as_json: bool = json_option("the manifest"),
) -> None:
    """Export a model to simplified ONNX (fp32, optionally fp16/int8), check parity, write a manifest."""
    require_export_stack()
    from ..pipeline import export
    from .zoo import _registry

    if int8 not in (None, "static", "auto"):
        fail(f"--int8 takes no value or 'auto', got '{int8}'")
    every = name.lower() == "all"
    names = _registry()[1]() if every else [name]
    if every and weights is not None:
        fail("--weights cannot be used with 'all'; export the model it belongs to")
    command = "edgecnn " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("edgecnn") else None
    options = dict(
        weights=weights,
        num_classes=num_classes,
        input_size=input_size,
        batch=batch,
        opset=opset,
        fp16=fp16,
        int8=int8 or False,
        calib=calib,
        calib_count=calib_count,
        calib_method=calib_method,
        int8_weight_bits=int8_weight_bits,
        simplify=not no_simplify,
        force=force,
        labels=labels,
        embed_preprocess=embed_preprocess,
        bundle=bundle,
        command=command,
    )
    failed, manifests = [], []
    for model_name in names:
        out_dir = (out or Path("exported")) / model_name if every else out
        if not as_json:
            typer.echo(f"exporting {model_name}", err=True)
        try:
            result = export(model_name, out_dir, progress=_progress(as_json), **options)
        except EdgeCNNError as exc:
            if len(names) == 1:
                raise
            typer.echo(f"error: {model_name}: {exc}", err=True)
            failed.append(model_name)
            continue
        manifests.append(result.manifest)
        if not result.passed:
            failed.append(model_name)
        if not as_json:
            _print_export(result)
    if as_json:
        typer.echo(json.dumps(manifests[0] if len(names) == 1 and manifests else manifests, indent=2))
    if failed:
        fail(f"parity failed or export refused for: {', '.join(failed)} (see the manifest for details)", 1)


def _print_export(result) -> None:
    rows = []
    for a in result.artifacts:
        p = a.parity
        verdict = ("pass" if p["passed"] else "FAIL") if p.get("judged", True) else "n/a"
        agree = (
            f"top1 {p['top1_agreement']:.3f}" if p.get("top1_agreement") is not None else f"mIoU {p['mean_iou']:.3f}"
        )
        rows.append(
            [
                a.file,
                a.precision,
                f"{a.size_bytes / 1e6:.1f} MB",
                f"{p['max_abs']:.1e}",
                f"{p['cosine']:.5f}",
                agree,
                verdict,
            ]
        )
    typer.echo(text_table(["artifact", "precision", "size", "max abs err", "cosine", "agreement", "parity"], rows))
    for w in result.warnings:
        typer.echo(f"note: {w}", err=True)
    typer.echo(f"wrote {result.out_dir}/ (manifest.json)")
    b = result.manifest.get("bundle")
    if b:
        folder = result.out_dir / b["folder"]
        typer.echo(
            f"bundle: {folder}/ ({len(b['models'])} model(s), self-test "
            f"{'passed' if b['selftest_passed'] else 'FAILED'}); check it anywhere with "
            f"'edgecnn selftest {folder}'"
        )


@app.command("validate")
@handle_errors
def validate_cmd(
    model: Path = typer.Argument(..., help="An exported .onnx file."),
    against: str | None = typer.Option(
        None,
        "--against",
        help="Architecture to compare with instead of the file's card (needed for files without one).",
    ),
    weights: str | None = weights_option(
        "Checkpoint file or published name (default: the checkpoint recorded in the file)."
    ),
    ep: str | None = ep_option(None, " Default: cpu."),
    each_ep: str | None = each_ep_option(),
    data: Path | None = typer.Option(None, "--data", help="Folder of images (default: bundled sample photographs)."),
    count: int = typer.Option(32, "--count", min=1, help="Images to compare on (at most)."),
    as_json: bool = json_option(),
) -> None:
    """Check an artifact against its PyTorch source, per provider session; exit 0 only when every output passes.

    Exit status: 0 all pass, 1 a parity failure, 2 a problem with the input (file, weights, provider).
    """
    require_export_stack()
    from ..convert.validate import table_rows, validate

    result = validate(
        model, against=against, weights=weights, providers=provider_entries(ep, each_ep), data=data, count=count
    )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        w = result.weights
        typer.echo(
            f"{result.path}: {result.model} {result.precision} {result.task}, "
            f"{result.inputs['count']} images ({result.inputs['source']})"
        )
        typer.echo(f"reference weights: {w['path'] or w['source']} ({w['origin']})")
        headers, rows = table_rows(result)
        typer.echo(text_table(headers, rows))
    for skipped in result.inputs["skipped"]:
        typer.echo(f"skipped {skipped['reason']}", err=True)
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    failed = [c for c in result.checks if not c.passed]
    for c in failed:
        for o in c.outputs:
            for reason in o.report.failures:
                typer.echo(f"FAIL {'+'.join(c.requested)} {o.name}: {reason}", err=True)
    if failed:
        fail(
            f"{Path(result.path).name} does not match {result.model} on "
            f"{', '.join('+'.join(c.requested) for c in failed)} (see the table)",
            1,
        )
    if not as_json:
        typer.echo(
            f"PASS: {Path(result.path).name} matches {result.model} on "
            f"{', '.join('+'.join(c.requested) for c in result.checks)}"
        )


@app.command("mobile")
@handle_errors
def mobile_cmd(
    src: str = typer.Argument(
        ...,
        help="An exported .onnx file, or a model name (its export in exported/NAME is "
        "used, or made first with a fixed batch).",
    ),
    out: Path | None = out_option("Output folder (default: mobile/ beside the .onnx)."),
    batch: int = typer.Option(1, "--batch", min=1, help="Batch size to fix."),
    input_size: str | None = input_size_option(
        "S or HxW, for models with dynamic height/width (U-Net; default: "
        "the card's crop). With a model name: the export size."
    ),
    weights: str | None = weights_option("With a model name: weights to export with (a checkpoint, or 'imagenet')."),
    force: bool = force_option("Replace an existing mobile folder (only once the new one is complete)."),
    as_json: bool = json_option("the report"),
) -> None:
    """Make mobile artifacts: fixed-shape ONNX, .ort files, an NNAPI/CoreML partition report.

    Also writes the required-operators configs for minimal onnxruntime builds. Every artifact is parity-checked
    against the source on the CPU provider; the exit status is 1 when one fails.
    """
    require_export_stack()
    from ..deploy.mobile import make_mobile, render_report

    result = make_mobile(
        src, out, batch=batch, input_size=input_size, weights=weights, force=force, progress=_progress(as_json)
    )
    if as_json:
        typer.echo(json.dumps(result.report, indent=2))
    else:
        typer.echo(render_report(result.report))
        typer.echo(f"wrote {result.out_dir}/ (report.json, report.txt)")
    if not result.passed:
        fail(
            "parity failed for: "
            + ", ".join(a.file for a in result.artifacts if not a.parity["passed"])
            + f" (see {result.out_dir / 'report.json'})",
            1,
        )


@app.command("int8-report")
@handle_errors
def int8_report_cmd(
    export_dir: Path = typer.Argument(..., help="An export folder (the one holding manifest.json)."),
    top: int = typer.Option(10, "--top", min=1, help="How many of the most sensitive layers to list."),
    as_json: bool = json_option("the manifest's int8 record"),
) -> None:
    """How an export's int8 artifact was made: calibration, agreement, per-layer sensitivity, fallback, speed gate."""
    from ..convert.int8 import render_report
    from ..core.documents import int8_record

    record = int8_record(export_dir)  # the manifest and its int8 record, types and keys checked (one line if not)
    if not record:
        fail(f"'{export_dir}' holds no int8 record; export with --int8 (or --int8 auto) first")
    typer.echo(json.dumps(record, indent=2) if as_json else render_report(record, top=top))
