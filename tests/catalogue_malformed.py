"""Fault catalogue rows: malformed files are one line — bundle.json, manifest.json and card values of the wrong
type or shape, graphs with no outputs, class counts that do not fit, CSVs in other encodings, 1-bit and rotated
masks, manifest paths out of their folder (gathered into tests/catalogue_cases.py's CASES; setups live here)."""

from __future__ import annotations

import json
import shutil

from catalogue_case import Case

# --- setups -------------------------------------------------------------------------------------------------------


def _bundle(ctx):
    shutil.copytree(ctx.shared["bundle"], ctx.tmp / "b")
    return ctx.tmp / "b"


def _bundle_json(edit):
    """A copy of the shared bundle whose bundle.json went through ``edit(manifest)`` (no hash covers it)."""

    def setup(ctx):
        path = _bundle(ctx) / "bundle.json"
        manifest = json.loads(path.read_text())
        edit(manifest)
        path.write_text(json.dumps(manifest))

    return setup


def bundle_json_not_json(ctx):
    (_bundle(ctx) / "bundle.json").write_text('{"edgecnn_bundle": 1, "models": [')


def _drop(part: str, key: str):
    def edit(m):
        del m[part][0][key]

    return edit


def _files_as_list(m):
    m["files"] = sorted(m["files"])


def onnx_no_outputs(ctx):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 32, 32])
    graph = helper.make_graph([helper.make_node("Relu", ["input"], ["hidden"])], "no_outputs", [x], [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(ctx.tmp / "m.onnx"))


def card(**raw):
    """A copy of the shared model whose card keys (``edgecnn.<key>``) hold these raw metadata strings."""

    def setup(ctx):
        import onnx

        model = onnx.load(str(ctx.shared["onnx"]))
        for prop in model.metadata_props:
            key = prop.key.removeprefix("edgecnn.")
            if key in raw:
                prop.value = raw[key]
        onnx.save(model, str(ctx.tmp / "m.onnx"))

    return setup


def card_and_checkpoint(**raw):
    """``card(**raw)`` plus the checkpoint the shared model could be validated against (width 0.25, 1000 classes)."""

    def setup(ctx):
        import torch

        from edgecnn.models.registry import create_model

        card(**raw)(ctx)
        torch.save(create_model("mobilenet_v1", width_mult=0.25).state_dict(), ctx.tmp / "c.pth")

    return setup


def labels_file(count: int):
    def setup(ctx):
        (ctx.tmp / "labels.txt").write_text("".join(f"name {i}\n" for i in range(count)))

    return setup


def _export_in_cwd(edit_artifact):
    """exported/mobilenet_v1 (the shared export) under the case folder, its manifest's artifact edited."""

    def setup(ctx):
        folder = ctx.tmp / "exported" / "mobilenet_v1"
        shutil.copytree(ctx.shared["export"], folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        edit_artifact(ctx, manifest["artifacts"][0])
        (folder / "manifest.json").write_text(json.dumps(manifest))

    return setup


def _no_parity(ctx, artifact):
    del artifact["parity"]


def _artifact_outside(ctx, artifact):
    (ctx.tmp / "elsewhere").mkdir()
    shutil.copyfile(ctx.shared["onnx"], ctx.tmp / "elsewhere" / "private.onnx")
    artifact["file"] = "../../elsewhere/private.onnx"


def manifest_text(text: str | None = None, encoding: str = "utf-8", int8=None):
    """A copy of the shared export whose manifest.json is ``text``, or the real one with ``int8`` as its int8
    record, written in ``encoding``."""

    def setup(ctx):
        shutil.copytree(ctx.shared["export"], ctx.tmp / "ex")
        path = ctx.tmp / "ex" / "manifest.json"
        body = text
        if body is None:
            manifest = json.loads(path.read_text())
            if int8 is not None:
                manifest["int8"] = int8
            body = json.dumps(manifest)
        path.write_bytes(body.encode(encoding))

    return setup


INT8_NO_KEPT = {"decision": "static policy: int8 shipped", "calibration_method": "minmax", "calibration_images": 8}


def _photo(path, color, size=(40, 30), exif_orientation=None):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, color)
    if exif_orientation is None:
        image.save(path)
    else:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        image.save(path, exif=exif)


def seg_mask_1bit(ctx):
    """A photo whose green channel dominates (the shared seg model predicts class 1 everywhere), its mask all
    class 1 as a 1-bit PNG."""
    from PIL import Image

    _photo(ctx.tmp / "d" / "images" / "p.png", (20, 200, 20))
    (ctx.tmp / "d" / "masks").mkdir()
    Image.new("1", (40, 30), 1).save(ctx.tmp / "d" / "masks" / "p.png")


def seg_mask_stored_size_of_rotated_photo(ctx):
    from PIL import Image

    _photo(ctx.tmp / "d" / "images" / "p.png", (20, 200, 20), exif_orientation=6)  # shown upright as 30x40
    (ctx.tmp / "d" / "masks").mkdir()
    Image.new("L", (40, 30), 1).save(ctx.tmp / "d" / "masks" / "p.png")


def _csv(data: bytes):
    def setup(ctx):
        _photo(ctx.tmp / "photos" / "photo.png", (200, 60, 20))
        (ctx.tmp / "data.csv").write_bytes(data)

    return setup


# --- rows ---------------------------------------------------------------------------------------------------------

CASES: list[Case] = [
    # bundle.json: one reader (core.documents.read_bundle_json) for selftest and web
    Case(
        "web-bundle-json-not-json",
        ("web", "{tmp}/b", "--out", "{tmp}/site"),
        2,
        "bundle.json is not valid JSON",
        "a bundle.json that is not JSON is one line naming it",
        bundle_json_not_json,
        ("b/bundle.json",),
    ),
    Case(
        "web-bundle-model-no-file",
        ("web", "{tmp}/b", "--out", "{tmp}/site"),
        2,
        "models[0].file",
        'a bundle.json model entry without "file" is one line naming the key',
        _bundle_json(_drop("models", "file")),
    ),
    Case(
        "selftest-bundle-files-list",
        ("selftest", "{tmp}/b"),
        2,
        "'files' must be an object",
        'a bundle.json whose "files" is a list is one line naming the key',
        _bundle_json(_files_as_list),
    ),
    Case(
        "selftest-bundle-model-no-input",
        ("selftest", "{tmp}/b"),
        2,
        "models[0].input",
        'a bundle.json model entry without "input" is one line naming the key',
        _bundle_json(_drop("models", "input")),
    ),
    # graphs with no outputs
    Case(
        "predict-graph-no-outputs",
        ("predict", "{tmp}/m.onnx", "{img}", "--mean", "0.5", "--std", "0.5"),
        2,
        "no outputs",
        "a graph with no outputs is refused in one line when opened",
        onnx_no_outputs,
    ),
    Case(
        "bench-graph-no-outputs",
        ("bench", "{tmp}/m.onnx", "--runs", "1", "--warmup", "0"),
        2,
        "no outputs",
        "bench refuses a graph with no outputs in one line",
        onnx_no_outputs,
    ),
    Case(
        "mobile-graph-no-outputs",
        ("mobile", "{tmp}/m.onnx", "--out", "{tmp}/mob"),
        2,
        "no outputs",
        "mobile refuses a graph with no outputs before converting anything",
        onnx_no_outputs,
    ),
    # card values: type and range of every key, named
    Case(
        "predict-card-mean-text",
        ("predict", "{tmp}/m.onnx", "{img}"),
        2,
        "card key edgecnn.mean",
        "a card value of the wrong type is one line naming the file and the key",
        card(mean='"abc"'),
    ),
    Case(
        "predict-card-labels-number",
        ("predict", "{tmp}/m.onnx", "{img}"),
        2,
        "card key edgecnn.labels",
        "card labels that are not a list of names are one line naming the key",
        card(labels="5"),
    ),
    Case(
        "validate-card-num-classes-huge",
        ("validate", "{tmp}/m.onnx", "--weights", "{tmp}/c.pth"),
        2,
        "edgecnn.num_classes",
        "a card class count out of range (10**12) is refused before any model is built",
        card_and_checkpoint(num_classes=str(10**12)),
    ),
    Case(
        "validate-card-width-mult-text",
        ("validate", "{tmp}/m.onnx", "--weights", "{tmp}/c.pth"),
        2,
        "edgecnn.extra.arch_options.width_mult",
        "a builder option of the wrong type in the card is one line",
        card_and_checkpoint(extra=json.dumps({"arch_options": {"width_mult": "wide"}})),
    ),
    # class count vs labels vs output width
    Case(
        "predict-card-classes-vs-outputs",
        ("predict", "{tmp}/m.onnx", "{img}"),
        2,
        "card says 10 classes",
        "a card whose class count is not the graph's output width is refused at load (its labels would be wrong)",
        card(num_classes="10"),
    ),
    Case(
        "predict-labels-count",
        ("predict", "{onnx}", "{img}", "--labels", "{tmp}/labels.txt"),
        2,
        "3 class names given",
        "--labels with fewer names than classes is refused (never names and numbers mixed)",
        labels_file(3),
    ),
    Case(
        "export-labels-count",
        (
            "export",
            "mobilenet_v1",
            "--input-size",
            "32",
            "--num-classes",
            "10",
            "--labels",
            "{tmp}/labels.txt",
            "--out",
            "{tmp}/out",
        ),
        2,
        "3 names",
        "export --labels with 3 names for 10 classes is refused before anything is written",
        labels_file(3),
    ),
    # manifest.json: one reader (core.documents.read_export_manifest) for mobile, int8-report, tools
    Case(
        "mobile-name-manifest-no-parity",
        ("mobile", "mobilenet_v1"),
        2,
        "artifacts[0].parity",
        'mobile NAME on an export whose manifest artifact lacks "parity" is one line naming the key',
        _export_in_cwd(_no_parity),
        ("exported/mobilenet_v1/manifest.json",),
        cwd=".",
    ),
    Case(
        "mobile-name-manifest-path-outside",
        ("mobile", "mobilenet_v1"),
        2,
        "points outside",
        "a manifest artifact path out of the export folder is refused, never followed or written beside",
        _export_in_cwd(_artifact_outside),
        ("elsewhere/private.onnx",),
        cwd=".",
    ),
    Case(
        "int8-report-manifest-list",
        ("int8-report", "{tmp}/ex"),
        2,
        "not an edgecnn export manifest",
        "a manifest.json that is a JSON list is one line",
        manifest_text("[]"),
    ),
    Case(
        "int8-report-no-kept",
        ("int8-report", "{tmp}/ex"),
        2,
        "int8.kept",
        'an int8 record without "kept" is one line naming the key',
        manifest_text(int8=INT8_NO_KEPT),
    ),
    Case(
        "int8-report-manifest-utf16",
        ("int8-report", "{tmp}/ex"),
        2,
        "UTF-16",
        "a manifest saved as UTF-16 is one line saying so",
        manifest_text(encoding="utf-16"),
    ),
    # eval: masks and CSVs read one stated way
    Case(
        "eval-seg-mask-1bit",
        ("eval", "{seg}", "--data", "{tmp}/d"),
        0,
        "| 100.00% |",
        "a 1-bit mask is read as classes 0/1 (not 0/255, which is 'ignore')",
        seg_mask_1bit,
    ),
    Case(
        "eval-seg-mask-stored-size-of-rotated-photo",
        ("eval", "{seg}", "--data", "{tmp}/d"),
        2,
        "EXIF orientation",
        "a mask at the stored size of an EXIF-rotated photo is refused, saying the photo is read upright",
        seg_mask_stored_size_of_rotated_photo,
    ),
    Case(
        "eval-csv-latin1",
        ("eval", "{onnx}", "--data", "{tmp}/data.csv"),
        2,
        "not UTF-8",
        "a Windows-1252/Latin-1 CSV is one line naming the line and how to save it",
        _csv("path,label\nphotos/photo.png,caf\xe9\n".encode("latin-1")),
    ),
    Case(
        "eval-csv-excel-utf8-bom-header",
        ("eval", "{onnx}", "--data", "{tmp}/data.csv"),
        0,
        ": 1 images",
        "an Excel 'CSV UTF-8' file (byte-order mark, header row) reads its header as a header",
        _csv("\ufeffpath,label\r\nphotos/photo.png,0\r\n".encode("utf-8")),
    ),
]
