"""`edgecnn list` and `edgecnn info`, through Typer's test runner."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from edgecnn.cli import app
from edgecnn.models import get_spec, list_models

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args))


def test_list_table_has_every_model_and_the_columns():
    result = invoke("list")
    assert result.exit_code == 0, result.output
    header, rule, *rows = result.stdout.splitlines()
    assert header.split() == ["name", "task", "params", "GFLOPs", "input", "published", "checkpoints"]
    assert set(rule) == {"-", " "}
    assert [r.split()[0] for r in rows] == list_models()
    by_name = {r.split()[0]: r.split(None, 5) for r in rows}
    assert by_name["resnet50"] == [
        "resnet50",
        "classification",
        "25.6M",
        "4.09",
        "224x224",
        "imagenet1k_v2, imagenet1k_v1",
    ]
    assert by_name["unet"] == ["unet", "segmentation", "31.0M", "48.17", "256x256", "-"]
    assert by_name["mobilenet_v1"][-1] == "-"


def test_list_json_parses():
    result = invoke("list", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert [d["name"] for d in data] == list_models()
    for d in data:
        spec = get_spec(d["name"])
        assert d["params"] == spec.num_params and d["gflops"] == spec.gflops and d["task"] == spec.task
        assert tuple(d["input_size"]) == spec.input_size
        assert [c["name"] for c in d["checkpoints"]] == [c.name for c in spec.checkpoints]


def test_info_follows_aliases():
    result = invoke("info", "mobilenet")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["name:", "mobilenet_v2"]
    assert "aliases:          mobilenet" in lines
    assert "options:          width_mult=1.0, dropout=0.2" in lines
    assert "input_size:       224x224" in lines
    text = result.stdout
    assert "https://download.pytorch.org/models/mobilenet_v2-7ebf99e0.pth" in text
    assert "acc@1 72.154" in text and "resize 232 crop 224" in text
    assert text.index("imagenet1k_v2") < text.index("imagenet1k_v1")  # the default first


def test_info_json():
    result = invoke("info", "ResNet", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["name"] == "resnet50" and data["aliases"] == ["resnet"]
    assert data["options"] == {"zero_init_residual": False}
    assert data["checkpoints"][0]["sha256_prefix"] == "11ad3fa6" and data["checkpoints"][0]["resize"] == 232


@pytest.mark.parametrize("name", list_models())
def test_info_every_model(name):
    result = invoke("info", name)
    assert result.exit_code == 0 and f"name:             {name}" in result.stdout
    assert ("none published" in result.stdout) == (not get_spec(name).checkpoints)


@pytest.mark.parametrize("args", [("info", "nope"), ("info", "resnet51", "--json")])
def test_unknown_model_is_one_line_and_nonzero(args):
    result = invoke(*args)
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit)  # exited on purpose, not crashed
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert lines[0].startswith(f"error: unknown model '{args[1]}'; did you mean '")
    if args[1] == "resnet51":
        assert "did you mean 'resnet50'?" in lines[0]
