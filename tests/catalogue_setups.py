"""How the fault catalogue's inputs are made (tests/catalogue_cases.py): each ``setup(ctx)`` writes under
``ctx.tmp``; ``ctx.shared`` holds the shared tiny export, ``ctx.monkeypatch`` the test's monkeypatch."""

from __future__ import annotations

import io
import os
import pickle
import shutil
import zipfile
from pathlib import Path

MARKER = "CODE_RAN"  # a file whose existence proves that code from a data file ran


class _Bomb:
    """A pickle whose loading runs code: creates the marker file (refused by weights_only / allow_pickle)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


# --- setups: each makes the inputs in ctx.tmp ----------------------------------------------------------------


def _photo(path: Path, mode: str = "RGB", size=(40, 30)) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "I;16":
        import numpy as np

        Image.fromarray((np.arange(size[0] * size[1]).reshape(size[1], size[0]) * 50 % 65535).astype("uint16")).save(
            path
        )
    else:
        Image.new(mode, size, 120 if mode in ("L", "P") else (200, 40, 40, 255)[: len(mode)]).save(path)
    return path


def ckpt_truncated(ctx):
    import torch

    buf = io.BytesIO()
    torch.save({"w": torch.zeros(10)}, buf)
    (ctx.tmp / "c.pth").write_bytes(buf.getvalue()[:200])


def ckpt_empty(ctx):
    (ctx.tmp / "c.pth").write_bytes(b"")


def ckpt_text(ctx):
    (ctx.tmp / "c.pth").write_text("these are not weights\n")


def ckpt_dir(ctx):
    (ctx.tmp / "c.pth").mkdir()


def ckpt_code(ctx):
    import torch

    torch.save({"w": _Bomb(str(ctx.tmp / MARKER))}, ctx.tmp / "c.pth")


def ckpt_safetensors(ctx):
    (ctx.tmp / "c.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")


def calib_empty(ctx):
    (ctx.tmp / "cal").mkdir()


def calib_text(ctx):
    (ctx.tmp / "cal").mkdir()
    for i in range(3):
        (ctx.tmp / "cal" / f"{i}.txt").write_text("not an image")
        (ctx.tmp / "cal" / f"{i}.png").write_text("not an image either")


def calib_odd(ctx):
    """Every mode a folder of photos may hold, and one broken file."""
    for i, mode in enumerate(("L", "RGBA", "I;16", "P", "RGB")):
        _photo(ctx.tmp / "cal" / f"c{i}.png", mode, size=(48, 40))
    _photo(ctx.tmp / "cal" / "cmyk.jpg", "CMYK", size=(48, 40))
    (ctx.tmp / "cal" / "broken.jpg").write_bytes(b"\xff\xd8\xffbroken")


def calib_loop(ctx):
    (ctx.tmp / "cal").mkdir()
    os.symlink(ctx.tmp / "cal", ctx.tmp / "cal" / "loop")


def calib_bomb(ctx):
    """A PNG whose header claims 30000×30000 pixels: Pillow's decompression-bomb guard must refuse it."""
    import struct
    import zlib

    (ctx.tmp / "cal").mkdir()
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))  # noqa: E731
    (ctx.tmp / "cal" / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def copy_export(ctx):
    shutil.copytree(ctx.shared["export"], ctx.tmp / "ex")


def copy_export_bad_calib(ctx):
    copy_export(ctx)
    calib_empty(ctx)


def cwd_in_export(ctx):
    copy_export(ctx)
    ctx.monkeypatch.chdir(ctx.tmp / "ex")


def out_is_file(ctx):
    (ctx.tmp / "out").write_text("mine")


def locked_out(ctx):
    """A lock held by a live process that is not this one (the test's parent)."""
    import json

    (ctx.tmp / ".out.lock").write_text(
        json.dumps({"pid": os.getppid(), "command": "edgecnn export resnet18", "since": "2026-01-01T00:00:00+00:00"})
    )


def full_disk(ctx):
    import subprocess

    (ctx.tmp / "full").mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(ctx.tmp / "full")], capture_output=True
    )
    if done.returncode != 0:
        ctx.skip(f"cannot mount a small tmpfs here ({done.stderr.decode().strip()})")
    ctx.cleanups.append(lambda: subprocess.run(["umount", "-l", str(ctx.tmp / "full")], capture_output=True))


def torch_home_file(ctx):
    (ctx.tmp / "th").write_text("a file, not a folder")
    ctx.monkeypatch.setenv("TORCH_HOME", str(ctx.tmp / "th"))


def home_is_file(ctx):
    """HOME that cannot hold a cache (a file: even root cannot make folders under it)."""
    (ctx.tmp / "home").write_text("a file")
    ctx.monkeypatch.setenv("HOME", str(ctx.tmp / "home"))
    for name in ("TORCH_HOME", "XDG_CACHE_HOME"):
        ctx.monkeypatch.delenv(name, raising=False)


def offline(ctx):
    import urllib.error

    import torch

    ctx.monkeypatch.setenv("TORCH_HOME", str(ctx.tmp / "th"))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network")

    ctx.monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)


def onnx_bytes(data: bytes):
    def setup(ctx):
        (ctx.tmp / "m.onnx").write_bytes(data)

    return setup


def onnx_truncated(ctx):
    (ctx.tmp / "m.onnx").write_bytes(Path(ctx.shared["onnx"]).read_bytes()[:5000])


def onnx_external_outside(ctx):
    from onnx import TensorProto, helper

    (ctx.tmp / "secret.bin").write_bytes(b"\0" * 16)
    weight = helper.make_tensor("w", TensorProto.FLOAT, [1], [0.0])
    weight.ClearField("float_data")
    weight.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "../secret.bin"), ("offset", "0"), ("length", "4")):
        entry = weight.external_data.add()
        entry.key, entry.value = k, v
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Add", ["input", "w"], ["out"])], "ext", [x], [y], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    (ctx.tmp / "m").mkdir()
    (ctx.tmp / "m" / "m.onnx").write_bytes(model.SerializeToString())


def onnx_unknown_op(ctx):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph(
        [helper.make_node("Frobnicate", ["input"], ["out"], domain="com.example")], "op", [x], [y]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.example", 1)])
    model.ir_version = 9
    onnx.save(model, str(ctx.tmp / "m.onnx"))


def onnx_one_channel(ctx):
    """A classifier taking 1-channel images, without edgecnn metadata."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 16, 16])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1])
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["logits"]),
        ],
        "gray",
        [x],
        [y],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(ctx.tmp / "m.onnx"))


def photos(*modes):
    def setup(ctx):
        for i, mode in enumerate(modes):
            _photo(ctx.tmp / "photos" / f"p{i}.png", mode)

    return setup


def photos_mixed(ctx):
    _photo(ctx.tmp / "photos" / "good.png")
    (ctx.tmp / "photos" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")


def photos_cmyk(ctx):
    _photo(ctx.tmp / "photos" / "p.jpg", "CMYK")


def photos_with_mask_name(ctx):
    _photo(ctx.tmp / "photos" / "p0.png")
    _photo(ctx.tmp / "masks" / "p0.png", "L")


def photos_masks_file(ctx):
    _photo(ctx.tmp / "photos" / "p0.png")
    (ctx.tmp / "masks").write_text("a file")


def bench_out_exists(ctx):
    (ctx.tmp / "r.json").write_text('{"mine": true}\n')


def bundle_copy(ctx):
    shutil.copytree(ctx.shared["bundle"], ctx.tmp / "b")
    return ctx.tmp / "b"


def bundle_flipped(ctx):
    root = bundle_copy(ctx)
    model = next(root.glob("*.onnx"))
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))


def _edit_bundle_json(ctx, edit):
    import json

    root = bundle_copy(ctx)
    manifest = json.loads((root / "bundle.json").read_text())
    edit(manifest, root)
    (root / "bundle.json").write_text(json.dumps(manifest))


def bundle_edited(ctx):
    def edit(m, root):
        m["files"][m["models"][0]["file"]]["sha256"] = "0" * 64

    _edit_bundle_json(ctx, edit)


def bundle_missing(ctx):
    root = bundle_copy(ctx)
    (root / "golden_1.png").unlink()


def bundle_escape(path: str):
    def setup(ctx):
        def edit(m, root):
            m["files"][path] = {"size": 1, "sha256": "0" * 64}

        _edit_bundle_json(ctx, edit)

    return setup


def bundle_pickle(ctx):
    import hashlib

    def edit(m, root):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("input_0.npy", _npy_object_header() + pickle.dumps(_Bomb(str(ctx.tmp / MARKER))))
        (root / "golden.npz").write_bytes(buf.getvalue())
        m["files"]["golden.npz"] = {"size": len(buf.getvalue()), "sha256": hashlib.sha256(buf.getvalue()).hexdigest()}

    _edit_bundle_json(ctx, edit)


def _npy_object_header() -> bytes:
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += " " * (63 - len(header)) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()
