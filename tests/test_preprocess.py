"""The torch-free preprocessing (edgecnn.runtime.preprocess) against its torch twin (edgecnn.convert.transforms)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from edgecnn.convert.transforms import torch_preprocess
from edgecnn.core.card import ModelCard
from edgecnn.core.errors import InputError
from edgecnn.runtime.preprocess import (
    PreprocessParams,
    crop_origin,
    list_images,
    load_image,
    preprocess,
    preprocess_uint8,
    resized_size,
)


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A photograph-like RGB image: smooth gradients, sensor noise, a few soft-edged shapes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xx / width * 200 + 20, yy / height * 180 + 40, (xx + yy) / (width + height) * 150 + 60], -1)
    base += rng.normal(0, 12, base.shape)
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(4, width // 2 + 6)), y0 + int(rng.integers(4, height // 2 + 6))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=colour)
    return image.filter(ImageFilter.GaussianBlur(1.2))


IMAGENET = PreprocessParams(crop=(224, 224), resize=256)
RECIPES = {
    "imagenet_256_224": IMAGENET,
    "straight_to_crop": PreprocessParams(crop=(64, 64), resize=None),
    "grayscale_nonsquare": PreprocessParams(crop=(64, 48), resize=72, mean=(0.5,), std=(0.25,), channels=1),
    "resize_below_crop": PreprocessParams(crop=(64, 64), resize=56, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
}
SIZES = [(640, 480), (480, 640), (1000, 333), (300, 300), (100, 60), (50, 200), (224, 224), (225, 301), (31, 17)]


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_numpy_and_torch_preprocessing_agree(recipe):
    params = RECIPES[recipe]
    level = 1.0 / params.pixel_scale / np.asarray(params.std, dtype=np.float64)[:, None, None]  # one pixel step
    worst = mean_levels = 0.0
    for i, (w, h) in enumerate(SIZES):
        image = photo(w, h, seed=i)
        ours = preprocess(image, params)
        ref = torch_preprocess(image, params).numpy()
        assert ours.dtype == np.float32 and ours.shape == ref.shape == (params.channels, *params.crop)
        levels = np.abs(ours.astype(np.float64) - ref) / level  # differences in units of one pixel value
        worst = max(worst, float(levels.max()))
        mean_levels = max(mean_levels, float(levels.mean()))
    # Pillow rounds its fixed-point filter weights; torch's uint8 kernel rounds its own way: at most one step.
    assert worst <= 1.0 + 1e-4, f"{recipe}: max difference {worst:.3f} pixel steps"
    assert mean_levels < 0.2, f"{recipe}: mean difference {mean_levels:.3f} pixel steps"


def test_no_resize_means_identical_pixels():
    image = photo(300, 256, seed=7)  # shorter side already 256: crop only, both paths must be exact
    np.testing.assert_array_equal(preprocess(image, IMAGENET), torch_preprocess(image, IMAGENET).numpy())


def test_resized_size_rounds_like_torchvision():
    assert resized_size(480, 640, 256, (224, 224)) == (256, 341)  # int(256 * 640 / 480) = int(341.33)
    assert resized_size(1000, 333, 256, (224, 224)) == (768, 256)
    assert resized_size(300, 300, 256, (224, 224)) == (256, 256)
    assert resized_size(480, 640, None, (64, 48)) == (64, 48)


def test_crop_origin_rounds_and_pads_like_torchvision():
    assert crop_origin(256, 341, (224, 224)) == (16, 58)  # round(58.5) -> 58 (half to even)
    assert crop_origin(259, 257, (224, 224)) == (18, 16)  # round(17.5) -> 18, round(16.5) -> 16
    assert crop_origin(60, 61, (64, 64)) == (-2, -1)  # padding: (64-61)//2 = 1 before, 2 after


def test_padding_is_black_before_normalisation():
    params = RECIPES["resize_below_crop"]  # 56-pixel short side into a 64 crop: 4 black rows/cols each side
    x = preprocess(photo(80, 56, seed=3), params)
    black = (0 - 0.5) / 0.5
    assert np.all(x[:, :4, :] == black) and np.all(x[:, -4:, :] == black)
    assert not np.all(x[:, 4:-4, :] == black)


def test_uint8_variant_is_the_float_one_before_normalising():
    image = photo(320, 240, seed=5)
    pixels = preprocess_uint8(image, IMAGENET)
    assert pixels.dtype == np.uint8 and pixels.shape == (224, 224, 3)
    mean, std = np.float32(IMAGENET.mean), np.float32(IMAGENET.std)
    expected = ((pixels.astype(np.float32) / np.float32(255) - mean) / std).transpose(2, 0, 1)
    np.testing.assert_array_equal(preprocess(image, IMAGENET), expected)
    gray = preprocess_uint8(image, RECIPES["grayscale_nonsquare"])
    assert gray.shape == (64, 48, 1)


def test_params_from_card():
    card = ModelCard(
        model="m",
        task="classification",
        input_shape=["batch", 1, 32, 40],
        crop=[32, 40],
        resize=36,
        mean=[0.5],
        std=[0.2],
    )
    params = PreprocessParams.from_card(card)
    assert params == PreprocessParams(crop=(32, 40), resize=36, mean=(0.5,), std=(0.2,), channels=1)
    assert preprocess(photo(50, 50), card).shape == (1, 32, 40)


def test_params_reject_mismatched_mean():
    with pytest.raises(InputError, match="mean needs 1 value"):
        PreprocessParams(crop=(8, 8), channels=1)


def test_load_image_applies_exif_orientation(tmp_path):
    path = tmp_path / "sideways.jpg"
    image = photo(60, 40)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    image.save(path, exif=exif)
    loaded = load_image(path)
    assert loaded.mode == "RGB" and loaded.size == (40, 60)


def test_load_image_accepts_bytes_arrays_and_other_modes(tmp_path):
    buf = io.BytesIO()
    photo(30, 20).save(buf, format="PNG")
    assert load_image(buf.getvalue()).size == (30, 20)
    assert load_image(np.zeros((20, 30, 3), np.uint8)).size == (30, 20)
    assert load_image(np.zeros((20, 30), np.uint8)).mode == "RGB"
    for mode in ("L", "RGBA", "P", "I;16"):
        assert load_image(Image.new(mode, (8, 6))).mode == "RGB"


def test_not_an_image_names_the_file(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a picture")
    with pytest.raises(InputError, match="notes.jpg: not a readable image"):
        load_image(text)
    truncated = tmp_path / "cut.jpg"
    buf = io.BytesIO()
    photo(200, 150).save(buf, format="JPEG")
    truncated.write_bytes(buf.getvalue()[:400])
    with pytest.raises(InputError, match="cut.jpg: not a readable image"):
        load_image(truncated)
    with pytest.raises(InputError, match="no such image file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(InputError, match="uint8"):
        load_image(np.zeros((4, 4, 3), np.float32))


def test_list_images_sorted_recursive_skips_hidden(tmp_path):
    for rel in ["b.PNG", "a.jpg", "sub/c.webp", "notes.txt", ".hidden/d.jpg", "sub/.e.png"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)] == ["a.jpg", "b.PNG", "sub/c.webp"]


@pytest.mark.parametrize("mode", ["I;16", "I", "CMYK", "P", "RGBA", "LA", "F"])
def test_every_image_mode_reads_by_value(tmp_path, mode):
    """16-bit PNGs once read as solid white (Pillow clips I;16 at 255); every mode must keep its picture."""
    from PIL import Image

    from edgecnn.runtime.preprocess import load_image

    # a smooth ramp over the whole 0–255 range (JPEG, for CMYK, keeps smooth images nearly exact)
    gray8 = np.add.outer(np.arange(24) * 4, np.arange(32) * 5).clip(0, 255).astype(np.uint8)
    if mode == "I;16":
        image, suffix = Image.fromarray(gray8.astype(np.uint16) * 257), ".png"  # what a 16-bit PNG holds
    elif mode == "I":
        image, suffix = Image.fromarray(gray8.astype(np.int32)), ".tiff"
    elif mode == "F":
        image, suffix = Image.fromarray(gray8.astype(np.float32) / 255), ".tiff"
    else:
        image, suffix = Image.fromarray(gray8, "L").convert(mode), (".jpg" if mode == "CMYK" else ".png")
    path = tmp_path / f"img{suffix}"
    image.save(path)
    rgb = np.asarray(load_image(path), dtype=np.float64)
    assert rgb.shape == (24, 32, 3)
    tolerance = 6 if mode == "CMYK" else 1  # JPEG is lossy
    assert np.abs(rgb.mean(axis=2) - gray8).mean() < tolerance


# --- bounded sizes (issue 28): the crop window of a large resize, the pixel limit from the header --------------


def _noise(width: int, height: int, seed: int) -> Image.Image:
    """Uniform noise: the hardest case for a resampler (every weight shows in the result)."""
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


# (width, height, params): shrinking and enlarging, wide and tall (Pillow 13 runs the vertical pass first when the
# height shrinks more than twice as much as the width), grayscale, resize straight to the crop, crops past the edge.
WINDOW_CASES = [
    (640, 480, IMAGENET),
    (300, 1000, IMAGENET),
    (1000, 300, IMAGENET),
    (200, 150, IMAGENET),
    (1500, 2, IMAGENET),
    (2, 900, IMAGENET),
    (97, 61, RECIPES["grayscale_nonsquare"]),
    (61, 97, RECIPES["grayscale_nonsquare"]),
    (400, 33, RECIPES["straight_to_crop"]),
    (30, 700, RECIPES["straight_to_crop"]),
    (80, 56, RECIPES["resize_below_crop"]),
    (40, 300, RECIPES["resize_below_crop"]),
    (5, 3, PreprocessParams(crop=(7, 9), resize=4)),
]


@pytest.mark.parametrize("case", range(len(WINDOW_CASES)))
def test_the_crop_window_of_a_resize_is_pillows_whole_resize_cropped(case, monkeypatch):
    """Computing only the crop window (what images past FULL_RESIZE_PIXELS get) gives the very pixels of Pillow's
    whole resize then crop: the same coefficients, pass order and fixed-point rounding."""
    import edgecnn.runtime.preprocess as pre

    width, height, params = WINDOW_CASES[case]
    image = _noise(width, height, seed=case)
    whole = preprocess_uint8(image, params)
    monkeypatch.setattr(pre, "FULL_RESIZE_PIXELS", 0)  # every resize through the window
    np.testing.assert_array_equal(preprocess_uint8(image, params), whole)


def test_a_100000x1_image_is_resized_through_its_crop_window():
    """The 374-byte PNG of issue 28: resized whole, its short side to 256, it would be 25.6 M pixels wide."""
    buf = io.BytesIO()
    Image.new("RGB", (100_000, 1), (120, 30, 200)).save(buf, format="PNG", optimize=True)
    assert len(buf.getvalue()) < 400
    assert resized_size(1, 100_000, 256, (224, 224)) == (256, 25_600_000)
    pixels = preprocess_uint8(buf.getvalue(), IMAGENET)
    assert pixels.shape == (224, 224, 3) and (pixels == (120, 30, 200)).all()


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares width×height pixels and holds none (a few dozen bytes)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IEND", b"")
    )


def test_an_image_over_the_pixel_limit_is_refused_from_its_header(tmp_path):
    import warnings

    path = tmp_path / "big.png"
    path.write_bytes(_png_header(12_000, 10_000))  # 120 M pixels: over the 100 M default, under Pillow's error
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning would be a second line on the CLI
        with pytest.raises(
            InputError,
            match=r"big.png: 12000x10000 is 120,000,000 pixels, over edgecnn's limit "
            r"of 100,000,000; set EDGECNN_MAX_IMAGE_PIXELS",
        ):
            load_image(path)
        with pytest.raises(InputError, match="EDGECNN_MAX_IMAGE_PIXELS"):
            load_image(_png_header(40_000, 40_000))  # past twice Pillow's threshold too


def test_the_pixel_limit_is_raised_and_lowered_by_its_variable(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # restored after the test
    monkeypatch.setenv("EDGECNN_MAX_IMAGE_PIXELS", "500")
    for source in (photo(30, 20), np.zeros((20, 30, 3), np.uint8), _encoded(photo(30, 20))):
        with pytest.raises(InputError, match="600 pixels, over edgecnn's limit of 500"):
            load_image(source)
    assert load_image(photo(25, 20)).size == (25, 20)
    # raised past Pillow's own refusal (twice Image.MAX_IMAGE_PIXELS): such an image is opened, then decoded
    monkeypatch.setenv("EDGECNN_MAX_IMAGE_PIXELS", "400_000_000")
    with pytest.raises(InputError, match="not a readable image") as refused:
        load_image(_png_header(20_000, 10_000))  # 200 M pixels, no data
    assert "limit" not in str(refused.value)
    for bad in ("abc", "0", "-5"):
        monkeypatch.setenv("EDGECNN_MAX_IMAGE_PIXELS", bad)
        with pytest.raises(InputError, match="EDGECNN_MAX_IMAGE_PIXELS=.* must be a positive whole number"):
            load_image(photo(8, 8))


def _encoded(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def test_16_bit_images_are_scaled_exactly_in_integers():
    """rint(v / 257) for every 16-bit value, without float64 copies of a large image."""
    values = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    got = np.asarray(load_image(Image.fromarray(values)))[:, :, 0]
    np.testing.assert_array_equal(got, np.rint(values / 257.0).astype(np.uint8))
    signed = np.array([[-70000, -129, -128, 0, 300, 65535, 70000, 2**31 - 1]], dtype=np.int32)
    got = np.asarray(load_image(Image.fromarray(signed)))[:, :, 0]
    np.testing.assert_array_equal(got, np.clip(np.rint(signed / 257.0), 0, 255).astype(np.uint8))


def test_a_crop_over_the_input_limit_is_refused_before_any_image_is_made():
    with pytest.raises(InputError, match="over edgecnn's limit of 67,108,864; set EDGECNN_MAX_INPUT_ELEMENTS"):
        PreprocessParams(crop=(30_000, 30_000), resize=None)


def _tiny_model(path, shape):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["x"], ["p"]), helper.make_node("Flatten", ["p"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [shape[0], shape[1]])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def test_predictor_refuses_a_huge_declared_input_and_bounds_its_batches(tmp_path, monkeypatch):
    """Apps calling Predictor directly: a 1×3×30000×30000 input is refused at construction; a dynamic batch is cut
    so that one onnxruntime call stays within EDGECNN_MAX_INPUT_ELEMENTS."""
    from edgecnn.runtime.predictor import DEFAULT_BATCH, Predictor

    huge = _tiny_model(tmp_path / "huge.onnx", [1, 3, 30_000, 30_000])
    with pytest.raises(InputError, match="huge.onnx: input 'x' is 1x3x30000x30000 = 2,700,000,000 values"):
        Predictor(huge, mean=(0.5,) * 3, std=(0.5,) * 3)
    dynamic = _tiny_model(tmp_path / "dyn.onnx", ["N", 3, 64, 64])
    assert Predictor(dynamic, mean=(0.5,) * 3, std=(0.5,) * 3).batch_size == DEFAULT_BATCH
    monkeypatch.setenv("EDGECNN_MAX_INPUT_ELEMENTS", str(3 * 64 * 64 * 5))
    predictor = Predictor(dynamic, mean=(0.5,) * 3, std=(0.5,) * 3)
    assert predictor.batch_size == 5
    assert len(predictor.predict([photo(70, 70, seed=i) for i in range(7)])) == 7
    monkeypatch.setenv("EDGECNN_MAX_INPUT_ELEMENTS", "1000")
    with pytest.raises(InputError, match="EDGECNN_MAX_INPUT_ELEMENTS"):
        Predictor(dynamic, mean=(0.5,) * 3, std=(0.5,) * 3)


@pytest.mark.parametrize("case", range(len(WINDOW_CASES)))
def test_masks_are_resized_as_pillows_nearest_resize_over_the_crop_window_only(case):
    """resize_crop_indices (segmentation eval's masks) gives the values of Pillow's NEAREST resize of the whole
    mask then a crop padded with the fill value, without making the whole resized mask."""
    from edgecnn.runtime.preprocess import resize_crop_indices

    width, height, params = WINDOW_CASES[case]
    indices = np.random.default_rng(case).integers(0, 21, (height, width))
    mask = Image.fromarray(indices.astype(np.int32), mode="I")
    size = resized_size(height, width, params.resize, params.crop)
    if size != (height, width):
        mask = mask.resize((size[1], size[0]), Image.Resampling.NEAREST)
    top, left = crop_origin(size[0], size[1], params.crop)
    canvas = Image.new("I", (params.crop[1], params.crop[0]), 255)
    canvas.paste(mask, (-left, -top))
    got = resize_crop_indices(indices, params, 255)
    assert got.shape == tuple(params.crop) and got.dtype == indices.dtype
    np.testing.assert_array_equal(got, np.asarray(canvas))
