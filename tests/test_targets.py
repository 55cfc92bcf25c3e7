"""`export --format onnx,tflite,pte`: one export writes every format, each checked on its own runtime; bench, eval,
predict and validate take the .tflite and .pte as they take the .onnx; a damaged file is one line (exit 2), a wrong
weight fails parity (exit 1).

The trained MobileNetV2 fixture (width 0.5, scikit-learn's digits at 32×32), exported from its checkpoint: the int8
files are judged, and validate finds the checkpoint through the card each file carries. The ONNX file beside them
comes from a second, fp32-only export.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from edgecnn.cli import app
from edgecnn.core.card import ModelCard
from edgecnn.runtime.runner import open_runner

cli = CliRunner()
SUFFIXES = (".onnx", ".tflite", ".pte")


@pytest.fixture(scope="module")
def exported(trained_checkpoint, tmp_path_factory) -> dict:
    from edgecnn import create_model
    from edgecnn.pipeline import export

    fx = trained_checkpoint("mobilenet_v2")
    root = tmp_path_factory.mktemp("targets")
    common = dict(
        weights=str(fx.checkpoint), num_classes=fx.num_classes, input_size=fx.input_size, arch_options=fx.arch_options
    )
    # the other formats alone (ONNX's own int8 is tested elsewhere), calibrated on the fixture's images
    result = export(
        "mobilenet_v2", root / "out", **common, int8=True, calib=str(fx.calib_dir), calib_count=32, formats="tflite,pte"
    )
    onnx_fp32 = export("mobilenet_v2", root / "onnx", **common).path("fp32")
    files = {(Path(a.file).suffix, a.precision): result.out_dir / a.file for a in result.artifacts}
    files[(".onnx", "fp32")] = onnx_fp32
    model = create_model("mobilenet_v2", num_classes=fx.num_classes, **fx.arch_options)
    model.load_state_dict(torch.load(fx.checkpoint, weights_only=True))
    return {
        "root": root,
        "ckpt": fx.checkpoint,
        "model": model.eval(),
        "result": result,
        "files": files,
        "size": fx.input_size,
        "classes": fx.num_classes,
    }


def test_every_format_is_written_and_passes_on_its_own_runtime(exported):
    result = exported["result"]
    assert result.passed, [(a.file, a.parity.failures) for a in result.artifacts]
    made = {k for k in exported["files"] if k[0] != ".onnx"}
    assert made == {(s, p) for s in (".tflite", ".pte") for p in ("fp32", "int8")}
    by_file = {a["file"]: a for a in result.manifest["artifacts"]}
    for (suffix, _), path in exported["files"].items():
        if suffix == ".onnx":
            continue
        entry = by_file[path.name]
        assert entry["format"] == suffix[1:]
        assert entry["parity"]["judged"] and entry["parity"]["passed"]  # trained weights: int8 judged too
        runtime = entry["runtime"]  # what really ran: the runtime's own report, the delegate's share
        assert runtime["runtime"] == {".tflite": "litert", ".pte": "executorch"}[suffix]
        assert runtime["delegation"], runtime
        if entry["precision"] == "int8":  # chosen on its own runtime: timed there beside the fp32 of its format
            gate = runtime["int8"]["gate"]
            assert gate["speed_gate"]["runtime"] == {".tflite": "LiteRT", ".pte": "ExecuTorch"}[suffix]
            assert gate["speed_gate"]["fp32_ms"] > 0 and gate["speed_gate"]["candidates_ms"]["int8"] > 0
            # LiteRT: adds int8 or float; both: MobileNetV2's layers at stride ≤ 4 in float (not a plain form)
            forms = {".tflite": {"int8", "float-adds", "stem"}, ".pte": {"int8", "stem"}}[suffix]
            assert set(gate["forms"]) == forms and set(gate["speed_gate"]["candidates_ms"]) == forms
            assert gate["candidate"] in forms and gate["forms"][gate["candidate"]]["passed"]
            assert gate["forms"]["stem"]["recipe"]["float_modules"] == [f"features.{i}" for i in range(4)]
            plain = forms - {"stem"}
            fastest = min(plain, key=gate["speed_gate"]["candidates_ms"].get)  # plain forms pass: the fastest ships
            assert gate["candidate"] == fastest and "static policy" in gate["decision"]
    assert {"litert-torch", "ai-edge-litert", "executorch", "torchao"} <= set(result.manifest["versions"])
    on_disk = json.loads((result.out_dir / "manifest.json").read_text())
    assert {a["file"] for a in on_disk["artifacts"]} == {
        p.name for k, p in exported["files"].items() if k[0] != ".onnx"
    }
    assert on_disk["options"]["formats"] == ["tflite", "pte"]


def test_the_card_travels_inside_every_file_and_io_is_float(exported):
    for (_suffix, precision), path in exported["files"].items():
        runner = open_runner(path)
        card = ModelCard.from_metadata(runner.metadata, path.name)
        assert card is not None and card.model == "mobilenet_v2" and card.precision == precision
        assert card.num_classes == exported["classes"] and card.crop == [exported["size"]] * 2
        assert runner.inputs[0].dtype == np.float32 and runner.outputs[0].dtype == np.float32
        runner.close()


def test_fp32_files_agree_with_each_other_and_with_pytorch(exported):
    rng = np.random.default_rng(0)
    size = exported["size"]
    x = rng.standard_normal((3, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        ref = exported["model"](torch.from_numpy(x)).numpy()
    from edgecnn.runtime.session import run_batched

    for suffix in SUFFIXES:
        got = run_batched(open_runner(exported["files"][(suffix, "fp32")]), x)[0]
        assert np.abs(got - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max()), suffix


def test_bench_times_all_three_in_one_interleaved_run(exported):
    files = [str(exported["files"][(s, "fp32")]) for s in SUFFIXES]
    res = cli.invoke(app, ["bench", *files, "--runs", "3", "--warmup", "1", "--threads", "1", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["schema_version"] == 2
    runtimes = [r["runtime"] for r in report["results"]]
    assert runtimes == ["onnxruntime", "litert", "executorch"]
    assert all(r["batches"][0]["latency"]["p50_ms"] > 0 for r in report["results"])
    assert report["results"][0]["delegation"] is None and report["results"][1]["delegation"]


def test_eval_and_predict_take_tflite_and_pte(exported, tmp_path):
    from edgecnn.convert.calibration import sample_photos
    from edgecnn.runtime.evaluate import evaluate

    for k, photo in enumerate(sample_photos(12, seed=11, size=48)):
        folder = tmp_path / "data" / str(k % 2)
        folder.mkdir(parents=True, exist_ok=True)
        photo.save(folder / f"p{k}.png")
    files = [exported["files"][(s, "fp32")] for s in SUFFIXES]
    result = evaluate(files, tmp_path / "data", labels_from="folder")
    top1 = [m.top1 for m in result.models]
    assert len(top1) == 3 and top1[0] == top1[1] == top1[2]  # the same network: the same predictions
    for path in files[1:]:
        res = cli.invoke(app, ["predict", str(path), str(next((tmp_path / "data" / "0").iterdir())), "--json"])
        assert res.exit_code == 0, res.output


@pytest.mark.parametrize("suffix", [".tflite", ".pte"])
def test_a_flipped_byte_is_one_line_exit_2(exported, tmp_path, suffix):
    data = bytearray(exported["files"][(suffix, "fp32")].read_bytes())
    data[4:8] = b"XXXX"  # the flatbuffer's file identifier (TFL3 / ET..): the runtime refuses the file
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(bytes(data))
    Image.new("RGB", (40, 40), (90, 30, 200)).save(tmp_path / "x.png")
    res = cli.invoke(app, ["predict", str(bad), str(tmp_path / "x.png")])
    assert res.exit_code == 2, res.output
    assert len(res.output.strip().splitlines()) == 1 and "bad" + suffix in res.output and "Traceback" not in res.output


# each twin converts again (.tflite ~19 s, .pte ~13 s on a first run): in the slow set, so the default run stays
# within its time; the default run's 1.001 checks are test_compare's and test_choose's (ONNX, on golden outputs)
@pytest.mark.parametrize(
    "fmt", [pytest.param("tflite", marks=pytest.mark.slow), pytest.param("pte", marks=pytest.mark.slow)]
)
def test_a_weight_scaled_by_1_001_fails_validate_exit_1(exported, tmp_path, fmt):
    from edgecnn.convert.targets import TargetRequest, export_target

    good = exported["files"][("." + fmt, "fp32")]
    ok = cli.invoke(app, ["validate", str(good), "--count", "8"])  # the card names the checkpoint
    assert ok.exit_code == 0, ok.output
    model = copy.deepcopy(exported["model"])
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    with torch.no_grad():
        conv.weight.mul_(1.001)
    metadata = open_runner(good).metadata
    example = np.zeros((1, 3, exported["size"], exported["size"]), np.float32)
    bad = export_target(fmt, TargetRequest(model, example, tmp_path / f"bad.{fmt}", metadata=metadata)).path
    res = cli.invoke(app, ["validate", str(bad), "--count", "8", "--weights", str(exported["ckpt"])])
    assert res.exit_code == 1, res.output
    assert "FAIL" in res.output


def test_formats_are_checked_before_any_work(tmp_path, monkeypatch):
    res = cli.invoke(app, ["export", "mobilenet_v2", "--format", "tfl", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "unknown format 'tfl'" in res.output
    from edgecnn.convert.targets import request

    monkeypatch.setattr(request, "formats", lambda: {"onnx": None, "tflite": "needs litert_torch: pip install x"})
    res = cli.invoke(app, ["export", "mobilenet_v2", "--format", "tflite", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "needs litert_torch" in res.output and not (tmp_path / "o").exists()


def test_web_and_mobile_say_what_they_do_with_other_formats(exported, tmp_path):
    tflite = exported["files"][(".tflite", "fp32")]
    res = cli.invoke(app, ["mobile", str(tflite), "--out", str(tmp_path / "m")])
    assert res.exit_code == 2 and "already the mobile artifact" in res.output
    res = cli.invoke(app, ["web", str(tflite), "--out", str(tmp_path / "w")])
    assert res.exit_code == 2 and "onnxruntime-web" in res.output


def _form(passed: bool, agreement: float):
    from edgecnn.runtime.compare import ParityReport

    report = ParityReport(passed, "int8", "classification", 32, 0.1, 0.1, 0.01, 0.99, top1_agreement=agreement)
    return type("Made", (), {"parity": report, "runtime": {}})()


def test_the_int8_form_is_chosen_on_its_runtimes_timing():
    """``pipeline.target_int8.choose_form``: the ONNX int8 policies, applied to the forms' verdicts and their
    timing on the file's own runtime."""
    from edgecnn.pipeline.target_int8 import choose_form

    gate = {"runtime": "LiteRT", "fp32_ms": 2.0, "candidates_ms": {"int8": 1.0, "stem": 1.5}}
    plain_wrong = {"int8": _form(False, 0.90), "stem": _form(True, 0.98)}
    assert choose_form(plain_wrong, gate, "static", judged=True)[0] == "stem"
    both = {"int8": _form(True, 0.97), "stem": _form(True, 0.99)}
    assert choose_form(both, gate, "static", judged=True)[0] == "int8"  # static: plain whenever it passes
    adds = {"int8": _form(True, 0.97), "float-adds": _form(True, 0.97), "stem": _form(True, 0.99)}
    timed = {**gate, "candidates_ms": {"int8": 1.2, "float-adds": 1.1, "stem": 1.0}}
    name, why = choose_form(adds, timed, "static", judged=True)  # the fastest plain form, not the float stem
    assert name == "float-adds" and "adds in float" in why and "fastest plain form" in why
    slow_stem = {**gate, "candidates_ms": {"int8": 1.0, "stem": 2.5}}  # slower than fp32: passed over
    name, why = choose_form(plain_wrong, slow_stem, "static", judged=True)
    assert name == "int8" and "no form passed parity" in why and "LiteRT" in why
    assert choose_form(both, gate, "auto", judged=True)[0] == "int8"  # auto: the fastest that passes
    slower = {**gate, "candidates_ms": {"int8": 2.2, "stem": 2.4}}
    name, why = choose_form(both, slower, "auto", judged=True)
    assert name == "fp32" and "kept fp32" in why
    assert choose_form({"int8": _form(False, 0.5)}, gate, "auto", judged=False)[0] == "int8"  # random: not judged
