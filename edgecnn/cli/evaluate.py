"""``edgecnn eval``: accuracy of exported artifacts on a labelled folder, side by side (torch-free)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from .app import app, handle_errors
from .options import EpDefaultCpu, Force, Json, LabelsFrom, MdOut, refuse_existing

Data = Annotated[
    Path,
    typer.Option(
        "--data",
        help="An ImageFolder (one subfolder per class, named by label or index), "
        "a CSV of path,label, or a folder with images/ and masks/ (segmentation).",
    ),
]
LabelsFromOption = Annotated[
    LabelsFrom,
    typer.Option(
        "--labels-from",
        help="card: match folder names to the model's labels; folder: classes are the sorted folder names.",
    ),
]


@app.command("eval")
@handle_errors
def eval_cmd(
    models: Annotated[
        list[Path], typer.Argument(help="Exported .onnx, .tflite or .pte files; the first is the baseline.")
    ],
    data: Data,
    labels_from: LabelsFromOption = LabelsFrom.card,
    ep: EpDefaultCpu = None,
    as_json: Json = False,
    md_out: MdOut = None,
    force: Force = False,
) -> None:
    """Top-1/top-5 (or pixel accuracy and mIoU) of each artifact on labelled data, with bootstrap 95% intervals."""
    from ..core.files import write_text_atomic
    from ..core.paths import refuse_output_over_inputs
    from ..runtime.evaluate import evaluate
    from .options import session_providers

    if md_out is not None:  # never onto a model, the data folder's files, the CSV or an image it lists
        refuse_output_over_inputs(md_out, [*models, data, *_csv_images(data, md_out)], "--md")
    refuse_existing(md_out, force, "--md")
    show = None if as_json else (lambda done, total: print(f"\r  {done}/{total} images", end="", file=sys.stderr))
    result = evaluate(
        [str(m) for m in models], data, labels_from=labels_from.value, providers=session_providers(ep), progress=show
    )
    if show:
        print(file=sys.stderr)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        typer.echo(result.to_markdown())
    for path, reason in result.unreadable if as_json else ():  # the markdown lists them itself
        typer.echo(f"unreadable: {path}: {reason}", err=True)
    if md_out:
        typer.echo(f"wrote {write_text_atomic(md_out, result.to_markdown())}", err=as_json)


def _csv_images(data: Path, output: Path) -> list[Path]:
    """The image paths a CSV data file lists, for the check that a report does not replace one of them.

    Only an existing output can be one of those files, so the CSV is read only then. The reading is lenient
    (undecodable bytes replaced, every row's first cell taken): it names files to protect, it judges nothing;
    ``evaluate`` reads the CSV for real.
    """
    import csv

    if not data.is_file() or not output.exists():
        return []
    try:
        with data.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
            cells = [row[0].strip() for row in csv.reader(fh) if row and row[0].strip()]
    except (OSError, csv.Error):
        return []  # evaluate says what is wrong with the file
    return [p if p.is_absolute() else data.parent / p for p in map(Path, cells)]
