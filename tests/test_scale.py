"""edgecnn.scale on a real local Ray (ray.init(num_cpus=2), once for this module): batch prediction over 500+
crops of the sample photographs with broken files among them, resumability, an inference actor killed mid-run,
and a sweep whose artifacts equal exporting one by one. Ray missing: one line, exit 2. Issue 28: a run refused by
another's lock touches nothing of it, an unreadable (0-byte, truncated) part is redone, a sweep checks its names
before Ray starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edgecnn.core.errors import InputError

ray = pytest.importorskip("ray") if not os.environ.get("CI") else __import__("ray")  # CI must run these

N_GOOD = 510
BROKEN = ("empty.jpg", "text.jpg", "truncated.jpg")
SWEEP_MODEL = "mobilenet_v2"
SWEEP_OPTIONS = dict(input_size=32, arch_options={"width_mult": 0.5})


@pytest.fixture(scope="module")
def local_ray():
    os.environ["RAY_DISABLE_USAGE_STATS"] = "1"
    ray.init(num_cpus=2, object_store_memory=200 * 1024**2, include_dashboard=False, log_to_driver=False)
    # The helper actor below lives in this test module: ship it by value (workers cannot import tests/).
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """510 crops (JPEG and PNG, 40–200 px) of china.jpg and flower.jpg, in subfolders, plus 3 broken files."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    root = tmp_path_factory.mktemp("images")
    photos = load_sample_images().images
    rng = np.random.default_rng(0)
    for i in range(N_GOOD):
        photo = photos[i % 2]
        size = int(rng.integers(40, 200))
        y, x = int(rng.integers(0, photo.shape[0] - size)), int(rng.integers(0, photo.shape[1] - size))
        folder = root / f"set{i % 4}"
        folder.mkdir(exist_ok=True)
        Image.fromarray(photo[y : y + size, x : x + size]).save(
            folder / f"crop{i:04d}.{'png' if i % 5 == 0 else 'jpg'}"
        )
    (root / "empty.jpg").write_bytes(b"")
    (root / "text.jpg").write_text("this is not a JPEG")
    whole = (root / "set1" / "crop0001.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(whole[: len(whole) // 3])
    return root


def _seeded_export(out_dir: Path, int8: bool):
    """``edgecnn export`` one by one, seeded as the sweep's tasks are."""
    import torch

    from edgecnn.pipeline import ExportOptions, Int8Options, export

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the sweep's tasks (export_cpus=1): BatchNorm re-estimation sums alike
    torch.manual_seed(0)
    try:
        return export(
            SWEEP_MODEL, out_dir, ExportOptions(**SWEEP_OPTIONS, int8=Int8Options(speed=False) if int8 else None)
        )
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def swept(local_ray, tmp_path_factory):
    """A 1 model × fp32/int8 sweep on the local Ray, with benchmarks (also the model the predict tests use)."""
    from edgecnn.pipeline import ExportOptions, Int8Options
    from edgecnn.runtime.bench import BenchOptions
    from edgecnn.scale import sweep

    out = tmp_path_factory.mktemp("sweep")
    result = sweep(
        [SWEEP_MODEL],
        ["fp32", "int8"],
        out,
        options=ExportOptions(**SWEEP_OPTIONS, int8=Int8Options(speed=False)),
        bench=BenchOptions(runs=5, warmup=1),
    )
    return result


@pytest.fixture(scope="module")
def model(swept) -> Path:
    row = next(r for r in swept.exports if r["precision"] == "fp32")
    return Path(row["folder"]) / row["artifact"]


@pytest.fixture(scope="module")
def first_run(local_ray, model, images, tmp_path_factory):
    from edgecnn.scale import predict_dataset

    out = tmp_path_factory.mktemp("pred") / "preds.parquet"
    summary = predict_dataset(model, images, out, batch_size=32, part_rows=200, progress=False)
    return summary, out


def _rows(out: Path) -> dict:
    import pyarrow.parquet as pq

    table = pq.read_table(out)
    paths = table.column("path").to_pylist()
    assert len(paths) == len(set(paths)), "duplicate rows"
    return {row["path"]: row for row in table.to_pylist()}


def test_one_row_per_file_errors_reported_top1_equals_predictor(first_run, model, images):
    from edgecnn.runtime.predictor import Predictor

    summary, out = first_run
    rows = _rows(out)
    files = sorted(str(p) for p in images.rglob("*") if p.is_file())
    assert sorted(rows) == files and len(files) == N_GOOD + len(BROKEN)
    assert (summary.listed, summary.inferred, summary.errors, summary.skipped) == (len(files), N_GOOD, 3, 0)
    broken = {Path(p).name: r for p, r in rows.items() if not r["ok"]}
    assert sorted(broken) == sorted(BROKEN)
    assert all(r["error"].startswith(str(images)) and r["top1"] is None for r in broken.values())
    plain = Predictor(model, intra_op_threads=1)
    good = [p for p, r in rows.items() if r["ok"]]
    expected = [pred[0][0] for pred in plain.predict(good, top_k=1)]
    assert [rows[p]["top1"] for p in good] == expected
    assert all(len(rows[p]["labels"]) == 5 and abs(sum(rows[p]["probabilities"])) <= 1.0 + 1e-9 for p in good)
    assert len(set(expected)) > 1  # a model that answers one class everywhere would prove little


def test_cpu_plan_is_one_single_thread_actor_per_cpu_with_decoding_fused_in(local_ray, model, images):
    """On CPUs the decode stage asks for what an actor asks for, so Ray Data runs both in one operator (each
    actor decodes its own batches); more CPUs than Ray has is refused in one line."""
    from edgecnn.runtime.predictor import Predictor
    from edgecnn.scale.dataset import _pipeline, plan_workers

    assert plan_workers(2, None, None, False) == (2, 1) and plan_workers(8, None, 2, False) == (4, 2)
    assert plan_workers(4, None, None, True) == (1, 1)  # GPU: one actor, decoding in separate CPU tasks
    with pytest.raises(InputError, match="need 3 CPUs and Ray has 2"):
        plan_workers(2, 3, 1, False)
    paths = sorted(str(p) for p in images.rglob("*.jpg"))[:32]
    kwargs = {
        "model": str(model),
        "providers": ["cpu"],
        "threads": 1,
        "top_k": 1,
        "overrides": {},
        "model_sha256": "-",
        "mask_dir": None,
        "announce_to": None,
    }
    ds = _pipeline(ray, paths, str(images), Predictor(model, intra_op_threads=1), 8, 2, 1, False, kwargs, None)
    assert sum(len(b["path"]) for b in ds.iter_batches(batch_format="numpy", batch_size=None)) == len(paths)
    assert "MapBatches(decode_batch)->MapBatches(InferenceActor)" in ds.stats()


@ray.remote(num_cpus=0)
class Announcements:
    """Collects the handles inference actors announce when they start (each restart announces again)."""

    def __init__(self):
        self.handles = []

    def add(self, handle):
        self.handles.append(handle)

    def get(self):
        return self.handles


def test_second_run_does_no_inference(first_run, model, images):
    from edgecnn.scale import predict_dataset

    summary, out = first_run
    before = sorted(p.name for p in out.glob("part-*.parquet"))
    spy = Announcements.options(name="spy-resume").remote()
    again = predict_dataset(model, images, out, announce_to="spy-resume", progress=False)
    assert (again.inferred, again.errors, again.skipped, again.parts) == (0, 0, summary.listed, ())
    assert ray.get(spy.get.remote()) == []  # not one inference actor was started
    assert sorted(p.name for p in out.glob("part-*.parquet")) == before
    ray.kill(spy)


def test_killed_actor_still_writes_every_row_once(local_ray, model, images, tmp_path):
    from edgecnn.scale import predict_dataset

    spy = Announcements.options(name="spy-kill").remote()
    out = tmp_path / "killed.parquet"
    done: dict = {}
    run = threading.Thread(
        target=lambda: done.update(
            summary=predict_dataset(
                model, images, out, workers=1, batch_size=8, part_rows=40, announce_to="spy-kill", progress=False
            )
        )
    )
    run.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(out.glob("part-*.parquet")):
        time.sleep(0.02)
    written_before_kill = len(list(out.glob("part-*.parquet"))) * 40
    ray.kill(ray.get(spy.get.remote())[0], no_restart=False)
    run.join(120)
    assert not run.is_alive()
    assert 0 < written_before_kill < N_GOOD  # the kill landed mid-run
    assert len(ray.get(spy.get.remote())) >= 2  # the actor was restarted
    rows = _rows(out)
    assert len(rows) == N_GOOD + len(BROKEN)
    assert done["summary"].inferred == N_GOOD and done["summary"].errors == len(BROKEN)
    ray.kill(spy)


def test_sweep_matches_one_by_one_exports(swept, tmp_path):
    import onnx

    one = _seeded_export(tmp_path / "one", int8=True)
    by_precision = {a.precision: a for a in one.artifacts}
    assert {r["precision"] for r in swept.exports} == {"fp32", "int8"} and swept.passed
    for row in swept.exports:
        mine = json.loads((Path(row["folder"]) / "manifest.json").read_text())
        theirs = by_precision[row["precision"]]
        art = next(a for a in mine["artifacts"] if a["precision"] == row["precision"])
        assert art["parity"]["passed"] == theirs.parity.passed
        a = onnx.load(Path(row["folder"]) / art["file"])
        b = onnx.load(one.out_dir / theirs.file)
        assert [n.op_type for n in a.graph.node] == [n.op_type for n in b.graph.node]
        weights_a = {t.name: onnx.numpy_helper.to_array(t) for t in a.graph.initializer}
        weights_b = {t.name: onnx.numpy_helper.to_array(t) for t in b.graph.initializer}
        assert weights_a.keys() == weights_b.keys()
        unequal = [k for k in weights_a if not np.array_equal(weights_a[k], weights_b[k])]
        assert not unequal, (
            f"{row['precision']}: {len(unequal)} of {len(weights_a)} initializers differ, e.g. "
            + ", ".join(f"{k} by {np.abs(weights_a[k].astype(float) - weights_b[k]).max():.2e}" for k in unequal[:3])
        )
        assert row["node_id"] and row["hostname"]


def test_sweep_benchmarks_hold_a_node_each(swept):
    rows = swept.benchmarks
    assert len(rows) == 2 and all(r["node_cpus"] == 2 and r["threads"] == 2 for r in rows)
    assert all(r["node_id"] and r["hostname"] and r["p50_ms"] > 0 for r in rows)
    first, second = sorted(rows, key=lambda r: r["started"])
    assert first["ended"] <= second["started"]  # never timed side by side
    on_disk = json.loads((swept.out_dir / "sweep.json").read_text())
    assert len(on_disk["exports"]) == 2 and len(on_disk["benchmarks"]) == 2


def test_cli_predict_ray_writes_parquet(local_ray, model, images, tmp_path):
    from typer.testing import CliRunner

    from edgecnn.cli import app

    out = tmp_path / "cli.parquet"
    result = CliRunner().invoke(
        app,
        [
            "predict",
            str(model),
            str(images / "set2"),
            "--ray",
            "--output",
            str(out),
            "--workers",
            "1",
            "--batch-size",
            "16",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["inferred"] == len(list((images / "set2").iterdir())) == len(_rows(out))
    refused = CliRunner().invoke(app, ["predict", str(model), str(images / "set2"), "--output", str(out)])
    assert refused.exit_code == 2 and "add --ray" in refused.output


def test_sources_glob_and_uri(images):
    from edgecnn.core.errors import InputError
    from edgecnn.scale.sources import list_sources

    pngs = list_sources(str(images / "set0" / "*.png"))
    assert pngs and all(p.endswith(".png") and "/set0/" in p for p in pngs)
    assert list_sources(f"file://{images}") == list_sources(images)
    with pytest.raises(InputError, match="no such folder"):
        list_sources(images / "missing")


def test_uri_globs_keep_their_options():
    from edgecnn.scale.sources import open_filesystem

    # pyarrow parses the folder and its ?options (no bucket is contacted when the region is given)
    _, path, prefix = open_filesystem("s3://bucket/photos/*.jpg?region=eu-west-1")
    assert (path, prefix) == ("bucket/photos/*.jpg", "s3://")


def test_without_ray_one_line_exit_2(tmp_path):
    prelude = """
import sys
class _NoRay:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "ray":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _NoRay())
import edgecnn.scale, edgecnn.cli
assert "ray" not in sys.modules
from edgecnn.cli import app
app(prog_name="edgecnn", args=sys.argv[1:])
"""
    (tmp_path / "m.onnx").write_bytes(b"")
    proc = subprocess.run(
        [sys.executable, "-c", prelude, "predict", "m.onnx", ".", "--ray", "--output", "o.parquet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip() == "error: Ray is not installed: pip install 'edgecnn[ray]'"


@pytest.mark.slow
def test_sweep_three_models_matches_one_by_one(local_ray, tmp_path):
    """The issue's check in full: 3 models × fp32/int8 on local Ray = the same artifacts exported one by one."""
    import onnx
    import torch

    from edgecnn.pipeline import ExportOptions, Int8Options, export
    from edgecnn.scale import sweep

    options = ExportOptions(input_size=32, int8=Int8Options(speed=False))
    models = ["mobilenet_v2", "resnet18", "mobilenet_v3_small"]
    result = sweep(models, ["fp32", "int8"], tmp_path / "sweep", options=options)
    assert len(result.exports) == 6
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name in models:
            torch.manual_seed(0)
            one = export(name, tmp_path / "one" / name, options)
            for row in (r for r in result.exports if r["model"] == name):
                theirs = next(a for a in one.artifacts if a.precision == row["precision"])
                mine = json.loads((Path(row["folder"]) / "manifest.json").read_text())
                art = next(a for a in mine["artifacts"] if a["precision"] == row["precision"])
                assert art["parity"]["passed"] == theirs.parity.passed, (name, row["precision"])
                a, b = onnx.load(Path(row["folder"]) / art["file"]), onnx.load(one.out_dir / theirs.file)
                assert [n.op_type for n in a.graph.node] == [n.op_type for n in b.graph.node]
                assert all(
                    np.array_equal(onnx.numpy_helper.to_array(x), onnx.numpy_helper.to_array(y))
                    for x, y in zip(a.graph.initializer, b.graph.initializer)
                )
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_segmentation_masks_beside_the_output(local_ray, images, tmp_path):
    """A U-Net: each good image's mask PNG (in OUTPUT.masks/) equals the plain Predictor's mask."""
    from PIL import Image

    import edgecnn
    from edgecnn.runtime.predictor import Predictor
    from edgecnn.scale import predict_dataset

    model = edgecnn.export("unet", tmp_path / "unet", input_size=32).path("fp32")
    summary = predict_dataset(model, images / "set3", tmp_path / "seg.parquet", progress=False)
    rows = _rows(tmp_path / "seg.parquet")
    plain = Predictor(model)
    assert summary.mask_dir == tmp_path / "seg.masks" and len(rows) == summary.inferred > 100
    for path, row in rows.items():
        assert np.array_equal(np.asarray(Image.open(row["mask_file"])), plain.predict(path)[0])


def test_a_second_sweep_into_the_same_folder_is_refused_naming_the_first(tmp_path):
    """The sweep folder is locked like every output folder: a second writer stops before any task starts."""
    from edgecnn.core.files import output_lock

    out = tmp_path / "sweep"
    with output_lock(out):  # stands for a first sweep, still running, in this process's own record
        holder = subprocess.run(
            [
                sys.executable,
                "-c",
                f"""
import sys
from edgecnn.core.errors import ArtifactError
from edgecnn.scale import sweep
try:
    sweep(["mobilenet_v2"], ["fp32"], {str(out)!r})
except ArtifactError as exc:
    print(exc); sys.exit(2)
""",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert holder.returncode == 2, holder.stderr
    assert f"process {os.getpid()}" in holder.stdout and "being written" in holder.stdout
    assert not (out / "sweep.json").exists()


# --- issue 28: the output's lock before anything is touched, unreadable parts, names checked before Ray -----------


def _tiny_classifier(folder: Path) -> Path:
    """An 8×8 RGB → 3-class ONNX without a card (mean/std/crop given as overrides): no export, no Ray."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 8, 8])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["logits"]),
        ],
        "tiny",
        [x],
        [y],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    path = folder / "tiny.onnx"
    onnx.save(model, str(path))
    return path


def _no_ray_start(monkeypatch):
    import edgecnn.scale._ray as ray_module

    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started before the checks and the lock")

    monkeypatch.setattr(ray_module, "connect", refuse)


def test_a_refused_run_deletes_nothing_of_the_live_run_holding_the_output(tmp_path, monkeypatch):
    """Another live run holds the output's lock: exit 2 naming it, and its part in flight (.part-*.tmp) is kept —
    the refused run touched nothing in the folder, and Ray was not started."""
    from PIL import Image
    from typer.testing import CliRunner

    from edgecnn.cli import app

    model = _tiny_classifier(tmp_path)
    (tmp_path / "photos").mkdir()
    Image.new("RGB", (20, 16), (10, 200, 30)).save(tmp_path / "photos" / "p.png")
    out = tmp_path / "preds.parquet"
    out.mkdir()
    in_flight = out / ".part-0a1b2c3d.tmp"
    in_flight.write_bytes(b"half of a part the other run is writing")
    (tmp_path / ".preds.parquet.lock").write_text(
        json.dumps(  # a live writer: this test's parent process
            {"pid": os.getppid(), "command": "edgecnn predict --ray", "since": "2026-01-01T00:00:00"}
        )
    )
    _no_ray_start(monkeypatch)
    result = CliRunner().invoke(
        app,
        [
            "predict",
            str(model),
            str(tmp_path / "photos"),
            "--ray",
            "--output",
            str(out),
            "--mean",
            "0.5,0.5,0.5",
            "--std",
            "0.5,0.5,0.5",
            "--crop",
            "8",
        ],
    )
    assert result.exit_code == 2 and f"being written by process {os.getppid()}" in result.output, result.output
    assert in_flight.read_bytes() == b"half of a part the other run is writing"
    assert sorted(p.name for p in out.iterdir()) == [in_flight.name]


def test_unreadable_parts_are_set_aside_and_their_images_redone(tmp_path):
    """A 0-byte part is removed and a truncated one moved to a hidden name; their paths are not 'done', the good
    part's are, and the folder reads as one table again."""
    import pyarrow.parquet as pq

    from edgecnn.scale import output as out_parts

    out = out_parts.prepare(tmp_path / "o.parquet")
    table_schema = out_parts.schema("abc", "classification")
    writer = out_parts.PartWriter(out, table_schema, part_rows=2)
    paths = [f"/img/{i}.jpg" for i in range(6)]
    for start in range(0, 6, 2):  # three parts of two rows
        writer.add(_rows_table(table_schema, paths[start : start + 2]))
    writer.flush()
    first, second, third = writer.parts
    first.write_bytes(b"")  # what a machine crash can leave after the rename
    second.write_bytes(second.read_bytes()[:40])  # truncated: no footer
    notes: list = []
    done = out_parts.done_paths(out, "abc", notes)
    assert done == set(pq.read_table(third, columns=["path"]).column("path").to_pylist()) == set(paths[4:])
    assert not first.exists() and not second.exists() and (out / f".{second.name}.unreadable").is_file()
    assert len(notes) == 2 and "0 bytes" in notes[0] and "predicted again" in notes[1]
    assert pq.read_table(out).num_rows == 2  # readers of the folder skip the hidden file


def _rows_table(table_schema, paths):
    import pyarrow as pa

    rows = {name: [None] * len(paths) for name in table_schema.names}
    rows["path"], rows["ok"] = paths, [True] * len(paths)
    return pa.table(rows, schema=table_schema)


def test_resume_over_a_zero_byte_part_gives_one_row_per_image(local_ray, model, images, tmp_path):
    """The CLI case: an output holding a 0-byte and a truncated part resumes (exit 0, said on stderr), predicts
    those parts' images again, and ends with exactly one row per image."""
    from typer.testing import CliRunner

    from edgecnn.cli import app
    from edgecnn.scale import predict_dataset

    out = tmp_path / "resume.parquet"
    source = images / "set2"
    first = predict_dataset(model, source, out, workers=1, batch_size=16, part_rows=40, progress=False)
    assert len(first.parts) >= 3
    import pyarrow.parquet as pq

    lost = sum(pq.read_metadata(p).num_rows for p in first.parts[:2])
    first.parts[0].write_bytes(b"")
    first.parts[1].write_bytes(first.parts[1].read_bytes()[:100])
    result = CliRunner().invoke(
        app, ["predict", str(model), str(source), "--ray", "--output", str(out), "--workers", "1", "--json"]
    )
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    record = json.loads(result.stdout)
    assert record["inferred"] == lost and record["skipped_already_done"] == first.listed - lost
    assert len(record["notes"]) == 2 and "note:" in result.stderr
    rows = _rows(out)  # asserts no duplicates
    assert sorted(rows) == sorted(str(p) for p in source.iterdir()) and all(r["ok"] for r in rows.values())


def test_sweep_checks_names_and_options_before_ray(tmp_path, monkeypatch):
    from edgecnn.core.errors import UnknownModelError
    from edgecnn.scale import sweep

    _no_ray_start(monkeypatch)
    with pytest.raises(UnknownModelError, match="mobilenet_v9"):
        sweep(["mobilenet_v2", "mobilenet_v9"], ["fp32"], tmp_path / "sw")
    with pytest.raises(InputError, match="precisions"):
        sweep(["mobilenet_v2"], ["fp64"], tmp_path / "sw")
    with pytest.raises(InputError, match="export CPUs"):
        sweep(["mobilenet_v2"], ["fp32"], tmp_path / "sw", export_cpus=0)
    assert not list(tmp_path.iterdir())  # no folder, no lock


def test_connect_passes_the_size_limits_on_to_ray_workers(monkeypatch):
    """Issue 28: EDGECNN_MAX_IMAGE_PIXELS / EDGECNN_MAX_INPUT_ELEMENTS set for a run reach the workers that decode
    its images (the job's runtime_env), on a cluster as on a local Ray; unset, Ray is started as before."""
    import edgecnn.scale._ray as ray_module

    inits = []

    class FakeRay:
        def is_initialized(self):
            return False

        def init(self, address=None, **kwargs):
            inits.append((address, kwargs))

    monkeypatch.setattr(ray_module, "require_ray", FakeRay)
    monkeypatch.setenv("RAY_DISABLE_USAGE_STATS", "1")
    monkeypatch.delenv("EDGECNN_MAX_IMAGE_PIXELS", raising=False)
    monkeypatch.delenv("EDGECNN_MAX_INPUT_ELEMENTS", raising=False)
    ray_module.connect(None)
    assert "runtime_env" not in inits[-1][1]
    monkeypatch.setenv("EDGECNN_MAX_IMAGE_PIXELS", "250000000")
    ray_module.connect("ray://head:10001")
    assert inits[-1] == (
        "ray://head:10001",
        {
            "include_dashboard": False,
            "log_to_driver": False,
            "runtime_env": {"env_vars": {"EDGECNN_MAX_IMAGE_PIXELS": "250000000"}},
        },
    )
