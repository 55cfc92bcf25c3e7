"""LiteRT (.tflite): the exporter (litert-torch fp32, fp16 weights, PT2E int8 with float or int8 I/O) and the
torch-free runner (XNNPACK or LiteRT's own kernels, the card inside the flatbuffer, batch resizing, delegation).

One small trained model (MobileNetV2 at width 0.5, 32×32, the digits fixture) is converted twice for the whole
module, fp32 and int8: litert-torch takes ~10 s a conversion. The other forms (fp16, quantized I/O) run the rest
of ``export`` for real on those converter outputs (``tflite._converted`` is the one seam replaced).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from edgecnn.convert.targets import tflite
from edgecnn.convert.targets.request import TargetRequest, export_target
from edgecnn.core.card import ModelCard
from edgecnn.core.errors import ArtifactError, InputError, ProviderUnavailableError
from edgecnn.models import create_model
from edgecnn.runtime.litert import open_litert
from edgecnn.runtime.runner import RunnerOptions

CALIBRATION = 8  # images the int8 file is calibrated on (the test images are others from the same split)


def _card(precision: str) -> dict:
    card = ModelCard(
        "mobilenet_v2",
        "classification",
        input_name="input",
        output_name="logits",
        input_shape=["batch", 3, 32, 32],
        resize=None,
        crop=[32, 32],
        num_classes=10,
        labels=[str(k) for k in range(10)],
        precision=precision,
    )
    return card.to_metadata()


@pytest.fixture(scope="module")
def made(trained_checkpoint, tmp_path_factory):
    """The trained model, its data, the fp32 and int8 files exported for real, and what litert-torch gave."""
    fx = trained_checkpoint("mobilenet_v2")
    model = create_model("mobilenet_v2", num_classes=fx.num_classes, **fx.arch_options)
    model.load_state_dict(torch.load(fx.checkpoint, weights_only=True))
    model.eval()
    calib, images = fx.heldout[:CALIBRATION], fx.heldout[CALIBRATION : CALIBRATION + 48]
    with torch.no_grad():
        reference = model(torch.from_numpy(images)).numpy()
    folder = tmp_path_factory.mktemp("litert")
    converted, real = {}, tflite._converted

    def spy(request):
        converted[request.precision] = real(request)
        return converted[request.precision]

    def request(precision, **changes):
        path = folder / f"m_{precision}{'_q' if changes.get('quantized_io') else ''}.tflite"
        return TargetRequest(model, images[:1], path, precision, _card(precision), calib, **changes)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tflite, "_converted", spy)
        results = {p: export_target("tflite", request(p)) for p in ("fp32", "int8")}
    return {
        "model": model,
        "images": images,
        "reference": reference,
        "results": results,
        "converted": converted,
        "request": request,
        "folder": folder,
    }


def _run(path, x, **options):
    runner = open_litert(path, RunnerOptions(**{"threads": 2, **options}))
    return runner, runner.run({runner.inputs[0].name: x})[0]


def _cosine(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_fp32_matches_pytorch_and_carries_the_card(made):
    result = made["results"]["fp32"]
    runner, y = _run(result.path, made["images"])
    scale = np.abs(made["reference"]).max()
    assert np.abs(y - made["reference"]).max() <= 2e-5 * scale
    card = ModelCard.from_metadata(runner.metadata, result.path.name)
    assert card == ModelCard.from_metadata(_card("fp32"))
    assert [s.name for s in runner.inputs] == ["input"] and [s.name for s in runner.outputs] == ["logits"]
    assert runner.inputs[0].shape == ("batch", 3, 32, 32) and runner.inputs[0].dtype == np.float32
    d = result.delegation
    assert d["partitions"] == 1 and d["other_nodes"] == 0 and d["delegated_nodes"] > 50
    assert result.notes[0].startswith(f"XNNPACK took {d['delegated_nodes']} of {d['delegated_nodes']} nodes")


def test_file_without_card_uses_tensor_names(made, tmp_path):
    path = tmp_path / "bare.tflite"
    path.write_bytes(made["converted"]["fp32"][0])  # litert-torch's own output: no card written
    runner = open_litert(path, RunnerOptions())
    assert runner.metadata == {}
    assert runner.inputs[0].name.startswith("serving_default") and runner.outputs[0].name.startswith("serving_default")


def test_builtin_and_xnnpack_give_the_same_numbers_and_different_delegation(made):
    path = made["results"]["fp32"].path
    x = made["images"][:8]
    fast, a = _run(path, x, providers="cpu")
    plain, b = _run(path, x, providers="builtin")
    assert np.abs(a - b).max() <= 2e-5 * np.abs(a).max()
    assert fast.info()["providers"] == ["xnnpack"] and plain.info()["providers"] == ["builtin"]
    assert fast.info()["delegation"]["partitions"] == 1 and plain.info()["delegation"]["partitions"] == 0
    total = fast.info()["delegation"]["delegated_nodes"]
    assert fast.node_assignment() == {"XNNPACK": total, "LiteRT CPU": 0}
    assert plain.node_assignment() == {"LiteRT CPU": total} and plain.info()["delegation"]["other_ops"]["CONV_2D"] > 0
    assert fast.info()["threads"] == 2 and fast.info()["io"] == "float32"


def test_batch_resizes_and_matches_per_image(made):
    runner = open_litert(made["results"]["fp32"].path, RunnerOptions(threads=2))
    x = made["images"][:5]
    whole = runner.run({"input": x})[0]
    single = np.concatenate([runner.run({"input": x[k : k + 1]})[0] for k in range(5)])
    assert whole.shape == (5, 10) and np.abs(whole - single).max() <= 1e-5 * np.abs(single).max()
    timed = runner.bind({"input": x[:3]})
    assert np.allclose(timed()[0], whole[:3], atol=1e-5 * np.abs(single).max())
    with pytest.raises(InputError, match="takes shape"):
        runner.run({"input": np.zeros((1, 3, 16, 16), np.float32)})


def test_int8_has_float_io_and_stays_close_to_pytorch(made):
    result = made["results"]["int8"]
    runner, y = _run(result.path, made["images"])
    assert runner.info()["io"] == "float32" and runner.interpreter.get_input_details()[0]["dtype"] == np.float32
    ref = made["reference"]
    assert _cosine(y, ref).min() >= 0.98 and (y.argmax(1) == ref.argmax(1)).mean() >= 0.95
    assert result.int8["io"] == "float32" and result.int8["calibration"]["count"] == CALIBRATION
    assert {r["side"] for r in result.int8["float_io"]} == {"input", "output"}
    assert ModelCard.from_metadata(runner.metadata).precision == "int8"


def test_quantized_io_option_matches_the_float_io_file(made, monkeypatch):
    monkeypatch.setattr(tflite, "_converted", lambda request: made["converted"]["int8"])
    result = tflite.export(made["request"]("int8", quantized_io=True))
    quantized, a = _run(result.path, made["images"])
    _, b = _run(made["results"]["int8"].path, made["images"])
    assert quantized.interpreter.get_input_details()[0]["dtype"] == np.int8
    assert quantized.info()["io"] == "int8 (quantized by the runner)" and quantized.inputs[0].dtype == np.float32
    step = quantized.output_quantization[0][0]
    assert np.abs(a - b).max() <= step * 1.001
    assert result.int8["io"] == "int8" and "int8 I/O" in result.notes[1]


def test_fp16_weights_match_pytorch_at_fp16_weight_level(made, monkeypatch, capfd):
    monkeypatch.setattr(tflite, "_converted", lambda request: made["converted"]["fp32"])
    result = tflite.export(made["request"]("fp16"))
    assert capfd.readouterr().out == ""  # ai-edge-quantizer's progress stayed inside
    _, y = _run(result.path, made["images"])
    # what the file should compute: the BatchNorms folded into the convs (as litert-torch does), the conv and
    # linear weights rounded to float16, everything else float32
    from edgecnn.convert.onnx_export import fold_batchnorm

    rounded_model, _ = fold_batchnorm(made["model"])
    with torch.no_grad():
        for p in rounded_model.parameters():
            if p.dim() > 1:
                p.copy_(p.half().float())
        rounded = rounded_model.eval()(torch.from_numpy(made["images"])).numpy()
    scale = np.abs(made["reference"]).max()
    assert np.abs(y - rounded).max() <= 2e-5 * scale
    assert np.abs(y - made["reference"]).max() <= 5e-3 * scale  # the fp16 rounding itself: ~1e-3 of the scale
    assert result.path.stat().st_size < 0.6 * made["results"]["fp32"].path.stat().st_size
    assert "fp16 weights" in result.notes[1] and result.delegation["other_nodes"] == 0


def test_a_flipped_header_byte_is_one_line_exit_2(made, tmp_path):
    data = bytearray(made["results"]["fp32"].path.read_bytes())
    data[4] ^= 0xFF  # the "TFL3" file identifier
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="LiteRT cannot load bad.tflite") as caught:
        open_litert(bad, RunnerOptions())
    assert "\n" not in str(caught.value)
    from typer.testing import CliRunner

    from edgecnn.cli import app

    image = tmp_path / "x.png"
    Image.new("RGB", (40, 40), (90, 120, 200)).save(image)
    res = CliRunner().invoke(app, ["predict", str(bad), str(image)])
    assert res.exit_code == 2 and res.output.count("\n") == 1 and "bad.tflite" in res.output, res.output


def test_unknown_provider_and_missing_runtime_are_one_line(made, monkeypatch):
    path = made["results"]["fp32"].path
    with pytest.raises(ProviderUnavailableError, match="runs on LiteRT's CPU only") as caught:
        open_litert(path, RunnerOptions(providers="cuda"))
    assert "\n" not in str(caught.value) and "'cuda'" in str(caught.value)
    with pytest.raises(ArtifactError, match="not found"):
        open_litert(path.with_name("absent.tflite"), RunnerOptions())
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    with pytest.raises(InputError, match=r'pip install "edgecnn\[litert\]"'):
        open_litert(path, RunnerOptions())


def test_runner_is_torch_free(made):
    code = (
        "import sys, numpy as np\n"
        "from edgecnn.runtime.litert import open_litert\n"
        "from edgecnn.runtime.runner import RunnerOptions\n"
        f"r = open_litert({str(made['results']['int8'].path)!r}, RunnerOptions())\n"
        "r.run({'input': np.zeros((2, 3, 32, 32), np.float32)})\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnxruntime', 'tensorflow')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path.cwd())
    assert out.stdout.strip() == "[]" and out.stderr == ""


class _Branchy(torch.nn.Module):
    """A data-dependent branch: torch.export cannot trace it."""

    def forward(self, x):
        return x * 2 if x.sum() > 0 else x - 1


def test_converter_failure_is_one_line_and_quiet(tmp_path, capfd):
    x = np.ones((1, 3, 8, 8), np.float32)
    with pytest.raises(ArtifactError, match="litert-torch cannot convert _Branchy") as caught:
        tflite.export(TargetRequest(_Branchy(), x, tmp_path / "b.tflite"))
    assert "\n" not in str(caught.value)
    out = capfd.readouterr()
    assert out.out == "" and out.err == "" and not (tmp_path / "b.tflite").exists()
