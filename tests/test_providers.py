"""Execution providers by short name: resolution, refusal of missing ones, sessions, node assignment."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from typer.testing import CliRunner

from edgecnn.cli import app
from edgecnn.core.errors import ArtifactError, InputError, ProviderUnavailableError
from edgecnn.runtime import providers as P
from edgecnn.runtime.onnxrt import create_session, node_assignment


@pytest.fixture(scope="module")
def conv_model(tmp_path_factory):
    """Conv → Relu → GlobalAveragePool, batch axis dynamic: 3 nodes, no torch needed."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], np.random.default_rng(0).standard_normal(108).tolist())
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("GlobalAveragePool", ["r"], ["logits"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4, 1, 1])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("prov") / "tiny.onnx"
    onnx.save(model, str(path))
    return path


def test_table_names_are_unique_and_cpu_is_always_there():
    assert len({p.ort_name for p in P.PROVIDERS.values()}) == len(P.PROVIDERS)
    assert P.available()[0] == "cpu"
    assert P.is_available("cpu") and P.is_available("CPUExecutionProvider")
    for short in (
        "cpu",
        "cuda",
        "tensorrt",
        "openvino",
        "dnnl",
        "xnnpack",
        "nnapi",
        "coreml",
        "qnn",
        "rocm",
        "migraphx",
        "directml",
        "azure",
    ):
        assert P.get_provider(short).name == short


def test_resolve_cpu_and_ort_names():
    assert P.resolve("cpu") == [("CPUExecutionProvider", {})]
    assert P.resolve(["CPUExecutionProvider"]) == [("CPUExecutionProvider", {})]


# openvino is installed by the test set-up (its missing case: tests/test_openvino.py, with the plugin blocked)
@pytest.mark.parametrize("name,hint", [("cuda", "onnxruntime-gpu"), ("tensorrt", "TensorRT"), ("coreml", "macOS")])
def test_missing_provider_is_refused_with_how_to_get_it(name, hint):
    if P.is_available(name):
        pytest.skip(f"{name} is in this build")
    with pytest.raises(ProviderUnavailableError) as err:
        P.resolve([name])
    msg = str(err.value)
    assert f"'{name}' is not in this onnxruntime build" in msg and "CPUExecutionProvider" in msg and hint in msg
    assert "\n" not in msg


def test_unknown_provider_lists_known_ones():
    with pytest.raises(ProviderUnavailableError, match="unknown execution provider 'tpu'.*cuda"):
        P.resolve("tpu")
    with pytest.raises(InputError):
        P.resolve(" , ")


def test_tensorrt_options_and_fallback_order(monkeypatch, tmp_path):
    """With a GPU build, TensorRT gets its engine cache and precision flags, then CUDA, then CPU."""
    monkeypatch.setattr(
        P.ort,
        "get_available_providers",
        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    resolved = P.resolve("tensorrt", precision="fp16", cache_dir=tmp_path)
    assert [n for n, _ in resolved] == ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    trt = resolved[0][1]
    assert trt["trt_engine_cache_enable"] is True and trt["trt_engine_cache_path"] == str(tmp_path)
    assert trt["trt_fp16_enable"] is True and "trt_int8_enable" not in trt
    assert P.resolve("tensorrt", precision="int8", cache_dir=tmp_path)[0][1]["trt_int8_enable"] is True
    assert "trt_fp16_enable" not in P.resolve("tensorrt", precision="fp32")[0][1]
    assert [n for n, _ in P.resolve("cuda,cpu")] == ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_make_session_sets_threads_and_records_providers(conv_model):
    sess = create_session(conv_model, "cpu", threads=1, graph_opt="basic")
    assert sess.get_providers() == ["CPUExecutionProvider"]
    so = sess.get_session_options()
    assert so.intra_op_num_threads == 1 and so.inter_op_num_threads == 1
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    out = sess.run(None, {"input": np.ones((2, 3, 8, 8), np.float32)})[0]
    assert out.shape == (2, 4, 1, 1)


def test_make_session_refuses_cuda_here(conv_model):
    if P.is_available("cuda"):
        pytest.skip("CUDA is in this build")
    with pytest.raises(ProviderUnavailableError, match="onnxruntime-gpu"):
        create_session(conv_model, ["cuda"])


def test_provider_dropped_by_onnxruntime_is_an_error(conv_model, monkeypatch):
    """A provider that passes our check but that onnxruntime does not keep must not turn into a CPU run."""
    if P.is_available("cuda"):
        pytest.skip("CUDA is really in this build")
    monkeypatch.setattr(P.ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    with pytest.raises(ProviderUnavailableError) as err:
        create_session(conv_model, "cuda")
    msg = str(err.value)
    assert "dropped cuda" in msg and "CPUExecutionProvider" in msg and "not in available provider names" in msg


def test_make_session_bad_inputs(conv_model, tmp_path):
    with pytest.raises(ArtifactError, match="not found"):
        create_session(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ArtifactError, match="cannot load"):
        create_session(bad)
    with pytest.raises(InputError, match="graph optimization"):
        create_session(conv_model, graph_opt="max")
    with pytest.raises(InputError, match="threads"):
        create_session(conv_model, threads=0)


def test_node_assignment_counts_nodes_per_provider(conv_model):
    assert node_assignment(conv_model, "cpu", graph_opt="disable") == {"CPUExecutionProvider": 3}
    # Recorded at partitioning, before the CPU provider's own fusions (Conv+Relu): still the file's 3 nodes.
    assert node_assignment(create_session(conv_model, "cpu")) == {"CPUExecutionProvider": 3}


def test_node_assignment_unknown_without_recording(conv_model):
    plain = ort.InferenceSession(str(conv_model), providers=["CPUExecutionProvider"])
    assert node_assignment(plain) is None


def test_cli_providers_table_and_json():
    runner = CliRunner()
    res = runner.invoke(app, ["providers"])
    assert res.exit_code == 0, res.output
    rows = {line.split()[0]: line.split() for line in res.output.splitlines()[3:] if line.strip()}
    assert rows["cpu"][1:4] == ["CPUExecutionProvider", "cpu", "yes"]
    if not P.is_available("cuda"):
        assert rows["cuda"][3] == "no" and "onnxruntime-gpu" in " ".join(rows["cuda"])
    res = runner.invoke(app, ["providers", "--json"])
    data = {d["name"]: d for d in json.loads(res.output)}
    assert set(data) == set(P.PROVIDERS) and data["cpu"]["available"] is True


def test_open_runner_describes_runs_and_says_what_ran(conv_model):
    from edgecnn.runtime.runner import IOSpec, open_runner
    from edgecnn.runtime.session import run_batched

    runner = open_runner(conv_model, providers="cpu", threads=1, graph_opt="basic")
    assert runner.runtime == "onnxruntime" and runner.session.get_providers() == [P.CPU]
    assert runner.inputs == (IOSpec("input", ("batch", 3, 8, 8), np.dtype(np.float32), "tensor(float)"),)
    assert [o.name for o in runner.outputs] == ["logits"]
    info = runner.info()
    assert info["runtime"] == "onnxruntime" and info["providers"] == [P.CPU] and info["threads"] == 1
    x = np.ones((3, 3, 8, 8), np.float32)
    assert runner.run({"input": x})[0].shape == (3, 4, 1, 1)
    assert run_batched(runner, x, chunk=2)[0].shape == (3, 4, 1, 1)
    assert runner.node_assignment() == {P.CPU: 3}
    with open(conv_model, "rb") as f:  # a model in memory opens too (the export's own checks)
        assert open_runner(f.read()).run({"input": x})[0].shape == (3, 4, 1, 1)


def test_open_runner_refuses_what_it_cannot_open(conv_model, tmp_path):
    from edgecnn.runtime.runner import RunnerOptions, open_runner

    with pytest.raises(InputError, match="unknown option 'thread'"):
        open_runner(conv_model, thread=2)
    with pytest.raises(InputError, match="no runtime 'tvm'"):
        open_runner(conv_model, runtime="tvm")
    with pytest.raises(InputError, match="threads"):
        RunnerOptions(threads=0)
    with pytest.raises(ArtifactError, match="not found"):
        open_runner(tmp_path / "nope.onnx")
    if not P.is_available("cuda"):
        with pytest.raises(ProviderUnavailableError, match="onnxruntime-gpu"):
            open_runner(conv_model, providers="cuda")


def test_register_runtime_is_the_slot_for_other_runtimes(conv_model):
    from edgecnn.runtime import runner as R

    class Echo(R.Runner):
        runtime = "echo"

        def __init__(self, source, options):
            self.inputs = (R.IOSpec("input", (None, 3, 8, 8), np.dtype(np.float32)),)
            self.threads = options.threads

        def run(self, feeds, outputs=None):
            return [next(iter(feeds.values())) * 2]

        def info(self):
            return {"runtime": "echo", "providers": [], "threads": self.threads}

    R.register_runtime("echo", Echo)
    try:
        runner = R.open_runner(conv_model, runtime="echo", threads=3)
        assert "echo" in R.runtimes() and runner.info()["threads"] == 3
        assert runner.run({"input": np.ones(2)})[0].tolist() == [2.0, 2.0]
    finally:
        R._RUNTIMES.pop("echo")
