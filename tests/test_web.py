"""edgecnn.web: bundles self-tested in onnxruntime-node and in headless Chromium (onnxruntime-web), the static
web app driven in a real browser on a real photograph, and latency inside the browser.

These need Node and Chromium (and the pinned npm packages, installed into the cache on first use). Outside CI a
machine without them skips; in CI (CI=true) a missing part is a failure, never a skip.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgecnn.cli import app
from edgecnn.core.errors import EdgeCNNError
from edgecnn.core.files import sha256_file

runner = CliRunner()


def _require_js_side() -> None:
    from edgecnn.web.npm import find_chromium, find_node, node_modules

    try:
        find_node(), find_chromium(), node_modules()
    except EdgeCNNError as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI must run the browser and Node tests: {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def js_side():
    _require_js_side()


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, js_side):
    """Small real exports: mobilenet_v2 (fp32 + int8) and unet_bilinear (fp32), each with its bundle."""
    from edgecnn.pipeline import export

    root = tmp_path_factory.mktemp("web")
    # small and unsimplified, to stay quick: the JavaScript runtimes are under test here, not the export
    mv2 = export(
        "mobilenet_v2",
        root / "mv2",
        input_size=32,
        arch_options={"width_mult": 0.25},
        calib_count=8,
        int8=True,
        bundle=True,
        simplify=False,
    )
    unet = export("unet_bilinear", root / "unet", input_size=32, bundle=True)
    return {"mv2": mv2.out_dir / "bundle", "unet": unet.out_dir / "bundle", "root": root}


def _altered_copy(bundle: Path, dest: Path, model: str) -> Path:
    """A copy whose model weights were changed after the bundle was made, with bundle.json re-hashed to match
    (so the file check passes and only the numbers can catch it), the model still loadable."""
    import onnx
    from onnx import numpy_helper

    shutil.copytree(bundle, dest)
    proto = onnx.load(str(dest / model))
    biggest = max(proto.graph.initializer, key=lambda t: int(np.prod(t.dims)) if t.data_type == 1 else 0)
    values = numpy_helper.to_array(biggest).copy()
    values.flat[::7] *= -3.0  # many weights flipped and scaled: a damaged or tampered file
    biggest.CopyFrom(numpy_helper.from_array(values, biggest.name))
    onnx.save(proto, str(dest / model))
    manifest = json.loads((dest / "bundle.json").read_text())
    manifest["files"][model] = {"size": (dest / model).stat().st_size, "sha256": sha256_file(dest / model)}
    (dest / "bundle.json").write_text(json.dumps(manifest, indent=2))
    return dest


@pytest.mark.parametrize("runtime", ["node", "browser"])
def test_selftest_in_node_and_browser_passes_and_catches_altered_weights(bundles, runtime, tmp_path):
    for name in ("mv2", "unet"):
        res = runner.invoke(app, ["selftest", str(bundles[name]), "--runtime", runtime, "--json"])
        assert res.exit_code == 0, res.output
        report = json.loads(res.stdout)
        assert report["passed"] and report["onnxruntime"].startswith(
            "onnxruntime-node" if runtime == "node" else "onnxruntime-web"
        )
        precisions = sorted(m["precision"] for m in report["models"])
        assert precisions == (["fp32", "int8"] if name == "mv2" else ["fp32"])
        fp32 = next(m for m in report["models"] if m["precision"] == "fp32")
        assert fp32["max_rel"] < 1e-3 and fp32["cosine"] > 0.9999
    altered = _altered_copy(bundles["mv2"], tmp_path / "altered", "mobilenet_v2.fp32.onnx")
    res = runner.invoke(app, ["selftest", str(altered), "--runtime", runtime])
    assert res.exit_code == 1, res.output
    assert "FAIL" in res.stdout and "mobilenet_v2.int8.onnx" in res.stdout
    assert runner.invoke(app, ["selftest", str(altered)]).exit_code == 1  # python's judge agrees


def test_web_app_classifies_a_photo_like_the_python_predictor(bundles, tmp_path):
    from PIL import Image
    from sklearn.datasets import load_sample_image

    from edgecnn.deploy.embed import embed_file
    from edgecnn.runtime.predictor import Predictor
    from edgecnn.web.runners import run_pages

    src, out = tmp_path / "export", tmp_path / "site"  # an export folder: the fp32 model and its uint8 NHWC twin
    src.mkdir()
    shutil.copyfile(bundles["mv2"] / "mobilenet_v2.fp32.onnx", src / "mobilenet_v2.fp32.onnx")
    embed_file(src / "mobilenet_v2.fp32.onnx", samples=2)
    res = runner.invoke(app, ["web", str(src), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "WASM runs every node" in res.stdout  # the onnxruntime-web check, one line per model
    assert {"index.html", "app.js", "card.json", "labels.txt", "_headers"} <= {p.name for p in out.iterdir()}
    card = json.loads((out / "card.json").read_text())
    assert card["models"][0]["file"] == "mobilenet_v2.fp32.onnx" and card["models"][0]["preprocess"]["crop"] == [32, 32]
    assert runner.invoke(app, ["web", str(src), "--out", str(out)]).exit_code == 2  # no silent overwrite

    photo, text = tmp_path / "china.jpg", tmp_path / "notes.txt"
    Image.fromarray(load_sample_image("china.jpg")).save(photo, quality=95)
    text.write_text("not an image\n")
    shot = tmp_path / "page.png"
    broken = tmp_path / "broken"
    shutil.copytree(out, broken, ignore=shutil.ignore_patterns("ort"))  # its ort/ is served from out/ below
    (broken / "mobilenet_v2.fp32.onnx").write_bytes(b"truncated")  # a failed download, say
    unet_site = tmp_path / "unet_site"
    assert runner.invoke(app, ["web", str(bundles["unet"]), "--out", str(unet_site)]).exit_code == 0
    twin = "/?ep=wasm&model=mobilenet_v2.fp32.nhwc_uint8.onnx"
    pages = run_pages(
        [
            {"url": "/?ep=wasm", "kind": "app", "file": str(photo), "screenshot": str(shot)},
            {"url": "/", "kind": "app", "file": str(text)},
            {"url": "/broken/?ep=wasm", "kind": "app"},
            {"url": twin, "kind": "app", "file": str(photo)},
            {"url": "/unet/", "kind": "app", "file": str(photo)},
        ],
        {"/": out, "/broken/": broken, "/broken/ort/": out / "ort", "/unet/": unet_site},
    )["pages"]
    page, bad, failed, twin_page, mask_page = pages
    assert failed["state"] == "error" and "could not load mobilenet_v2.fp32.onnx" in failed["status"], failed
    # the uint8 NHWC twin: JS only resizes and crops, the graph normalises; the same answer
    assert twin_page["state"] == "done" and twin_page["top5"][0]["label"] == page["top5"][0]["label"], twin_page
    assert mask_page["state"] == "done" and "mask shown" in mask_page["status"], mask_page
    # no ?ep: WebGPU is tried, and where it is missing the page says so, never silently
    assert "running on WASM" in bad["body"] or bad["backend"] == "webgpu", bad
    assert page["state"] == "done", page
    expected = Predictor(out / "mobilenet_v2.fp32.onnx").predict(photo, top_k=5)[0]
    assert len(page["top5"]) == 5 and page["top5"][0]["label"] == expected[0][0]
    np.testing.assert_allclose([t["prob"] for t in page["top5"]], [p for _, p in expected], rtol=0, atol=2e-3)
    assert all(t["label"] in page["body"] for t in page["top5"]) and "inference" in page["latency"]
    assert page["backend"].startswith("wasm")
    assert shot.stat().st_size > 5000 and Image.open(shot).size[0] > 300
    assert bad["state"] == "error" and "notes.txt is not an image" in bad["status"], bad


def test_bench_in_the_browser_gives_percentiles_and_webgpu_says_not_available(bundles, tmp_path):
    model = bundles["mv2"] / "mobilenet_v2.int8.onnx"
    res = runner.invoke(app, ["bench", str(model), "--ep", "wasm", "--runs", "8", "--warmup", "2", "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)["results"][0]
    assert r["runs"] == 8 and len(r["times_ms"]) == 8 and 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
    assert r["create_ms"] > 0 and r["input_shape"] == [1, 3, 32, 32] and r["threads"] >= 1
    assert r["cross_origin_isolated"] is True and r["simd"] is True
    res = runner.invoke(app, ["bench", str(model), "--ep", "webgpu", "--runs", "2"])
    if res.exit_code == 0:  # a machine with a real GPU adapter: then the numbers must be there
        assert "p50 ms" in res.stdout
    else:
        assert res.exit_code == 2 and "not available here" in res.output


def test_check_web_names_what_onnxruntime_web_cannot_run(tmp_path, js_side):
    import onnx
    from onnx import TensorProto, helper

    from edgecnn.web.app import check_web

    node = helper.make_node("Relu", ["x"], ["y"])
    custom = helper.make_node("MyOp", ["y"], ["z"], domain="com.example")
    graph = helper.make_graph(
        [node, custom],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.example", 1)])
    onnx.save(model, str(tmp_path / "m.onnx"))
    check = check_web(tmp_path / "m.onnx")
    assert not check.runs and "com.example.MyOp" in check.line()
    assert "com.example.MyOp" in check.webgpu_on_wasm


def test_node_example_app_prints_the_top5_of_the_python_predictor(bundles, tmp_path):
    import subprocess

    from edgecnn.runtime.predictor import Predictor
    from edgecnn.web.npm import node_modules

    site = tmp_path / "site"
    assert runner.invoke(app, ["web", str(bundles["mv2"]), "--out", str(site)]).exit_code == 0
    tool = Path(__file__).resolve().parents[1] / "tools" / "example_app.mjs"
    image = bundles["mv2"] / "golden_0.png"  # a photo crop, before resizing
    proc = subprocess.run(
        ["node", str(tool), str(site), str(image)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "EDGECNN_NODE_MODULES": str(node_modules())},
    )
    assert proc.returncode == 0, proc.stderr
    lines = [ln.split() for ln in proc.stdout.splitlines() if ln.strip()]
    expected = Predictor(site / "mobilenet_v2.fp32.onnx").predict(image, top_k=5)[0]
    assert [ln[1] for ln in lines] == [label for label, _ in expected]
    np.testing.assert_allclose([float(ln[0].rstrip("%")) for ln in lines], [100 * p for _, p in expected], atol=0.02)


def test_missing_node_npm_or_chromium_is_one_line_saying_what_to_install(bundles, monkeypatch, tmp_path):
    import edgecnn.web.npm as npm

    monkeypatch.delenv("EDGECNN_CHROMIUM", raising=False)
    monkeypatch.setattr(npm.shutil, "which", lambda name: None)
    res = runner.invoke(app, ["selftest", str(bundles["mv2"]), "--runtime", "browser"])
    assert res.exit_code == 2 and "apt-get install chromium" in res.output and "Traceback" not in res.output
    monkeypatch.setenv("EDGECNN_CACHE", str(tmp_path / "empty-cache"))  # nothing installed there yet
    res = runner.invoke(app, ["selftest", str(bundles["mv2"]), "--runtime", "node"])
    assert res.exit_code == 2 and "install" in res.output and ("npm" in res.output or "Node.js" in res.output)


# --- the local server (issue 28): a real server process on 127.0.0.1, each step bounded in time -------------------


def _server(folder, **popen):
    import subprocess
    import sys

    return subprocess.Popen(
        [sys.executable, "-m", "edgecnn.web.server", str(folder)],
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **popen,
    )


def test_server_refuses_a_missing_folder_in_one_line(tmp_path):
    import subprocess

    proc = _server(tmp_path / "no" / "such" / "dir")
    try:
        out, err = proc.communicate(timeout=60)  # it exits at once instead of serving 404s forever
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("the server is still serving a folder that does not exist")
    assert proc.returncode == 2 and out == "", (out, err)
    assert err.strip().splitlines() == [err.strip()] and err.startswith("error: ") and "no/such/dir" in err, err


def test_server_answers_a_bad_url_400_without_a_traceback(tmp_path):
    import http.client
    import signal
    import threading

    (tmp_path / "index.html").write_text("<p>hello</p>")
    # Ctrl-C from a terminal is what is tested: a run started as a background job of a script inherits SIGINT
    # ignored, and Python then installs no KeyboardInterrupt, so the child gets the terminal's default back
    proc = _server(tmp_path, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    timer = threading.Timer(60, proc.kill)  # bounded whatever happens below
    timer.start()
    try:
        line = proc.stdout.readline()
        assert " at http://127.0.0.1:" in line, line
        host, port = line.split("http://", 1)[1].split("/", 1)[0].split(":")
        assert host == "127.0.0.1"
        answers = {}
        for url in ("/%00", "/index.html%00.png", "/index.html", "/%2e%2e/%2e%2e/etc/passwd"):
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
            conn.request("GET", url)
            answer = conn.getresponse()
            answers[url] = answer.status
            answer.read()
            conn.close()
        proc.send_signal(signal.SIGINT)  # what Ctrl-C does
        out, err = proc.communicate(timeout=30)
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
    assert answers == {"/%00": 400, "/index.html%00.png": 400, "/index.html": 200, "/%2e%2e/%2e%2e/etc/passwd": 404}, (
        answers
    )
    assert "Traceback" not in err and "Error" not in err, err
    assert proc.returncode == 0, (out, err)


# --- preprocess.mjs: the crop window of a resize, the pixel limit (issue 28) -------------------------------------

_RESIZE_CROP_JS = """
import { readFileSync } from 'node:fs';
const { resizeCrop } = await import(process.argv[1]);
const out = [];
for (const c of JSON.parse(readFileSync(process.argv[2], 'utf8'))) {
  const data = new Uint8ClampedArray(readFileSync(c.file));
  try {
    out.push({ pixels: Buffer.from(resizeCrop({ width: c.width, height: c.height, data }, c.pre)).toString('base64') });
  } catch (e) { out.push({ error: e.message }); }
}
console.log(JSON.stringify(out));
"""


def test_preprocess_mjs_gives_pythons_pixels_from_the_crop_window_and_refuses_huge_images(tmp_path):
    """JavaScript computes only the crop window of the resize (a 100000×1 image included, whose whole resize would
    be 25.6 M pixels wide) and gives the Python Predictor's pixels exactly; an image over the card's pixel limit is
    refused with a message naming it."""
    import base64
    import subprocess

    from edgecnn.runtime.preprocess import PreprocessParams, preprocess_uint8
    from edgecnn.web.npm import ASSETS

    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI must run the Node tests: node is not installed")
        pytest.skip("node is not installed")
    imagenet = {"resize": 256, "crop": [224, 224], "channels": 3}
    gray = {"resize": 72, "crop": [64, 48], "channels": 1}
    cases = [
        (640, 480, imagenet),
        (300, 1000, imagenet),
        (100_000, 1, imagenet),
        (2, 900, imagenet),
        (97, 61, gray),
        (61, 97, gray),
        (50, 40, {"resize": 56, "crop": [64, 64], "channels": 3}),
        (31, 17, {"resize": None, "crop": [24, 20], "channels": 3}),
        (40, 30, {**imagenet, "max_image_pixels": 1000}),
    ]
    rng, jobs, expected = np.random.default_rng(0), [], []
    for i, (width, height, pre) in enumerate(cases):
        rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        rgba = np.concatenate([rgb, np.full((height, width, 1), 255, np.uint8)], axis=2)
        (tmp_path / f"{i}.rgba").write_bytes(rgba.tobytes())
        jobs.append({"file": str(tmp_path / f"{i}.rgba"), "width": width, "height": height, "pre": pre})
        channels = pre["channels"]
        params = PreprocessParams(
            crop=tuple(pre["crop"]),
            resize=pre["resize"],
            channels=channels,
            mean=(0.5,) * channels,
            std=(0.5,) * channels,
        )
        expected.append(None if "max_image_pixels" in pre else preprocess_uint8(rgb, params))
    (tmp_path / "job.json").write_text(json.dumps(jobs))
    proc = subprocess.run(
        [
            node,
            "--input-type=module",
            "-e",
            _RESIZE_CROP_JS,
            (ASSETS / "preprocess.mjs").as_uri(),
            str(tmp_path / "job.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    for (width, height, _), want, got in zip(cases, expected, json.loads(proc.stdout)):
        if want is None:
            assert "40x30 = 1,200 pixels, over edgecnn's limit of 1,000" in got["error"], got
            continue
        pixels = np.frombuffer(base64.b64decode(got["pixels"]), np.uint8).reshape(want.shape)
        np.testing.assert_array_equal(pixels, want, err_msg=f"{width}x{height}")
