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
