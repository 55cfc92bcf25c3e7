"""``edgecnn compare``: the CLI over a folder and over a model name (``pipeline.choose``), its exit codes and files.

The table's decisions (parity, margin, why-not) are tested in test_choose.py; here what the command does around
them: exit 0 with a recommendation, 1 when nothing passes, 2 for bad input in one line; ``--json``, ``--md`` and the
plot beside it; a model name exported into compare's own folder, reused while the options stay, re-exported (the
union of formats and precisions) when they grow; someone else's folder never replaced without ``--force``.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from typer.testing import CliRunner

from edgecnn.cli import app
from edgecnn.pipeline import ExportOptions
from edgecnn.pipeline.choose import compare
from edgecnn.runtime.choose import ChooseOptions

FAST = ["--seconds", "0.05", "--threads", "1"]


SMALL = ExportOptions(input_size=32, num_classes=10, arch_options={"width_mult": 0.25})
TIMING = dict(eps="cpu", seconds=0.05, warmup=1, rounds=2, threads=1)
ONNX_ONLY = ChooseOptions(formats=("onnx",), precisions=("fp32", "fp16"), **TIMING)


@pytest.fixture(scope="module")
def named(tmp_path_factory) -> tuple[Path, object]:
    """``compare("mobilenet_v2")`` (width 0.25, 32², ONNX fp32 + fp16): the folder it exported and its run."""
    out = tmp_path_factory.mktemp("cmp") / "mnv2"
    return out, compare("mobilenet_v2", ONNX_ONLY, SMALL, out_dir=out)


def test_a_model_name_is_exported_into_compares_own_folder_then_reused(named):
    out, first = named
    assert first.exported is True and first.folder == out
    listing = json.loads((out / ".edgecnn-files.json").read_text())
    assert listing["writer"] == "compare" and "golden.npz" in listing["files"]
    assert {(r.file, r.precision) for r in first.choice.rows} == {
        ("mobilenet_v2.fp32.onnx", "fp32"),
        ("mobilenet_v2.fp16.onnx", "fp16"),
    }
    assert compare("mobilenet_v2", ONNX_ONLY, SMALL, out_dir=out).exported is False  # same options: reused


def test_a_folder_prints_the_table_and_writes_markdown_and_plot(named, tmp_path):
    out, _ = named
    md = tmp_path / "table.md"
    done = CliRunner().invoke(app, ["compare", str(out), "--each-ep", "cpu", "--md", str(md), *FAST])
    assert done.exit_code == 0, done.output  # fp32 passes parity: there is a recommendation
    assert "**Recommended: `mobilenet_v2.fp32.onnx`" in done.stdout and "| file | runs on |" in done.stdout
    assert md.read_text() in done.stdout
    circles = ET.parse(md.with_suffix(".svg")).getroot().iter("{http://www.w3.org/2000/svg}circle")
    assert len([c for c in circles if c.get("class") == "row"]) == 2  # fp32 and fp16 on the CPU
    again = CliRunner().invoke(app, ["compare", str(out), "--md", str(md), *FAST])
    assert again.exit_code == 2 and again.stderr.startswith("error: --md") and "--force" in again.stderr


def test_nothing_passing_exits_1(named, tmp_path):
    """The only fp32 file, its largest weight × 1.001, runs and fails parity: nothing is recommended."""
    out, _ = named
    folder = tmp_path / "edited"
    shutil.copytree(out, folder)
    path = folder / "mobilenet_v2.fp32.onnx"
    model = onnx.load(str(path))
    big = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    big.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(big) * np.float32(1.001), big.name))
    onnx.save(model, str(path))
    args = ["compare", str(folder), "--precisions", "fp32", "--each-ep", "cpu", "--json", *FAST]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 1, done.output
    result = json.loads(done.stdout)
    assert result["recommended"] is None
    fp32 = next(r for r in result["rows"] if r["precision"] == "fp32")
    assert fp32["status"] == "failed" and fp32["reason"].startswith("parity failed")


@pytest.mark.parametrize(
    "args, message",
    [
        (["no_such_model"], "no_such_model"),
        (["mobilenet_v2", "--precisions", "fp64"], "fp64"),
        (["mobilenet_v2", "--formats", "onnx,gguf"], "gguf"),
        (["mobilenet_v2", "--margin", "-1"], "--margin"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    done = CliRunner().invoke(app, ["compare", *args, "--out", str(tmp_path / "o")])
    assert done.exit_code == 2, done.output
    assert message in done.output and "Traceback" not in done.output
    assert not (tmp_path / "o").exists()


def test_export_options_with_a_folder_are_refused(named):
    out, _ = named
    done = CliRunner().invoke(app, ["compare", str(out), "--weights", "imagenet"])
    assert done.exit_code == 2 and "apply to a model name" in done.stderr


def test_someone_elses_export_is_not_replaced_and_more_formats_re_export_the_union(tmp_path):
    """A folder ``export`` wrote is refused at --out; compare's own folder is re-exported with what it had and
    what is asked, in the export's staged swap (the manifest then lists every file); asking for less reuses it."""
    from edgecnn.pipeline import export

    theirs = tmp_path / "theirs"
    export("mobilenet_v2", theirs, input_size=32, num_classes=10, arch_options={"width_mult": 0.25})
    before = sorted(p.name for p in theirs.iterdir())
    args = ["compare", "mobilenet_v2", "--input-size", "32", "--num-classes", "10", "--formats", "onnx"]
    done = CliRunner().invoke(app, [*args, "--precisions", "fp32", "--out", str(theirs), *FAST])
    assert done.exit_code == 2 and "compare did not write" in done.stderr
    assert sorted(p.name for p in theirs.iterdir()) == before

    grown = tmp_path / "grown"
    fp32 = ChooseOptions(formats=("onnx",), precisions=("fp32",), **TIMING)
    assert compare("mobilenet_v2", fp32, SMALL, out_dir=grown).exported is True
    assert compare("mobilenet_v2", ONNX_ONLY, SMALL, out_dir=grown).exported is True  # fp16 asked: re-exported
    manifest = json.loads((grown / "manifest.json").read_text())
    assert [a["precision"] for a in manifest["artifacts"]] == ["fp32", "fp16"]
    assert compare("mobilenet_v2", fp32, SMALL, out_dir=grown).exported is False  # fewer asked: what is there does


@pytest.mark.slow
def test_compare_a_trained_mobilenet_v2_on_labelled_data_across_every_runtime(trained_checkpoint, tmp_path):
    """The issue's case: onnx/tflite/pte × fp32/int8 × the providers here (OpenVINO included), accuracy on a
    labelled folder, --json and --md; the recommended row passed parity and its interval clears the margin."""
    from conftest import _train_fixtures_module

    fx = trained_checkpoint("mobilenet_v2")
    module = _train_fixtures_module()
    _, _, (images, labels), _ = module._splits(module.FIXTURES["mobilenet_v2"])
    data = tmp_path / "data"
    for i, (image, label) in enumerate(zip(images, labels)):
        (data / str(int(label))).mkdir(parents=True, exist_ok=True)
        image.save(data / str(int(label)) / f"{i:04d}.png")
    options = ExportOptions(
        weights=str(fx.checkpoint),
        num_classes=fx.num_classes,
        input_size=fx.input_size,
        arch_options=fx.arch_options,
        calib=str(fx.calib_dir),
    )
    chosen = ChooseOptions(formats=("onnx", "tflite", "pte"), seconds=0.3)
    compare("mobilenet_v2", chosen, options, out_dir=tmp_path / "out")  # exports, then measures
    md = tmp_path / "table.md"
    args = ["compare", str(tmp_path / "out"), "--formats", "onnx,tflite,pte", "--data", str(data)]
    done = CliRunner().invoke(app, [*args, "--labels-from", "folder", "--json", "--md", str(md), "--seconds", "0.3"])
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    seen = {(r["format"], r["precision"], r["where"]) for r in result["rows"]}
    for fmt, where in (("onnx", "cpu"), ("onnx", "openvino"), ("tflite", "litert"), ("pte", "executorch")):
        assert {(fmt, "fp32", where), (fmt, "int8", where)} <= seen, seen
    best = next(r for r in result["rows"] if r["label"] == result["recommended"])
    assert best["status"] == "verified" and best["parity"]["passed"]
    assert best["difference"][1] > -0.01  # the paired interval's low end clears the 1-point margin
    faster = [r for r in result["rows"] if r["p50_ms"] is not None and r["p50_ms"] < best["p50_ms"]]
    assert {r["label"] for r in faster} == {w["row"] for w in result["why_not"]}
    assert md.is_file() and md.with_suffix(".svg").is_file()
