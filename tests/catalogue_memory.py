"""Fault catalogue rows: memory (gathered into tests/catalogue_cases.py's CASES; setups live here).

Tiny or hostile files that declare huge sizes: a 374-byte PNG of 100000×1 pixels, a 1 kB .onnx whose input is
1×3×30000×30000, a 1.5 MB golden.npz holding a 1.5 GB array. Each row runs in a child process under an
address-space limit (a regression fails the row instead of taking the test worker down) and checks the child's
peak RSS. The limits are edgecnn.core.sizes' (``EDGECNN_MAX_IMAGE_PIXELS``, ``EDGECNN_MAX_INPUT_ELEMENTS``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import zipfile
import zlib
from pathlib import Path

from catalogue_case import Case

# Address space a normal run needs, measured (VmPeak, one image or the shared tiny model): predict, eval, bench
# and selftest ~0.37 GB; mobile and validate, which import torch, ~0.95 GB. The limits leave room for more
# onnxruntime threads on larger machines (8 MB of stack each) and still stop the pre-fix allocations (10-160 GB).
_TORCH_FREE_MB = 2048
_TORCH_MB = 4096
_RSS_MB = 1000  # the bound: peak RSS under 1 GB, measured in the child


def _classifier(path: Path, shape: list, card: bool = True) -> None:
    """A tiny classifier (global average pool → 3 logits) with input ``shape``; with a card: resize 256, crop 224."""
    import onnx
    from onnx import TensorProto, helper

    from edgecnn.core.card import ModelCard

    ints = lambda name, v: helper.make_tensor(name, TensorProto.INT64, [1], [v])  # noqa: E731
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("Slice", ["flat", "start", "end", "axis"], ["logits"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [shape[0], 3])],
        initializer=[ints("start", 0), ints("end", 3), ints("axis", 1)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    if card:
        ModelCard(
            model="mobilenet_v1",
            task="classification",
            input_name="input",
            output_name="logits",
            input_shape=list(shape),
            resize=256,
            crop=[224, 224],
            num_classes=3,
            labels=["ant", "bee", "cat"],
        ).attach(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def _wide_png(path: Path, width: int) -> None:
    """A valid one-row RGB PNG of ``width`` pixels: a few hundred bytes (one colour compresses to nothing)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, 1), (120, 30, 200)).save(path, optimize=True)


def png_100000x1(ctx):
    _classifier(ctx.tmp / "m.onnx", ["N", 3, 224, 224])
    _wide_png(ctx.tmp / "wide.png", 100_000)
    assert (ctx.tmp / "wide.png").stat().st_size < 400


def png_20000x1(ctx):
    _classifier(ctx.tmp / "m.onnx", ["N", 3, 224, 224])
    _wide_png(ctx.tmp / "wide.png", 20_000)


def eval_png_100000x1(ctx):
    """An ImageFolder whose one image is the 100000×1 PNG, beside a normal photo."""
    from PIL import Image

    _classifier(ctx.tmp / "m.onnx", ["N", 3, 224, 224])
    _wide_png(ctx.tmp / "data" / "ant" / "wide.png", 100_000)
    (ctx.tmp / "data" / "bee").mkdir()
    Image.new("RGB", (300, 200), (20, 160, 90)).save(ctx.tmp / "data" / "bee" / "photo.png")


def _segmenter(path: Path) -> None:
    """A tiny segmentation model (its logits are its input: 3 classes) taking 224×224 after a resize to 256."""
    import onnx
    from onnx import TensorProto, helper

    from edgecnn.core.card import ModelCard

    shape = ["N", 3, 224, 224]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["logits"])],
        "seg",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    ModelCard(
        model="unet",
        task="segmentation",
        input_name="input",
        output_name="logits",
        input_shape=shape,
        resize=256,
        crop=[224, 224],
        num_classes=3,
    ).attach(model)
    onnx.save(model, str(path))


def segmentation_pair_100000x1(ctx):
    """images/wide.png and masks/wide.png, both 100000×1 (the mask one class), and seg.onnx."""
    from PIL import Image

    _segmenter(ctx.tmp / "seg.onnx")
    _wide_png(ctx.tmp / "data" / "images" / "wide.png", 100_000)
    (ctx.tmp / "data" / "masks").mkdir()
    Image.new("L", (100_000, 1), 1).save(ctx.tmp / "data" / "masks" / "wide.png", optimize=True)


def model_30000_with_card(ctx):
    """The 1×3×30000×30000 model with an edgecnn card (crop 224), as `edgecnn web` needs one."""
    _classifier(ctx.tmp / "m.onnx", [1, 3, 30_000, 30_000])


def png_header_120mp(ctx):
    """A PNG header declaring 12000×10000 pixels (120 M, over the 100 M limit), no pixel data."""
    _classifier(ctx.tmp / "m.onnx", ["N", 3, 224, 224])
    ihdr = struct.pack(">IIBBBBB", 12_000, 10_000, 8, 2, 0, 0, 0)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))  # noqa: E731
    (ctx.tmp / "big.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def model_30000(ctx):
    """A 1 kB model without a card whose input is declared 1×3×30000×30000 (10.8 GB as float32)."""
    _classifier(ctx.tmp / "m.onnx", [1, 3, 30_000, 30_000], card=False)
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 60, 20)).save(ctx.tmp / "photo.png")


def model_30000_with_checkpoint(ctx):
    """The same model, and a mobilenet_v1 checkpoint of 3 classes for validate to rebuild the reference from."""
    import torch

    from edgecnn.models.registry import create_model_with_report

    model_30000(ctx)
    model, _ = create_model_with_report("mobilenet_v1", num_classes=3)
    torch.save(model.state_dict(), ctx.tmp / "c.pth")


def golden_1_5_gb(ctx):
    """The shared bundle with golden.npz's input replaced by 125000×3×32×32 float32 zeros (1.5 GB, 1.5 MB zipped),
    its bundle.json hash updated to match: only the array's declared size can give it away."""
    root = ctx.tmp / "b"
    shutil.copytree(ctx.shared["bundle"], root)
    golden = root / "golden.npz"
    with zipfile.ZipFile(golden) as old:
        kept = {n: old.read(n) for n in old.namelist() if n != "input.npy"}
    _write_zeros_npz(golden, "input.npy", (125_000, 3, 32, 32), kept)
    manifest = json.loads((root / "bundle.json").read_text())
    data = golden.read_bytes()
    manifest["files"]["golden.npz"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (root / "bundle.json").write_text(json.dumps(manifest, indent=2))


_CHUNK = bytes(1 << 24)


def _write_zeros_npz(path: Path, name: str, shape: tuple, kept: dict) -> None:
    """An .npz whose ``name`` is float32 zeros of ``shape``, written in about a second instead of deflating 1.5 GB:
    each 16 MB chunk of zeros, deflated after a full flush (which resets the compressor's history), gives the same
    bytes, so they are computed once and repeated; zipfile still counts the sizes and the CRC itself."""
    import numpy as np

    deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    chunk_bytes = deflate.compress(_CHUNK) + deflate.flush(zlib.Z_FULL_FLUSH)
    real = zlib.compressobj(6, zlib.DEFLATED, -15)

    class Replay:  # zipfile's compressor for the member: the precomputed bytes for each chunk of zeros
        def compress(self, data):
            return chunk_bytes if data is _CHUNK else real.compress(data) + real.flush(zlib.Z_FULL_FLUSH)

        def flush(self):
            return real.flush()

    header = np.lib.format.header_data_from_array_1_0(np.zeros(1, np.float32))
    header["shape"] = shape
    size = int(np.prod(shape)) * 4
    original = zipfile._get_compressor
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in kept.items():
            archive.writestr(member, data)
        zipfile._get_compressor = lambda *a, **k: Replay()
        try:
            with archive.open(name, "w") as out:
                np.lib.format.write_array_header_1_0(out, header)
                for _ in range(size // len(_CHUNK)):
                    out.write(_CHUNK)
                out.write(bytes(size % len(_CHUNK)))
        finally:
            zipfile._get_compressor = original


_LIMIT = {"address_space_mb": _TORCH_FREE_MB, "max_rss_mb": _RSS_MB}
_TORCH_LIMIT = {"address_space_mb": _TORCH_MB, "max_rss_mb": _RSS_MB}
_ELEMENTS = "EDGECNN_MAX_INPUT_ELEMENTS"

CASES: list[Case] = [
    Case(
        "predict-png-100000x1",
        ("predict", "{tmp}/m.onnx", "{tmp}/wide.png"),
        0,
        "wide.png",
        "a 374-byte PNG of 100000×1 pixels is predicted computing only the crop window of its resize (the numbers "
        "of the whole 25.6 M-pixel resize, whose memory it never takes): peak RSS under 1 GB",
        png_100000x1,
        ("wide.png",),
        **_LIMIT,
    ),
    Case(
        "eval-png-100000x1",
        ("eval", "{tmp}/m.onnx", "--data", "{tmp}/data"),
        0,
        "m.onnx",
        "eval reads the same image through the same bounded resize: peak RSS under 1 GB",
        eval_png_100000x1,
        **_LIMIT,
    ),
    Case(
        "eval-segmentation-100000x1",
        ("eval", "{tmp}/seg.onnx", "--data", "{tmp}/data"),
        0,
        "seg.onnx",
        "segmentation eval resizes a 100000×1 image and its mask over the crop window only (the mask with Pillow's "
        "nearest-neighbour values): peak RSS under 1 GB",
        segmentation_pair_100000x1,
        **_LIMIT,
    ),
    Case(
        "predict-png-20000x1",
        ("predict", "{tmp}/m.onnx", "{tmp}/wide.png"),
        0,
        "wide.png",
        "a 142-byte PNG of 20000×1 pixels no longer peaks at 5.3 GB: peak RSS under 1 GB",
        png_20000x1,
        **_LIMIT,
    ),
    Case(
        "predict-png-over-pixel-limit",
        ("predict", "{tmp}/m.onnx", "{tmp}/big.png"),
        1,
        "EDGECNN_MAX_IMAGE_PIXELS",
        "an image whose header declares more than 100 M pixels is refused before it is decoded, the limit and its "
        "variable named (skipped, exit 1, as predict skips any unreadable image)",
        png_header_120mp,
        **_LIMIT,
    ),
    Case(
        "predict-input-30000x30000",
        ("predict", "{tmp}/m.onnx", "{tmp}/photo.png", "--mean", "0.5", "--std", "0.5"),
        2,
        _ELEMENTS,
        "a model declaring a 1×3×30000×30000 input is refused before any image is made that size: "
        "one line naming the limit and its variable, peak RSS under 1 GB",
        model_30000,
        **_LIMIT,
    ),
    Case(
        "bench-input-30000x30000",
        ("bench", "{tmp}/m.onnx", "--runs", "1", "--warmup", "0"),
        2,
        _ELEMENTS,
        "bench refuses it before allocating its random input (was 'Unable to allocate 20.1 GiB')",
        model_30000,
        **_LIMIT,
    ),
    Case(
        "mobile-input-30000x30000",
        ("mobile", "{tmp}/m.onnx", "--out", "{tmp}/mob"),
        2,
        _ELEMENTS,
        "mobile refuses it before fixing, simplifying or feeding the graph at that shape (was '161 GiB')",
        model_30000,
        **_TORCH_LIMIT,
    ),
    Case(
        "validate-input-30000x30000",
        ("validate", "{tmp}/m.onnx", "--against", "mobilenet_v1", "--weights", "{tmp}/c.pth"),
        2,
        _ELEMENTS,
        "validate refuses it before making images that size (was a DecompressionBombError traceback)",
        model_30000_with_checkpoint,
        ("c.pth",),
        **_TORCH_LIMIT,
    ),
    Case(
        "web-input-30000x30000",
        ("web", "{tmp}/m.onnx", "--out", "{tmp}/site"),
        2,
        _ELEMENTS,
        "web refuses a model whose input the page would have to allocate at 1×3×30000×30000, before writing the site",
        model_30000_with_card,
    ),
    Case(
        "selftest-golden-1.5gb-array",
        ("selftest", "{tmp}/b"),
        2,
        _ELEMENTS,
        "a 1.5 MB golden.npz holding a 1.5 GB array (its hash updated in bundle.json) is refused from the array's "
        ".npy header, never loaded (was 1.55 GB, then a bad_alloc traceback)",
        golden_1_5_gb,
        ("b/golden.npz",),
        **_LIMIT,
    ),
]
