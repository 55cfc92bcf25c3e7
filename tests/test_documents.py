"""edgecnn.core.documents and the card reader: one reader per JSON document edgecnn reads back, each checking types
and keys and naming the file and the key; documents and cards as the current release writes them still read."""

from __future__ import annotations

import json

import pytest

from edgecnn.core.card import ModelCard, check_card_values, check_classes
from edgecnn.core.documents import (
    Choice,
    MapOf,
    Mismatch,
    Opt,
    Where,
    check,
    int8_record,
    manifest_options,
    read_bundle_json,
    read_export_manifest,
)
from edgecnn.core.errors import ArtifactError, InputError

PARITY = {
    "passed": True,
    "precision": "fp32",
    "task": "classification",
    "samples": 32,
    "max_abs": 2.7e-05,
    "max_rel": 7.5e-06,
    "cosine": 0.99999,
    "top1_agreement": 1.0,
    "tolerances": {"max_rel": 1e-4},
    "failures": [],
    "nonfinite": 0,
    "judged": True,
    "note": "",
}
INT8 = {
    "kept": "int8",
    "candidate": "int8",
    "policy": "static",
    "calibration_method": "minmax",
    "target": {"top1": 0.97},
    "judged": False,
    "agreement": {"task": "classification", "samples": 8, "sqnr_db": -0.49, "cosine": 0.51, "top1": 0.0, "kl": 0.0078},
    "calibration_candidates": {
        "minmax": {"task": "classification", "samples": 8, "sqnr_db": -0.49, "cosine": 0.51, "top1": 0.0, "kl": 0.0078}
    },
    "calibration_images": 8,
    "selection_images": 8,
    "form": {
        "hardswish_decomposed": 0,
        "hardsigmoid_decomposed": 0,
        "scales_folded": 0,
        "biases_corrected": 0,
        "weight_bits": 7,
    },
    "sensitivity": {
        "layers": 1,
        "most_sensitive": [
            {
                "node": "conv_1",
                "op_type": "Conv",
                "sqnr_db": 30.1,
                "input_sqnr_db": 40.0,
                "loss_db": 9.9,
                "weight_sqnr_db": None,
            }
        ],
    },
    "fallback": {
        "nodes": [],
        "rounds": [
            {
                "nodes": 1,
                "float_nodes": ["conv_1"],
                "agreement": {
                    "task": "classification",
                    "samples": 8,
                    "sqnr_db": float("inf"),
                    "cosine": 1.0,
                    "top1": 1.0,
                },
            }
        ],
    },
    "speed_gate": {
        "fp32_ms": 0.16,
        "candidates_ms": {"int8": 0.099},
        "ratios": {"int8": 0.615},
        "threads": 2,
        "batch": 1,
        "method": "bench",
        "round_trips": {"int8": {"count": 0, "ops": {}}},
        "vnni": True,
        "depthwise_convs": 13,
        "causes": [],
    },
    "decision": "static policy: int8 shipped",
    "warnings": [],
    "notes": ["only 8 calibration images"],
}


INT8_OPTIONS = {
    "policy": "static",
    "calib_method": "minmax",
    "speed": True,
    "threads": 2,
    "speed_seconds": 0.5,
    "max_fallback": None,
    "bias_correction": True,
    "weight_bits": 7,
}
#: ``options`` of a version 1 manifest (the release before ExportOptions.to_dict() was the whole block).
V1_OPTIONS = {
    "weights": None,
    "num_classes": 1000,
    "input_size": [32, 32],
    "batch": "dynamic",
    "int8_options": INT8_OPTIONS,
    "int8": True,
    "calib_method": "minmax",
    "arch_options": {"width_mult": 0.25},
}


def manifest(**changes) -> dict:
    """A manifest shaped as pipeline/manifest.py's build_manifest writes it (version 2, the current release)."""
    doc = {
        "edgecnn_manifest": 2,
        "model": "mobilenet_v1",
        "task": "classification",
        "created": "2026-01-01",
        "command": "edgecnn export mobilenet_v1",
        "options": {"input_size": [32, 32], "int8": INT8_OPTIONS, "arch_options": {"width_mult": 0.25}},
        "weights": {"source": "random", "sha256": None},
        "card": {"crop": [32, 32]},
        "labels": None,
        "calibration": {},
        "int8": INT8,
        "artifacts": [
            {
                "file": "mobilenet_v1.fp32.onnx",
                "precision": "fp32",
                "size_bytes": 10,
                "sha256": "ab",
                "parity": PARITY,
                "notes": ["simplified: True"],
            }
        ],
        "bundle": {
            "folder": "bundle",
            "models": ["mobilenet_v1.fp32.onnx"],
            "files": 6,
            "selftest_passed": True,
            "manifest": "bundle.json",
        },
        "versions": {"edgecnn": "0.1.0"},
        "timings_s": {"export onnx": 3.3},
        "warnings": [],
    }
    doc.update(changes)
    return doc


def _write(folder, name, doc):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(doc))
    return folder


def test_a_manifest_as_the_release_writes_it_reads(tmp_path):
    folder = _write(tmp_path / "ex", "manifest.json", manifest())
    assert read_export_manifest(folder)["artifacts"][0]["parity"]["passed"] is True
    assert int8_record(folder)["kept"] == "int8"
    assert int8_record(_write(tmp_path / "no8", "manifest.json", manifest(int8=None))) is None
    assert manifest_options(read_export_manifest(folder))["int8"] == INT8_OPTIONS


def test_a_version_1_manifest_still_reads(tmp_path):
    """Manifests written before version 2 (``options.int8`` a flag) read, and their options read as version 2's."""
    folder = _write(tmp_path / "v1", "manifest.json", manifest(edgecnn_manifest=1, options=V1_OPTIONS))
    doc = read_export_manifest(folder)
    assert doc["edgecnn_manifest"] == 1 and doc["artifacts"][0]["parity"]["passed"] is True
    assert int8_record(folder)["kept"] == "int8"
    options = manifest_options(doc)
    assert options["int8"] == INT8_OPTIONS and "int8_options" not in options and "calib_method" not in options
    assert options["input_size"] == [32, 32] and options["arch_options"] == {"width_mult": 0.25}
    # older version 1 manifests had only the flag: "auto" and its method become Int8Options' fields
    flag_only = {"int8": "auto", "calib_method": "entropy"}
    assert manifest_options(manifest(edgecnn_manifest=1, options=flag_only))["int8"] == {
        "policy": "auto",
        "calib_method": "entropy",
    }
    assert manifest_options(manifest(edgecnn_manifest=1, options={"int8": False}))["int8"] is None


@pytest.mark.parametrize(
    "doc, needle",
    [
        ([], "not an edgecnn export manifest (a JSON object), got an empty list"),
        (manifest(edgecnn_manifest=3), "key 'edgecnn_manifest' must be 1 or 2, got 3"),
        (manifest(options={"int8": True}), "key 'options.int8' must be null or an object, got true"),
        (manifest(options={"int8": {"policy": "auto"}}), "key 'options.int8.calib_method' is missing"),
        (manifest(artifacts={}), "key 'artifacts' must be a list of objects, got an object"),
        (manifest(artifacts=[{"file": "m.onnx", "precision": "fp32"}]), "key 'artifacts[0].parity' is missing"),
        (
            manifest(artifacts=[{"file": 5, "precision": "fp32", "parity": PARITY}]),
            "key 'artifacts[0].file' must be a file name, got 5",
        ),
        (manifest(bundle={"folder": ["b"]}), "key 'bundle.folder' must be a file name, got a list"),
    ],
)
def test_a_malformed_manifest_is_one_line_naming_the_file_and_key(tmp_path, doc, needle):
    folder = _write(tmp_path / "ex", "manifest.json", doc)
    with pytest.raises(ArtifactError) as err:
        read_export_manifest(folder)
    assert needle in str(err.value) and str(folder / "manifest.json") in str(err.value)
    assert "\n" not in str(err.value) and str(err.value).endswith("export again with --force")


@pytest.mark.parametrize(
    "change, needle",
    [
        (lambda r: r.pop("kept"), "key 'int8.kept' is missing"),
        (lambda r: r.update(agreement={"samples": 8}), "key 'int8.agreement.sqnr_db' is missing"),
        (lambda r: r["speed_gate"].update(vnni="yes"), "key 'int8.speed_gate.vnni' must be true or false or null"),
        (
            lambda r: r["sensitivity"]["most_sensitive"][0].update(loss_db="x"),
            "key 'int8.sensitivity.most_sensitive[0].loss_db' must be a number, got 'x'",
        ),
    ],
)
def test_a_malformed_int8_record_names_its_key(tmp_path, change, needle):
    record = json.loads(json.dumps(INT8))
    change(record)
    with pytest.raises(ArtifactError, match=needle.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        int8_record(_write(tmp_path / "ex", "manifest.json", manifest(int8=record)))


def test_encodings_utf8_with_bom_reads_utf16_and_latin1_are_named(tmp_path):
    folder = tmp_path / "ex"
    folder.mkdir()
    path = folder / "manifest.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(manifest()).encode())
    assert read_export_manifest(folder)["model"] == "mobilenet_v1"
    for encoding in ("utf-16", "utf-16-le"):
        path.write_bytes(json.dumps(manifest()).encode(encoding))
        with pytest.raises(ArtifactError, match="is UTF-16 text; edgecnn documents are UTF-8"):
            read_export_manifest(folder)
    path.write_bytes(json.dumps(manifest(model="caf\xe9"), ensure_ascii=False).encode("latin-1"))
    with pytest.raises(ArtifactError, match="is not UTF-8 text"):
        read_export_manifest(folder)
    path.write_text("[" * 100_000)
    with pytest.raises(ArtifactError, match="manifest.json is not"):
        read_export_manifest(folder)


def bundle(**changes) -> dict:
    doc = {
        "edgecnn_bundle": 1,
        "model": "mobilenet_v1",
        "task": "classification",
        "labels": {"file": "labels.txt", "names": False},
        "golden": {"file": "golden.npz", "images": ["golden_0.png"], "preprocessing": {"resize": 37}},
        "models": [
            {
                "file": "m.onnx",
                "precision": "fp32",
                "task": "classification",
                "input": "input",
                "expected": "expected_0",
                "input_shape": ["batch", 3, 32, 32],
                "layout": "NCHW",
                "tolerance": {"max_rel": 1e-3, "cosine": 0.9999},
            }
        ],
        "files": {"m.onnx": {"size": 10, "sha256": "ab"}},
        "selftest": "edgecnn selftest <this folder>",
    }
    doc.update(changes)
    return doc


@pytest.mark.parametrize(
    "doc, needle",
    [
        ({"models": []}, "not an edgecnn bundle manifest"),
        (bundle(models=[]), "key 'models' must be a non-empty list of models, got an empty list"),
        (bundle(files=["m.onnx"]), "key 'files' must be an object, got a list"),
        (bundle(files={"m.onnx": {"size": "10", "sha256": "ab"}}), "key 'files.m.onnx.size' must be an integer"),
        (bundle(golden={}), "key 'golden.file' is missing"),
    ],
)
def test_a_malformed_bundle_json_names_the_key(tmp_path, doc, needle):
    assert read_bundle_json(_write(tmp_path / "ok", "bundle.json", bundle()))["models"][0]["input"] == "input"
    with pytest.raises(ArtifactError) as err:
        read_bundle_json(_write(tmp_path / "b", "bundle.json", doc))
    assert needle in str(err.value) and "bundle.json" in str(err.value)


def test_schema_language():
    spec = {
        "a": int,
        "b": Opt((None, [float])),
        "c": MapOf(bool),
        "d": Choice("x", "y"),
        "e": Where(int, lambda v: v > 0, "a positive integer"),
    }
    check({"a": 1, "b": [1, 2.5], "c": {"k": True}, "d": "x", "e": 3}, spec)
    check({"a": 1, "b": None, "c": {}, "d": "y", "e": 1}, spec)
    for bad, key in (({"a": True}, "a"), ({"a": 1, "b": ["1"]}, "b[0]"), ({"a": 1, "c": {"k": 1}}, "c.k")):
        with pytest.raises(Mismatch) as err:
            check({"c": {}, "d": "x", "e": 1, **bad}, spec)
        assert err.value.key == key
    with pytest.raises(Mismatch, match="must be a positive integer, got 0"):
        check({"a": 1, "c": {}, "d": "x", "e": 0}, spec)


# --- card values -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "made",
    [
        ModelCard(model="mobilenet_v1", task="classification", labels=[f"c{i}" for i in range(1000)]),
        ModelCard(
            model="unet",
            task="segmentation",
            input_shape=["batch", 3, "height", "width"],
            num_classes=1,
            labels=["background", "object"],
            extra={"size_multiple": 16, "arch_options": {"bilinear": True}},
        ),
        ModelCard(
            model="mobilenet_v2",
            task="classification",
            layout="NHWC",
            input_dtype="uint8",
            input_shape=["batch", 224, 224, 3],
            preprocess_embedded=True,
            resize=None,
            num_classes=10,
            extra={"arch_options": {"width_mult": 0.25, "dropout": 0.2}},
        ),
    ],
)
def test_cards_as_the_release_writes_them_read_back(made):
    assert ModelCard.from_metadata(made.to_metadata()) == made


@pytest.mark.parametrize(
    "key, raw, needle",
    [
        ("mean", '"abc"', "card key edgecnn.mean must be a list of 1 to 64 numbers (one per channel), got 'abc'"),
        ("mean", "abc", "card key edgecnn.mean must be a list of 1 to 64 numbers (one per channel), got 'abc'"),
        ("labels", "5", "card key edgecnn.labels must be null or a list of strings, got 5"),
        ("num_classes", str(10**12), "card key edgecnn.num_classes must be an integer from 1 to 100000"),
        ("num_classes", "true", "card key edgecnn.num_classes must be an integer from 1 to 100000, got true"),
        ("std", "[0.2, 0, 0.2]", "card key edgecnn.std must be a list of 1 to 64 positive numbers"),
        ("std", "[1.0]", "card key edgecnn.std has 1 values but edgecnn.mean 3"),
        ("crop", "[224, 100000]", "card key edgecnn.crop must be [height, width], each an integer from 1 to 4096"),
        ("task", '"detection"', 'card key edgecnn.task must be "classification" or "segmentation"'),
        (
            "extra",
            '{"arch_options": {"width_mult": "wide"}}',
            "card key edgecnn.extra.arch_options.width_mult must be a positive number (at most 16), got 'wide'",
        ),
        ("labels", '["a", "b"]', "card key edgecnn.labels holds 2 names but edgecnn.num_classes is 1000"),
    ],
)
def test_a_card_value_of_the_wrong_type_or_range_names_the_file_and_key(key, raw, needle):
    props = ModelCard(model="mobilenet_v1", task="classification").to_metadata()
    props["edgecnn." + key] = raw
    with pytest.raises(ArtifactError) as err:
        ModelCard.from_metadata(props, "m.onnx")
    assert str(err.value).startswith("m.onnx: " + needle), str(err.value)


def test_class_count_labels_and_output_width():
    card = ModelCard(model="m", task="classification", num_classes=10)
    check_classes("m.onnx", card, ["batch", 10])
    check_classes("m.onnx", card, ["batch", "classes"], labels=[str(i) for i in range(10)])  # dynamic: the card's
    with pytest.raises(ArtifactError, match=r"m\.onnx: its card says 10 classes .* the graph's output has 1000"):
        check_classes("m.onnx", card, ["batch", 1000])
    with pytest.raises(InputError, match=r"3 class names given \(labels / --labels\) for the 10 classes of m\.onnx"):
        check_classes("m.onnx", card, ["batch", 10], labels=["a", "b", "c"])
    with pytest.raises(InputError, match="1001 class names"):
        check_classes("m.onnx", None, [1, 1000], labels=[str(i) for i in range(1001)])
    seg = ModelCard(model="unet", task="segmentation", num_classes=1)
    check_classes("u.onnx", seg, ["batch", 1, "h", "w"], labels=["background", "object"])  # binary: both named
    check_card_values({"model": "unet", "num_classes": 1, "labels": ["background", "object"]})
