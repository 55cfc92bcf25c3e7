"""The torch-free preprocessing (edgecnn.runtime.preprocess) against its torch twin (edgecnn.convert.transforms)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from edgecnn.core.card import ModelCard
from edgecnn.core.errors import InputError
from edgecnn.runtime.preprocess import (PreprocessParams, crop_origin, list_images, load_image, preprocess,
                                preprocess_uint8, resized_size)
from edgecnn.convert.transforms import torch_preprocess


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
    card = ModelCard(model="m", task="classification", input_shape=["batch", 1, 32, 40], crop=[32, 40],
                     resize=36, mean=[0.5], std=[0.2])
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
