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
