"""`--format coreml`: an ML program ``.mlpackage`` in fp32, fp16 and int8 weights, each read back structurally
(names, shapes, types, operators, precision, the card) by a reader that needs neither coremltools nor torch; a model
Core ML cannot take is one line; on Linux the opener says the file was converted, not run, and on macOS (here with
coremltools' ``MLModel`` stood in by the PyTorch model) it predicts, so the parity path runs.

ResNet18 at 32×32, ten classes: its 20 convolutions convert in about half MobileNetV2's time. The structure does not
depend on the weights, and the stand-in predictor is the same model, so random weights (BatchNorm statistics
re-estimated on noise, so the outputs differ between inputs) serve. The six seed architectures at full size are
slow-marked.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from edgecnn import create_model, get_spec
from edgecnn.convert.targets.coreml import export, write_package
from edgecnn.convert.targets.request import TargetRequest
from edgecnn.core.card import ModelCard
from edgecnn.core.errors import ArtifactError, InputError, ProviderUnavailableError
from edgecnn.runtime.coreml import inspect, open_coreml, structural_problems
from edgecnn.runtime.coreml import runner as coreml_runner
from edgecnn.runtime.runner import RunnerOptions

SIZE, CLASSES = 32, 10
PRECISIONS = ("fp32", "fp16", "int8")


def _model(name: str = "resnet18", **options) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model(name, **options)
    model.train()  # BatchNorm statistics from a few batches of noise: outputs that differ between inputs
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(8, 3, SIZE, SIZE))
    return model.eval()


def _card(precision: str, name: str = "resnet18", size: int = SIZE, classes: int = CLASSES) -> ModelCard:
    task = get_spec(name).task
    return ModelCard(
        model=name, task=task, input_shape=[1, 3, size, size], crop=[size, size], num_classes=classes,
        precision=precision,
    )  # fmt: skip


def _request(model, path: Path, precision: str, card: ModelCard | None = None, size: int = SIZE) -> TargetRequest:
    example = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    metadata = (card or _card(precision)).to_metadata()
    return TargetRequest(model=model, example=example, path=path, precision=precision, metadata=metadata)


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> dict:
    model = _model(num_classes=CLASSES)
    root = tmp_path_factory.mktemp("coreml")
    made = {p: export(_request(model, root / f"resnet18.{p}.mlpackage", p)) for p in PRECISIONS}
    return {"model": model, "root": root, "made": made}


def test_each_precision_is_an_ml_program_with_float_io_and_the_card(packages):
    for precision, made in packages["made"].items():
        found = inspect(made.path)
        assert (found["model_type"], found["spec_version"], found["minimum_os"]) == ("mlProgram", 7, "iOS16")
        assert found["inputs"] == [{"name": "input", "shape": [1, 3, SIZE, SIZE], "dtype": "float32"}]
        assert found["outputs"] == [{"name": "output", "shape": [1, CLASSES], "dtype": "float32"}]
        assert found["card"] == _card(precision).to_metadata()  # one key per card key, read back as written
        assert ModelCard.from_metadata(found["card"]).precision == precision
        assert found["precision"] == precision and structural_problems(found) == []
        assert made.format == "coreml" and any("not run" in n for n in made.notes)


def test_the_weights_say_the_precision_and_the_size_follows(packages):
    found = {p: inspect(m.path) for p, m in packages["made"].items()}
    assert set(found["fp32"]["weights"]) == {"float32"} and set(found["fp16"]["weights"]) == {"float16"}
    assert found["int8"]["weights"]["int8"] > 0 and found["int8"]["ops"]["constexpr_affine_dequantize"] > 0
    assert found["fp16"]["ops"]["cast"] == 2  # float32 in and out, half precision inside
    ratio16 = found["fp16"]["weights_bytes"] / found["fp32"]["weights_bytes"]
    ratio8 = found["int8"]["weights_bytes"] / found["fp32"]["weights_bytes"]
    assert 0.45 < ratio16 < 0.55 and ratio8 < 0.4, (ratio16, ratio8)
    assert packages["made"]["int8"].int8["activations"] == "float"


def test_the_operators_are_the_models_layers(packages):
    model = packages["model"]
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    linears = sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    for made in packages["made"].values():
        ops = inspect(made.path)["ops"]
        assert (ops["conv"], ops["linear"]) == (convs, linears)


def test_the_reader_agrees_with_coremltools_own_parser(packages):
    from collections import Counter

    from coremltools.proto import Model_pb2

    for made in packages["made"].values():
        spec = Model_pb2.Model()
        spec.ParseFromString((made.path / "Data/com.apple.CoreML/model.mlmodel").read_bytes())
        ops = Counter(
            op.type
            for fn in spec.mlProgram.functions.values()
            for block in fn.block_specializations.values()
            for op in block.operations
        )
        found = inspect(made.path)
        assert found["ops"] == dict(ops) and found["spec_version"] == spec.specificationVersion
        assert found["metadata"] == dict(spec.description.metadata.userDefined)
        assert [i["name"] for i in found["inputs"]] == [i.name for i in spec.description.input]
        assert found["inputs"][0]["shape"] == list(spec.description.input[0].type.multiArrayType.shape)


def test_the_package_is_whole_readable_and_nothing_is_left_beside_it(packages):
    made = packages["made"]["fp32"]
    assert (made.path / "Manifest.json").is_file()
    assert not (made.path / "executorch_debug_handle_mapping.json").exists()
    assert sorted(p.name for p in packages["root"].iterdir()) == sorted(m.path.name for m in packages["made"].values())
    modes = {os.stat(p).st_mode & 0o044 for p in made.path.rglob("*") if p.is_file()}
    assert modes == {0o044}, "coremltools' 0600 temporary files are given the modes of any other output"


def test_a_failed_save_keeps_the_old_package_and_leaves_no_staging(packages, tmp_path):
    import shutil

    target = tmp_path / "m.fp32.mlpackage"
    shutil.copytree(packages["made"]["fp32"].path, target)
    before = inspect(target)

    class Broken:
        def save(self, where):
            Path(where).mkdir()
            (Path(where) / "Manifest.json").write_text("{")  # half a package, then the disk fills up
            raise OSError(28, "No space left on device")

    with pytest.raises(ArtifactError, match="No space left on device"):
        write_package(Broken(), target)
    assert inspect(target) == before and sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_an_operator_core_ml_cannot_take_is_one_line(tmp_path):
    class Erfinv(torch.nn.Module):  # coremltools 9.0 has no conversion for aten.erfinv
        def forward(self, x):
            return torch.erfinv(torch.tanh(x)).mean((2, 3))

    card = ModelCard(model="erfinv_net", task="classification", input_shape=[1, 3, 8, 8], crop=[8, 8], num_classes=3)
    request = _request(Erfinv().eval(), tmp_path / "e.fp32.mlpackage", "fp32", card, size=8)
    with pytest.raises(ArtifactError) as err:
        export(request)
    message = str(err.value)
    assert "\n" not in message and "erfinv_net" in message and "'erfinv'" in message, message
    assert list(tmp_path.iterdir()) == []


def test_bad_requests_are_refused_before_converting(tmp_path):
    model = torch.nn.Conv2d(3, 2, 1)
    with pytest.raises(InputError, match="precision"):
        export(_request(model, tmp_path / "m.bf16.mlpackage", "bf16"))
    with pytest.raises(InputError, match="mlpackage"):
        export(_request(model, tmp_path / "m.fp32.coreml", "fp32"))
    with pytest.raises(InputError, match="quantized I/O"):
        export(
            TargetRequest(model, np.zeros((1, 3, 4, 4), np.float32), tmp_path / "m.mlpackage", "int8", {}, None, True)
        )


def test_a_damaged_package_is_one_line(packages, tmp_path):
    import shutil

    with pytest.raises(ArtifactError, match="not found"):
        inspect(tmp_path / "missing.mlpackage")
    broken = tmp_path / "broken.mlpackage"
    shutil.copytree(packages["made"]["fp32"].path, broken)
    spec = broken / "Data/com.apple.CoreML/model.mlmodel"
    spec.write_bytes(spec.read_bytes()[: spec.stat().st_size // 2])
    with pytest.raises(ArtifactError, match="does not decode") as err:
        inspect(broken)
    assert "\n" not in str(err.value)
    (broken / "Manifest.json").unlink()
    with pytest.raises(ArtifactError, match="Manifest.json"):
        open_coreml(broken, RunnerOptions())


def test_corrupted_specifications_are_read_or_refused_never_a_crash(packages, tmp_path):
    """Bytes changed or cut anywhere in the specification: the reader decodes it or says it does not decode."""
    import random
    import shutil

    source = packages["made"]["int8"].path
    light = tmp_path / "light.mlpackage"  # the manifest and the specification, without the weights
    shutil.copy(source / "Manifest.json", (light / "Data/com.apple.CoreML").mkdir(parents=True) or light)
    original = (source / "Data/com.apple.CoreML/model.mlmodel").read_bytes()
    rng, refused = random.Random(0), 0
    for _ in range(100):
        data = bytearray(original)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        cut = rng.randint(1, len(data)) if rng.random() < 0.5 else len(data)
        (light / "Data/com.apple.CoreML/model.mlmodel").write_bytes(bytes(data[:cut]))
        try:
            inspect(light)
        except ArtifactError as exc:
            refused += 1
            assert "\n" not in str(exc)
    assert 0 < refused < 100  # both outcomes occur: cut-short specifications are refused, some edits still decode


def test_on_linux_the_opener_says_converted_not_run(packages):
    with pytest.raises(ProviderUnavailableError) as err:
        open_coreml(packages["made"]["fp32"].path, RunnerOptions())
    message = str(err.value)
    assert "\n" not in message and message.endswith(
        "Core ML predicts on macOS only; converted and checked structurally, not run"
    )


class _StandIn:
    """coremltools' ``MLModel`` as Core ML would behave: the PyTorch model predicts, batch 1, names as the file's."""

    model: torch.nn.Module
    opened: list = []

    def __init__(self, path, compute_units=None):
        self.opened.append((Path(path).name, compute_units))

    def predict(self, feeds):
        (x,) = feeds.values()
        assert x.shape[0] == 1 and x.dtype == np.float32
        with torch.no_grad():
            return {"output": self.model(torch.from_numpy(x)).numpy()}


def test_on_macos_the_runner_predicts_through_mlmodel_and_parity_runs(packages, monkeypatch):
    import coremltools
    from coremltools.models import model as model_module

    from edgecnn.runtime.compare import compare
    from edgecnn.runtime.session import run_batched

    _StandIn.model, _StandIn.opened = packages["model"], []
    monkeypatch.setattr(coreml_runner, "_on_macos", lambda: True)
    monkeypatch.setattr(model_module, "_MLModelProxy", None)
    with pytest.raises(ProviderUnavailableError, match="no Core ML binding"):
        open_coreml(packages["made"]["fp32"].path, RunnerOptions())
    monkeypatch.setattr(model_module, "_MLModelProxy", object())
    monkeypatch.setattr(coremltools.models, "MLModel", _StandIn)
    runner = open_coreml(packages["made"]["fp32"].path, RunnerOptions(providers="ane"))
    assert _StandIn.opened == [("resnet18.fp32.mlpackage", coremltools.ComputeUnit.CPU_AND_NE)]
    assert runner.info()["providers"] == ["CPU_AND_NE"] and runner.metadata == _card("fp32").to_metadata()
    x = np.random.default_rng(1).standard_normal((5, 3, SIZE, SIZE)).astype(np.float32)
    got = run_batched(runner, x)[0]
    with torch.no_grad():
        ref = packages["model"](torch.from_numpy(x)).numpy()
    report = compare(ref, got, task="classification", precision="fp32")
    assert report.passed and report.judged and got.shape == (5, CLASSES)
    with pytest.raises(InputError, match="takes shape"):
        runner.run({"input": x[:, :, : SIZE // 2]})
    with pytest.raises(ProviderUnavailableError, match="compute units"):
        open_coreml(packages["made"]["fp32"].path, RunnerOptions(providers="cuda"))


def test_the_pipeline_records_a_structural_check_not_a_parity_verdict(packages):
    from edgecnn.pipeline.coreml_check import NOT_RUN, check_coreml, package_digest, runnable_here, size_and_digest
    from edgecnn.pipeline.steps import Run

    run = Run(progress=None)
    artifact = check_coreml(packages["made"]["int8"], _card("int8"), run)
    record = json.loads(json.dumps(artifact.to_dict(), allow_nan=False))
    assert record["format"] == "coreml" and record["precision"] == "int8" and not artifact.failed
    assert record["parity"]["judged"] is False and record["parity"]["note"] == NOT_RUN
    assert record["runtime"]["run"] is False and record["runtime"]["structure"]["ops"]["conv"] > 0
    assert record["sha256"] == package_digest(packages["made"]["int8"].path) and len(record["sha256"]) == 64
    assert size_and_digest(packages["made"]["int8"].path) == (record["size_bytes"], record["sha256"])
    assert any(NOT_RUN in w for w in run.warnings) and not runnable_here()
    with pytest.raises(ArtifactError, match="not resnet18 fp32"):
        check_coreml(
            packages["made"]["int8"].__class__(packages["made"]["int8"].path, "coreml", "fp32"), _card("fp32"), run
        )


SEEDS = ("alexnet", "vgg16", "googlenet", "mobilenet_v2", "resnet50", "unet")


@pytest.mark.slow
@pytest.mark.parametrize("name", SEEDS)
def test_the_seed_architectures_convert_at_full_size(name, tmp_path):
    spec = get_spec(name)
    size = spec.input_size[0]
    torch.manual_seed(0)
    model = create_model(name).eval()
    card = _card("fp32", name, size, spec.num_classes)
    made = export(_request(model, tmp_path / f"{name}.fp32.mlpackage", "fp32", card, size=size))
    found = inspect(made.path)
    assert structural_problems(found) == [], found
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert found["ops"]["conv"] == convs and found["outputs"][0]["shape"][:2] == [1, spec.num_classes]
