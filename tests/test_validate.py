"""`edgecnn validate`: an artifact against its PyTorch source, per provider; good passes, perturbed fails."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from PIL import Image
from typer.testing import CliRunner

from edgecnn.cli import app
from edgecnn.convert.validate import validate
from edgecnn.core.errors import ArtifactError, CheckpointError, InputError, ProviderUnavailableError
from edgecnn.runtime.compare import TOLERANCES
from edgecnn.runtime.providers import is_available

runner = CliRunner()
ARCH = {"width_mult": 0.25}
CLASSES, SIZE = 10, 64


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    """A small MobileNetV2 with BatchNorm statistics re-estimated on photographs, saved as a checkpoint and
    exported from it (fp32 + fp16) through the real pipeline: non-degenerate outputs, a card naming the file."""
    from edgecnn import create_model
    from edgecnn.convert.calibration import sample_photos
    from edgecnn.convert.onnx_export import recalibrate_batchnorm
    from edgecnn.pipeline import export
    from edgecnn.runtime.preprocess import PreprocessParams, preprocess

    root = tmp_path_factory.mktemp("validate")
    torch.manual_seed(0)
    model = create_model("mobilenet_v2", num_classes=CLASSES, **ARCH)
    params = PreprocessParams(crop=(SIZE, SIZE), resize=73)
    x = torch.from_numpy(np.stack([preprocess(im, params) for im in sample_photos(32, seed=7)]))
    recalibrate_batchnorm(model, [x[:16], x[16:]])
    ckpt = root / "tiny.pth"
    torch.save(model.state_dict(), ckpt)
    result = export(
        "mobilenet_v2",
        root / "out",
        weights=str(ckpt),
        num_classes=CLASSES,
        input_size=SIZE,
        fp16=True,
        arch_options=ARCH,
    )
    assert result.passed
    return {"root": root, "ckpt": ckpt, "fp32": result.path("fp32"), "fp16": result.path("fp16")}


def _copy(src: Path, dst: Path, *, perturb: float = 0.0, card: dict | None = None, strip_card: bool = False) -> Path:
    """A copy of an artifact: one weight tensor perturbed (noise of ``perturb`` × its std), card fields replaced,
    or the card removed."""
    model = onnx.load(str(src))
    if perturb:
        # the largest float tensor (the classifier or a pointwise conv), and nothing else
        init = max(
            (t for t in model.graph.initializer if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)),
            key=lambda t: int(np.prod(t.dims)),
        )
        w = numpy_helper.to_array(init).astype(np.float32)
        noisy = w + perturb * w.std() * np.random.default_rng(0).standard_normal(w.shape).astype(np.float32)
        init.CopyFrom(numpy_helper.from_array(noisy.astype(numpy_helper.to_array(init).dtype), init.name))
    props = {p.key: p.value for p in model.metadata_props}
    if card:
        props.update({f"edgecnn.{k}": json.dumps(v) for k, v in card.items()})
    if strip_card:
        props = {k: v for k, v in props.items() if not k.startswith("edgecnn.")}
    del model.metadata_props[:]
    for k, v in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(model, str(dst))
    return dst


def _card_field(path: Path, name: str):
    return json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}[f"edgecnn.{name}"])


def test_good_artifacts_pass_with_the_recorded_checkpoint(exported):
    for precision in ("fp32", "fp16"):
        result = validate(exported[precision], count=16)
        assert result.passed, result.to_dict()
        assert result.model == "mobilenet_v2" and result.precision == precision
        assert result.weights["origin"] == "card path" and result.weights["matches_card"] is True
        assert result.weights["path"] == str(exported["ckpt"])
        [check] = result.checks
        assert check.requested == ("cpu",) and check.providers == ("CPUExecutionProvider",)
        [out] = check.outputs
        assert out.name == "logits" and out.report.samples == 16 and out.report.precision == precision
        # non-degenerate: the photographs do not all land in one class
        assert out.report.decisive_samples >= 8


def test_perturbed_weight_fails(exported, tmp_path):
    bad = _copy(exported["fp32"], tmp_path / "bad.onnx", perturb=0.05)
    result = validate(bad, count=16)
    assert not result.passed
    failures = result.checks[0].outputs[0].report.failures
    assert any(f.startswith("max error against float64") for f in failures), failures


def test_cli_exit_codes_and_table(exported, tmp_path):
    good = runner.invoke(app, ["validate", str(exported["fp32"]), "--count", "8"])
    assert good.exit_code == 0, good.output
    assert "PASS: mobilenet_v2.fp32.onnx matches mobilenet_v2 on cpu" in good.stdout
    header = next(line for line in good.stdout.splitlines() if line.startswith("ep "))
    assert header.split()[:3] == ["ep", "session", "providers"] and "verdict" in header
    assert any(line.startswith("cpu ") and line.rstrip().endswith("PASS") for line in good.stdout.splitlines())

    bad = _copy(exported["fp32"], tmp_path / "bad.onnx", perturb=0.05)
    failed = runner.invoke(app, ["validate", str(bad), "--count", "8"])
    assert failed.exit_code == 1
    assert "FAIL cpu logits: max error against float64" in failed.stderr
    assert failed.stderr.strip().splitlines()[-1].startswith("error: bad.onnx does not match mobilenet_v2 on cpu")
    assert "Traceback" not in failed.output


def test_cli_json(exported, tmp_path):
    result = runner.invoke(app, ["validate", str(exported["fp16"]), "--count", "8", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["passed"] is True and data["precision"] == "fp16" and data["model"] == "mobilenet_v2"
    assert (
        data["inputs"]["count"] == 8 and data["weights"]["sha256"] == _card_field(exported["fp16"], "weights")["sha256"]
    )
    [check] = data["checks"]
    assert check["providers"] == ["CPUExecutionProvider"] and check["passed"] is True
    assert check["outputs"][0]["name"] == "logits" and check["outputs"][0]["tolerances"] == TOLERANCES["fp16"]

    bad = _copy(exported["fp16"], tmp_path / "bad.onnx", perturb=0.5)
    failed = runner.invoke(app, ["validate", str(bad), "--count", "8", "--json"])
    assert failed.exit_code == 1
    assert json.loads(failed.stdout)["passed"] is False  # the JSON is printed before the failing exit


@pytest.mark.parametrize("ep", ["cuda", "tensorrt", "nosuch"])  # openvino runs here: tests/test_openvino.py
def test_missing_provider_is_a_clean_error(exported, ep):
    if ep != "nosuch" and is_available(ep):
        pytest.skip(f"{ep} is available here")
    with pytest.raises(ProviderUnavailableError):
        validate(exported["fp32"], providers=("cpu", ep), count=2)
    result = runner.invoke(app, ["validate", str(exported["fp32"]), "--ep", f"cpu,{ep}"])
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and ep in line and "Traceback" not in result.output
    assert result.stdout == ""  # refused before anything ran


def test_random_weight_artifact_is_refused_with_a_way_out(exported, tmp_path):
    rand = _copy(exported["fp32"], tmp_path / "rand.onnx", card={"weights": {"source": "random", "sha256": None}})
    with pytest.raises(CheckpointError, match="random weights.*--weights CKPT"):
        validate(rand, count=2)
    # the user knows which weights it holds: then it can be checked
    result = validate(rand, weights=str(exported["ckpt"]), count=8)
    assert result.passed and result.weights["origin"] == "argument"
    assert any("random weights" in n for n in result.notes)


def test_moved_or_changed_checkpoint(exported, tmp_path):
    moved = dict(_card_field(exported["fp32"], "weights"), path=str(tmp_path / "gone.pth"))
    art = _copy(exported["fp32"], tmp_path / "moved.onnx", card={"weights": moved})
    with pytest.raises(CheckpointError, match="not there any more.*--weights"):
        validate(art, count=2)
    copy = tmp_path / "copy.pth"
    shutil.copy(exported["ckpt"], copy)
    assert validate(art, weights=str(copy), count=8).passed

    changed = tmp_path / "changed.pth"
    state = torch.load(exported["ckpt"], weights_only=True)
    state["classifier.1.bias"] = state["classifier.1.bias"] + 1.0
    torch.save(state, changed)
    art2 = _copy(
        exported["fp32"],
        tmp_path / "changed.onnx",
        card={"weights": dict(_card_field(exported["fp32"], "weights"), path=str(changed))},
    )
    with pytest.raises(CheckpointError, match="has changed since"):
        validate(art2, count=2)
    # passed explicitly, the other checkpoint is used, flagged, and the comparison fails
    result = validate(exported["fp32"], weights=str(changed), count=8)
    assert not result.passed and result.weights["matches_card"] is False
    assert any("not the one" in n for n in result.notes)


def test_data_folder_with_a_broken_image(exported, tmp_path):
    from edgecnn.convert.calibration import sample_photos

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, im in enumerate(sample_photos(5, seed=3)):
        im.save(folder / f"{i}.jpg")
    (folder / "broken.png").write_bytes(b"not a png")
    result = validate(exported["fp32"], data=folder, count=100)
    assert result.passed
    assert result.inputs["count"] == 5 and result.inputs["available"] == 6
    assert [s["name"] for s in result.inputs["skipped"]] == ["broken.png"]
    cli = runner.invoke(app, ["validate", str(exported["fp32"]), "--data", str(folder)])
    assert cli.exit_code == 0 and "broken.png" in cli.stderr

    with pytest.raises(InputError, match="not a folder"):
        validate(exported["fp32"], data=tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    Image.new("RGB", (4, 4)).save(empty / "x.txt", format="PNG")  # wrong suffix: not an image file
    with pytest.raises(InputError, match="has no images"):
        validate(exported["fp32"], data=empty)


def test_file_without_a_card_needs_against(exported, tmp_path):
    plain = _copy(exported["fp32"], tmp_path / "plain.onnx", strip_card=True)
    with pytest.raises(ArtifactError, match="no edgecnn card.*--against"):
        validate(plain, weights=str(exported["ckpt"]))
    result = validate(plain, against="mobilenet", weights=str(exported["ckpt"]), arch_options=ARCH, count=8)
    assert result.passed and result.model == "mobilenet_v2" and result.precision == "fp32"
    assert any("no edgecnn card" in n for n in result.notes)


def test_missing_file(tmp_path):
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.onnx")])
    assert result.exit_code == 2 and result.stderr.startswith("error: model file not found")


def test_json_is_strict_even_with_unlimited_tolerances():
    from edgecnn.convert.validate import OutputCheck, ProviderCheck, ValidationResult
    from edgecnn.runtime.compare import compare

    ref = np.random.default_rng(0).standard_normal((4, 10))
    report = compare(ref, ref + 0.01, task="classification", precision="int8")
    assert report.tolerances["max_rel"] == float("inf")
    result = ValidationResult(
        "m.onnx",
        "resnet18",
        "classification",
        "int8",
        {},
        {"skipped": []},
        (ProviderCheck(("cpu",), ("CPUExecutionProvider",), (OutputCheck("logits", report),)),),
    )
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["checks"][0]["outputs"][0]["tolerances"]["max_rel"] is None and data["passed"] is True
