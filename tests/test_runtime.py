"""edgecnn.runtime.predictor.Predictor and `edgecnn predict`: agreement with PyTorch, batching, threads, errors, no
torch."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image
from test_preprocess import photo
from typer.testing import CliRunner

import edgecnn
from edgecnn.cli import app
from edgecnn.convert.transforms import torch_preprocess
from edgecnn.core.card import ModelCard
from edgecnn.core.errors import ArtifactError, InputError, ProviderUnavailableError
from edgecnn.runtime.predictor import Predictor
from edgecnn.runtime.preprocess import PreprocessParams, preprocess

LABELS = ["apple", "bee", "cat", "dog", "eel"]
SIZES = [(96, 80), (80, 96), (64, 64), (200, 50), (40, 30), (150, 120), (72, 100), (333, 250)]


def images(n: int = len(SIZES)) -> list[Image.Image]:
    return [photo(w, h, seed=10 + i) for i, (w, h) in enumerate(SIZES[:n])]


def recalibrate(model: torch.nn.Module, shape: tuple) -> torch.nn.Module:
    """Re-estimate BatchNorm statistics on preprocessed photos: random-init eval outputs are near-constant."""
    params = PreprocessParams(crop=shape[1:], resize=None)
    batch = torch.stack([torch_preprocess(photo(90, 70, seed=100 + i), params) for i in range(16)])
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a plain average over the passes, not a slow drift away from var=1
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(batch)
        for m in model.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.mul_(10)  # init std 0.01 gives logits too close for top-k order to mean much
    return model.eval()


def export(
    model: torch.nn.Module, path: Path, card: ModelCard | None, example: torch.Tensor, dynamic: dict | None
) -> Path:
    """Export the quick way (TorchScript exporter; the tests are about the runtime, not the exporter)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=False,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes=dynamic,
            opset_version=17,
        )
    proto = onnx.load(str(path))
    if card is not None:
        for key, value in card.to_metadata().items():
            proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))
    return path


class EmbeddedPreprocess(torch.nn.Module):
    """uint8 N×H×W×C in, normalisation inside the graph (what --embed-preprocess produces)."""

    def __init__(self, inner: torch.nn.Module, mean, std) -> None:
        super().__init__()
        self.inner = inner
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2).float() / 255.0
        return self.inner((x - self.mean) / self.std)


def tiny_segmenter() -> torch.nn.Module:
    """Fully convolutional: any H/W divisible by 2 in, N×3×H×W logits out."""
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, 2, 1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, 1, 1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.ConvTranspose2d(8, 3, 2, 2),
    )


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    net = recalibrate(edgecnn.create_model("mobilenet_v2", num_classes=5, width_mult=0.25), (3, 64, 64))
    card = ModelCard(
        model="mobilenet_v2",
        task="classification",
        output_name="logits",
        input_shape=["batch", 3, 64, 64],
        resize=72,
        crop=[64, 64],
        num_classes=5,
        labels=LABELS,
    )
    x = torch.randn(2, 3, 64, 64)
    batch = {"input": {0: "batch"}, "logits": {0: "batch"}}
    paths = {
        "classifier": export(net, root / "cls.onnx", card, x, batch),
        "static2": export(net, root / "static2.onnx", card.replace(input_shape=[2, 3, 64, 64]), x, None),
        "bare": export(net, root / "bare.onnx", None, x, batch),
    }
    embedded = EmbeddedPreprocess(net, card.mean, card.std).eval()
    paths["embedded"] = export(
        embedded,
        root / "embedded.onnx",
        card.replace(input_shape=["batch", 64, 64, 3], layout="NHWC", input_dtype="uint8", preprocess_embedded=True),
        torch.zeros(2, 64, 64, 3, dtype=torch.uint8),
        batch,
    )
    seg = recalibrate(tiny_segmenter(), (3, 48, 64))
    seg_card = ModelCard(
        model="tiny_seg",
        task="segmentation",
        output_name="logits",
        input_shape=["batch", 3, "height", "width"],
        resize=None,
        crop=[48, 64],
        num_classes=3,
        labels=["background", "thing", "stuff"],
    )
    paths["segmenter"] = export(
        seg,
        root / "seg.onnx",
        seg_card,
        torch.randn(1, 3, 48, 64),
        {"input": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch", 2: "height", 3: "width"}},
    )
    return {"paths": paths, "net": net, "card": card, "seg": seg, "seg_card": seg_card}


def test_predictor_agrees_with_pytorch(models):
    net, card = models["net"], models["card"]
    predictor = Predictor(models["paths"]["classifier"])
    assert predictor.card == card and predictor.task == "classification" and predictor.labels == LABELS
    imgs = images()
    torch_inputs = torch.stack([torch_preprocess(im, card) for im in imgs])
    numpy_inputs = np.stack([preprocess(im, card) for im in imgs])
    with torch.no_grad():
        torch_logits = net(torch_inputs).numpy()
        numpy_logits = net(torch.from_numpy(numpy_inputs)).numpy()
    assert len(set(torch_logits.argmax(1))) > 1, "degenerate test model: every image gets the same class"

    # The graph: same input, float rounding only.
    assert np.abs(predictor.run(torch_inputs.numpy()) - torch_logits).max() < 1e-4
    # The whole Predictor path is the numpy preprocessing + the graph.
    assert np.abs(predictor.run(predictor.preprocess(imgs)) - numpy_logits).max() < 1e-4
    results = predictor.predict(imgs, top_k=3)
    assert len(results) == len(imgs)
    for res, z in zip(results, numpy_logits.astype(np.float64)):
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        assert [label for label, _ in res] == [LABELS[i] for i in np.argsort(-p)[:3]]
        # logits within 1e-4 (above) move a softmax probability by at most half that: p·|dz − Σp·dz| ≤ max|dz|/2
        np.testing.assert_allclose([prob for _, prob in res], np.sort(p)[::-1][:3], atol=5e-5)

    # End to end against torch's preprocessing: Pillow and torch differ by one pixel step in <1.5% of pixels,
    # which moves this random-init net's logits by up to ~0.6 (a trained net far less); where PyTorch's top-1
    # leads by more than that, the Predictor must name the same class.
    top2 = np.sort(torch_logits, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 1.0
    assert clear.sum() >= 4
    ours_top1 = [res[0][0] for res in results]
    assert [ours_top1[i] for i in np.flatnonzero(clear)] == [LABELS[i] for i in torch_logits.argmax(1)[clear]]

    full = predictor.predict(imgs[0], top_k=10)[0]  # one image in, a list of one out; k capped at 5 classes
    assert len(full) == 5 and abs(sum(prob for _, prob in full) - 1.0) < 1e-9


def test_fixed_batch_graph_runs_in_chunks(models):
    imgs = images(5)
    dynamic = Predictor(models["paths"]["classifier"]).predict(imgs)
    fixed = Predictor(models["paths"]["static2"])
    assert fixed.input_shape[0] == 2 and fixed.batch_size == 2
    static = fixed.predict(imgs)  # 2 + 2 + 1 (padded)
    assert [r[0][0] for r in static] == [r[0][0] for r in dynamic]
    np.testing.assert_allclose([p for r in static for _, p in r], [p for r in dynamic for _, p in r], atol=1e-6)
    assert fixed.run(np.zeros((3, 3, 64, 64), np.float32)).shape == (3, 5)


def test_embedded_preprocessing_graph_takes_uint8(models):
    imgs = images(4)
    embedded = Predictor(models["paths"]["embedded"])
    assert embedded.embedded and embedded.preprocess(imgs).dtype == np.uint8
    assert embedded.preprocess(imgs).shape == (4, 64, 64, 3)
    plain = Predictor(models["paths"]["classifier"]).predict(imgs)
    got = embedded.predict(imgs)
    assert [r[0][0] for r in got] == [r[0][0] for r in plain]
    np.testing.assert_allclose([p for r in got for _, p in r], [p for r in plain for _, p in r], atol=1e-4)
    with pytest.raises(InputError, match="takes uint8 pixels"):
        embedded.run(np.zeros((1, 64, 64, 3), np.float32))


def test_segmentation_masks(models):
    predictor = Predictor(models["paths"]["segmenter"])
    imgs = images(3)
    masks = predictor.predict(imgs)
    with torch.no_grad():
        ref = models["seg"](torch.stack([torch_preprocess(im, models["seg_card"]) for im in imgs])).argmax(1)
    for mask, r in zip(masks, ref.numpy()):
        assert mask.dtype == np.uint8 and mask.shape == (48, 64)
        assert (mask == r).mean() > 0.99  # a pixel step in preprocessing may flip a near-tie pixel
    assert len(np.unique(np.stack(masks))) > 1
    assert predictor.run(np.zeros((1, 3, 32, 96), np.float32)).shape == (1, 3, 32, 96)  # dynamic H/W
    with pytest.raises(InputError, match="multiples of 16"):
        predictor.run(np.zeros((1, 3, 40, 64), np.float32))


def test_model_without_metadata_needs_options(models):
    bare = models["paths"]["bare"]
    with pytest.raises(InputError, match=r"no edgecnn metadata; pass mean=, std="):
        Predictor(bare)
    card = models["card"]
    predictor = Predictor(bare, mean=card.mean, std=card.std, resize=72, labels=LABELS)
    assert predictor.card is None and predictor.task == "classification"
    assert predictor.params == PreprocessParams.from_card(card)  # crop taken from the graph's fixed 64x64
    imgs = images(3)
    assert predictor.predict(imgs) == Predictor(models["paths"]["classifier"]).predict(imgs)
    unlabelled = Predictor(bare, mean=card.mean, std=card.std)
    assert all(label in {"0", "1", "2", "3", "4"} for label, _ in unlabelled.predict(imgs[0])[0])
    with pytest.raises(InputError, match="does not fit"):
        Predictor(bare, mean=card.mean, std=card.std, crop=96)


def test_input_errors(models, tmp_path):
    predictor = Predictor(models["paths"]["classifier"])
    with pytest.raises(InputError, match=r"takes 3 channel\(s\).*got 1"):
        predictor.run(np.zeros((1, 1, 64, 64), np.float32))
    with pytest.raises(InputError, match="takes height 64, got 32"):
        predictor.run(np.zeros((1, 3, 32, 64), np.float32))
    with pytest.raises(InputError, match="4-D"):
        predictor.run(np.zeros((3, 64, 64), np.float32))
    with pytest.raises(InputError, match="normalised float32 input, got uint8"):
        predictor.run(np.zeros((1, 3, 64, 64), np.uint8))
    assert predictor.run(np.zeros((1, 3, 64, 64), np.float64)).dtype == np.float32  # floats are cast
    text = tmp_path / "photo.png"
    text.write_text("not a png")
    with pytest.raises(InputError, match="photo.png: not a readable image"):
        predictor.predict([images(1)[0], text])
    with pytest.raises(InputError, match="top_k"):
        predictor.predict(images(1), top_k=0)


def test_artifact_errors(models, tmp_path):
    good = models["paths"]["classifier"].read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(good[: len(good) // 2])
    text = tmp_path / "notes.onnx"
    text.write_text("hello")
    for path in (truncated, text):
        with pytest.raises(ArtifactError, match=f"onnxruntime cannot load .*{path.name}") as info:
            Predictor(path)
        assert "\n" not in str(info.value)
    with pytest.raises(ArtifactError, match="no such model file"):
        Predictor(tmp_path / "missing.onnx")


def test_providers(models):
    predictor = Predictor(models["paths"]["classifier"], providers=["CPUExecutionProvider"], intra_op_threads=1)
    assert predictor.providers == ["CPUExecutionProvider"]
    assert Predictor(models["paths"]["classifier"]).providers == ["CPUExecutionProvider"]
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(ProviderUnavailableError, match="'cuda' is not in this onnxruntime build.*onnxruntime-gpu"):
            Predictor(models["paths"]["classifier"], providers=["cuda", "cpu"])
    with pytest.raises(ProviderUnavailableError, match="unknown execution provider 'warpdrive'"):
        Predictor(models["paths"]["classifier"], providers=["warpdrive"])


def test_concurrent_calls_match_sequential(models):
    predictor = Predictor(models["paths"]["classifier"], intra_op_threads=1)
    imgs = images()
    sequential = [predictor.predict(im)[0] for im in imgs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(3):
            concurrent = list(pool.map(lambda im: predictor.predict(im)[0], imgs))
            assert concurrent == sequential


def test_runtime_does_not_import_torch(models):
    script = (
        "import sys\n"
        "from edgecnn.runtime.predictor import Predictor\n"
        f"p = Predictor({str(models['paths']['classifier'])!r})\n"
        "import numpy as np\n"
        "out = p.predict(np.full((50, 70, 3), 128, np.uint8))\n"
        "assert len(out[0]) == 5, out\n"
        "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "print('TORCH' if loaded else 'NO-TORCH', loaded[:5])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("NO-TORCH"), done.stdout


def test_example_app_prints_top5(models, tmp_path):
    image = tmp_path / "photo.jpg"
    images(1)[0].save(image)
    app_path = Path(__file__).parent.parent / "tools" / "example_app.py"
    done = subprocess.run(
        [sys.executable, str(app_path), str(models["paths"]["classifier"]), str(image)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 5 and all(line.split()[-1] in LABELS for line in lines)


# --- `edgecnn predict` ---------------------------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    for i, im in enumerate(images(3)):
        im.save(root / ("sub" if i == 2 else ".") / f"img{i}.{['jpg', 'png', 'webp'][i]}")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    (root / "readme.txt").write_text("ignored")
    return root


def test_cli_predict_folder_json_with_a_broken_image(models, folder):
    result = CliRunner().invoke(
        app, ["predict", str(models["paths"]["classifier"]), str(folder), "--json", "--top-k", "2"]
    )
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert [Path(r["file"]).name for r in data["results"]] == ["img0.jpg", "img1.png", "img2.webp"]
    assert [Path(f["file"]).name for f in data["failed"]] == ["broken.jpg"]
    assert "broken.jpg" in result.stderr and "1 of 4 images" in result.stderr
    assert data["providers"] == ["CPUExecutionProvider"]
    expected = Predictor(models["paths"]["classifier"]).predict(
        [folder / "img0.jpg", folder / "img1.png", folder / "sub" / "img2.webp"], top_k=2
    )
    for row, exp in zip(data["results"], expected):
        assert [(p["label"], round(p["probability"], 6)) for p in row["predictions"]] == [
            (label, round(prob, 6)) for label, prob in exp
        ]


def test_cli_predict_table_and_masks(models, folder, tmp_path):
    runner = CliRunner()
    good = [str(folder / "img0.jpg"), str(folder / "img1.png")]
    result = runner.invoke(app, ["predict", str(models["paths"]["classifier"]), *good, "--top-k", "1"])
    assert result.exit_code == 0, result.output
    assert "img0.jpg" in result.stdout and "probability" in result.stdout
    assert any(label in result.stdout for label in LABELS)

    masks_dir = tmp_path / "masks"
    result = runner.invoke(
        app, ["predict", str(models["paths"]["segmenter"]), *good, "--save-masks", str(masks_dir), "--ep", "cpu"]
    )
    assert result.exit_code == 0, result.output
    saved = sorted(p.name for p in masks_dir.iterdir())
    assert saved == ["img0.png", "img1.png"]
    expected = Predictor(models["paths"]["segmenter"]).predict(good)
    for name, mask in zip(saved, expected):
        png = Image.open(masks_dir / name)
        assert png.mode == "P" and np.array_equal(np.array(png), mask)

    result = runner.invoke(app, ["predict", str(models["paths"]["classifier"]), *good, "--save-masks", str(masks_dir)])
    assert result.exit_code != 0 and "segmentation" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["predict", str(models["paths"]["classifier"]), *good, "--ep", "warpdrive"])
    assert result.exit_code != 0 and "error:" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["predict", str(models["paths"]["classifier"]), str(tmp_path / "nothing")])
    assert result.exit_code != 0 and "nothing" in result.output
