"""The export pipeline (issue 3): parity for every model, metadata, manifest, atomic writes, bad input."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import edgecnn
from edgecnn.cli import app
from edgecnn.core.errors import ArtifactError
from edgecnn.core.owned import LISTING, write_listing
from edgecnn.pipeline import ExportOptions, Int8Options, export, options_from_keywords, read_manifest

# Small inputs keep the default run fast; the architectures are unchanged.
SMALL_SIZE = {"alexnet": 64, "unet": 32, "unet_bilinear": 32}
# Full-size checkpoints of these are hundreds of MB: their parity runs with `pytest -m slow`.
HEAVY = {
    "alexnet",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
    "resnet101",
    "resnet152",
}


# Same blocks as a model the default run exports (resnet18/50, mobilenet_v3_small, efficientnet_lite0) with
# another table of widths and depths: exhaustive, so with `pytest -m slow`. unet_bilinear's default-run parity
# check is test_unet_dynamic_hw_in_multiples_of_16's (with a checkpoint, at three sizes).
SAME_BLOCKS = {
    "resnet34",
    "mobilenet_v3_large",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "efficientnet_lite3",
    "efficientnet_lite4",
    "unet_bilinear",
}


def _params():
    return [
        pytest.param(name, marks=[pytest.mark.slow] if name in HEAVY | SAME_BLOCKS else [], id=name)
        for name in edgecnn.list_models()
    ]


def _metadata(path: Path) -> dict:
    """The card as an app reads it: onnxruntime only, JSON values."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return {k: json.loads(v) for k, v in sess.get_modelmeta().custom_metadata_map.items() if k.startswith("edgecnn.")}


def _digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("name", _params())
def test_fp32_parity_every_model(name, tmp_path):
    result = export(name, tmp_path / name, input_size=SMALL_SIZE.get(name, 32), calib_count=8)
    (art,) = result.artifacts
    assert art.precision == "fp32"
    assert art.parity.passed, art.parity.failures
    assert art.parity.judged
    # judged against PyTorch's own error (float64 reference on the first 8 parity images), not a fixed ratio
    assert art.parity.exact_samples == 8 and art.parity.exact_max_abs <= art.parity.error_bound
    path = tmp_path / name / art.file
    onnx.checker.check_model(str(path), full_check=True)
    meta = _metadata(path)
    assert meta["edgecnn.model"] == name
    assert meta["edgecnn.precision"] == "fp32"
    # random weights: the BatchNorm re-estimation is said, and the outputs really vary with the input
    assert any("random weights" in w for w in result.warnings)


@pytest.fixture(scope="module")
def small_export(tmp_path_factory):
    """A tiny MobileNetV2 exported at every precision, shared by the tests that only read it."""
    out = tmp_path_factory.mktemp("exp") / "mnv2"
    # Random weights come from torch's global generator: seed it, or the model (and how close this tiny
    # network's fp16 outputs come to the tolerance) depends on which tests ran before.
    torch.manual_seed(0)
    return export("mobilenet_v2", out, SMALL_OPTIONS)


# the small export's options, passed whole (as the CLI does): the manifest's options block is their to_dict()
SMALL_OPTIONS = ExportOptions(
    input_size=64, fp16=True, int8=Int8Options(), calib_count=16, arch_options={"width_mult": 0.25}, num_classes=10
)


def test_every_artifact_checks_loads_and_carries_metadata(small_export):
    precisions = [a.precision for a in small_export.artifacts]
    assert precisions == ["fp32", "fp16", "int8"]
    for art in small_export.artifacts:
        path = small_export.out_dir / art.file
        onnx.checker.check_model(str(path), full_check=True)
        meta = _metadata(path)
        assert meta["edgecnn.model"] == "mobilenet_v2"
        assert meta["edgecnn.precision"] == art.precision
        assert meta["edgecnn.task"] == "classification"
        assert meta["edgecnn.input_shape"] == ["batch", 3, 64, 64]
        assert meta["edgecnn.crop"] == [64, 64] and meta["edgecnn.resize"] == 73  # 256/224 of 64
        assert meta["edgecnn.mean"] == [0.485, 0.456, 0.406]
        assert meta["edgecnn.num_classes"] == 10
        assert meta["edgecnn.opset"] == 18
        assert set(meta["edgecnn.versions"]) >= {"edgecnn", "torch", "onnx", "onnxruntime"}
        assert meta["edgecnn.weights"]["source"] == "random"
        assert meta["edgecnn.extra"]["arch_options"] == {"width_mult": 0.25}
        if art.precision == "int8":  # stamped as the file was first written, with how it was calibrated
            record = small_export.manifest["int8"]
            assert meta["edgecnn.extra"]["calibration"] == {
                "source": small_export.manifest["calibration"]["source"],
                "count": record["calibration_images"],
                "method": record["calibration_method"],
                "form": record["kept"],
            }
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out = sess.run(None, {"input": np.zeros((3, 3, 64, 64), np.float32)})[0]  # dynamic batch
        assert out.shape == (3, 10) and np.isfinite(out).all()


def test_fp16_keeps_fp32_io_and_is_half_the_size(small_export):
    fp32, fp16 = small_export.artifacts[0], small_export.artifacts[1]
    model = onnx.load(str(small_export.out_dir / fp16.file))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert fp16.size_bytes < 0.6 * fp32.size_bytes
    assert fp16.parity.passed and fp16.parity.nonfinite == 0


def test_fp32_notes_say_how_the_graph_was_traced(small_export):
    notes = small_export.artifacts[0].notes
    assert "batch axis: static trace, made dynamic" in notes
    # MobileNetV2's 52 BatchNorms all follow a conv: folded before tracing, and the graph still passes parity
    assert "BatchNorm folded into the preceding layer before tracing: 52" in notes
    assert small_export.artifacts[0].parity.passed


def test_int8_is_qdq_and_records_calibration(small_export):
    int8 = small_export.artifacts[2]
    ops = {n.op_type for n in onnx.load(str(small_export.out_dir / int8.file)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # an untrained model's int8 agreement is reported, not judged
    assert int8.parity.judged is False and "random weights" in int8.parity.note
    calib = small_export.manifest["calibration"]
    assert calib["count"] == 16 + 32 and calib["used_for_calibration"] == 16 and calib["held_out_for_parity"] == 32
    assert calib["parity_on_calibration_images"] is False
    assert "sample-photos" in calib["source"]
    assert calib["preprocessing"]["crop"] == [64, 64]
    assert any("deployment domain" in w for w in small_export.warnings)


def test_manifest_records_files_parity_versions_timings(small_export):
    manifest = read_manifest(small_export.out_dir)
    assert manifest == json.loads(json.dumps(small_export.manifest))
    for entry in manifest["artifacts"]:
        path = small_export.out_dir / entry["file"]
        assert entry["size_bytes"] == path.stat().st_size
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert {"max_abs", "max_rel", "cosine", "top1_agreement", "top5_agreement"} <= set(entry["parity"])
    assert {"export onnx", "simplify", "check fp32", "convert fp16", "quantize int8"} <= set(manifest["timings_s"])
    assert manifest["versions"]["onnxruntime"] == ort.__version__
    assert manifest["command"]
    # version 2: the options block is exactly the options object's to_dict(), int8 as Int8Options' fields
    assert manifest["edgecnn_manifest"] == 2
    assert manifest["options"] == SMALL_OPTIONS.to_dict()
    assert manifest["options"]["int8"] == {**dataclasses.asdict(Int8Options()), "runtimes": ["cpu"]}
    # only the artifacts and the manifest: no temporary files left behind
    assert sorted(p.name for p in small_export.out_dir.iterdir()) == sorted(
        [a["file"] for a in manifest["artifacts"]] + ["manifest.json", LISTING, manifest["golden"]["file"]]
    )


def test_keyword_form_is_the_options_object_and_one_rule():
    """``export(name, out, **keywords)``: ExportOptions' fields, with the int8 flag mapped onto Int8Options once."""
    keywords = dict(input_size=64, fp16=True, calib_count=16, arch_options={"width_mult": 0.25}, num_classes=10)
    assert options_from_keywords(int8=True, **keywords) == SMALL_OPTIONS
    auto = options_from_keywords(int8="auto", calib_method="entropy", int8_weight_bits=8)
    assert auto.int8 == Int8Options(policy="auto", calib_method="entropy", weight_bits=8)
    assert options_from_keywords(int8=Int8Options(policy="auto")).int8.policy == "auto"
    assert options_from_keywords().int8 is None and options_from_keywords(input_size="256x320").input_size == (256, 320)
    with pytest.raises(TypeError, match="not both"):
        export("mobilenet_v2", None, SMALL_OPTIONS, fp16=True)
    with pytest.raises(TypeError, match="no_such_option"):
        options_from_keywords(no_such_option=1)
    with pytest.raises(edgecnn.EdgeCNNError, match="input size 'big' is not a number or HxW"):
        options_from_keywords(input_size="big")
    with pytest.raises(edgecnn.EdgeCNNError, match="only applies with --int8"):
        options_from_keywords(calib_method="entropy")


def test_portable_ops_in_graph(small_export):
    ops = [n.op_type for n in onnx.load(str(small_export.out_dir / small_export.artifacts[0].file)).graph.node]
    assert "GlobalAveragePool" in ops and "ReduceMean" not in ops


def test_unet_dynamic_hw_in_multiples_of_16(tmp_path):
    from edgecnn.convert.onnx_export import recalibrate_batchnorm

    model = edgecnn.create_model("unet_bilinear")
    recalibrate_batchnorm(model, [torch.randn(4, 3, 32, 32)])  # non-degenerate outputs to compare
    ckpt = tmp_path / "unet.pth"
    torch.save(model.state_dict(), ckpt)
    result = export("unet_bilinear", tmp_path / "u", weights=str(ckpt), input_size=32, calib_count=8)
    # this is unet_bilinear's fp32 parity check of the default run (test_fp32_parity_every_model's is slow-marked)
    (art,) = result.artifacts
    assert art.parity.passed and art.parity.judged and art.parity.exact_samples == 8, art.parity
    path = result.path("fp32")
    meta = _metadata(path)
    assert meta["edgecnn.input_shape"] == ["batch", 3, "height", "width"]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # other sizes than the exported one, in multiples of 16, compute what PyTorch computes
    for h, w in ((48, 80), (64, 32)):
        x = np.random.default_rng(h).standard_normal((2, 3, h, w)).astype(np.float32)
        got = sess.run(None, {"input": x})[0]
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        assert got.shape == (2, 2, h, w)
        np.testing.assert_allclose(got, ref, atol=1e-4 * np.abs(ref).max())
        assert (got.argmax(1) == ref.argmax(1)).mean() > 0.999


def test_checkpoint_weights_parity_and_hash(tmp_path):
    model = edgecnn.create_model("resnet18", num_classes=7)
    ckpt = tmp_path / "r18.pth"
    torch.save({"state_dict": model.state_dict()}, ckpt)
    result = export("resnet18", tmp_path / "out", weights=str(ckpt), num_classes=7, input_size=32, calib_count=8)
    meta = _metadata(result.path("fp32"))
    assert meta["edgecnn.weights"]["source"] == "file"
    assert meta["edgecnn.weights"]["sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert not any("random weights" in w for w in result.warnings)
    # the ONNX graph computes what the checkpoint's PyTorch model computes
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    ref = edgecnn.create_model("resnet18", num_classes=7, weights=str(ckpt))(torch.from_numpy(x)).detach().numpy()
    got = ort.InferenceSession(str(result.path("fp32")), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_fixed_batch_and_labels(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"class {i}" for i in range(4)) + "\n")
    result = export(
        "mobilenet_v3_small",
        tmp_path / "o",
        input_size=32,
        batch=2,
        num_classes=4,
        labels=labels,
        calib_count=8,
        arch_options={"width_mult": 0.5},
    )
    meta = _metadata(result.path("fp32"))
    assert meta["edgecnn.input_shape"] == [2, 3, 32, 32]
    assert meta["edgecnn.labels"] == ["class 0", "class 1", "class 2", "class 3"]
    assert result.artifacts[0].parity.passed


# --- refusing to overwrite, atomic writes ---------------------------------------------------------------------


def test_second_export_refused_without_force_and_files_untouched(small_export):
    before = _digest(small_export.out_dir)
    with pytest.raises(ArtifactError, match="--force"):
        export("mobilenet_v2", small_export.out_dir, input_size=64, arch_options={"width_mult": 0.25})
    assert _digest(small_export.out_dir) == before


def test_force_replaces_only_after_success(tmp_path):
    out = tmp_path / "m"
    export("mobilenet_v1", out, input_size=32, calib_count=8, arch_options={"width_mult": 0.25})
    before = _digest(out)

    def interrupt(step):
        if step == "simplify":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export(
            "mobilenet_v1",
            out,
            input_size=32,
            calib_count=8,
            force=True,
            arch_options={"width_mult": 0.25},
            progress=interrupt,
        )
    assert _digest(out) == before
    assert not list(tmp_path.glob(".m.staging-*"))  # the staging folder was cleaned up
    result = export("mobilenet_v1", out, input_size=48, calib_count=8, force=True, arch_options={"width_mult": 0.25})
    assert _metadata(result.path("fp32"))["edgecnn.crop"] == [48, 48]


def test_killed_export_leaves_no_partial_file(tmp_path):
    out = tmp_path / "exports" / "net"
    out.mkdir(parents=True)
    (out / "keep.txt").write_text("previous export")
    write_listing(out, "export")  # an earlier export's file: --force may replace it
    script = textwrap.dedent(f"""
        import edgecnn
        edgecnn.export("mobilenet_v1", {str(out)!r}, input_size=32, fp16=True, int8=True, force=True,
                      calib_count=16, arch_options={{"width_mult": 0.25}})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 240
    staged = None
    try:
        # wait until the export is writing files, then kill it without warning
        while time.time() < deadline and proc.poll() is None:
            staged = [p for p in out.parent.glob(".net.staging-*/*") if p.suffix == ".onnx"]
            if staged:
                break
            time.sleep(0.05)
        assert staged, "the export never started writing"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert sorted(p.name for p in out.iterdir()) == [LISTING, "keep.txt"]
    assert (out / "keep.txt").read_text() == "previous export"
    # the next export clears the dead process's staging folder
    export(
        "mobilenet_v1", tmp_path / "exports" / "other", input_size=32, calib_count=8, arch_options={"width_mult": 0.25}
    )
    export("mobilenet_v1", out, input_size=32, calib_count=8, force=True, arch_options={"width_mult": 0.25})
    assert not list(out.parent.glob(".net.staging-*"))
    assert (out / "mobilenet_v1.fp32.onnx").is_file()


# --- bad input: one clear line, non-zero exit ----------------------------------------------------------------

runner = CliRunner()


def _cli(*args: str, cwd: Path):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return runner.invoke(app, list(args))
    finally:
        os.chdir(old)


def _one_line_error(result, *needles: str) -> None:
    assert result.exit_code != 0
    lines = [ln for ln in result.output.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_cli_unknown_model(tmp_path):
    _one_line_error(_cli("export", "resnet19", cwd=tmp_path), "unknown model 'resnet19'", "did you mean 'resnet18'")


def test_cli_bad_weights(tmp_path):
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"not a checkpoint")
    _one_line_error(_cli("export", "resnet18", "--weights", str(bad), cwd=tmp_path), "is not a PyTorch checkpoint")
    wrong = tmp_path / "wrong.pth"
    torch.save(edgecnn.create_model("resnet18", num_classes=10).state_dict(), wrong)
    _one_line_error(_cli("export", "resnet18", "--weights", str(wrong), cwd=tmp_path), "num_classes=10")
    _one_line_error(
        _cli("export", "resnet18", "--weights", str(tmp_path / "missing.pth"), cwd=tmp_path), "does not exist"
    )
    assert not (tmp_path / "exported" / "resnet18").exists()


def test_cli_int8_for_is_checked_before_any_work(tmp_path):
    _one_line_error(_cli("export", "resnet18", "--int8-for", "openvino", cwd=tmp_path), "only applies with --int8")
    _one_line_error(_cli("export", "resnet18", "--int8", "--int8-for", "tpu", cwd=tmp_path), "--int8-for", "openvino")
    _one_line_error(
        _cli("export", "resnet18", "--int8", "--int8-for", "openvino", "--format", "tflite", cwd=tmp_path),
        "add onnx to --format",
    )
    assert not (tmp_path / "exported").exists()


def test_cli_calibration_folder_errors(tmp_path):
    _one_line_error(
        _cli("export", "resnet18", "--int8", "--calib", str(tmp_path / "nope"), cwd=tmp_path), "does not exist"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_line_error(_cli("export", "resnet18", "--int8", "--calib", str(empty), cwd=tmp_path), "has no images")
    broken = tmp_path / "broken"
    broken.mkdir()
    for i in range(3):
        (broken / f"{i}.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    _one_line_error(_cli("export", "resnet18", "--int8", "--calib", str(broken), cwd=tmp_path), "none of the 3 images")


def test_broken_calibration_images_are_skipped_and_counted(tmp_path):
    folder = tmp_path / "calib"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(folder / f"img{i:02d}.png")
    (folder / "zz_broken.jpg").write_bytes(b"garbage")
    result = export(
        "mobilenet_v2", tmp_path / "o", input_size=32, int8=True, calib=folder, arch_options={"width_mult": 0.25}
    )
    calib = result.manifest["calibration"]
    assert calib["count"] == 12 and len(calib["files"]) == 12
    assert [s["name"] for s in calib["skipped"]] == ["zz_broken.jpg"]
    assert calib["files"][0]["sha256"] == hashlib.sha256((folder / "img00.png").read_bytes()).hexdigest()
    assert any("skipped 1 unreadable" in w for w in result.warnings)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--input-size", "32"], "at least 63x63"),
        (["--input-size", "abc"], "not a number"),
        (["--opset", "13"], "opset 13 is not supported"),
        (["--batch", "0"], "positive integer"),
    ],
)
def test_cli_bad_options(tmp_path, args, needle):
    _one_line_error(_cli("export", "alexnet", *args, cwd=tmp_path), needle)


def test_cli_unet_size_must_be_multiple_of_16(tmp_path):
    _one_line_error(_cli("export", "unet", "--input-size", "100", cwd=tmp_path), "multiples of 16")


def test_cli_output_not_writable(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("I am a file")
    _one_line_error(
        _cli("export", "resnet18", "--out", str(blocker / "sub" / "dir"), cwd=tmp_path), "cannot create output folder"
    )
    _one_line_error(_cli("export", "resnet18", "--out", str(blocker), cwd=tmp_path), "is a file")


def test_cli_export_json_and_refusal(tmp_path):
    args = ["export", "mobilenet_v3_small", "--input-size", "32", "--calib-count", "8", "--json"]
    first = _cli(*args, cwd=tmp_path)
    assert first.exit_code == 0, first.output
    record = json.loads(first.stdout)  # one shape for one model and for 'all' (README: breaking changes in 0.2)
    assert record["edgecnn_export"] == 2 and record["failed"] == []
    (manifest,) = record["exports"]
    assert manifest["model"] == "mobilenet_v3_small"
    assert manifest["artifacts"][0]["parity"]["passed"]
    again = _cli(*args, cwd=tmp_path)
    _one_line_error(again, "already holds files", "--force")


def test_cli_export_all_continues_past_a_failing_model(tmp_path, monkeypatch):
    import edgecnn.models.registry

    # the CLI reads the registry's list (patching edgecnn.models' re-export would export the whole zoo)
    monkeypatch.setattr(edgecnn.models.registry, "list_models", lambda: ["mobilenet_v1", "alexnet"])
    result = _cli("export", "all", "--input-size", "32", "--calib-count", "8", cwd=tmp_path)
    assert result.exit_code == 1
    assert sorted(p.name for p in (tmp_path / "exported").iterdir()) == ["mobilenet_v1"]
    assert (tmp_path / "exported" / "mobilenet_v1" / "manifest.json").is_file()
    assert not (tmp_path / "exported" / "alexnet").exists()
    assert "error: alexnet: alexnet needs an input of at least 63x63" in result.output
    assert "Traceback" not in result.output


# googlenet trains longest; mobilenet_v3_large's trained int8 parity is asserted by tests/test_int8.py's
# test_trained_mobilenet_v3_int8_keeps_accuracy_without_round_trips (the same export, with the speed gate; slow too)
@pytest.mark.parametrize(
    "name",
    [
        "resnet18",
        "mobilenet_v2",
        pytest.param("mobilenet_v3_large", marks=pytest.mark.slow),
        pytest.param("googlenet", marks=pytest.mark.slow),
        "unet",
    ],
)
def test_int8_parity_on_trained_models(name, trained_checkpoint, tmp_path):
    """Issue 3: int8 parity is judged, and passes, on briefly trained models (random weights prove little)."""
    fx = trained_checkpoint(name)
    options = options_from_keywords(
        weights=str(fx.checkpoint),
        num_classes=fx.num_classes,
        input_size=fx.input_size,
        arch_options=fx.arch_options,
        calib=fx.calib_dir,
        calib_count=64,
        int8=True,
    )
    # parity is what is judged here: the speed gate (timed in tests/test_int8.py) would add ~2 s a model
    options = dataclasses.replace(options, int8=dataclasses.replace(options.int8, speed=False))
    result = export(name, tmp_path / name, options)
    int8 = next(a for a in result.artifacts if a.precision == "int8")
    assert int8.parity.judged is True
    assert int8.parity.passed, int8.parity.failures
    if fx.task == "segmentation":
        assert int8.parity.mean_iou >= 0.90
    else:
        assert int8.parity.decisive_samples >= 0.8 * int8.parity.samples  # trained outputs are decisive
        assert int8.parity.top1_agreement >= 0.90


def test_batchnorm_reestimation_keeps_momentum_and_matches_update_bn():
    import torch
    from torch import nn

    from edgecnn.convert.onnx_export import recalibrate_batchnorm

    torch.manual_seed(0)

    def make():
        return nn.Sequential(
            nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, momentum=0.01), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4)
        )

    ours, theirs = make(), make()
    theirs.load_state_dict(ours.state_dict())
    batches = [torch.randn(5, 3, 12, 12) for _ in range(3)]
    assert recalibrate_batchnorm(ours, batches) == 2
    torch.optim.swa_utils.update_bn(batches, theirs)
    assert [ours[1].momentum, ours[4].momentum] == [0.01, 0.1]
    assert not ours.training
    for a, b in ((ours[1], theirs[1]), (ours[4], theirs[4])):
        torch.testing.assert_close(a.running_mean, b.running_mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(a.running_var, b.running_var, rtol=1e-5, atol=1e-6)


def test_golden_outputs_judge_every_artifact_as_the_export_did(small_export, tmp_path):
    """golden.npz (the parity photographs and PyTorch's outputs) gives, without torch, the export's own verdicts."""
    from edgecnn.runtime.golden import GOLDEN_FILE, judge, load_golden
    from edgecnn.runtime.runner import open_runner
    from edgecnn.runtime.session import run_batched

    record = small_export.manifest["golden"]
    path = small_export.out_dir / GOLDEN_FILE
    assert record["file"] == GOLDEN_FILE and record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    golden = load_golden(path)
    assert golden.inputs.shape == (record["images"], 3, 64, 64) and golden.reference.shape == (record["images"], 10)
    assert golden.yardstick("fp32") is not None and golden.yardstick("fp16") is not None
    for art in small_export.artifacts:
        runner = open_runner(small_export.out_dir / art.file, providers="cpu")
        try:
            outputs = run_batched(runner, golden.inputs)[0]
        finally:
            runner.close()
        report = judge(golden, outputs, task="classification", precision=art.precision, random_weights=True)
        assert (report.passed, report.judged) == (art.parity.passed, art.parity.judged), art.file
        assert report.cosine == pytest.approx(art.parity.cosine, abs=1e-9)
        assert report.exact_max_abs == pytest.approx(art.parity.exact_max_abs), art.file
    # a weight moved by 0.1% fails on golden data as it fails against PyTorch
    model = onnx.load(small_export.out_dir / small_export.artifacts[0].file)
    big = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    w = onnx.numpy_helper.to_array(big) * np.float32(1.001)
    big.CopyFrom(onnx.numpy_helper.from_array(w.astype(np.float32), big.name))
    onnx.save(model, tmp_path / "scaled.onnx")
    runner = open_runner(tmp_path / "scaled.onnx", providers="cpu")
    outputs = run_batched(runner, golden.inputs)[0]
    runner.close()
    assert not judge(golden, outputs, task="classification", precision="fp32", random_weights=True).passed


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"inputs": np.zeros((2, 3, 4, 4), np.float32)}, "lacks the array 'reference'"),
        ({"inputs": np.zeros((2, 3, 4, 4), np.float32), "reference": np.zeros((3, 5))}, "do not pair up"),
        ({"inputs": np.zeros((2, 3, 4, 4), np.int64), "reference": np.zeros((2, 5))}, "not float"),
        ({"inputs": np.zeros((2, 3, 4, 4), np.float32), "reference": np.zeros((2, 5)), "x": np.zeros(1)}, "'x'"),
    ],
)
def test_bad_golden_data_is_one_line(tmp_path, arrays, message):
    from edgecnn.runtime.golden import load_golden

    np.savez(tmp_path / "golden.npz", **arrays)
    with pytest.raises(ArtifactError, match=message):
        load_golden(tmp_path / "golden.npz")


def test_golden_data_declaring_a_huge_array_is_refused_before_loading(tmp_path, monkeypatch):
    from edgecnn.runtime.golden import load_golden

    monkeypatch.setenv("EDGECNN_MAX_INPUT_ELEMENTS", "1000")
    np.savez_compressed(tmp_path / "g.npz", inputs=np.zeros((4, 3, 16, 16), np.float32), reference=np.zeros((4, 5)))
    with pytest.raises(ArtifactError, match="EDGECNN_MAX_INPUT_ELEMENTS"):
        load_golden(tmp_path / "g.npz")
