"""tools/peer_runtimes.py's table: the ratio and verdict it prints, and where its section goes in the doc.

The measurement itself (minutes per model) is run by hand; these check the arithmetic a reader trusts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("peer_runtimes", ROOT / "tools" / "peer_runtimes.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["peer_runtimes"] = module
    spec.loader.exec_module(module)
    return module


def _result(ours_ms, theirs_ms, ours_agree=0.97, theirs_agree=0.85):
    runs = [{"litert/edgecnn/int8": a, "litert/default/int8": b} for a, b in zip(ours_ms, theirs_ms, strict=True)]
    judged = {
        "litert/edgecnn/int8": {"agreement": ours_agree, "cosine": 0.99},
        "litert/default/int8": {"agreement": theirs_agree, "cosine": 0.95},
    }
    return {"model": "m", "p50_ms": runs, "judged": judged, "failed": {}, "records": {}}


def test_ratio_is_the_median_of_each_runs_ratio_and_each_run_is_shown(tool):
    # per-run ratios 1.10, 1.00, 1.02: median 1.02, not the ratio of median times (1.02/1.00 here by chance)
    result = _result([1.1, 2.0, 1.02], [1.0, 2.0, 1.0])
    row = next(r for r in tool.rows([result]) if r[1] == tool.RUNTIMES["litert"])
    assert row[4] == "**1.02** (1.10, 1.00, 1.02)"
    assert row[5] == "PASS"
    assert row[6] == "0.970 / 0.850"


def test_verdict_names_what_fails(tool):
    slow = _result([1.2, 1.2, 1.2], [1.0, 1.0, 1.0])
    assert tool._verdict(slow, "litert", tool._ratios(slow, "litert", "int8")) == "FAIL (slower)"
    wrong = _result([1.0, 1.0, 1.0], [1.0, 1.0, 1.0], ours_agree=0.80)
    assert tool._verdict(wrong, "litert", tool._ratios(wrong, "litert", "int8")) == "FAIL (less agreement)"
    assert tool._verdict(wrong, "executorch", []) == "not measured"


def test_section_goes_after_peer_bench_and_is_replaced_in_place(tool, tmp_path):
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text(f"# B\n\n<!-- peer_bench:start -->\nA\n{tool.AFTER}\n\n<!-- web_bench:start -->\nW\n")
    tool.write_doc(doc, f"{tool.START}\none\n{tool.END}\n")
    tool.write_doc(doc, f"{tool.START}\ntwo\n{tool.END}\n")
    text = doc.read_text()
    assert text.count(tool.START) == 1 and "one" not in text
    assert text.index(tool.AFTER) < text.index("two") < text.index("web_bench")


def _choice_result(rec_key, runs, verdicts):
    return {
        "model": "m",
        "p50_ms": runs,
        "compare": {"label": "m.x [cpu]", "key": rec_key, "exit": 0},
        "golden": verdicts,
    }


def test_recommendation_is_held_to_the_fastest_peer_that_meets_the_margin(tool):
    choice = sys.modules["peer_choice"]
    right, wrong = {"passed": True, "agreement": 1.0}, {"passed": True, "agreement": 0.98}  # 2 points off
    runs = [
        {"executorch/edgecnn/int8": 1.0, "executorch/default/int8": 0.5, "openvino/default/int8": 1.1},
        {"executorch/edgecnn/int8": 1.0, "executorch/default/int8": 0.5, "openvino/default/int8": 0.9},
        {"executorch/edgecnn/int8": 1.0, "executorch/default/int8": 0.5, "openvino/default/int8": 1.0},
    ]
    # the faster ExecuTorch default misses the margin: the OpenVINO peer is the one to beat
    verdicts = {"executorch/default/int8": wrong, "openvino/default/int8": right}
    peer, each = choice.ratios(_choice_result("executorch/edgecnn/int8", runs, verdicts))
    assert peer == "openvino/default/int8"
    assert [round(q, 3) for q in each] == [0.909, 1.111, 1.0]
    row = choice.rows([_choice_result("executorch/edgecnn/int8", runs, verdicts)])[0]
    assert row[5] == "**1.00** (0.91, 1.11, 1.00)" and row[6] == "PASS"
    assert "executorch: agreement 0.980" in row[7]
    # a parity failure disqualifies whatever its agreement; no qualifying peer is said, not scored
    failed = {**right, "passed": False}
    none = _choice_result("executorch/edgecnn/int8", runs, {k: failed for k in choice.PEERS})
    assert choice.ratios(none) == (None, [])
    assert choice.rows([none])[0][6] == "no peer int8 recipe meets the margin"
    slow = [{**r, "openvino/default/int8": 0.8} for r in runs]
    assert choice.rows([_choice_result("executorch/edgecnn/int8", slow, verdicts)])[0][6] == "FAIL (slower)"


def test_compare_rows_map_to_the_contenders_timed(tool):
    choice = sys.modules["peer_choice"]
    assert choice.row_key({"format": "onnx", "where": "cpu", "precision": "int8"}) == "onnxruntime/edgecnn/int8"
    assert choice.row_key({"format": "onnx", "where": "openvino", "precision": "fp32"}) == "openvino/edgecnn/fp32"
    assert choice.row_key({"format": "tflite", "where": "litert", "precision": "fp32"}) == "litert/edgecnn/fp32"
    assert choice.row_key({"format": "pte", "where": "executorch", "precision": "int8"}) == "executorch/edgecnn/int8"


def test_random_weights_read_as_parity_and_speed(tool):
    """The parity-only reading: edgecnn's fastest file that passes against the fastest peer int8 that passes."""
    choice = sys.modules["peer_choice"]
    runs = [{"litert/edgecnn/int8": 1.0, "openvino/edgecnn/int8": 0.5, "executorch/default/int8": 2.0}] * 3
    verdicts = {
        "litert/edgecnn/int8": {"passed": True, "agreement": 0.6},
        "openvino/edgecnn/int8": {"passed": False, "agreement": 0.4},  # faster, but not a candidate
        "executorch/default/int8": {"passed": True, "agreement": 0.5},
    }
    result = _choice_result("litert/edgecnn/fp32", runs, verdicts)
    assert choice.parity_only(result) == ("litert/edgecnn/int8", "executorch/default/int8", [0.5, 0.5, 0.5])
    assert choice.parity_rows([result])[0][-1] == "PASS"


def test_agreement_below_the_default_passes_only_when_the_paired_interval_reaches_zero(tool):
    """Per-image verdicts kept: 2 of 128 images apart is noise (the paired interval reaches 0); 20 apart is not."""
    same = [1.0] * 60 + [0.0] * 68
    for apart, verdict in ((2, "PASS (within noise"), (20, "FAIL (less agreement, Δ -0.156")):
        ours = same[:]
        for k in range(apart):
            ours[k] = 0.0
        result = _result([1.0] * 3, [1.0] * 3, ours_agree=sum(ours) / 128, theirs_agree=sum(same) / 128)
        result["judged"]["litert/edgecnn/int8"]["hits"] = ours
        result["judged"]["litert/default/int8"]["hits"] = same
        got = tool._verdict(result, "litert", tool._ratios(result, "litert", "int8"))
        assert got.startswith(verdict), got
        low, high = (float(x) for x in got.split("[")[1].rstrip("])").split(", "))
        assert low < 0 and (high >= 0) == (apart == 2)


def test_calibration_draws_compares_the_recipes_it_names():
    """tools/calibration_draws.py: each named recipe is the one its name says; an unknown name is refused (exit 2)."""
    pytest.importorskip("litert_torch")
    from edgecnn.convert.targets import pt2e

    spec = importlib.util.spec_from_file_location("calibration_draws", ROOT / "tools" / "calibration_draws.py")
    draws = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(draws)
    made = {name: make(pt2e) for name, make in draws.RECIPES.items()}
    assert made["edgecnn"] == pt2e.TRAINED and made["default"] == pt2e.Recipe()
    assert not made["edgecnn-whole-hardswish"].split_hardswish and made["edgecnn-whole-hardswish"].bias_correction
    assert not made["edgecnn-no-bias-correction"].bias_correction
    with pytest.raises(SystemExit) as exited:
        draws.main(["--recipes", "edgecnn,percentile"])
    assert exited.value.code == 2
