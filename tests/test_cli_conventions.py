"""One meaning per spelling across the CLI: --ep, --each-ep, --json (a flag), --json-out/--force, one-line
errors for bad option values and for a missing export stack, predict's preprocessing options."""

from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from edgecnn.cli import app, handle_errors

runner = CliRunner()
COMMANDS = get_command(app).commands


def _param(command: str, flag: str):
    return next((p for p in COMMANDS[command].params if flag in p.opts), None)


@pytest.fixture(scope="module")
def bare_onnx(tmp_path_factory):
    """A 3-class classifier without edgecnn metadata and with dynamic height/width (global average pool)."""
    import onnx
    from onnx import TensorProto, helper

    root = tmp_path_factory.mktemp("bare")
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["logits"]),
        ],
        "bare",
        [x],
        [y],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    path = root / "bare.onnx"
    onnx.save(model, str(path))
    from PIL import Image

    image = root / "red.png"
    Image.new("RGB", (40, 30), (250, 10, 10)).save(image)
    labels = root / "labels.txt"
    labels.write_text("red\ngreen\nblue\n")
    return {"model": path, "image": image, "labels": labels, "root": root}


def test_json_is_a_flag_in_every_command():
    for name in COMMANDS:
        param = _param(name, "--json")
        assert param is not None, f"{name} has no --json"
        assert param.is_flag, f"{name}: --json takes a value"


def test_ep_means_one_session_everywhere_and_each_ep_exists_where_providers_are_compared():
    helps = {name: _param(name, "--ep").help for name in COMMANDS if _param(name, "--ep") is not None}
    assert set(helps) >= {"predict", "bench", "selftest", "validate"}
    assert all("one session" in h and "priority order" in h for h in helps.values()), helps
    for name in ("bench", "validate"):
        assert "on its own" in _param(name, "--each-ep").help


def test_bench_json_flag_json_out_and_force(bare_onnx, tmp_path):
    model = str(bare_onnx["model"])
    common = ["bench", model, "--runs", "2", "--warmup", "1", "--input-size", "16"]
    res = runner.invoke(app, common + ["--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)  # stdout is the JSON alone; the table went to stderr
    assert report["results"][0]["providers_requested"] == ["cpu"]

    out = tmp_path / "r.json"
    assert runner.invoke(app, common + ["--json-out", str(out)]).exit_code == 0
    assert json.loads(out.read_text())["results"]
    out.write_text("keep me")
    res = runner.invoke(app, common + ["--json-out", str(out)])
    assert res.exit_code == 2 and res.output.count("\n") == 1 and res.output.startswith("error: ")
    assert "--force" in res.output and out.read_text() == "keep me"
    assert runner.invoke(app, common + ["--json-out", str(out), "--force"]).exit_code == 0
    assert json.loads(out.read_text())["results"]


def test_bench_each_ep_runs_each_entry_and_refuses_both_spellings(bare_onnx):
    common = ["bench", str(bare_onnx["model"]), "--runs", "2", "--warmup", "1", "--input-size", "16", "--json"]
    res = runner.invoke(app, common + ["--each-ep", "cpu,cpu"])
    assert res.exit_code == 0, res.output
    assert [r["providers_requested"] for r in json.loads(res.stdout)["results"]] == [["cpu"], ["cpu"]]
    res = runner.invoke(app, common + ["--ep", "cpu", "--each-ep", "cpu"])
    assert res.exit_code == 2 and res.output.startswith("error: ") and "not both" in res.output


@pytest.mark.parametrize(
    "args",
    [["bench", "x.onnx", "--runs", "many"], ["predict"], ["list", "--nope"], ["info", "resnet18", "--json", "extra"]],
)
def test_bad_option_values_are_one_line(args):
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    assert res.output.count("\n") == 1 and res.output.startswith("error: "), res.output
    assert "╭" not in res.output and "Usage:" not in res.output


def test_predict_preprocessing_options_for_a_file_without_metadata(bare_onnx):
    d = bare_onnx
    res = runner.invoke(app, ["predict", str(d["model"]), str(d["image"]), "--json"])
    assert res.exit_code == 2 and res.output.startswith("error: ") and "no edgecnn metadata" in res.output
    res = runner.invoke(
        app,
        [
            "predict",
            str(d["model"]),
            str(d["image"]),
            "--json",
            "--mean",
            "0,0,0",
            "--std",
            "0.1,0.1,0.1",
            "--crop",
            "8x8",
            "--labels",
            str(d["labels"]),
            "--top-k",
            "3",
        ],
    )
    assert res.exit_code == 0, res.output
    (result,) = json.loads(res.stdout)["results"]
    ranked = [p["label"] for p in result["predictions"]]
    assert ranked == ["red", "green", "blue"]  # a red image: the red channel's mean is the largest logit
    probs = np.array([p["probability"] for p in result["predictions"]])
    assert probs.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--mean", "a,b,c"], "--mean"),
        (["--std", "0,1,1"], "--std"),
        (["--crop", "0"], "--crop"),
        (["--labels", "missing.txt"], "--labels"),
    ],
)
def test_predict_bad_preprocessing_options_are_one_line(bare_onnx, args, needle):
    res = runner.invoke(app, ["predict", str(bare_onnx["model"]), str(bare_onnx["image"]), *args])
    assert res.exit_code == 2 and res.output.startswith("error: ") and needle in res.output, res.output
    assert res.output.count("\n") == 1


@pytest.mark.parametrize("module", ["torch", "onnxscript", "onnxsim", "sklearn", "torch.nn"])
def test_a_missing_export_stack_module_is_one_line_naming_the_extra(module, capsys):
    @handle_errors
    def needs_it():
        raise ModuleNotFoundError(f"No module named '{module}'", name=module)

    with pytest.raises(typer.Exit) as exc:
        needs_it()
    assert exc.value.exit_code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs the export stack" in err and 'pip install "edgecnn[export]"' in err


def test_another_missing_module_is_not_hidden():
    @handle_errors
    def broken():
        raise ModuleNotFoundError("No module named 'numpy_typo'", name="numpy_typo")

    with pytest.raises(ModuleNotFoundError):
        broken()


# --- the conventions a CLI user expects: --version, NO_COLOR, one --json shape, --int8's spellings -------------


def test_version_prints_the_package_version():
    from edgecnn.core.version import __version__

    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.stdout == f"edgecnn {__version__}\n"


def test_shell_completion_options_exist():
    names = {opt for p in get_command(app).params for opt in p.opts}
    assert {"--install-completion", "--show-completion", "--version"} <= names


def test_no_color_turns_ansi_off(monkeypatch):
    import edgecnn.cli.run

    monkeypatch.setattr(edgecnn.cli.run, "text_table", lambda headers, rows: typer.style("table", fg="red"))
    coloured = runner.invoke(app, ["providers"], color=True)
    assert coloured.exit_code == 0 and "\x1b[" in coloured.stdout  # the check below can see colour
    plain = runner.invoke(app, ["providers"], color=True, env={"NO_COLOR": "1"})
    assert plain.exit_code == 0 and "table" in plain.stdout and "\x1b[" not in plain.output


class _Exported:
    """What the fake export returns: enough of an ``ExportResult`` for the CLI."""

    passed = True

    def __init__(self, name, options):
        self.manifest = {"model": name, "int8": None if options.int8 is None else options.int8.policy}


@pytest.fixture
def fake_export(monkeypatch):
    """``edgecnn.pipeline.export`` replaced: records the options object the command built, exports nothing."""
    import edgecnn.pipeline

    calls = []

    def export(name, out_dir, options, *, command=None, progress=None):
        calls.append((name, options))
        return _Exported(name, options)

    monkeypatch.setattr(edgecnn.pipeline, "export", export)
    return calls


def test_export_json_is_one_shape_for_one_model_and_for_all(fake_export, monkeypatch):
    import edgecnn.models.registry

    monkeypatch.setattr(edgecnn.models.registry, "list_models", lambda: ["mobilenet_v1", "alexnet"])
    one = runner.invoke(app, ["export", "mobilenet_v1", "--json"])
    every = runner.invoke(app, ["export", "all", "--json"])
    assert one.exit_code == every.exit_code == 0, one.output + every.output
    one, every = json.loads(one.stdout), json.loads(every.stdout)
    assert set(one) == set(every) == {"edgecnn_export", "exports", "failed"}
    assert one["edgecnn_export"] == every["edgecnn_export"] == 2
    assert [m["model"] for m in one["exports"]] == ["mobilenet_v1"]
    assert [m["model"] for m in every["exports"]] == ["mobilenet_v1", "alexnet"]


@pytest.mark.parametrize(
    "args, policy",
    [
        ([], None),
        (["--int8"], "static"),
        (["--int8", "--fp16"], "static"),
        (["--int8", "auto"], "auto"),
        (["--int8=auto"], "auto"),
        (["--int8", "static"], "static"),
        (["--int8", "auto", "--calib-method", "entropy", "--int8-weight-bits", "8"], "auto"),
    ],
)
def test_int8_spellings_build_one_options_object(fake_export, args, policy):
    from edgecnn.pipeline import ExportOptions

    res = runner.invoke(app, ["export", "mobilenet_v1", *args, "--json"])
    assert res.exit_code == 0, res.output
    ((name, options),) = fake_export
    assert name == "mobilenet_v1" and isinstance(options, ExportOptions)
    assert (options.int8 and options.int8.policy) == policy
    assert options.fp16 == ("--fp16" in args)
    if "entropy" in args:
        assert (options.int8.calib_method, options.int8.weight_bits) == ("entropy", 8)


@pytest.mark.parametrize("args", [["--int8", "bogus"], ["--int8=bogus"], ["--int8="]])
def test_a_bad_int8_value_is_one_line(fake_export, args):
    res = runner.invoke(app, ["export", "mobilenet_v1", *args])
    assert res.exit_code == 2 and res.output.count("\n") == 1 and res.output.startswith("error: "), res.output
    assert "--int8" in res.output and not fake_export


def test_bench_in_a_browser_routes_to_the_web_runner_and_refuses_what_does_not_apply(monkeypatch):
    import types

    import edgecnn.web.runners

    def bench_browser(model, *, ep, threads, warmup, runs, seconds, input_size, browser):
        fields = dict(model_path=model, ep=ep, input_shape=(1, 3, 8, 8), create_ms=1.0, runs=runs, warmup=warmup)
        timing = dict(p50_ms=1.0, p90_ms=1.0, p99_ms=1.0, onnxruntime_web="1", browser="x/chromium", threads=1)
        return types.SimpleNamespace(
            **fields, **timing, simd=True, cross_origin_isolated=True, to_dict=lambda: {"model": model}
        )

    monkeypatch.setattr(edgecnn.web.runners, "bench_browser", bench_browser)
    res = runner.invoke(app, ["bench", "a.onnx", "--ep", "wasm", "--runs", "3", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"edgecnn_browser_bench": 1, "results": [{"model": "a.onnx"}]}
    res = runner.invoke(app, ["bench", "a.onnx", "--ep", "webgpu", "--torch", "--graph-opt", "basic"])
    assert res.exit_code == 2 and res.output.count("\n") == 1
    assert "--torch, --graph-opt do(es) not apply there" in res.output


def test_predict_options_of_ray_only_are_refused_without_ray(tmp_path):
    res = runner.invoke(app, ["predict", "m.onnx", "x.png", "--workers", "2", "--output", str(tmp_path / "o")])
    assert res.exit_code == 2 and res.output.count("\n") == 1 and "add --ray" in res.output
    assert "--output" in res.output and "--workers" in res.output
    res = runner.invoke(app, ["predict", "m.onnx", "x.png", "--ray", "--output", "o.parquet", "--save-masks", "m"])
    assert res.exit_code == 2 and "drop --save-masks" in res.output
