"""edgecnn.deploy.embed and `export --embed-preprocess`: uint8 NHWC graphs that normalise inside, parity vs the
float model."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edgecnn.convert.calibration import sample_photos
from edgecnn.core.card import ModelCard
from edgecnn.core.errors import ArtifactError, InputError
from edgecnn.deploy.embed import embed_file, embed_preprocessing
from edgecnn.pipeline import export
from edgecnn.runtime.predictor import Predictor
from edgecnn.runtime.preprocess import preprocess


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny MobileNetV2 export with fp16 and int8, and their embedded-preprocessing twins."""
    out = tmp_path_factory.mktemp("embed") / "mv2"
    return export(
        "mobilenet_v2",
        out,
        input_size=64,
        arch_options={"width_mult": 0.25},
        calib_count=16,
        fp16=True,
        int8=True,
        embed_preprocess=True,
    )


def _card(path: Path) -> ModelCard:
    """The card as an app reads it: onnxruntime only."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return ModelCard.from_metadata(sess.get_modelmeta().custom_metadata_map)


def test_export_writes_a_checked_twin_per_precision(exported):
    files = {a.file: a for a in exported.artifacts}
    for precision in ("fp32", "fp16", "int8"):
        twin = files[f"mobilenet_v2.{precision}.nhwc_uint8.onnx"]
        assert twin.precision == precision
        assert twin.parity.passed and twin.reference == f"mobilenet_v2.{precision}.onnx"
        assert twin.parity.samples >= 8
    manifest = json.loads((exported.out_dir / "manifest.json").read_text())
    assert manifest["options"]["embed_preprocess"] is True
    # the twin's parity block in the manifest names the file it was judged against
    twins = [a for a in manifest["artifacts"] if a["file"].endswith(".nhwc_uint8.onnx")]
    assert [a["parity"]["reference"] for a in twins] == [f"mobilenet_v2.{p}.onnx" for p in ("fp32", "fp16", "int8")]
    assert len(manifest["artifacts"]) == 6 and exported.passed


def test_twin_takes_uint8_nhwc_and_says_so(exported):
    path = exported.out_dir / "mobilenet_v2.fp32.nhwc_uint8.onnx"
    onnx.checker.check_model(str(path), full_check=True)
    inp = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()[0]
    assert inp.type == "tensor(uint8)" and inp.shape[1:] == [64, 64, 3]
    card = _card(path)
    assert (card.input_dtype, card.layout, card.preprocess_embedded) == ("uint8", "NHWC", True)
    assert card.input_shape == ["batch", 64, 64, 3]
    assert card.mean == _card(exported.out_dir / "mobilenet_v2.fp32.onnx").mean  # kept for documentation


def test_twin_matches_the_float_model_on_the_same_images(exported):
    photos = sample_photos(6, seed=11)
    for precision, atol in (("fp32", 1e-5), ("fp16", 1e-2), ("int8", 1e-4)):
        floats = Predictor(exported.out_dir / f"mobilenet_v2.{precision}.onnx")
        twin = Predictor(exported.out_dir / f"mobilenet_v2.{precision}.nhwc_uint8.onnx")
        assert twin.embedded and twin.preprocess(photos).dtype == np.uint8
        want = floats.run(floats.preprocess(photos))
        got = twin.run(twin.preprocess(photos))
        np.testing.assert_allclose(got, want, atol=atol, rtol=0)
        assert (got.argmax(1) == want.argmax(1)).all()
        assert [p[0][0] for p in twin.predict(photos)] == [p[0][0] for p in floats.predict(photos)]


def test_app_needs_no_numpy_preprocessing(exported):
    """What an app does: hand the model resized pixels straight from an image library."""
    from PIL import Image

    path = exported.out_dir / "mobilenet_v2.fp32.nhwc_uint8.onnx"
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    image = sample_photos(1, seed=4)[0].resize((64, 64), Image.BILINEAR)
    pixels = np.asarray(image, dtype=np.uint8)[None]  # 1×64×64×3, as decoded
    (logits,) = sess.run(None, {"input": pixels})
    floats = Predictor(exported.out_dir / "mobilenet_v2.fp32.onnx")
    want = floats.run(preprocess(image, replace(floats.params, resize=None))[None])  # already 64×64: no resize
    np.testing.assert_allclose(logits, want, atol=1e-5, rtol=0)


def test_embedding_twice_or_without_a_card_is_refused(exported, tmp_path):
    twin = exported.out_dir / "mobilenet_v2.fp32.nhwc_uint8.onnx"
    with pytest.raises(InputError, match="already embedded"):
        embed_preprocessing(onnx.load(str(twin)), _card(twin))
    bare = onnx.load(str(exported.out_dir / "mobilenet_v2.fp32.onnx"))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(ArtifactError, match="no edgecnn card"):
        embed_file(tmp_path / "bare.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not onnx at all")
    with pytest.raises(ArtifactError, match="not a readable ONNX model"):
        embed_file(tmp_path / "junk.onnx")


def test_graph_arithmetic_is_the_runtime_preprocessing_for_one_channel():
    """A one-channel graph y = 2x: the twin must compute 2 * ((p / 255 - mean) / std) from uint8 pixels p."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 4, 5])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1, 4, 5])
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    graph = helper.make_graph([helper.make_node("Mul", ["input", "two"], ["logits"])], "g", [x], [y], [two])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    card = ModelCard(
        model="toy",
        task="segmentation",
        input_name="input",
        output_name="logits",
        input_shape=["batch", 1, 4, 5],
        mean=[0.5],
        std=[0.25],
        resize=None,
        crop=[4, 5],
    )
    twin, twin_card = embed_preprocessing(model, card)
    assert twin_card.input_shape == ["batch", 4, 5, 1] and twin_card.layout == "NHWC"
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT  # the original is untouched
    pixels = np.random.default_rng(0).integers(0, 256, (3, 4, 5, 1), dtype=np.uint8)
    sess = ort.InferenceSession(twin.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"input": pixels})
    x = (pixels.astype(np.float32) / np.float32(255) - np.float32(0.5)) / np.float32(0.25)
    np.testing.assert_array_equal(got, 2 * x.transpose(0, 3, 1, 2))
