"""edgecnn.deploy.bundle and `edgecnn selftest`: bundle contents, golden pair, tamper detection, torch-free
self-test."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from edgecnn.cli import app
from edgecnn.core.errors import ArtifactError
from edgecnn.deploy.bundle import BUNDLE_MANIFEST, make_bundle, selftest, sha256_file
from edgecnn.pipeline import export
from edgecnn.runtime.predictor import Predictor

runner = CliRunner()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "mv2"
    return export(
        "mobilenet_v2",
        out,
        input_size=64,
        arch_options={"width_mult": 0.25},
        calib_count=16,
        int8=True,
        embed_preprocess=True,
        bundle=True,
    )


@pytest.fixture
def bundle(exported, tmp_path) -> Path:
    """A private copy of the bundle (tests tamper with it), as a device would receive it."""
    dest = tmp_path / "bundle"
    shutil.copytree(exported.out_dir / "bundle", dest)
    return dest


def _manifest(root: Path) -> dict:
    return json.loads((root / BUNDLE_MANIFEST).read_text())


def test_export_bundle_holds_models_hashes_labels_and_golden_pair(exported):
    root = exported.out_dir / "bundle"
    record = exported.manifest["bundle"]
    assert record["folder"] == "bundle" and record["selftest_passed"]
    m = _manifest(root)
    models = [e["file"] for e in m["models"]]
    assert models == [a.file for a in exported.artifacts]  # fp32, int8 and their uint8 twins
    listed = set(m["files"])
    assert listed == {p.name for p in root.iterdir()} - {BUNDLE_MANIFEST}
    for name, rec in m["files"].items():
        assert rec["sha256"] == sha256_file(root / name)
    labels = (root / "labels.txt").read_text().splitlines()
    assert len(labels) == 1000  # random weights, no names: class indices
    with np.load(root / "golden.npz") as g:
        assert g["input"].shape == (2, 3, 64, 64) and g["input"].dtype == np.float32
        assert g["pixels"].shape == (2, 64, 64, 3) and g["pixels"].dtype == np.uint8
        for e in m["models"]:
            assert g[e["expected"]].shape == (2, 1000)
    assert {e["input"] for e in m["models"]} == {"input", "pixels"}


def test_golden_png_reproduces_the_expected_output_through_the_runtime(exported):
    """An app decoding golden_0.png with its own preprocessing must land on the expected output."""
    root = exported.out_dir / "bundle"
    m = _manifest(root)
    with np.load(root / "golden.npz") as g:
        golden = {k: g[k] for k in g.files}
    for entry in m["models"]:
        p = Predictor(root / entry["file"])
        photos = [Image.open(root / name) for name in m["golden"]["images"]]
        batch = p.preprocess(photos)
        np.testing.assert_array_equal(batch, golden[entry["input"]])
        np.testing.assert_allclose(p.run(batch), golden[entry["expected"]], rtol=0, atol=1e-6)


def test_selftest_passes_on_an_intact_copy(bundle):
    result = selftest(bundle)
    assert result.passed and result.files_verified == len(_manifest(bundle)["files"])
    assert len(result.checks) == 4 and all(c.providers == ("CPUExecutionProvider",) for c in result.checks)
    assert selftest(bundle / BUNDLE_MANIFEST).passed  # the manifest's path works too


def test_selftest_fails_when_the_runtime_gives_other_numbers(bundle):
    """Same files, different expected numbers (as a drifting runtime would show): the verdict must be FAIL."""
    m = _manifest(bundle)
    with np.load(bundle / "golden.npz") as g:
        data = {k: g[k] for k in g.files}
    fp32 = next(e for e in m["models"] if e["file"] == "mobilenet_v2.fp32.onnx")
    data[fp32["expected"]] = data[fp32["expected"]] + np.float32(0.05) * np.abs(data[fp32["expected"]]).max()
    np.savez(bundle / "golden.npz", **data)
    m["files"]["golden.npz"] = {
        "size": (bundle / "golden.npz").stat().st_size,
        "sha256": sha256_file(bundle / "golden.npz"),
    }
    (bundle / BUNDLE_MANIFEST).write_text(json.dumps(m))
    result = selftest(bundle)
    assert not result.passed
    failed = [c.file for c in result.checks if not c.passed]
    assert failed == ["mobilenet_v2.fp32.onnx"]
    cli = runner.invoke(app, ["selftest", str(bundle)])
    assert cli.exit_code == 1 and "FAIL" in cli.stdout


@pytest.mark.parametrize("damage", ["edited", "missing", "truncated-and-rehashed", "no-manifest", "bad-json"])
def test_damaged_bundle_is_one_clear_error(bundle, damage):
    model = bundle / "mobilenet_v2.fp32.onnx"
    if damage == "edited":
        data = bytearray(model.read_bytes())
        data[len(data) // 2] ^= 0xFF
        model.write_bytes(bytes(data))
        expect = "does not match its bundle.json: mobilenet_v2.fp32.onnx (sha256 differs)"
    elif damage == "missing":
        (bundle / "labels.txt").unlink()
        expect = "labels.txt (missing)"
    elif damage == "truncated-and-rehashed":  # hashes fine, file broken: onnxruntime's refusal, in one line
        model.write_bytes(model.read_bytes()[:5000])
        m = _manifest(bundle)
        m["files"][model.name] = {"size": model.stat().st_size, "sha256": sha256_file(model)}
        (bundle / BUNDLE_MANIFEST).write_text(json.dumps(m))
        expect = "cannot load"
    elif damage == "no-manifest":
        (bundle / BUNDLE_MANIFEST).unlink()
        expect = "not an edgecnn bundle"
    else:
        (bundle / BUNDLE_MANIFEST).write_text("{not json")
        expect = "not valid JSON"
    with pytest.raises(ArtifactError, match=expect.replace("(", r"\(").replace(")", r"\)")):
        selftest(bundle)
    cli = runner.invoke(app, ["selftest", str(bundle)])
    assert cli.exit_code == 2, cli.output
    assert cli.output.startswith("error: ") and cli.output.count("\n") == 1 and "Traceback" not in cli.output


def test_selftest_imports_neither_torch_nor_pillow(bundle):
    code = (
        "import sys\nfrom edgecnn.deploy.bundle import selftest\nr = selftest(sys.argv[1])\n"
        "bad = [m for m in ('torch', 'PIL') if m in sys.modules]\n"
        "print(r.passed, bad)\nsys.exit(0 if r.passed and not bad else 1)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(bundle)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "True []"


def test_cli_selftest_json_and_unknown_provider(bundle):
    out = runner.invoke(app, ["selftest", str(bundle), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["passed"] and len(data["models"]) == 4
    bad = runner.invoke(app, ["selftest", str(bundle), "--ep", "nnapi"])
    assert bad.exit_code == 2 and bad.output.startswith("error: ") and "nnapi" in bad.output


def test_make_bundle_refuses_models_without_a_card_or_a_full_folder(exported, tmp_path):
    import onnx

    bare = onnx.load(str(exported.out_dir / "mobilenet_v2.fp32.onnx"))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(ArtifactError, match="no edgecnn card"):
        make_bundle(tmp_path, ["bare.onnx"], out_dir=tmp_path / "b1")
    with pytest.raises(ArtifactError, match="already exists"):
        make_bundle(exported.out_dir, out_dir=exported.out_dir / "bundle")


def test_cli_export_with_bundle_and_embed_preprocess(tmp_path):
    out = tmp_path / "exp"
    result = runner.invoke(
        app,
        [
            "export",
            "mobilenet_v1",
            "--input-size",
            "64",
            "--calib-count",
            "8",
            "--embed-preprocess",
            "--bundle",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "nhwc_uint8" in result.stdout and "self-test passed" in result.stdout
    assert (out / "bundle" / BUNDLE_MANIFEST).is_file()
    check = runner.invoke(app, ["selftest", str(out / "bundle")])
    assert check.exit_code == 0 and check.stdout.count("pass") == 2, check.output


@pytest.mark.parametrize("where", ["parent", "absolute", "golden-parent"])
def test_selftest_refuses_paths_outside_the_bundle(bundle, tmp_path, where):
    """Every path in bundle.json must stay inside the bundle folder, even when its hash matches."""
    outside = tmp_path / "outside.onnx"
    shutil.copy2(bundle / "mobilenet_v2.fp32.onnx", outside)
    record = {"size": outside.stat().st_size, "sha256": sha256_file(outside)}
    m = _manifest(bundle)
    if where == "golden-parent":
        shutil.copy2(bundle / "golden.npz", tmp_path / "golden.npz")
        name = "../golden.npz"
        m["golden"]["file"] = name
    else:
        name = "../outside.onnx" if where == "parent" else str(outside)
        m["models"][0]["file"] = name
    m["files"][name] = record
    (bundle / BUNDLE_MANIFEST).write_text(json.dumps(m))
    expect = "is an absolute path" if where == "absolute" else "points outside"
    with pytest.raises(ArtifactError, match=expect):
        selftest(bundle)
    cli = runner.invoke(app, ["selftest", str(bundle)])
    assert cli.exit_code == 2 and cli.output.startswith("error: ") and "Traceback" not in cli.output
