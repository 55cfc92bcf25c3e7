"""edgecnn.runtime.evaluate: scores checked against onnxruntime by hand, the paired bootstrap, bad inputs."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

import edgecnn
from edgecnn.core.card import ModelCard
from edgecnn.core.errors import InputError
from edgecnn.runtime.evaluate import EvalResult, evaluate, paired_bootstrap
from edgecnn.runtime.preprocess import PreprocessParams, list_images, preprocess

N_PER_CLASS = 10


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory):
    """An ImageFolder of 100 real images: sklearn's 8×8 digits, upscaled to 32×32 RGB PNGs, folders '0'…'9'."""
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    digits = sklearn_datasets.load_digits()
    root = tmp_path_factory.mktemp("digits")
    for cls in range(10):
        (root / str(cls)).mkdir()
        for _j, idx in enumerate(np.flatnonzero(digits.target == cls)[:N_PER_CLASS]):
            pixels = (digits.images[idx] * (255 / 16)).astype(np.uint8)
            Image.fromarray(pixels).resize((32, 32), Image.Resampling.NEAREST).convert("RGB").save(
                root / str(cls) / f"d{idx:04d}.png"
            )
    return root


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """fp32 and int8 of one small random-weight classifier with 10 classes."""
    out = tmp_path_factory.mktemp("export") / "mnv2"
    result = edgecnn.export(
        "mobilenet_v2", out, input_size=32, num_classes=10, arch_options={"width_mult": 0.25}, int8=True
    )
    files = {a.precision: out / a.file for a in result.artifacts}
    return files["fp32"], files["int8"]


def _by_hand_top1(path, folder) -> float:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    card = ModelCard.from_metadata(session.get_modelmeta().custom_metadata_map)
    params = PreprocessParams.from_card(card)
    hits = []
    for img in list_images(folder):
        x = preprocess(img, params)[None]
        logits = session.run(None, {session.get_inputs()[0].name: x})[0]
        hits.append(int(logits.argmax()) == int(img.parent.name))
    return float(np.mean(hits))


def test_top1_equals_onnxruntime_by_hand(digits_folder, artifacts):
    fp32, int8 = artifacts
    seen = []
    result = evaluate([fp32, int8], digits_folder, batch=7, progress=lambda d, t: seen.append((d, t)))
    assert isinstance(result, EvalResult) and result.task == "classification"
    assert result.n_images == 10 * N_PER_CLASS and result.classes == tuple(str(i) for i in range(10))
    assert result.unreadable == ()
    for path, res in zip((fp32, int8), result.models):
        assert res.top1 == pytest.approx(_by_hand_top1(path, digits_folder), abs=1e-12)
        assert 0 <= res.top1 <= res.top5 <= 1
        matrix = np.asarray(res.confusion)
        assert matrix.shape == (10, 11) and matrix.sum() == 100 and (matrix.sum(1) == N_PER_CLASS).all()
        assert np.trace(matrix[:, :10]) == round(res.top1 * 100)
        assert set(res.per_class_recall) == set(result.classes)
    assert result.models[1].precision == "int8"
    assert seen[-1] == (200, 200) and all(a[0] < b[0] for a, b in zip(seen, seen[1:]))


def test_fp32_vs_int8_difference_and_interval(digits_folder, artifacts):
    result = evaluate(list(artifacts), digits_folder, labels_from="folder")
    (cmp,) = result.comparisons
    assert cmp.difference == pytest.approx(result.models[1].top1 - result.models[0].top1)
    assert cmp.low <= cmp.difference <= cmp.high
    assert cmp.resamples == 2000 and cmp.baseline == result.models[0].model
    md = result.to_markdown()
    assert "95% interval" in md and "int8" in md
    json.dumps(result.to_dict())  # plain data


def test_paired_bootstrap_is_seeded_and_sensible():
    rng = np.random.default_rng(1)
    a = (rng.random(400) < 0.7).astype(float)
    b = a.copy()
    b[:40] = 1 - b[:40]
    first, second = paired_bootstrap(a, b), paired_bootstrap(a, b)
    assert first == second
    point, low, high = first
    assert point == pytest.approx(b.mean() - a.mean()) and low <= point <= high and high - low < 0.2
    assert paired_bootstrap(a, a) == (0.0, 0.0, 0.0)


def test_csv_data_gives_the_same_scores(digits_folder, artifacts, tmp_path):
    rows = ["path,label"] + [f"{p},{p.parent.name}" for p in list_images(digits_folder)]
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    a = evaluate([artifacts[0]], digits_folder)
    b = evaluate([artifacts[0]], tmp_path / "data.csv")
    assert a.models[0].top1 == b.models[0].top1 and b.n_images == 100


def test_broken_image_is_counted_not_dropped(digits_folder, artifacts, tmp_path):
    data = tmp_path / "data"
    for cls in ("3", "4"):
        (data / cls).mkdir(parents=True)
        for p in sorted((digits_folder / cls).iterdir())[:3]:
            (data / cls / p.name).write_bytes(p.read_bytes())
    (data / "4" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    result = evaluate([artifacts[0]], data)
    assert result.n_images == 6
    assert len(result.unreadable) == 1 and result.unreadable[0][0].endswith("broken.png")
    assert "broken.png" in result.to_markdown()


def test_empty_folder_is_an_input_error(artifacts, tmp_path):
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(InputError, match="no labelled images"):
        evaluate([artifacts[0]], tmp_path / "empty")
    (tmp_path / "empty.csv").write_text("path,label\n")
    with pytest.raises(InputError, match="no labelled images"):
        evaluate([artifacts[0]], tmp_path / "empty.csv")


def test_unknown_label_is_one_input_error(digits_folder, artifacts, tmp_path):
    data = tmp_path / "data"
    for cls in ("1", "zebra"):
        (data / cls).mkdir(parents=True)
        src = sorted((digits_folder / "1").iterdir())[0]
        (data / cls / src.name).write_bytes(src.read_bytes())
    with pytest.raises(InputError, match="'zebra' matches no class"):
        evaluate([artifacts[0]], data)
    assert evaluate([artifacts[0]], data, labels_from="folder").n_images == 2  # sorted folders → classes 0, 1


# --------------------------------------------------------------------------- segmentation


@pytest.fixture(scope="module")
def seg_model(tmp_path_factory):
    """A tiny 3-class segmentation graph (1×1 conv) carrying an edgecnn card: predicts the brightest channel."""
    w = numpy_helper.from_array(np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["output"])],
        "seg",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    ModelCard(
        model="tiny_seg",
        task="segmentation",
        input_shape=["batch", 3, 16, 16],
        mean=[0, 0, 0],
        std=[1, 1, 1],
        resize=None,
        crop=[16, 16],
        num_classes=3,
    ).attach(model)
    path = tmp_path_factory.mktemp("seg") / "seg.onnx"
    onnx.save(model, path)
    return path


def _seg_data(root, masks_fn):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        cls = rng.integers(0, 3, size=(16, 16))
        img = np.zeros((16, 16, 3), np.uint8)
        img[np.arange(16)[:, None], np.arange(16)[None], cls] = 200
        Image.fromarray(img).save(root / "images" / f"s{i}.png")
        Image.fromarray(masks_fn(i, cls).astype(np.uint8)).save(root / "masks" / f"s{i}.png")
    return root


def test_segmentation_pixel_accuracy_and_miou(seg_model, tmp_path):
    perfect = _seg_data(tmp_path / "perfect", lambda i, cls: cls)
    result = evaluate([seg_model], perfect)
    assert result.task == "segmentation" and result.n_images == 4
    assert result.models[0].pixel_accuracy == 1.0 and result.models[0].miou == 1.0
    # mask 0 all wrong by one class: accuracy 3/4, every class IoU < 1
    shifted = _seg_data(tmp_path / "shifted", lambda i, cls: (cls + 1) % 3 if i == 0 else cls)
    res = evaluate([seg_model], shifted).models[0]
    assert res.pixel_accuracy == pytest.approx(0.75) and res.miou < 1


def test_segmentation_mask_of_wrong_size_is_named(seg_model, tmp_path):
    data = _seg_data(tmp_path / "d", lambda i, cls: cls)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(data / "masks" / "s2.png")
    with pytest.raises(InputError, match=r"mask .*s2\.png is 8x8"):
        evaluate([seg_model], data)


def test_evaluate_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, edgecnn.runtime.evaluate; print('torch' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )


def test_cli_eval_json_matches_the_api_and_bad_input_is_one_line(digits_folder, artifacts, tmp_path):
    import json

    from typer.testing import CliRunner

    from edgecnn.cli import app

    fp32, int8 = artifacts
    res = CliRunner().invoke(app, ["eval", str(fp32), str(int8), "--data", str(digits_folder), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    api = evaluate([fp32, int8], digits_folder)
    assert [m["top1"] for m in data["models"]] == [m.top1 for m in api.models]
    assert len(data["comparisons"]) == 1
    md = tmp_path / "eval.md"
    res = CliRunner().invoke(app, ["eval", str(fp32), "--data", str(digits_folder), "--md", str(md)])
    assert res.exit_code == 0 and md.read_text().strip() and "top" in res.stdout.lower()
    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(app, ["eval", str(fp32), "--data", str(empty)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert len([ln for ln in res.output.splitlines() if ln.startswith("error:")]) == 1


# --------------------------------------------------------------------------- masks and CSVs read one stated way


def test_one_bit_masks_are_classes_0_and_1(seg_model, tmp_path):
    """Mode '1' masks hold 0/1 (Pillow's convert('I') made them 0/255, and 255 is 'ignore': accuracy read 0%)."""
    data = _seg_data(tmp_path / "d", lambda i, cls: cls)
    for i in range(4):  # images that predict class 1 on the left half and 0 on the right; 1-bit masks saying so
        img = np.zeros((16, 16, 3), np.uint8)
        img[:, :8, 1] = 200
        img[:, 8:, 0] = 200
        Image.fromarray(img).save(data / "images" / f"s{i}.png")
        Image.fromarray(np.arange(16)[None, :].repeat(16, 0) < 8).save(data / "masks" / f"s{i}.png")
    assert Image.open(data / "masks" / "s0.png").mode == "1"
    res = evaluate([seg_model], data).models[0]
    assert res.pixel_accuracy == 1.0 and res.miou == 1.0
    assert res.per_class_iou["1"] == 1.0 and res.per_class_iou["2"] is None  # class 1 scored, not ignored


def _rotated_pair(root, mask_upright: bool):
    """A photo stored 32 wide × 16 high with EXIF orientation 6 (shown upright 16 × 32): left half class 1
    (green), right half class 0 (red) as stored; its mask upright (as shown) or as stored."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    stored = np.zeros((16, 32, 3), np.uint8)
    stored[:, :16, 1] = 200
    stored[:, 16:, 0] = 200
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(root / "images" / "p.png", exif=exif)
    classes = (np.arange(32)[None, :].repeat(16, 0) < 16).astype(np.uint8)  # as stored
    mask = Image.fromarray(classes)
    if mask_upright:
        mask = mask.transpose(Image.Transpose.ROTATE_270)  # what EXIF orientation 6 does to the photo
    mask.save(root / "masks" / "p.png")
    return root


def test_an_exif_rotated_photo_is_scored_upright_against_an_upright_mask(seg_model, tmp_path):
    """The photo is read upright (as predict reads it); an upright mask fits it (it was refused as 16x32 vs
    32x16); a mask at the stored size is refused, naming the rule, instead of being compared misaligned."""
    res = evaluate([seg_model], _rotated_pair(tmp_path / "upright", mask_upright=True)).models[0]
    assert res.pixel_accuracy == 1.0
    with pytest.raises(
        InputError,
        match=r"is 32x16, the size p\.png is stored at, but the photo has an EXIF "
        r"orientation \(6\) and is read upright at 16x32",
    ):
        evaluate([seg_model], _rotated_pair(tmp_path / "stored", mask_upright=False))


def test_a_mask_with_its_own_exif_orientation_is_turned_too(seg_model, tmp_path):
    data = _rotated_pair(tmp_path / "d", mask_upright=False)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.open(data / "masks" / "p.png").save(data / "masks" / "p.png", exif=exif)
    assert evaluate([seg_model], data).models[0].pixel_accuracy == 1.0


def _csv_data(tmp_path, digits_folder, text_or_bytes, n=3):
    """A CSV next to copies of ``n`` digit images of class 1, from ``text_or_bytes`` formatted with their paths."""
    (tmp_path / "img").mkdir()
    names = []
    for p in sorted((digits_folder / "1").iterdir())[:n]:
        (tmp_path / "img" / p.name).write_bytes(p.read_bytes())
        names.append(f"img/{p.name}")
    path = tmp_path / "data.csv"
    data = text_or_bytes(names)
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


@pytest.mark.parametrize(
    "header", ["path,label", "\ufeffpath,label", "\ufeffImage , Class", "file,target", "# made by hand", ""]
)
def test_csv_header_row_by_the_stated_rule_with_or_without_bom(digits_folder, artifacts, tmp_path, header):
    csv_path = _csv_data(tmp_path, digits_folder, lambda names: header + "\r\n" + "".join(f"{n},1\r\n" for n in names))
    result = evaluate([artifacts[0]], csv_path)
    assert result.n_images == 3 and result.classes == ("1",) and result.unreadable == ()


def test_csv_first_row_that_is_not_a_header_is_data(digits_folder, artifacts, tmp_path):
    csv_path = _csv_data(tmp_path, digits_folder, lambda names: "".join(f"{n},1\n" for n in names))
    assert evaluate([artifacts[0]], csv_path).n_images == 3


def test_csv_in_another_encoding_is_one_input_error_naming_the_line(digits_folder, artifacts, tmp_path):
    latin1 = _csv_data(
        tmp_path, digits_folder, lambda names: (f"path,label\n{names[0]},1\n{names[1]},caf\xe9\n").encode("latin-1")
    )
    with pytest.raises(InputError, match=r"data\.csv, line 3: not UTF-8 text \(byte 0xe9.*CSV UTF-8"):
        evaluate([artifacts[0]], latin1)
    latin1.write_bytes("path,label\n".encode("utf-16"))
    with pytest.raises(InputError, match=r"data\.csv is UTF-16 text"):
        evaluate([artifacts[0]], latin1)


def test_csv_with_semicolons_says_so(digits_folder, artifacts, tmp_path):
    csv_path = _csv_data(tmp_path, digits_folder, lambda names: "".join(f"{n};1\n" for n in names))
    with pytest.raises(InputError, match=r"line 1: expected 'path,label'.*separated by ';'"):
        evaluate([artifacts[0]], csv_path)
