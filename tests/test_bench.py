"""The benchmark: documented JSON shape, clean refusal of missing providers, fair scheduling. No timed asserts."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from typer.testing import CliRunner

from edgecnn.cli import app
from edgecnn.convert import torch_runner
from edgecnn.core.card import ModelCard
from edgecnn.core.errors import InputError, ProviderUnavailableError
from edgecnn.runtime import bench as B
from edgecnn.runtime.onnxrt import model_precision
from edgecnn.runtime.providers import is_available
from edgecnn.runtime.runner import open_runner

torch_runner.register()  # bench --torch's eager runner lives on the torch side (the CLI registers it the same way)

DOC = Path(__file__).resolve().parents[1] / "docs" / "bench_schema.md"


def _add_card(model: onnx.ModelProto, card: ModelCard) -> None:
    for key, value in card.to_metadata().items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A MobileNetV2 (width 0.25, 5 classes, 64x64) exported the way edgecnn's artifacts are, with a card."""
    from edgecnn import create_model
    from edgecnn.convert.onnx_export import export_onnx

    path = tmp_path_factory.mktemp("bench") / "tiny.onnx"
    model = create_model("mobilenet_v2", num_classes=5, width_mult=0.25).eval()
    # edgecnn's exporter (static trace, batch axis made dynamic and proven): a third of the symbolic trace's time
    assert export_onnx(model, path, input_shape=(3, 64, 64)).batch_axis == "static trace, made dynamic"
    proto = onnx.load(str(path))
    _add_card(
        proto,
        ModelCard(
            model="mobilenet_v2",
            task="classification",
            output_name="logits",
            input_shape=["batch", 3, 64, 64],
            crop=[64, 64],
            num_classes=5,
            extra={"arch_options": {"width_mult": 0.25}},
        ),
    )
    onnx.save(proto, str(path))
    return path


def _dynamic_uint8(tmp_path: Path, batch="batch", name: str = "dyn.onnx") -> Path:
    """NHWC uint8 input with dynamic height/width and no card: Cast → ReduceMean over H, W."""
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["input"], ["f"], to=TensorProto.FLOAT),
            helper.make_node("ReduceMean", ["f"], ["logits"], axes=[1, 2], keepdims=0),
        ],
        "dyn",
        [helper.make_tensor_value_info("input", TensorProto.UINT8, [batch, "height", "width", 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def _doc_table_paths() -> list[str]:
    text = DOC.read_text()
    section = text[text.index("## Keys of one result") :]
    return re.findall(r"^\| `([^`]+)` \|", section, flags=re.M)


def test_doc_documents_exactly_the_schema():
    assert _doc_table_paths() == B.schema_paths()
    assert B.schema_markdown() in DOC.read_text()
    assert len(set(B.schema_paths())) == len(B.schema_paths())


def test_cli_json_has_exactly_the_documented_keys_and_md_table(tiny, tmp_path):
    out_json, out_md = tmp_path / "r.json", tmp_path / "r.md"
    res = CliRunner().invoke(
        app,
        [
            "bench",
            str(tiny),
            "--runs",
            "5",
            "--warmup",
            "1",
            "--batch",
            "1,2",
            "--threads",
            "1",
            "--json-out",
            str(out_json),
            "--md",
            str(out_md),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "mobilenet_v2" in res.output and "p50 ms" in res.output

    report = json.loads(out_json.read_text())
    assert set(report) == {"schema_version", "results"} and report["schema_version"] == B.SCHEMA_VERSION
    (result,) = report["results"]
    assert B.flatten_keys(result) == B.schema_paths()  # same keys, same order
    assert result["providers_requested"] == ["cpu"] and result["providers"] == ["CPUExecutionProvider"]
    assert result["node_assignment"]["CPUExecutionProvider"] > 50
    assert result["model"] == "mobilenet_v2" and result["precision"] == "fp32"
    assert result["threads"]["intra_op_num_threads"] == 1 and result["threads"]["torch_num_threads"] is None
    assert [b["batch_size"] for b in result["batches"]] == [1, 2]
    assert result["batches"][1]["input_shapes"] == {"input": [2, 3, 64, 64]}
    for b in result["batches"]:
        lat = b["latency"]
        assert lat["runs"] == 5 and lat["min_ms"] <= lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"] <= lat["max_ms"]
        assert b["throughput_ips"] == pytest.approx(b["batch_size"] * 1000 / lat["mean_ms"])
        assert b["torch_latency"] is None and b["torch_speedup"] is None
    mem = result["memory"]
    if mem["peak_rss_scope"] == "session":
        assert mem["peak_rss_mb"] >= mem["rss_before_mb"] > 0
    assert mem["gpu_mem_mb"] is None and result["machine"]["onnxruntime"]

    md = out_md.read_text().splitlines()
    header = next(i for i, line in enumerate(md) if line.startswith("| model |"))
    assert "| p50 ms |" in md[header] and md[header + 1].startswith("|---")
    rows = [line for line in md[header + 2 :] if line.startswith("| mobilenet_v2 | fp32 | cpu |")]
    assert len(rows) == 2


@pytest.mark.parametrize("ep", ["cuda", "tensorrt", "cpu,cuda", "tensorrt+cuda"])
def test_cli_missing_gpu_provider_is_one_line_error(tiny, tmp_path, ep):
    if is_available("cuda"):
        pytest.skip("a GPU build: the real path runs instead")
    out = tmp_path / "never.json"
    res = CliRunner().invoke(app, ["bench", str(tiny), "--ep", ep, "--runs", "2", "--json-out", str(out)])
    assert res.exit_code != 0
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: execution provider") and "onnxruntime-gpu" in lines[0]
    assert "Traceback" not in res.output and not out.exists()  # refused before any timing or writing


@pytest.mark.parametrize("providers", ["cuda", ("tensorrt", "cuda")])
def test_api_missing_gpu_provider_raises(tiny, providers):
    if is_available("cuda"):
        pytest.skip("a GPU build")
    with pytest.raises(ProviderUnavailableError, match="not in this onnxruntime build"):
        B.benchmark(tiny, providers=providers, runs=2, warmup=0)


def test_torch_baseline_side_by_side(tiny):
    before = torch.get_num_threads()
    r = B.benchmark(tiny, runs=3, warmup=1, torch_baseline=True, threads=1)
    b = r.batches[0]
    assert b.torch_latency is not None and b.torch_latency.runs == 3
    assert b.torch_speedup == pytest.approx(b.torch_latency.p50_ms / b.latency.p50_ms)
    assert r.threads.torch_num_threads == 1 and r.machine.torch == torch.__version__
    assert torch.get_num_threads() == before  # the benchmark leaves torch's setting as it found it
    assert "2 configurations interleaved" in r.method


def test_model_precision_reads_the_card(tiny, tmp_path):
    assert model_precision(tiny) == "fp32"
    assert model_precision(_dynamic_uint8(tmp_path)) is None


def test_torch_baseline_needs_a_card(tmp_path):
    with pytest.raises(InputError, match="no edgecnn card"):
        B.benchmark(_dynamic_uint8(tmp_path), runs=2, warmup=0, torch_baseline=True, input_size=(8, 8))


def test_several_files_and_io_binding(tiny):
    results = B.benchmark_many([tiny, tiny], providers=["cpu", ("cpu",)], runs=4, warmup=1, io_binding=True)
    assert len(results) == 4 and all(r.io_binding for r in results)
    assert all(r.batches[0].latency.runs == 4 for r in results)
    assert "4 configurations interleaved in 4 rounds" in results[0].method


def test_seconds_mode_runs_at_least_five(tiny):
    r = B.benchmark(tiny, seconds=0.01, warmup=1)
    assert r.batches[0].latency.runs >= 5


def test_make_inputs_dynamic_hw_uint8_and_fixed_batch(tmp_path):
    path = _dynamic_uint8(tmp_path)
    sess = open_runner(path)
    x = B.make_inputs(sess, 2, input_size=(16, 20))["input"]
    assert x.shape == (2, 16, 20, 3) and x.dtype == np.uint8 and x.max() > x.min()
    with pytest.raises(InputError, match="--input-size"):
        B.make_inputs(sess, 1)
    card = ModelCard(
        model="unet", task="segmentation", input_shape=["batch", "height", "width", 3], layout="NHWC", crop=[24, 32]
    )
    assert B.make_inputs(sess, 1, card=card)["input"].shape == (1, 24, 32, 3)

    fixed = open_runner(_dynamic_uint8(tmp_path, batch=1, name="fixed.onnx"))
    with pytest.raises(InputError, match="fixed batch of 1"):
        B.make_inputs(fixed, 4, input_size=(8, 8))
    r = B.benchmark(path, runs=2, warmup=0, input_size=(8, 8))
    assert r.model is None and r.batches[0].input_shapes == {"input": [1, 8, 8, 3]}


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(runs=5, seconds=1.0), "either runs or seconds"),
        (dict(runs=0), "runs must be"),
        (dict(batch_sizes=(0,)), "batch sizes"),
        (dict(warmup=-1), "warmup"),
        (dict(io_binding="maybe"), "io_binding"),
    ],
)
def test_bad_options(tiny, kwargs, match):
    with pytest.raises(InputError, match=match):
        B.benchmark(tiny, **{"warmup": 0, "runs": 1, **kwargs})


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(seconds=float("nan")), "seconds must be a finite number"),  # timed 100,000 runs before
        (dict(seconds=float("inf")), "seconds must be a finite number"),
        (dict(seconds=-1.0), "seconds must be a finite number"),
        (dict(runs=float("nan")), "runs must be a whole number"),
        (dict(runs=2.5), "runs must be a whole number"),
        (dict(runs=True), "runs must be a whole number"),
        (dict(warmup=float("inf")), "warmup must be a whole number"),
        (dict(threads=0), "threads must be a whole number"),
        (dict(rounds=0), "rounds must be a whole number"),
        (dict(settle_s=float("nan")), "settle_s must be a finite number"),
    ],
)
def test_counts_are_finite_and_positive(kwargs, match):
    """Checked when the options are made, before any model is read (no file is given here)."""
    with pytest.raises(InputError, match=match):
        B.BenchOptions(**kwargs)


def test_cli_counts_are_one_line_naming_the_flag():
    for argv, flag in (
        (["--seconds", "nan"], "--seconds"),
        (["--runs", "0"], "--runs"),
        (["--warmup", "-1"], "--warmup"),
        (["--runs", "5", "--seconds", "1"], "--runs or --seconds"),
    ):
        res = CliRunner().invoke(app, ["bench", "nowhere.onnx", *argv])  # refused before the file is looked for
        assert res.exit_code == 2 and res.output.count("\n") == 1 and flag in res.output, res.output


def test_bench_options_are_checked_normalised_and_combine_with_keywords(tiny):
    opts = B.BenchOptions(providers="cpu", batch_sizes=[2, 1, 2], input_size="16x20", runs=2, warmup=0)
    assert opts.providers == (("cpu",),) and opts.batch_sizes == (2, 1) and opts.input_size == (16, 20)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.runs = 3
    for bad, match in (
        (dict(runs=1, seconds=1.0), "either runs or seconds"),
        (dict(providers=[]), "provider"),
        (dict(io_binding="maybe"), "io_binding"),
        (dict(input_size="0x3"), "input size"),
    ):
        with pytest.raises(InputError, match=match):
            B.BenchOptions(**bad)
    [r] = B.benchmark_many([tiny], B.BenchOptions(runs=2, warmup=0), batch_sizes=[2])  # keywords on top
    assert r.batches[0].batch_size == 2 and r.batches[0].latency.runs == 2


def test_schedule_interleaves_rounds_and_counts_runs(monkeypatch):
    log: list[str] = []
    monkeypatch.setattr(B.time, "sleep", lambda s: log.append(f"pause {s}"))
    contestants = [B.Contestant(lambda n=n: log.append(n), runs=r) for n, r in (("a", 6), ("b", 6), ("c", 3))]
    B.schedule(contestants, rounds=3, settle_s=0.25)
    assert [len(c.samples) for c in contestants] == [6, 6, 3]
    # 3 rounds, order rotated each round; before each chunk a pause, then one untimed run
    chunks = " ".join(log).split("pause 0.25")[1:]
    firsts = [c.split()[0] for c in chunks]
    assert firsts == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert len(log) == 9 + 15 + 9


def test_a_single_configuration_runs_back_to_back(monkeypatch):
    monkeypatch.setattr(B.time, "sleep", lambda s: pytest.fail("no pause without a switch"))
    only = B.Contestant(lambda: None, runs=4)
    B.schedule([only], rounds=2)
    assert len(only.samples) == 4


def test_latency_stats_from_samples():
    s = B.LatencyStats.from_samples([1.0, 2.0, 3.0, 4.0, 100.0])
    assert (s.runs, s.min_ms, s.p50_ms, s.max_ms, s.mean_ms) == (5, 1.0, 3.0, 100.0, 22.0)
    assert s.p90_ms == pytest.approx(61.6) and [f.name for f in dataclasses.fields(s)][0] == "runs"


def test_layer_times_pair_every_layer_and_bound_any_mix(tiny, tmp_path):
    """bench.layer_times: fp32 and int8 per layer, and the fastest a per-layer precision mix could be."""
    from onnxruntime.quantization import QuantType
    from qdq import quick_qdq

    from edgecnn.runtime.bench.layer_times import _COMPUTE, precision_bound

    fp32, int8 = tiny, tmp_path / "tiny.int8.onnx"
    quick_qdq(fp32, int8, per_channel=True, activation_type=QuantType.QUInt8)
    b = precision_bound(fp32, int8, runs=10, chunk=5, warmup=2, settle_s=0.0)
    convs = sum(1 for n in onnx.load(str(fp32)).graph.node if n.op_type in ("Conv", "Gemm"))
    assert b.unpaired == 0 and len(b.layers) == convs  # every Conv/Gemm found its int8 partner
    for f, q in b.layers:
        assert f.op in _COMPUTE and q.op in ("QLinearConv", "QGemm", "QLinearMatMul")
        assert f.ms > 0 and q.ms > 0
    # the bound: each layer at its faster precision, plus the cheaper file's other operators
    assert b.bound_ms == pytest.approx(
        sum(min(f.ms, q.ms) for f, q in b.layers) + min(b.other_fp32_ms, b.other_int8_ms)
    )
    assert b.bound_ms <= min(b.fp32_ms, b.int8_ms) + 1e-9
    assert b.fp32_ms == pytest.approx(sum(f.ms for f, _ in b.layers) + b.other_fp32_ms)
    assert [b.layers[i][1].ms > b.layers[i][0].ms for i in b.slower_in_int8] == [True] * len(b.slower_in_int8)
    record = json.loads(json.dumps(b.to_dict()))
    assert record["paired_layers"] == convs and record["bound_ratio"] == round(b.bound_ratio, 3)
    assert "interleaved" in record["method"]
