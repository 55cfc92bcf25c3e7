"""Fault catalogue rows: misc (gathered into tests/catalogue_cases.py's CASES; setups live here).

Reports (``--md``, ``--json-out``) never land on one of the command's own inputs, with or without ``--force``;
``predict --ray``'s output stays out of its source; bench counts are finite and positive; ``sweep`` checks its
names before Ray starts; ``web`` refuses a model symlinked into an export folder from outside. (The Ray cases that
need a live Ray or leave another run's temp part in place, and the web server's, are tests in test_scale.py and
test_web.py.)
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from catalogue_case import Case

_INPUT = "an input of this command"


def _photo(path: Path) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), (200, 60, 20)).save(path)
    return path


def model_and_data(ctx):
    """m.onnx (the shared tiny classifier), an ImageFolder data/ of two classes, and photos/p0.png."""
    shutil.copyfile(ctx.shared["onnx"], ctx.tmp / "m.onnx")
    for label in ("cat", "dog"):
        _photo(ctx.tmp / "data" / label / "a.png")
    _photo(ctx.tmp / "photos" / "p0.png")


def report_symlink_to_model(ctx):
    model_and_data(ctx)
    os.symlink(ctx.tmp / "m.onnx", ctx.tmp / "report.md")


def report_hardlink_to_model(ctx):
    model_and_data(ctx)
    os.link(ctx.tmp / "m.onnx", ctx.tmp / "report.md")


def csv_data(ctx):
    """labels.csv naming photos/p0.png (outside any data folder: only the CSV says it is an input)."""
    model_and_data(ctx)
    (ctx.tmp / "labels.csv").write_text("path,label\nphotos/p0.png,0\n", encoding="utf-8")


def bundle_with_model(ctx):
    shutil.copytree(ctx.shared["bundle"], ctx.tmp / "b")


def export_with_outside_symlink(ctx):
    """An export folder whose evil.onnx is a symlink to a model outside it (a private file, not the export's)."""
    shutil.copytree(ctx.shared["export"], ctx.tmp / "ex")
    (ctx.tmp / "outside").mkdir()
    shutil.copyfile(ctx.shared["onnx"], ctx.tmp / "outside" / "secret.onnx")
    os.symlink(ctx.tmp / "outside" / "secret.onnx", ctx.tmp / "ex" / "evil.onnx")


def _eval(md: str, data: str = "{tmp}/data", *extra):
    return ("eval", "{tmp}/m.onnx", "--data", data, "--labels-from", "folder", "--md", md, *extra)


def _bench(*extra, model: str = "{tmp}/m.onnx"):
    return ("bench", model, "--runs", "1", "--warmup", "0", *extra)


CASES: list[Case] = [
    # --- reports never land on an input (one helper: core.paths.refuse_output_over_inputs) ------------------
    Case(
        "eval-md-onto-model-force",
        _eval("{tmp}/m.onnx", "{tmp}/data", "--force"),
        2,
        _INPUT,
        "eval --md onto the model being evaluated is refused, with --force too; the model intact",
        model_and_data,
        ("m.onnx",),
    ),
    Case(
        "eval-md-symlink-to-model",
        _eval("{tmp}/report.md", "{tmp}/data", "--force"),
        2,
        _INPUT,
        "a report path that is a symlink to an input is resolved and refused",
        report_symlink_to_model,
        ("m.onnx",),
    ),
    Case(
        "eval-md-hardlink-to-model",
        _eval("{tmp}/report.md", "{tmp}/data", "--force"),
        2,
        "hard link",
        "a report path that is a hard link to an input (same st_dev/st_ino) is refused",
        report_hardlink_to_model,
        ("m.onnx",),
    ),
    Case(
        "eval-md-into-data-folder",
        _eval("{tmp}/data/cat/a.png", "{tmp}/data", "--force"),
        2,
        _INPUT,
        "a report inside the data folder (here onto one of its images) is refused",
        model_and_data,
        ("data/cat/a.png",),
    ),
    Case(
        "eval-md-onto-csv",
        _eval("{tmp}/labels.csv", "{tmp}/labels.csv", "--force"),
        2,
        _INPUT,
        "a report onto the data CSV is refused",
        csv_data,
        ("labels.csv",),
    ),
    Case(
        "eval-md-onto-csv-image",
        _eval("{tmp}/photos/p0.png", "{tmp}/labels.csv", "--force"),
        2,
        _INPUT,
        "a report onto an image the data CSV lists is refused",
        csv_data,
        ("photos/p0.png",),
    ),
    Case(
        "eval-md-elsewhere-ok",
        _eval("{tmp}/report.md"),
        0,
        "wrote",
        "a report beside the inputs (not over or inside them) is written",
        model_and_data,
        ("m.onnx",),
    ),
    Case(
        "bench-json-out-onto-model-force",
        _bench("--json-out", "{tmp}/m.onnx", "--force"),
        2,
        _INPUT,
        "bench --json-out onto the model it times is refused, with --force too; the model intact",
        model_and_data,
        ("m.onnx",),
    ),
    Case(
        "bench-md-hardlink-to-model",
        _bench("--md", "{tmp}/report.md", "--force"),
        2,
        "hard link",
        "bench --md onto a hard link of the model is refused",
        report_hardlink_to_model,
        ("m.onnx",),
    ),
    Case(
        "bench-json-out-into-bundle",
        _bench("--json-out", "{tmp}/b/bundle.json", "--force", model="{tmp}/b/mobilenet_v1.fp32.onnx"),
        2,
        _INPUT,
        "a report onto a file of the bundle holding the model (bundle.json) is refused",
        bundle_with_model,
        ("b/bundle.json",),
    ),
    Case(
        "bench-wasm-json-out-onto-model",
        ("bench", "{tmp}/m.onnx", "--ep", "wasm", "--json-out", "{tmp}/m.onnx", "--force"),
        2,
        _INPUT,
        "the browser bench's --json-out is refused onto its model too, before a browser starts",
        model_and_data,
        ("m.onnx",),
    ),
    Case(
        "predict-ray-output-inside-source",
        ("predict", "{tmp}/m.onnx", "{tmp}/photos", "--ray", "--output", "{tmp}/photos/preds.parquet"),
        2,
        _INPUT,
        "predict --ray never writes its Parquet parts into its source folder (refused before Ray starts)",
        model_and_data,
        ("photos/p0.png",),
    ),
    # --- bench counts: finite and positive ---------------------------------------------------------------------
    Case(
        "bench-seconds-nan",
        ("bench", "{onnx}", "--seconds", "nan"),
        2,
        "--seconds must be a finite number",
        "--seconds nan is one line, not 100,000 timed runs",
    ),
    Case(
        "bench-seconds-inf",
        ("bench", "{onnx}", "--seconds", "inf"),
        2,
        "--seconds must be a finite number",
        "--seconds inf is one line",
    ),
    Case(
        "bench-runs-0",
        ("bench", "{onnx}", "--runs", "0"),
        2,
        "--runs must be a whole number",
        "--runs is at least 1, said with the flag's name",
    ),
    Case(
        "bench-wasm-seconds-nan",
        ("bench", "{onnx}", "--ep", "wasm", "--seconds", "nan"),
        2,
        "--seconds",
        "the browser bench checks its counts too, before a browser starts",
    ),
    # --- sweep: names and options checked before Ray -----------------------------------------------------------
    Case(
        "sweep-unknown-model",
        ("sweep", "mobilenet_v9", "--out", "{tmp}/sw"),
        2,
        "mobilenet_v9",
        "an unknown model name is one line, exit 2, before Ray starts (not exit 1 'parity failed')",
    ),
    Case(
        "sweep-input-size-too-small",
        ("sweep", "alexnet", "--input-size", "32", "--out", "{tmp}/sw"),
        2,
        "at least 63x63",
        "an input size a model cannot take is refused before Ray starts",
    ),
    # --- web: a model symlinked in from outside the export folder ----------------------------------------------
    Case(
        "web-export-model-symlink-outside",
        ("web", "{tmp}/ex", "--out", "{tmp}/site"),
        2,
        "evil.onnx",
        "web EXPORT_DIR refuses a model that is a symlink to a file outside the folder, naming it",
        export_with_outside_symlink,
        ("outside/secret.onnx",),
    ),
]
