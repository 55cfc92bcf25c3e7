"""The ``edgecnn`` command line: thin Typer commands over the Python API.

Each command parses its options, calls the API, renders the result and sets the exit code.
User errors (``EdgeCNNError``) become one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import typer
import typer.core

from ..core.errors import EdgeCNNError
from ..core.text import text_table

app = typer.Typer(
    name="edgecnn",
    help="Classic CNNs from PyTorch to the edge: export to ONNX (fp32/fp16/int8), validate, benchmark, deploy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def fail(message: str, code: int = 2) -> None:
    """Print one error line and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def handle_errors(fn: Callable) -> Callable:
    """Turn user errors into one line on stderr and a non-zero exit; Ctrl-C into exit 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EdgeCNNError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            typer.echo("interrupted; nothing was written over existing artifacts", err=True)
            raise typer.Exit(130)

    return wrapper


def _fmt_params(n: int) -> str:
    return f"{n / 1e6:.1f}M"


@app.command("list")
@handle_errors
def list_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List the architectures: task, parameters, GFLOPs, input size, published checkpoints."""
    from ..models import get_spec, list_models

    specs = [get_spec(n) for n in list_models()]
    if as_json:
        typer.echo(json.dumps([_spec_dict(s) for s in specs], indent=2))
        return
    rows = [
        [s.name, s.task, _fmt_params(s.num_params), f"{s.gflops:.2f}", "x".join(map(str, s.input_size)),
         ", ".join(c.name for c in s.checkpoints) or "-"]
        for s in specs
    ]
    typer.echo(text_table(["name", "task", "params", "GFLOPs", "input", "published checkpoints"], rows))


@app.command("info")
@handle_errors
def info_cmd(name: str = typer.Argument(..., help="Model name or alias."),
             as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show everything known about one architecture."""
    from ..models import get_spec

    spec = get_spec(name)
    data = _spec_dict(spec)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        if key == "checkpoints":
            typer.echo("checkpoints:" + (" (weights='imagenet' takes the first)" if value else " none published"))
            for c in value:
                acc = f"acc@1 {c['acc1']}  acc@5 {c['acc5']}" if c["acc1"] is not None else "no ImageNet accuracy"
                typer.echo(f"  {c['name']:<22} {acc}  resize {c['resize']} crop {c['crop']}  {c['url']}")
        else:  # plain text, not Python reprs: lists joined, options as name=default
            if isinstance(value, dict):
                value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
            elif isinstance(value, list):
                value = ("x" if key.endswith("size") else ", ").join(map(str, value)) or "-"
            typer.echo(f"{key + ':':<18}{value}")


class _OptionalValueCommand(typer.core.TyperCommand):
    """Lets ``--int8`` be given bare (static QDQ) or as ``--int8 auto``: Typer has no optional-value options."""

    def parse_args(self, ctx, args):
        fixed = []
        for i, arg in enumerate(args):
            nxt = args[i + 1] if i + 1 < len(args) else None
            fixed.append("--int8=static" if arg == "--int8" and nxt not in ("auto", "static") else arg)
        return super().parse_args(ctx, fixed)


@app.command("export", cls=_OptionalValueCommand)
@handle_errors
def export_cmd(
    name: str = typer.Argument(..., help="Model name or alias, or 'all' for every model."),
    weights: Optional[str] = typer.Option(None, "--weights", "-w", help="Checkpoint file, or a published checkpoint name ('imagenet'). Default: random init."),
    num_classes: Optional[int] = typer.Option(None, "--num-classes", help="Classifier size (default: the model's or checkpoint's)."),
    input_size: Optional[str] = typer.Option(None, "--input-size", help="S or HxW (default: the model's)."),
    batch: str = typer.Option("dynamic", "--batch", help="'dynamic' or a fixed batch size."),
    opset: int = typer.Option(18, "--opset", help="ONNX opset (18-21)."),
    fp16: bool = typer.Option(False, "--fp16", help="Also write an fp16 artifact (fp32 inputs/outputs kept)."),
    int8: Optional[str] = typer.Option(None, "--int8", metavar="[auto]",
                                       help="Also write an int8 artifact (static QDQ). '--int8 auto' keeps the fastest form that meets parity."),
    calib: Optional[Path] = typer.Option(None, "--calib", help="Folder of calibration images (jpg/png/bmp/webp). Default: bundled sample photographs."),
    calib_count: Optional[int] = typer.Option(None, "--calib-count", help="Number of calibration images to use."),
    calib_method: str = typer.Option("minmax", "--calib-method", help="minmax, entropy, percentile or auto."),
    no_simplify: bool = typer.Option(False, "--no-simplify", help="Skip onnxsim."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default: exported/NAME; with 'all', the parent folder)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing export (only once the new one has succeeded)."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Text file with one class name per line."),
    embed_preprocess: bool = typer.Option(False, "--embed-preprocess", help="Also write twins (*.nhwc_uint8.onnx) that take uint8 NHWC pixels, already resized/cropped, and normalise inside the graph."),
    bundle: bool = typer.Option(False, "--bundle", help="Also write a deployment bundle (OUT/bundle: models, labels, golden input/output, bundle.json); check it with 'edgecnn selftest'."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON on stdout."),
) -> None:
    """Export a model to simplified ONNX (fp32, optionally fp16/int8), check parity, write a manifest."""
    from ..models import list_models
    from ..pipeline import export

    if int8 not in (None, "static", "auto"):
        fail(f"--int8 takes no value or 'auto', got '{int8}'")
    names = list_models() if name.lower() == "all" else [name]
    if name.lower() == "all" and weights is not None:
        fail("--weights cannot be used with 'all'; export the model it belongs to")
    command = "edgecnn " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("edgecnn") else None
    failed, manifests = [], []
    for model_name in names:
        if name.lower() == "all":
            out_dir = (out or Path("exported")) / model_name
        else:
            out_dir = out
        t0 = time.perf_counter()
        show = (lambda step: typer.echo(f"  [{time.perf_counter() - t0:6.1f}s] {step}", err=True)) if not as_json else None
        if not as_json:
            typer.echo(f"exporting {model_name}", err=True)
        try:
            result = export(
                model_name, out_dir, weights=weights, num_classes=num_classes, input_size=input_size, batch=batch,
                opset=opset, fp16=fp16, int8=int8 or False, calib=calib, calib_count=calib_count,
                calib_method=calib_method, simplify=not no_simplify, force=force, labels=labels,
                embed_preprocess=embed_preprocess, bundle=bundle, command=command, progress=show,
            )
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
            if result.manifest.get("bundle"):
                b = result.manifest["bundle"]
                typer.echo(f"bundle: {result.out_dir / b['folder']}/ ({len(b['models'])} model(s), self-test "
                           f"{'passed' if b['selftest_passed'] else 'FAILED'}); check it anywhere with "
                           f"'edgecnn selftest {result.out_dir / b['folder']}'")
    if as_json:
        typer.echo(json.dumps(manifests[0] if len(names) == 1 and manifests else manifests, indent=2))
    if failed:
        fail(f"parity failed or export refused for: {', '.join(failed)} (see the manifest for details)", 1)


def _print_export(result) -> None:
    rows = []
    for a in result.artifacts:
        p = a.parity
        verdict = ("pass" if p["passed"] else "FAIL") if p.get("judged", True) else "n/a"
        agree = (f"top1 {p['top1_agreement']:.3f}" if p.get("top1_agreement") is not None
                 else f"mIoU {p['mean_iou']:.3f}")
        rows.append([a.file, a.precision, f"{a.size_bytes / 1e6:.1f} MB", f"{p['max_abs']:.1e}", f"{p['cosine']:.5f}",
                     agree, verdict])
    typer.echo(text_table(["artifact", "precision", "size", "max abs err", "cosine", "agreement", "parity"], rows))
    for w in result.warnings:
        typer.echo(f"note: {w}", err=True)
    typer.echo(f"wrote {result.out_dir}/ (manifest.json)")


def _spec_dict(spec) -> dict:
    import dataclasses

    from ..models.registry import builder_options

    return {
        "name": spec.name,
        "aliases": list(spec.aliases),
        "family": spec.family,
        "task": spec.task,
        "params": spec.num_params,
        "gflops": spec.gflops,
        "input_size": list(spec.input_size),
        "min_input_size": list(spec.min_input_size),
        "size_multiple": spec.size_multiple,
        "num_classes": spec.num_classes,
        "mean": list(spec.mean),
        "std": list(spec.std),
        "options": builder_options(spec),  # every keyword create_model accepts, with its default
        "paper": spec.paper,
        "checkpoints": [
            {k: v for k, v in dataclasses.asdict(c).items() if k not in ("arch_options",)} for c in spec.checkpoints
        ],
    }


@app.command("predict")
@handle_errors
def predict_cmd(
    model: str = typer.Argument(..., help="An exported .onnx (or .ort) file."),
    inputs: list[str] = typer.Argument(..., help="Image files and/or folders (searched recursively)."),
    top_k: int = typer.Option(5, "--top-k", min=1, help="Classes to show per image (classifiers)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    save_masks: Optional[str] = typer.Option(None, "--save-masks", help="Folder to write masks to as palette "
                                             "PNGs (segmentation models)."),
    ep: str = typer.Option("cpu", "--ep", help="Execution providers, comma-separated, in priority order."),
) -> None:
    """Classify or segment images with an exported model, through the torch-free runtime.

    Broken images are reported and skipped; the exit status is 1 when any was skipped.
    """
    import contextlib
    from pathlib import Path

    from ..core.errors import InputError
    from ..runtime.preprocess import load_image
    from ..runtime.predictor import Predictor

    predictor = Predictor(model, providers=ep)
    if save_masks is not None and predictor.task != "segmentation":
        raise InputError(f"--save-masks is for segmentation models; {Path(model).name} is a {predictor.task} model")
    files, any_folder = _predict_expand(inputs)
    mask_dir = Path(save_masks) if save_masks is not None else None
    if mask_dir is not None:
        mask_dir.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    failed: list[dict] = []
    used_names: set[str] = set()
    bar = (typer.progressbar(length=len(files), label="predicting", file=sys.stderr) if any_folder
           else contextlib.nullcontext())
    with bar:
        for start in range(0, len(files), predictor.batch_size):
            chunk = files[start:start + predictor.batch_size]
            loaded = []
            for path in chunk:
                try:
                    loaded.append((path, load_image(path)))
                except InputError as exc:  # reported after the bar, which a message mid-bar would garble
                    failed.append({"file": str(path), "error": str(exc)})
            outputs = predictor.predict([image for _, image in loaded], top_k=top_k) if loaded else []
            for (path, _), out in zip(loaded, outputs):
                if predictor.task == "classification":
                    results.append({"file": str(path), "predictions": [
                        {"label": label, "probability": prob} for label, prob in out]})
                else:
                    results.append(_predict_mask_entry(path, out, predictor.labels, mask_dir, used_names))
            if any_folder:
                bar.update(len(chunk))

    for item in failed:
        typer.echo(f"skipped {item['error']}", err=True)
    if as_json:
        typer.echo(json.dumps({"model": str(model), "task": predictor.task, "providers": predictor.providers,
                               "results": results, "failed": failed}, indent=2))
    elif predictor.task == "classification":
        rows = [[r["file"] if i == 0 else "", str(i + 1), p["label"], f"{p['probability']:.4f}"]
                for r in results for i, p in enumerate(r["predictions"])]
        typer.echo(text_table(["image", "rank", "label", "probability"], rows))
    else:
        rows = [[r["file"], "x".join(map(str, r["mask_shape"])),
                 ", ".join(f"{k} {v:.0%}" for k, v in r["class_fractions"].items()), r["mask_file"] or "-"]
                for r in results]
        typer.echo(text_table(["image", "mask", "classes", "saved"], rows))
    if failed:
        typer.echo(f"error: {len(failed)} of {len(files)} images could not be read (listed above)", err=True)
        raise typer.Exit(1)


def _predict_expand(inputs: list[str]) -> tuple[list, bool]:
    """Files named directly, plus the images found in folders; whether any folder was given."""
    from pathlib import Path

    from ..core.errors import InputError
    from ..runtime.preprocess import IMAGE_SUFFIXES, list_images

    files, any_folder = [], False
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = list_images(path)
            if not found:
                raise InputError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            files.extend(found)
            any_folder = True
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{path}: no such file or folder")
    return files, any_folder


def _predict_mask_entry(path, mask, labels, mask_dir, used_names: set) -> dict:
    """One segmentation result: class fractions, and the mask written as a palette PNG when asked."""
    import numpy as np

    values, counts = np.unique(mask, return_counts=True)
    name_of = (lambda v: labels[v] if labels and v < len(labels) else str(v))  # noqa: E731
    entry = {"file": str(path), "mask_shape": list(mask.shape),
             "class_fractions": {name_of(int(v)): float(c) / mask.size for v, c in zip(values, counts)},
             "mask_file": None}
    if mask_dir is not None:
        stem, n = path.stem, 1
        while stem + ".png" in used_names:  # two inputs with the same name from different folders
            stem, n = f"{path.stem}_{n}", n + 1
        used_names.add(stem + ".png")
        entry["mask_file"] = str(_predict_save_mask(mask, mask_dir / (stem + ".png")))
    return entry


def _predict_save_mask(mask, dest):
    """Write a class mask as a PNG (palette for ≤ 256 classes, 16-bit otherwise), atomically."""
    import os
    import tempfile

    import numpy as np
    from PIL import Image

    from ..core.errors import ArtifactError

    if mask.dtype == np.uint8:
        image = Image.frombytes("P", (mask.shape[1], mask.shape[0]), np.ascontiguousarray(mask).tobytes())
        image.putpalette(_predict_palette())
    else:
        image = Image.fromarray(mask.astype(np.uint16))
    fd, tmp = tempfile.mkstemp(suffix=".png.tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            image.save(fh, format="PNG")
        os.replace(tmp, dest)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise ArtifactError(f"{dest}: cannot write mask ({exc})") from None
    return dest


def _predict_palette() -> list[int]:
    """The PASCAL VOC colour map: class 0 black, then well-separated colours (bit-interleaved index)."""
    palette = []
    for index in range(256):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette.extend((r, g, b))
    return palette


@app.command("providers")
@handle_errors
def providers_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List onnxruntime execution providers: short name, ORT name, whether this build has it, how to get it."""
    import onnxruntime

    from ..runtime.providers import PROVIDERS, available

    here = set(available())
    data = [{"name": p.name, "ort_name": p.ort_name, "kind": p.kind, "available": p.name in here,
             "install": p.install} for p in PROVIDERS.values()]
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    rows = [[d["name"], d["ort_name"], d["kind"], "yes" if d["available"] else "no",
             "-" if d["available"] else d["install"]] for d in data]
    typer.echo(f"onnxruntime {onnxruntime.__version__} ({', '.join(onnxruntime.get_available_providers())})")
    typer.echo(text_table(["ep", "onnxruntime name", "kind", "here", "how to get it"], rows))


def _bench_ints(text: str, what: str) -> list[int]:
    from ..core.errors import InputError

    try:
        values = [int(v) for v in text.replace("x", ",").split(",") if v.strip()]
    except ValueError:
        raise InputError(f"{what} must be integers separated by commas, got {text!r}") from None
    if not values or min(values) < 1:
        raise InputError(f"{what} must be positive integers, got {text!r}")
    return values


@app.command("bench")
@handle_errors
def bench_cmd(
    models: list[str] = typer.Argument(..., help="ONNX files to benchmark, timed side by side."),
    ep: str = typer.Option("cpu", "--ep", help="Execution providers, each benchmarked on its own: cpu,cuda. "
                           "Join with + for one session with a priority list: tensorrt+cuda."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Intra-op threads (and torch threads)."),
    batch: str = typer.Option("1", "--batch", help="Batch sizes, e.g. 1,8."),
    warmup: int = typer.Option(10, "--warmup", help="Untimed runs per configuration."),
    runs: Optional[int] = typer.Option(None, "--runs", help="Timed runs per configuration (default 50)."),
    seconds: Optional[float] = typer.Option(None, "--seconds", help="Instead of --runs: seconds per configuration."),
    torch_baseline: bool = typer.Option(False, "--torch", help="Also time the PyTorch eager model, side by side."),
    input_size: Optional[str] = typer.Option(None, "--input-size", help="H,W for models with dynamic height/width."),
    graph_opt: str = typer.Option("all", "--graph-opt", help="onnxruntime graph optimization: disable/basic/extended/all."),
    json_out: Optional[str] = typer.Option(None, "--json", help="Write the results as JSON (docs/bench_schema.md)."),
    md_out: Optional[str] = typer.Option(None, "--md", help="Write a markdown table."),
) -> None:
    """Time ONNX models: latency percentiles, throughput, memory, per execution provider."""
    from ..runtime.bench import benchmark_many, report_dict, table_rows, to_markdown
    from ..core.errors import InputError
    from ..core.files import write_text_atomic
    from ..runtime.providers import parse_entries

    entries = parse_entries(ep)
    size = None
    if input_size:
        hw = _bench_ints(input_size, "--input-size")
        if len(hw) not in (1, 2):
            raise InputError(f"--input-size is H,W or one number, got {input_size!r}")
        size = (hw[0], hw[-1])
    results = benchmark_many(models, providers=entries, threads=threads, batch_sizes=_bench_ints(batch, "--batch"),
                             warmup=warmup, runs=runs, seconds=seconds, torch_baseline=torch_baseline,
                             input_size=size, graph_opt=graph_opt)
    headers, rows = table_rows(results)
    typer.echo(text_table(headers, rows))
    typer.echo(f"\n{results[0].method}; threads: {results[0].threads.requested or 'default'}")
    for r in results:
        if r.node_assignment and len(r.node_assignment) > 1:
            typer.echo(f"{r.model_path}: nodes per provider " +
                       ", ".join(f"{k} {v}" for k, v in r.node_assignment.items()))
    if json_out:
        typer.echo(f"wrote {write_text_atomic(json_out, json.dumps(report_dict(results), indent=2) + chr(10))}")
    if md_out:
        typer.echo(f"wrote {write_text_atomic(md_out, to_markdown(results))}")


@app.command("validate")
@handle_errors
def validate_cmd(
    model: Path = typer.Argument(..., help="An exported .onnx file."),
    against: Optional[str] = typer.Option(None, "--against", help="Architecture to compare with instead of the "
                                          "file's card (needed for files without one)."),
    weights: Optional[str] = typer.Option(None, "--weights", "-w", help="Checkpoint file or published name "
                                          "(default: the checkpoint recorded in the file)."),
    ep: str = typer.Option("cpu", "--ep", help="Execution providers, each checked on its own: cpu,cuda. "
                           "Join with + for one session with a priority list: tensorrt+cuda."),
    data: Optional[Path] = typer.Option(None, "--data", help="Folder of images (default: bundled sample photographs)."),
    count: int = typer.Option(32, "--count", min=1, help="Images to compare on (at most)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Check an artifact against its PyTorch source on each provider; exit 0 only when every output passes.

    Exit status: 0 all pass, 1 a parity failure, 2 a problem with the input (file, weights, provider).
    """
    from ..convert.validate import table_rows, validate

    result = validate(model, against=against, weights=weights, providers=ep, data=data, count=count)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        w = result.weights
        typer.echo(f"{result.path}: {result.model} {result.precision} {result.task}, "
                   f"{result.inputs['count']} images ({result.inputs['source']})")
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
        fail(f"{Path(result.path).name} does not match {result.model} on "
             f"{', '.join('+'.join(c.requested) for c in failed)} (see the table)", 1)
    if not as_json:
        typer.echo(f"PASS: {Path(result.path).name} matches {result.model} on "
                   f"{', '.join('+'.join(c.requested) for c in result.checks)}")


@app.command("mobile")
@handle_errors
def mobile_cmd(
    src: str = typer.Argument(..., help="An exported .onnx file, or a model name (its export in exported/NAME is "
                              "used, or made first with a fixed batch)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default: mobile/ beside the .onnx)."),
    batch: int = typer.Option(1, "--batch", min=1, help="Batch size to fix."),
    input_size: Optional[str] = typer.Option(None, "--input-size", help="S or HxW, for models with dynamic height/width (U-Net; default: the card's crop). With a model name: the export size."),
    weights: Optional[str] = typer.Option(None, "--weights", "-w", help="With a model name: weights to export with (a checkpoint, or 'imagenet')."),
    force: bool = typer.Option(False, "--force", help="Replace an existing mobile folder (only once the new one is complete)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
) -> None:
    """Make mobile artifacts: fixed-shape ONNX, .ort files, an NNAPI/CoreML partition report.

    Also writes the required-operators configs for minimal onnxruntime builds. Every artifact is parity-checked
    against the source on the CPU provider; the exit status is 1 when one fails.
    """
    from ..deploy.mobile import make_mobile, render_report

    t0 = time.perf_counter()
    show = (lambda step: typer.echo(f"  [{time.perf_counter() - t0:6.1f}s] {step}", err=True)) if not as_json else None
    result = make_mobile(src, out, batch=batch, input_size=input_size, weights=weights, force=force, progress=show)
    if as_json:
        typer.echo(json.dumps(result.report, indent=2))
    else:
        typer.echo(render_report(result.report))
        typer.echo(f"wrote {result.out_dir}/ (report.json, report.txt)")
    if not result.passed:
        fail("parity failed for: " + ", ".join(a.file for a in result.artifacts if not a.parity["passed"])
             + f" (see {result.out_dir / 'report.json'})", 1)


@app.command("selftest")
@handle_errors
def selftest_cmd(
    bundle: Path = typer.Argument(..., help="A bundle folder (made by 'edgecnn export NAME --bundle') or its bundle.json."),
    ep: str = typer.Option("cpu", "--ep", help="Execution providers, comma-separated, in priority order (test the one your app uses)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Prove this runtime reproduces a bundle's golden outputs: files against bundle.json, then each model.

    Exit status 0 when every model matches within its precision's tolerance, 1 when one does not.
    """
    from ..deploy.bundle import selftest

    result = selftest(bundle, providers=ep)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        rows = [[c.file, c.precision, f"{c.max_abs:.1e}", f"{c.max_rel:.1e}", f"{c.cosine:.6f}",
                 "-" if c.top1_agreement is None else f"{c.top1_agreement:.2f}", ", ".join(c.providers),
                 "pass" if c.passed else "FAIL"] for c in result.checks]
        typer.echo(text_table(["model", "precision", "max abs err", "max rel err", "cosine", "top1", "providers",
                           "result"], rows))
        typer.echo(f"{result.files_verified} files match bundle.json; onnxruntime {result.onnxruntime}")
        for c in result.checks:
            if not c.passed:
                typer.echo(f"{c.file}: " + "; ".join(c.failures), err=True)
    if not result.passed:
        fail("self-test FAILED: this runtime does not reproduce the golden outputs", 1)


@app.command("int8-report")
@handle_errors
def int8_report_cmd(
    export_dir: Path = typer.Argument(..., help="An export folder (the one holding manifest.json)."),
    top: int = typer.Option(10, "--top", min=1, help="How many of the most sensitive layers to list."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest's int8 record as JSON."),
) -> None:
    """How an export's int8 artifact was made: calibration, agreement, per-layer sensitivity, fallback, speed gate."""
    from ..convert.int8 import render_report
    from ..pipeline import read_manifest

    record = read_manifest(export_dir).get("int8")
    if not record:
        fail(f"'{export_dir}' holds no int8 record; export with --int8 (or --int8 auto) first")
    typer.echo(json.dumps(record, indent=2) if as_json else render_report(record, top=top))


def main() -> None:  # pragma: no cover - console entry for `python -m edgecnn`
    app()
