"""edgecnn.runtime.choose: one table across runtimes, and the fastest file that is still right.

One small export (MobileNetV2 width 0.25 at 32², fp32 ONNX, BatchNorm re-estimated on photographs) is shared by the
module; the other candidates are made from it: a copy with one mid-network convolution's weights × 1.001 (loads and
runs, fails parity), a Core ML package and an embedded-preprocessing twin listed in the manifest, and a bundle.
Timing runs are short (0.05 s a row): the tests check what is decided from the numbers, not the numbers.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from PIL import Image

from edgecnn.core.errors import InputError
from edgecnn.runtime.choose import ChooseOptions, Row, choose, decide
from edgecnn.runtime.choose import measure as choose_measure
from edgecnn.runtime.choose.options import FAILED, NOT_JUDGED, NOT_RUNNABLE, VERIFIED
from edgecnn.runtime.choose.source import VNNI_NOTE, read_source
from edgecnn.runtime.compare import ParityReport

FAST = dict(seconds=0.05, warmup=1, rounds=2, threads=1)
EDITED = "mobilenet_v2.edited.fp32.onnx"
DAMAGED = "mobilenet_v2.damaged.fp32.onnx"
TWIN = "mobilenet_v2.fp32.nhwc_uint8.onnx"


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    from edgecnn.pipeline import export

    out = tmp_path_factory.mktemp("choose") / "mnv2"
    export("mobilenet_v2", out, input_size=32, num_classes=10, arch_options={"width_mult": 0.25})
    return out


def _add(folder: Path, file: str, precision: str, fmt: str, reference: str | None = None) -> None:
    """List ``file`` in the folder's manifest, as the fp32 ONNX entry is listed."""
    manifest = json.loads((folder / "manifest.json").read_text())
    entry = json.loads(json.dumps(manifest["artifacts"][0]))
    entry.update(file=file, precision=precision, format=fmt)
    if reference:
        entry["parity"]["reference"] = reference
    manifest["artifacts"].append(entry)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _edit_weights(src: Path, dst: Path) -> None:
    """One mid-network convolution's weights × 1.001: a file that loads and runs, and is wrong."""
    model = onnx.load(str(src))
    inits = {i.name: i for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv" and n.input[1] in inits]
    weight = inits[convs[len(convs) // 2].input[1]]
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * np.float32(1.001), weight.name))
    onnx.save(model, str(dst))


@pytest.fixture(scope="module")
def folder(export_dir, tmp_path_factory) -> Path:
    """The export, plus the edited copy, a damaged copy, a Core ML package and an embedded twin, all listed in the
    manifest."""
    out = tmp_path_factory.mktemp("candidates") / "mnv2"
    shutil.copytree(export_dir, out)
    _edit_weights(out / "mobilenet_v2.fp32.onnx", out / EDITED)
    _add(out, EDITED, "fp32", "onnx")
    (out / DAMAGED).write_bytes((out / "mobilenet_v2.fp32.onnx").read_bytes()[:5000])  # cut short: no runtime opens it
    _add(out, DAMAGED, "fp32", "onnx")
    (out / "mobilenet_v2.fp32.mlpackage" / "Data").mkdir(parents=True)
    (out / "mobilenet_v2.fp32.mlpackage" / "Manifest.json").write_text("{}")
    _add(out, "mobilenet_v2.fp32.mlpackage", "fp32", "coreml")
    shutil.copy(out / "mobilenet_v2.fp32.onnx", out / TWIN)
    _add(out, TWIN, "fp32", "onnx", reference="mobilenet_v2.fp32.onnx")
    return out


@pytest.fixture(scope="module")
def compared(folder):
    """``choose`` on cpu and cuda (not in this onnxruntime build), the edited file made the fastest by its timing."""
    real = choose_measure.benchmark_pairs

    def edited_fastest(pairs, options):
        results = real(pairs, options)
        fast = []
        for r in results:
            if Path(r.model_path).name == EDITED:
                batch = r.batches[0]
                latency = dataclasses.replace(batch.latency, p50_ms=batch.latency.p50_ms / 100)
                r = dataclasses.replace(r, batches=(dataclasses.replace(batch, latency=latency),))
            fast.append(r)
        return fast

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(choose_measure, "benchmark_pairs", edited_fastest)
        return choose(folder, ChooseOptions(eps="cpu,cuda", **FAST))


def _row(result, file: str, where: str) -> Row:
    return next(r for r in result.rows if r.file == file and r.where == where)


def test_an_edited_file_fails_parity_and_is_not_recommended_though_fastest(compared):
    good, edited = _row(compared, "mobilenet_v2.fp32.onnx", "cpu"), _row(compared, EDITED, "cpu")
    assert good.status == VERIFIED and good.parity.passed and good.parity.cosine > 0.99999
    assert edited.status == FAILED and edited.reason.startswith("parity failed")
    assert not edited.parity.passed and edited.parity.exact_max_abs > edited.parity.error_bound
    assert edited.p50_ms < good.p50_ms  # the fastest row of the table
    assert compared.recommended == good
    reasons = dict(compared.why_not)
    assert edited.label in reasons and reasons[edited.label].startswith("parity failed")
    assert f"`{edited.label}`: parity failed" in compared.to_markdown()


def test_a_missing_provider_a_refused_file_and_core_ml_are_rows_not_errors(compared):
    cuda = _row(compared, "mobilenet_v2.fp32.onnx", "cuda")
    assert cuda.status == NOT_RUNNABLE and "cuda" in cuda.reason.lower() and cuda.p50_ms is None
    damaged = _row(compared, DAMAGED, "cpu")
    assert damaged.status == FAILED and damaged.reason.startswith("cannot open: ") and "\n" not in damaged.reason
    assert damaged.parity is None and damaged.p50_ms is None  # not timed; the others were
    coreml = _row(compared, "mobilenet_v2.fp32.mlpackage", "coreml")  # a folder with an empty manifest
    assert coreml.status == FAILED and coreml.reason.startswith("structure: ") and coreml.p50_ms is None
    assert coreml.size_mb is not None
    assert [f for f, _ in compared.left_out] == [TWIN]  # takes uint8 pixels: not a candidate, and said so
    assert "left out `mobilenet_v2.fp32.nhwc_uint8.onnx`" in compared.to_markdown()


def test_the_table_names_the_cpu_and_the_stand_in(compared):
    text = compared.to_markdown()
    assert "CPU: " in text and "VNNI: " in text and compared.machine["vnni"] in (True, False, None)
    assert "No --data" in text and compared.stand_in
    assert "**Recommended: `mobilenet_v2.fp32.onnx` on cpu**" in text
    data = json.loads(json.dumps(compared.to_dict(), allow_nan=False))  # plain JSON, no NaN/Infinity
    assert data["recommended"] == "mobilenet_v2.fp32.onnx [cpu]"
    assert {r["status"] for r in data["rows"]} == {VERIFIED, FAILED, NOT_RUNNABLE}


def test_the_plot_is_svg_with_one_point_per_timed_row(compared):
    root = ET.fromstring(compared.to_svg())
    ns = "{http://www.w3.org/2000/svg}"
    points = [c for c in root.iter(f"{ns}circle") if c.get("class") == "row"]
    timed = [r for r in compared.rows if r.p50_ms is not None]
    assert len(points) == len(timed) == 2
    assert sorted(p.find(f"{ns}title").text.split(":")[0] for p in points) == sorted(r.label for r in timed)
    assert len([c for c in root.iter(f"{ns}circle") if c.get("class") == "recommended"]) == 1


def _parity(agreement: float, judged: bool = True) -> ParityReport:
    return ParityReport(
        True, "int8", "classification", 32, 0.1, 0.1, 0.01, 0.99, top1_agreement=agreement, judged=judged
    )


def _timed(file: str, p50: float, status: str = VERIFIED, difference=None, agreement: float = 1.0) -> Row:
    return Row(
        file, "onnx", "int8", "onnxruntime", ("cpu",), status, p50_ms=p50, difference=difference,
        parity=_parity(agreement, status != NOT_JUDGED),
    )  # fmt: skip


def test_an_interval_that_misses_the_margin_is_not_recommended():
    rows = [
        _timed("fp32.onnx", 2.0, difference=(0.0, 0.0, 0.0)),
        _timed("int8_plain.onnx", 0.8, difference=(-0.004, -0.021, 0.012)),  # small loss, unbounded: low −2.1
        _timed("int8_mixed.onnx", 1.1, difference=(-0.002, -0.008, 0.004)),  # low −0.8 > −1: qualifies
    ]
    decision = decide(rows, 1.0, with_data=True, baseline="fp32.onnx [cpu]")
    assert rows[decision.recommended].file == "int8_mixed.onnx"
    (label, reason), = decision.why_not  # fmt: skip
    assert label == "int8_plain.onnx [cpu]" and reason.startswith("interval [-2.10, +1.20] points")
    assert "misses -1" in reason
    assert rows[decide(rows, 2.5, with_data=True).recommended].file == "int8_plain.onnx"  # a wider margin takes it


def test_without_data_agreement_stands_in_and_unjudged_int8_is_not_chosen():
    rows = [
        _timed("fp32.onnx", 2.0),
        _timed("random_int8.onnx", 0.5, status=NOT_JUDGED, agreement=1.0),
        _timed("int8.onnx", 0.9, agreement=0.96875),  # one of 32 golden photos changed class: 3.1 points off
    ]
    decision = decide(rows, 1.0, with_data=False)
    assert rows[decision.recommended].file == "fp32.onnx"
    reasons = dict(decision.why_not)
    assert reasons["random_int8.onnx [cpu]"].startswith("not judged")
    assert "96.9%" in reasons["int8.onnx [cpu]"] and "no --data" in reasons["int8.onnx [cpu]"]
    assert rows[decide(rows, 5.0, with_data=False).recommended].file == "int8.onnx"


def test_nothing_passing_recommends_nothing_and_says_why_for_each_row(compared):
    failing = [r for r in compared.rows if r.status in (FAILED, NOT_RUNNABLE)]
    decision = decide(failing, 1.0, with_data=False)
    assert decision.recommended is None
    assert [label for label, _ in decision.why_not] == [r.label for r in failing if r.p50_ms is not None] + [
        r.label for r in failing if r.p50_ms is None
    ]
    result = dataclasses.replace(compared, rows=tuple(failing), recommended=None, why_not=decision.why_not)
    assert "**No recommendation**" in result.to_markdown()
    assert ET.fromstring(result.to_svg()).find("{http://www.w3.org/2000/svg}circle[@class='recommended']") is None


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    """An ImageFolder of 30 real images: scikit-learn's 8×8 digits at 32×32, folders '0'…'9'."""
    from sklearn.datasets import load_digits

    data = load_digits()
    root = tmp_path_factory.mktemp("digits")
    for cls in range(10):
        (root / str(cls)).mkdir()
        for idx in np.flatnonzero(data.target == cls)[:3]:
            pixels = (data.images[idx] * (255 / 16)).astype(np.uint8)
            Image.fromarray(pixels).resize((32, 32)).convert("RGB").save(root / str(cls) / f"d{idx}.png")
    return root


def test_with_data_each_row_is_scored_against_fp32_on_cpu(export_dir, digits):
    result = choose(export_dir, ChooseOptions(eps="openvino,cpu", data=digits, labels_from="folder", **FAST))
    cpu, ov = _row(result, "mobilenet_v2.fp32.onnx", "cpu"), _row(result, "mobilenet_v2.fp32.onnx", "openvino")
    assert result.baseline == cpu.label and result.images == 30
    assert cpu.difference == (0.0, 0.0, 0.0) and 0.0 <= cpu.accuracy <= 1.0
    assert ov.status == VERIFIED and ov.accuracy is not None
    point, low, high = ov.difference
    assert low <= point <= high and abs(point) <= 1 / 30 + 1e-9  # the same weights: at most a near-tie flips
    assert "Δ vs fp32 [95%]" in result.to_markdown() and not result.stand_in


def test_a_bundle_is_judged_against_its_fp32_expected_output(export_dir, tmp_path):
    from edgecnn.deploy.bundle import make_bundle

    bundle = make_bundle(export_dir, out_dir=tmp_path / "bundle").path
    result = choose(bundle, ChooseOptions(eps="cpu", **FAST))
    assert result.kind == "bundle" and result.golden["source"] == "fp32 artifact"
    (row,) = result.rows
    assert row.status == VERIFIED and result.recommended == row


def test_device_install_runs_it_without_torch_and_says_pte_needs_it(export_dir, tmp_path):
    folder = tmp_path / "copied"
    shutil.copytree(export_dir, folder)
    (folder / "mobilenet_v2.fp32.pte").write_bytes(b"not opened")
    _add(folder, "mobilenet_v2.fp32.pte", "fp32", "pte")
    script = (
        "import sys, json\n"
        "for name in ('torch', 'onnx', 'onnxscript'): sys.modules[name] = None  # the device install has none\n"
        "from edgecnn.runtime.choose import ChooseOptions, choose\n"
        f"r = choose({str(folder)!r}, ChooseOptions(eps='cpu', seconds=0.05, warmup=1, rounds=2))\n"
        "print(json.dumps([[x.file, x.status, x.reason] for x in r.rows]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {f: (s, why) for f, s, why in json.loads(done.stdout.splitlines()[-1])}
    assert rows["mobilenet_v2.fp32.onnx"][0] == VERIFIED
    assert rows["mobilenet_v2.fp32.pte"] == (
        NOT_RUNNABLE,
        "ExecuTorch's runtime needs torch (not on the device install)",
    )


def test_an_int8_onnx_with_8_bit_weights_is_marked_vnni_only(export_dir, tmp_path):
    folder = tmp_path / "int8"
    shutil.copytree(export_dir, folder)
    _add(folder, "mobilenet_v2.fp32.onnx", "int8", "onnx")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["int8"] = {"kept": "int8", "form": {"weight_bits": 8}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    notes = {c.precision: c.notes for c in read_source(folder).candidates}
    assert notes == {"fp32": (), "int8": (VNNI_NOTE,)}


def test_an_int8_made_for_openvino_is_its_own_file_and_runs_there_only(tmp_path, monkeypatch):
    """``--int8-for cpu,openvino`` with stand-in timings that differ by runtime (onnxruntime: a float stem is
    fastest; OpenVINO: the plain file): the export lists both files, each checked against PyTorch, and compare runs
    OpenVINO's own file on OpenVINO alone."""
    from edgecnn.convert.int8 import Int8Options
    from edgecnn.convert.int8 import decide as q8decide
    from edgecnn.convert.int8.speed import SpeedGate
    from edgecnn.pipeline import export

    def gate(fp32_path, candidates, runtime="cpu", **kwargs):
        stems = sorted((n for n in candidates if n.startswith("stem:")), key=lambda n: int(n[5:]))
        pick = stems[-1] if runtime == "cpu" else "int8"
        ms = {n: (0.5 if n == pick else 1.8) for n in candidates}
        return SpeedGate(2.0, ms, {n: v / 2.0 for n, v in ms.items()}, 2, 1, "stand-in", {}, True, 3, (), runtime)

    monkeypatch.setattr(q8decide, "speed_gate", gate)
    out = tmp_path / "mnv2"
    int8 = Int8Options(policy="auto", runtimes=("cpu", "openvino"))
    done = export("mobilenet_v2", out, input_size=32, num_classes=10, arch_options={"width_mult": 0.25}, int8=int8)
    mine = "mobilenet_v2.int8.openvino.onnx"
    listed = {a.file: a for a in done.artifacts}
    assert mine in listed and listed[mine].precision == "int8" and listed[mine].parity.samples > 0
    assert "made for openvino" in " ".join(listed[mine].notes)
    assert done.manifest["int8"]["runtimes"]["openvino"]["file"] == mine
    assert done.manifest["int8"]["candidate"].startswith("stem:")
    result = choose(out, ChooseOptions(eps="cpu,openvino", precisions="int8", **FAST))
    where = sorted((r.file, r.where) for r in result.rows)
    assert where == [("mobilenet_v2.int8.onnx", "cpu"), ("mobilenet_v2.int8.onnx", "openvino"), (mine, "openvino")]
    assert any("made for openvino" in n for r in result.rows if r.file == mine for n in r.notes)


@pytest.mark.parametrize(
    "bad", [dict(margin=-1), dict(margin=float("nan")), dict(formats="onnx,gguf"), dict(precisions="int4"),
            dict(seconds=0), dict(labels_from="csv"), dict(eps="")],
)  # fmt: skip
def test_bad_options_are_one_input_error(bad):
    with pytest.raises(InputError):
        ChooseOptions(**bad)


def test_a_folder_that_is_neither_export_nor_bundle_is_one_input_error(tmp_path):
    with pytest.raises(InputError, match="neither manifest.json"):
        choose(tmp_path)


def test_asking_for_a_format_the_folder_lacks_is_one_input_error(export_dir):
    with pytest.raises(InputError, match="no file matches the formats and precisions asked"):
        choose(export_dir, ChooseOptions(formats="tflite", **FAST))


def test_a_sound_core_ml_package_is_converted_not_run_off_macos(folder, monkeypatch):
    """Off macOS a package is never run: one whose structure holds is "not runnable here", with the reason."""
    row = Row("mobilenet_v2.fp32.mlpackage", "coreml", "fp32", "coreml")
    monkeypatch.setattr(choose_measure, "_coreml_problems", lambda path: [])
    monkeypatch.setattr(choose_measure.sys, "platform", "linux")
    checked = choose_measure.check_row(row, folder / row.file, None, "classification", True, None)
    assert checked.status == NOT_RUNNABLE and checked.reason == "converted, not run: Core ML predicts on macOS only"
