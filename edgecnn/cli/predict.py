"""``edgecnn predict``: images through an exported model, torch-free; ``--ray`` runs the same on Ray Data.

``predict_cmd`` parses, and ``_route`` is the one place that says which options apply on which path: the loop
here (``Predictor``), or Ray (``edgecnn.scale.predict_dataset``, via ``cli.scale.predict_with_ray``).
"""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from ..core.text import text_table
from .app import app, handle_errors
from .options import Ep, Force, Json, Labels, Threads, refuse_unused, session_providers

RAY_HELP = "Run on Ray Data (edgecnn[ray]): one SOURCE (folder, glob or URI such as s3://...), rows to --output; "
TopK = Annotated[int, typer.Option("--top-k", min=1, help="Classes to show per image (classifiers).")]
SaveMasks = Annotated[
    str | None, typer.Option("--save-masks", help="Folder to write masks to as palette PNGs (segmentation models).")
]
Mean = Annotated[
    str | None,
    typer.Option(
        "--mean", help="Per-channel mean, e.g. 0.485,0.456,0.406 (files without edgecnn metadata; overrides the card)."
    ),
]
Std = Annotated[str | None, typer.Option("--std", help="Per-channel std, e.g. 0.229,0.224,0.225.")]
Crop = Annotated[str | None, typer.Option("--crop", help="Model input size HxW (or S), centre-cropped.")]
UseRay = Annotated[bool, typer.Option("--ray", help=RAY_HELP + "resumable. See docs/SCALE.md.")]
Address = Annotated[str | None, typer.Option("--address", help="With --ray: the cluster (default: local Ray).")]
Workers = Annotated[int | None, typer.Option("--workers", min=1, help="With --ray: inference actors.")]
BatchSize = Annotated[int | None, typer.Option("--batch-size", min=1, help="With --ray: images per batch.")]
Output = Annotated[Path | None, typer.Option("--output", help="With --ray: the Parquet folder (FILE.parquet).")]


@dataclass(frozen=True)
class RayRun:
    """The options of ``predict --ray`` only."""

    output: Path | None = None
    address: str | None = None
    workers: int | None = None
    batch_size: int | None = None


@app.command("predict")
@handle_errors
def predict_cmd(
    model: Annotated[str, typer.Argument(help="An exported .onnx (or .ort), .tflite or .pte (needs torch) file.")],
    inputs: Annotated[list[str], typer.Argument(help="Image files and/or folders (searched recursively).")],
    top_k: TopK = 5,
    as_json: Json = False,
    save_masks: SaveMasks = None,
    ep: Ep = "cpu",
    threads: Threads = None,
    mean: Mean = None,
    std: Std = None,
    crop: Crop = None,
    labels: Labels = None,
    use_ray: UseRay = False,
    address: Address = None,
    workers: Workers = None,
    batch_size: BatchSize = None,
    output: Output = None,
    force: Force = False,
) -> None:
    """Classify or segment images with an exported model, through the torch-free runtime.

    Broken images are reported and skipped; the exit status is 1 when any was skipped. --force (with
    --save-masks) replaces files that have a mask's name (never an input).
    """
    from .predict_io import preprocess_overrides

    ray = RayRun(output, address, workers, batch_size)
    _route(use_ray, ray, inputs, save_masks)
    overrides = preprocess_overrides(mean, std, crop, labels)
    run = dict(top_k=top_k, providers=session_providers(ep), threads=threads, overrides=overrides, as_json=as_json)
    if use_ray:  # Ray Data instead of the loop here (edgecnn.scale; masks go beside the output)
        from .scale import predict_with_ray

        return predict_with_ray(model, inputs[0], ray, **run)
    return predict_here(model, inputs, save_masks=save_masks, force=force, **run)


def _route(use_ray: bool, ray: RayRun, inputs: list[str], save_masks: str | None) -> None:
    """Which path runs, and the options that do not apply on it, refused in one line before anything runs."""
    from ..core.errors import InputError

    if not use_ray:
        given = {"--output": ray.output, "--address": ray.address, "--workers": ray.workers}
        refuse_unused({**given, "--batch-size": ray.batch_size}, "only with --ray: {flags}; add --ray")
        return
    if ray.output is None:
        raise InputError("--ray writes its rows to Parquet: pass --output FILE.parquet")
    refuse_unused(
        {"--save-masks": save_masks}, "with --ray, masks are written beside the output (FILE.masks/); drop {flags}"
    )
    if len(inputs) != 1:
        raise InputError(
            f"--ray takes one SOURCE (a folder, a glob or a URI such as s3://bucket/images/), got {len(inputs)}"
        )


def predict_here(model, inputs, *, top_k, providers, threads, overrides, as_json, save_masks, force) -> None:
    """``predict`` in this process: the images in the Predictor's batch size, masks written as asked."""
    from ..core.errors import InputError
    from ..core.files import output_lock
    from ..runtime.predictor import Predictor
    from .predict_io import expand_inputs, mask_plan

    predictor = Predictor(model, providers=providers, intra_op_threads=threads, **overrides)
    if save_masks is not None and predictor.task != "segmentation":
        raise InputError(f"--save-masks is for segmentation models; {Path(model).name} is a {predictor.task} model")
    files, any_folder = expand_inputs(inputs)
    mask_dir = Path(save_masks) if save_masks is not None else None
    plan = mask_plan(files, mask_dir, force) if mask_dir is not None else {}
    with output_lock(mask_dir) if mask_dir is not None else contextlib.nullcontext():  # one writer per folder
        if mask_dir is not None:
            mask_dir.mkdir(parents=True, exist_ok=True)
        results, failed = _predict_all(predictor, files, any_folder, top_k, plan)
    for item in failed:
        typer.echo(f"skipped {item['error']}", err=True)
    _print_predictions(model, predictor, results, failed, as_json)
    if failed:
        typer.echo(f"error: {len(failed)} of {len(files)} images could not be read (listed above)", err=True)
        raise typer.Exit(1)


def _print_predictions(model, predictor, results: list, failed: list, as_json: bool) -> None:
    if as_json:
        record = {"model": str(model), "task": predictor.task, "providers": predictor.providers}
        typer.echo(json.dumps({**record, "results": results, "failed": failed}, indent=2))
    elif predictor.task == "classification":
        rows = [
            [r["file"] if i == 0 else "", str(i + 1), p["label"], f"{p['probability']:.4f}"]
            for r in results
            for i, p in enumerate(r["predictions"])
        ]
        typer.echo(text_table(["image", "rank", "label", "probability"], rows))
    else:
        rows = [
            [
                r["file"],
                "x".join(map(str, r["mask_shape"])),
                ", ".join(f"{k} {v:.0%}" for k, v in r["class_fractions"].items()),
                r["mask_file"] or "-",
            ]
            for r in results
        ]
        typer.echo(text_table(["image", "mask", "classes", "saved"], rows))


def _predict_all(predictor, files: list, any_folder: bool, top_k: int, mask_plan: dict) -> tuple[list, list]:
    """Run the images in the predictor's batch size; broken ones are collected, not raised."""
    import numpy as np

    from ..core.errors import InputError
    from ..runtime.preprocess import load_image
    from .predict_io import mask_entry

    results: list[dict] = []
    failed: list[dict] = []
    bar = (
        typer.progressbar(length=len(files), label="predicting", file=sys.stderr)
        if any_folder
        else contextlib.nullcontext()
    )
    with bar:
        for start in range(0, len(files), predictor.batch_size):
            chunk = files[start : start + predictor.batch_size]
            loaded = []
            for path in chunk:
                try:  # each photo decoded, made model input (crop-sized) and let go: one decoded at a time
                    loaded.append((path, predictor.preprocess(load_image(path))))
                except InputError as exc:  # reported after the bar, which a message mid-bar would garble
                    failed.append({"file": str(path), "error": str(exc)})
            outputs = (
                predictor.postprocess(predictor.run(np.concatenate([x for _, x in loaded])), top_k) if loaded else []
            )
            for (path, _), out in zip(loaded, outputs):
                if predictor.task == "classification":
                    predictions = [{"label": label, "probability": prob} for label, prob in out]
                    results.append({"file": str(path), "predictions": predictions})
                else:
                    results.append(mask_entry(path, out, predictor.labels, mask_plan.get(path)))
            if any_folder:
                bar.update(len(chunk))
    return results, failed
