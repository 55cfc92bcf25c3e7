"""``edgecnn export``: a model to ONNX (fp32, fp16, int8) with its manifest; it needs the export stack.

Written with Click itself (``CLICK_COMMANDS``; the app's group adds it), because ``--int8`` takes an optional
value (``--int8``, ``--int8 auto``, ``--int8=auto``), which Typer cannot say. Its heavy imports are inside the
command, so a device install (no torch) still loads the CLI; there it ends in one line naming
``pip install "edgecnn[export]"`` (see ``app.handle_errors``).
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import click
import typer

from ..core.errors import EdgeCNNError
from ..core.text import text_table
from .app import CLICK_COMMANDS, fail, handle_errors, require_export_stack
from .options import FORCE_HELP, CalibMethod, Int8Policy, refuse_unused

# `export --json` prints one shape for one model and for `all`: {"edgecnn_export": 2, "exports": [...], ...}
EXPORT_JSON_VERSION = 2


def _progress(quiet: bool):
    t0 = time.perf_counter()
    return None if quiet else (lambda step: typer.echo(f"  [{time.perf_counter() - t0:6.1f}s] {step}", err=True))


def _int8_value(ctx, param, value):
    """``--int8`` bare is ``static`` (Click's ``flag_value``); ``--int8 auto`` / ``--int8=auto``; else one line."""
    if value is not None and value not in {policy.value for policy in Int8Policy}:
        raise click.BadParameter(f"--int8 takes no value or 'auto', got '{value}'", ctx, param)
    return value


def _size_text(ctx, param, value):
    """``S`` or ``HxW`` as written; ``ExportOptions`` parses it and checks its range."""
    if value is not None and not re.fullmatch(r"\s*\d+\s*([x,]\s*\d+\s*)?", value.lower()):
        raise click.BadParameter(f"input size '{value}' is not a number or HxW (e.g. 224 or 256x320)", ctx, param)
    return value


# Click itself, not Typer: `--int8` takes an optional value (`--int8`, `--int8 auto`), which Typer cannot say.
@click.command("export", context_settings={"help_option_names": ["--help"]})
@click.argument("name")
@click.option(
    "--weights", "-w", help="Checkpoint file, or a published checkpoint name ('imagenet'). Default: random init."
)
@click.option("--num-classes", type=int, help="Classifier size (default: the model's or checkpoint's).")
@click.option("--input-size", callback=_size_text, help="S or HxW (default: the model's).")
@click.option("--batch", default="dynamic", show_default=True, help="'dynamic' or a fixed batch size.")
@click.option("--opset", type=int, default=18, show_default=True, help="ONNX opset (18-21).")
@click.option("--fp16", is_flag=True, help="Also write an fp16 artifact (fp32 inputs/outputs kept).")
@click.option(
    "--int8",
    is_flag=False,
    flag_value="static",
    default=None,
    callback=_int8_value,
    metavar="[auto]",
    help="Also write an int8 artifact (static QDQ). '--int8 auto' keeps the fastest form that meets parity.",
)
@click.option(
    "--calib",
    type=click.Path(path_type=Path),
    help="Folder of calibration images (jpg/png/bmp/webp). Default: bundled sample photographs.",
)
@click.option("--calib-count", type=int, help="Number of calibration images to use.")
@click.option(
    "--calib-method",
    type=click.Choice([m.value for m in CalibMethod]),
    default=CalibMethod.minmax.value,
    show_default=True,
    help="How int8 ranges are calibrated (auto: try each, keep the best agreement).",
)
@click.option(
    "--int8-weight-bits",
    type=int,
    default=7,
    show_default=True,
    help="7 (correct on every CPU) or 8 (a little more accurate; only for targets with VNNI or ARM: "
    "x86 CPUs without VNNI saturate 8-bit weights).",
)
@click.option(
    "--int8-for",
    default="cpu",
    show_default=True,
    help="Runtimes the int8 .onnx is for (cpu, openvino; comma-separated): its speed gate and float-layer "
    "choice are made on each, and a runtime whose choice differs gets NAME.int8.RUNTIME.onnx.",
)
@click.option("--no-simplify", is_flag=True, help="Skip onnxsim.")
@click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path),
    help="Output folder (default: exported/NAME; with 'all', the parent folder).",
)
@click.option("--force", is_flag=True, help=FORCE_HELP)
@click.option("--labels", type=click.Path(path_type=Path), help="Text file with one class name per line.")
@click.option(
    "--embed-preprocess",
    is_flag=True,
    help="Also write twins (*.nhwc_uint8.onnx) that take uint8 NHWC pixels, already resized/cropped, and "
    "normalise inside the graph.",
)
@click.option(
    "--bundle",
    is_flag=True,
    help="Also write a deployment bundle (OUT/bundle: models, labels, golden input/output, bundle.json); "
    "check it with 'edgecnn selftest'.",
)
@click.option(
    "--format",
    "formats",
    default="onnx",
    show_default=True,
    help="Formats to write, comma-separated: onnx, tflite (LiteRT), pte (ExecuTorch), or 'all' that this install "
    "can make. Each is checked on its own runtime.",
)
@click.option(
    "--quantized-io",
    is_flag=True,
    help="The int8 .tflite takes and returns int8 tensors (scale and zero point in the file) instead of float32.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the manifests as JSON on stdout instead of text.")
@handle_errors
def export_cmd(name: str, out: Path | None, as_json: bool, **given) -> None:
    """Export a model to simplified ONNX (fp32, optionally fp16/int8), and with --format to LiteRT (.tflite) and
    ExecuTorch (.pte); check each file's parity against PyTorch on its own runtime, write a manifest.

    NAME is a model name or alias, or 'all' for every model.
    """
    require_export_stack()
    from .zoo import _registry

    every = name.lower() == "all"
    if every and given["weights"] is not None:
        fail("--weights cannot be used with 'all'; export the model it belongs to")
    options = _export_options(given)
    names = _registry()[1]() if every else [name]
    folders = {n: (out or Path("exported")) / n if every else out for n in names}
    manifests, failed = _export_each(folders, options, as_json)
    if as_json:
        record = {"edgecnn_export": EXPORT_JSON_VERSION, "exports": manifests, "failed": failed}
        typer.echo(json.dumps(record, indent=2))
    if failed:
        fail(f"parity failed or export refused for: {', '.join(failed)} (see the manifest for details)", 1)


def _export_each(folders: dict, options, as_json: bool) -> tuple[list, list]:
    """Export each model into its folder; with several, a refused one is said and the next one goes on."""
    from ..pipeline import export

    command = "edgecnn " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("edgecnn") else None
    manifests, failed = [], []
    for model_name, out_dir in folders.items():
        if not as_json:
            typer.echo(f"exporting {model_name}", err=True)
        try:
            result = export(model_name, out_dir, options, command=command, progress=_progress(as_json))
        except EdgeCNNError as exc:
            if len(folders) == 1:
                raise
            typer.echo(f"error: {model_name}: {exc}", err=True)
            failed.append(model_name)
            continue
        manifests.append(result.manifest)
        if not result.passed:
            failed.append(model_name)
        if not as_json:
            _print_export(result)
    return manifests, failed


def _export_options(given: dict):
    """The export's options, built once from the command line: ``ExportOptions`` with its ``Int8Options``."""
    from ..pipeline import ExportOptions, Int8Options

    int8, method, bits = given["int8"], given["calib_method"], given["int8_weight_bits"]
    runtimes = given["int8_for"]
    if int8 is None:  # said, not ignored
        refuse_unused(
            {
                f"--calib-method {method}": method != "minmax",
                f"--int8-weight-bits {bits}": bits != 7,
                f"--int8-for {runtimes}": runtimes != "cpu",
            },
            "{flags} only applies with --int8; add --int8 or drop it",
        )
    same = ("weights", "num_classes", "input_size", "batch", "opset", "fp16", "calib", "calib_count", "labels")
    same += ("embed_preprocess", "bundle", "force", "formats", "quantized_io")  # options named as their fields
    return ExportOptions(
        **{name: given[name] for name in same},
        int8=Int8Options(policy=int8, calib_method=method, weight_bits=bits, runtimes=runtimes) if int8 else None,
        simplify=not given["no_simplify"],
    )


CLICK_COMMANDS["export"] = export_cmd


def _print_export(result) -> None:
    rows = []
    for a in result.artifacts:
        p = a.parity
        if not p.samples:  # converted, not run (a Core ML package off macOS): no figures, the note says why
            rows.append([a.file, a.precision, f"{a.size_bytes / 1e6:.1f} MB", "-", "-", "-", "not run"])
            continue
        verdict = ("pass" if p.passed else "FAIL") if p.judged else "n/a"
        agree = f"top1 {p.top1_agreement:.3f}" if p.top1_agreement is not None else f"mIoU {p.mean_iou:.3f}"
        rows.append(
            [
                a.file,
                a.precision,
                f"{a.size_bytes / 1e6:.1f} MB",
                f"{p.max_abs:.1e}",
                f"{p.cosine:.5f}",
                agree,
                verdict,
            ]
        )
    typer.echo(text_table(["artifact", "precision", "size", "max abs err", "cosine", "agreement", "parity"], rows))
    for a in result.artifacts:
        if a.runtime is not None:  # a .tflite/.pte: what its runtime really ran (the delegate's share)
            typer.echo(f"{a.file} on {a.runtime.get('runtime')}: {'; '.join(a.notes) or 'no delegate report'}")
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
