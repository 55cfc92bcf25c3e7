"""ExecuTorch (.pte): the exporter (``convert/targets/pte.py``) and the runner (``runtime/executorch``).

The small trained MobileNetV2 of the test fixtures (width 0.5, digits, 10 classes, 32×32), exported once in fp32
(module fixture) and, for the slow set, once in int8 (a lowering takes ~30 s here; the default run's int8 .pte is
tests/test_targets.py's, made by the export and judged on its runtime); the runner reopens each file and is judged
against PyTorch on held-out digits that calibration never saw.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgecnn.core.card import ModelCard
from edgecnn.core.errors import ArtifactError, InputError, ProviderUnavailableError
from edgecnn.runtime.executorch import open_executorch
from edgecnn.runtime.runner import RunnerOptions
from edgecnn.runtime.session import run_batched

CLASSES, SIZE = 10, 32


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def made(tmp_path_factory, trained_checkpoint) -> dict:
    from edgecnn import create_model
    from edgecnn.convert.targets.pte import export
    from edgecnn.convert.targets.request import TargetRequest

    fixture = trained_checkpoint("mobilenet_v2")  # digits, 32x32: int8 has accuracy to keep, unlike random weights
    root = tmp_path_factory.mktemp("pte")
    model = create_model("mobilenet_v2", num_classes=CLASSES, **fixture.arch_options)
    model.load_state_dict(torch.load(fixture.checkpoint, map_location="cpu"))
    model.eval()
    calibration, held_out = fixture.heldout[:32], fixture.heldout[32:64]
    card = ModelCard(
        model="mobilenet_v2",
        task="classification",
        output_name="logits",
        input_shape=[1, 3, SIZE, SIZE],
        resize=None,
        crop=[SIZE, SIZE],
        num_classes=CLASSES,
        labels=[f"class {i}" for i in range(CLASSES)],
        extra={"arch_options": {"width_mult": 0.5}},
    )
    request = TargetRequest(
        model=model,
        example=calibration[:1],
        path=root / "tiny.fp32.pte",
        metadata=card.replace(precision="fp32").to_metadata(),
    )
    with torch.no_grad():
        reference = model(torch.from_numpy(held_out)).numpy()
    results = {"fp32": export(request)}
    return {
        "model": model,
        "card": card,
        "results": results,
        "x": held_out,
        "ref": reference,
        "root": root,
        "cal": calibration,
    }


@pytest.fixture(scope="module")
def made_int8(made) -> dict:
    """``made`` with the int8 file too (the slow set's: its lowering is the module's costliest step)."""
    from edgecnn.convert.targets.pte import export
    from edgecnn.convert.targets.request import TargetRequest

    if "int8" not in made["results"]:
        made["results"]["int8"] = export(
            TargetRequest(
                model=made["model"],
                example=made["cal"][:1],
                path=made["root"] / "tiny.int8.pte",
                precision="int8",
                metadata=made["card"].replace(precision="int8").to_metadata(),
                calibration=made["cal"],
            )
        )
    return made


def _open(made, precision: str, **options):
    return open_executorch(made["results"][precision].path, RunnerOptions(**options))


def test_fp32_matches_pytorch(made):
    runner = _open(made, "fp32", threads=2)
    assert runner.inputs[0].shape == (1, 3, SIZE, SIZE) and runner.inputs[0].dtype == np.float32
    assert runner.outputs[0].name == "logits" and runner.outputs[0].shape == (1, CLASSES)
    out = run_batched(runner, made["x"])[0]
    ref = made["ref"]
    # float32 reassociation only: far below the logits' spread
    assert np.abs(out - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max()), np.abs(out - ref).max()
    assert (out.argmax(1) == ref.argmax(1)).all()


@pytest.mark.slow
def test_int8_is_close_to_pytorch_on_photographs(made_int8):
    made = made_int8
    runner = _open(made, "int8")
    out = run_batched(runner, made["x"])[0]
    cosine = _cosine(out, made["ref"])
    # measured: mean 0.9996, worst 0.998 on these 32 digits (top-1 agreement 100%; 98.7% over the other 377)
    assert cosine.mean() >= 0.99 and cosine.min() >= 0.98, cosine
    assert (out.argmax(1) == made["ref"].argmax(1)).mean() >= 0.9
    assert made["results"]["int8"].path.stat().st_size < 0.5 * made["results"]["fp32"].path.stat().st_size
    record = made["results"]["int8"].int8
    assert record["calibration_count"] == 32 and "fuse_clamps" in record["recipe"]


def test_card_round_trips_through_the_runner(made):
    runner = _open(made, "fp32")
    card = ModelCard.from_metadata(runner.metadata, "tiny.fp32.pte")
    expected = made["card"].replace(precision="fp32")
    assert card.replace(extra={}) == expected.replace(extra={})
    assert card.extra["arch_options"] == {"width_mult": 0.5}
    assert card.extra["delegation"] == made["results"]["fp32"].delegation


def test_threads_are_set_and_read_back(made):
    one = _open(made, "fp32", threads=1)
    assert one.info()["threads"] == 1
    also = _open(made, "fp32", threads=1)  # the same count: the pool is shared
    # another count while files are open: refused (a pool reset under a loaded XNNPACK method crashes its next run)
    with pytest.raises(InputError, match="one per process") as caught:
        _open(made, "fp32", threads=2)
    assert "\n" not in str(caught.value)
    one.close(), also.close()
    two = _open(made, "fp32", threads=2)
    assert two.info()["threads"] == 2
    assert two.run({"input": made["x"][:1]})[0].shape == (1, CLASSES)
    two.close()
    with pytest.raises(InputError, match="closed"):
        two.run({"input": made["x"][:1]})


def test_batch_runs_one_image_at_a_time_and_equals_each_image(made):
    runner = _open(made, "fp32", threads=2)
    batch = run_batched(runner, made["x"][:3])[0]
    single = np.concatenate([runner.run({"input": made["x"][i : i + 1]})[0] for i in range(3)])
    np.testing.assert_array_equal(batch, single)
    timed = runner.bind({"input": made["x"][:1]})
    np.testing.assert_array_equal(timed()[0].numpy(), single[:1])
    with pytest.raises(InputError, match="static-shape"):
        runner.run({"input": made["x"][:2]})


@pytest.mark.parametrize("precision", ["fp32", pytest.param("int8", marks=pytest.mark.slow)])
def test_delegation_is_recorded_and_every_convolution_is_delegated(made, request, precision):
    made = request.getfixturevalue("made_int8") if precision == "int8" else made
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in made["model"].modules())
    result = made["results"][precision]
    delegation = result.delegation
    assert delegation["partitions"] == 1 and delegation["other_nodes"] == 0, delegation
    assert delegation["delegated_ops"]["aten_convolution_default"] == convs
    assert any("XNNPACK took" in note for note in result.notes)
    info = _open(made, precision).info()
    assert info["providers"] == ["xnnpack"] and info["backend"] == "executorch"
    assert info["delegation"]["backends"] == {"XnnpackBackend": 1}
    assert info["delegation"]["kernels"] == {}  # nothing runs on the portable kernels
    assert _open(made, precision).node_assignment() == {"xnnpack": delegation["delegated_nodes"], "cpu": 0}


def test_a_flipped_byte_or_a_missing_file_is_one_line(made, tmp_path):
    data = bytearray(made["results"]["fp32"].path.read_bytes())
    data[5] ^= 0xFF  # the flatbuffer's file identifier "ET12"
    broken = tmp_path / "broken.pte"
    broken.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="broken.pte") as caught:
        open_executorch(broken, RunnerOptions())
    assert "\n" not in str(caught.value)
    with pytest.raises(ArtifactError, match="not found"):
        open_executorch(tmp_path / "absent.pte", RunnerOptions())


def test_a_provider_other_than_the_compiled_delegate_is_refused(made):
    with pytest.raises(ProviderUnavailableError, match="chosen|compiled into it at export") as caught:
        _open(made, "fp32", providers="cuda")
    assert "\n" not in str(caught.value)
    assert _open(made, "fp32", providers="xnnpack").info()["providers"] == ["xnnpack"]
    assert _open(made, "fp32", providers=("CPUExecutionProvider",)).info()["providers"] == ["xnnpack"]


def test_fp16_and_int8_without_calibration_are_refused(made, tmp_path):
    from edgecnn.convert.targets.pte import export
    from edgecnn.convert.targets.request import TargetRequest

    base = {"model": made["model"], "example": made["x"][:1], "path": tmp_path / "m.pte"}
    with pytest.raises(InputError, match="fp16 is not offered for .pte"):
        export(TargetRequest(**base, precision="fp16"))
    with pytest.raises(InputError, match="calibration"):
        export(TargetRequest(**base, precision="int8"))


def test_a_model_torch_export_cannot_take_is_one_line(tmp_path):
    from edgecnn.convert.targets.pte import export
    from edgecnn.convert.targets.request import TargetRequest

    class Branchy(torch.nn.Module):
        def forward(self, x):
            return x * 2 if x.sum() > 0 else x  # data-dependent control flow: torch.export refuses it

    x = np.ones((1, 3, 4, 4), np.float32)
    with pytest.raises(ArtifactError, match="cannot export branchy.pte to ExecuTorch") as caught:
        export(TargetRequest(model=Branchy(), example=x, path=tmp_path / "branchy.pte"))
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "branchy.pte").exists()


def test_quantized_io_carries_its_scales(tmp_path):
    from edgecnn.convert.targets.pte import export
    from edgecnn.convert.targets.request import TargetRequest

    torch.manual_seed(1)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()
    ).eval()
    x = torch.rand(16, 3, 8, 8).numpy()
    made = export(TargetRequest(model, x[:1], tmp_path / "q.pte", "int8", calibration=x, quantized_io=True))
    runner = open_executorch(made.path, RunnerOptions())
    assert runner.inputs[0].dtype == np.int8 and runner.outputs[0].dtype == np.int8
    quant = runner.info()["io_quantization"]
    assert quant == made.int8["io_quantization"]
    raw = run_batched(runner, x[8:])[0]  # floats in: quantized with the file's own input scale
    out = (raw.astype(np.float32) - quant["output"]["zero_point"]) * quant["output"]["scale"]
    with torch.no_grad():
        ref = model(torch.from_numpy(x[8:])).numpy()
    assert _cosine(out, ref).min() >= 0.99


def test_the_package_imports_without_torch_and_says_what_to_install(made):
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from edgecnn.runtime.executorch import open_executorch\n"
        "from edgecnn.runtime.runner import RunnerOptions\n"
        "from edgecnn.core.errors import InputError\n"
        "try:\n"
        f"    open_executorch({str(made['results']['fp32'].path)!r}, RunnerOptions())\n"
        "except InputError as e:\n"
        "    print(e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert 'needs torch: pip install "edgecnn[executorch]"' in done.stdout


def test_the_files_exist_where_asked(made):
    assert {p.name for p in Path(made["root"]).iterdir()} >= {"tiny.fp32.pte"}
    assert made["results"]["fp32"].path == Path(made["root"]) / "tiny.fp32.pte"
