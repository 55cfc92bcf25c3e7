"""``edgecnn eval``: accuracy of exported artifacts on a labelled folder, side by side (torch-free)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from ..core.text import text_table
from .app import app, handle_errors
from .options import ep_option, force_option, json_option, refuse_existing


@app.command("eval")
@handle_errors
def eval_cmd(
    models: list[Path] = typer.Argument(..., help="Exported .onnx files; the first is the baseline of the differences."),
    data: Path = typer.Option(..., "--data", help="An ImageFolder (one subfolder per class, named by label or index), "
                              "a CSV of path,label, or a folder with images/ and masks/ (segmentation)."),
    labels_from: str = typer.Option("card", "--labels-from", help="card: match folder names to the model's labels; "
                                    "folder: classes are the sorted folder names."),
    ep: Optional[str] = ep_option(None, " Default: cpu."),
    as_json: bool = json_option("the result"),
    md_out: Optional[Path] = typer.Option(None, "--md", help="Also write the tables as markdown."),
    force: bool = force_option("Replace the file --md names."),
) -> None:
    """Top-1/top-5 (or pixel accuracy and mIoU) of each artifact on labelled data, with bootstrap 95% intervals."""
    from ..core.errors import InputError
    from ..core.files import write_text_atomic
    from ..runtime.evaluate import evaluate
    from .options import session_providers

    if labels_from not in ("card", "folder"):
        raise InputError(f"--labels-from takes 'card' or 'folder', got {labels_from!r}")
    refuse_existing(md_out, force, "--md")
    show = None if as_json else (lambda done, total: print(f"\r  {done}/{total} images", end="", file=sys.stderr))
    result = evaluate([str(m) for m in models], data, labels_from=labels_from, providers=session_providers(ep),
                      progress=show)
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
