"""``edgecnn compare``: which file to ship — one table across formats, precisions and runtimes, and a recommendation.

A model name is exported first (``pipeline.choose``: into compare's own folder, the export stack needed); a folder
of exported files or a bundle is measured as it is, on the device install too. Exit 0 with a recommendation, 1 when
no artifact passes, 2 for bad input.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from .app import app, handle_errors
from .options import EachEp, EpDefaultCpu, Force, InputSize, Json, LabelsFrom, Out, Threads, Weights, refuse_existing

Target = Annotated[str, typer.Argument(help="A model name (exported first), or a folder of exported files / bundle.")]
Formats = Annotated[
    str | None,
    typer.Option("--formats", help="Comma-separated: onnx, tflite, pte, coreml (default: all this install has)."),
]
PrecisionList = Annotated[
    str | None, typer.Option("--precisions", help="Comma-separated: fp32, fp16, int8 (default: fp32,int8).")
]
Data = Annotated[
    Path | None, typer.Option("--data", help="A labelled folder (as eval takes): accuracy with bootstrap intervals.")
]
Margin = Annotated[
    float, typer.Option("--margin", min=0.0, help="Points of top-1 (pixel accuracy) an artifact may lose to fp32.")
]
Seconds = Annotated[float, typer.Option("--seconds", min=0.05, help="Timed work per row, interleaved in rounds.")]
MdReport = Annotated[
    Path | None, typer.Option("--md", help="Also write the table as markdown here, and the plot beside it (.svg).")
]


@app.command("compare")
@handle_errors
def compare_cmd(
    target: Target,
    formats: Formats = None,
    precisions: PrecisionList = None,
    ep: EpDefaultCpu = None,
    each_ep: EachEp = None,
    data: Data = None,
    labels_from: LabelsFrom = LabelsFrom.card,
    margin: Margin = 1.0,
    seconds: Seconds = 1.0,
    threads: Threads = None,
    weights: Weights = None,
    num_classes: Annotated[int | None, typer.Option("--num-classes", help="Classifier size.")] = None,
    input_size: InputSize = None,
    calib: Annotated[Path | None, typer.Option("--calib", help="Folder of calibration images for int8.")] = None,
    out: Out = None,
    as_json: Json = False,
    md_out: MdReport = None,
    force: Force = False,
) -> None:
    """One row per format × precision × runtime: parity on golden outputs, accuracy, latency, memory, and the
    fastest artifact that is still right."""
    from ..core.files import write_text_atomic
    from ..pipeline.choose import compare
    from ..runtime.choose import ChooseOptions
    from .options import provider_entries

    plot = md_out.with_suffix(".svg") if md_out is not None else None
    for path, flag in ((md_out, "--md"), (plot, "--md's plot")):
        refuse_existing(path, force, flag)
    options = ChooseOptions(
        formats=_split(formats),
        precisions=_split(precisions),
        # .onnx rows: each --each-ep entry, or the one --ep session; neither: cpu, and openvino where installed
        eps=tuple(tuple(e) for e in provider_entries(ep, each_ep)) if ep or each_ep else None,
        data=data,
        labels_from=labels_from.value,
        margin=margin,
        threads=threads,
        seconds=seconds,
    )
    export_options = _export_options(target, weights, num_classes, input_size, calib)
    run = compare(target, options, export_options, out_dir=out, force=force, progress=_progress(as_json))
    result = run.choice
    if as_json:
        typer.echo(json.dumps({"folder": str(run.folder), "exported": run.exported, **result.to_dict()}, indent=2))
    else:
        typer.echo(result.to_markdown())
    if md_out is not None:
        typer.echo(f"wrote {write_text_atomic(md_out, result.to_markdown())}", err=True)
        typer.echo(f"wrote {write_text_atomic(plot, result.to_svg())}", err=True)
    if result.recommended is None:
        raise typer.Exit(1)


def _export_options(target: str, weights, num_classes, input_size, calib):
    """The export's options for a model name (None: its defaults); refused for a folder, which is read as it is."""
    from ..core.errors import InputError
    from ..pipeline.choose import is_artifact_folder
    from ..pipeline.options import ExportOptions

    given = {"--weights": weights, "--num-classes": num_classes, "--input-size": input_size, "--calib": calib}
    named = [flag for flag, value in given.items() if value is not None]
    if not named:
        return None
    if is_artifact_folder(target):
        raise InputError(f"{', '.join(named)}: export options apply to a model name, not to the folder {target}")
    return ExportOptions(weights=weights, num_classes=num_classes, input_size=input_size, calib=calib)


def _split(value: str | None) -> tuple | None:
    return tuple(v.strip().lower() for v in value.split(",") if v.strip()) if value else None


def _progress(quiet: bool):
    t0 = time.perf_counter()
    return None if quiet else (lambda step: print(f"  [{time.perf_counter() - t0:6.1f}s] {step}", file=sys.stderr))
