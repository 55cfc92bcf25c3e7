"""The fault catalogue (tests/catalogue_cases.py) run through the CLI: exit code, message, nothing lost.

Every row runs in-process with Typer's runner against one shared tiny export; each checks the exit code, the
message fragment, that no traceback is printed, that the files it names keep their sha256, that no staging
folder or half-written file stays, and (for files carrying code) that the code never ran.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from catalogue_cases import CASES, MARKER  # noqa: E402

from edgecnn.cli import app  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One tiny export with a bundle, a photo, and a tiny segmentation model (an argmax-able identity)."""
    import onnx
    from onnx import TensorProto, helper

    from edgecnn.core.card import ModelCard
    from edgecnn.pipeline import export

    root = tmp_path_factory.mktemp("catalogue")
    result = export(
        "mobilenet_v1", root / "ex", input_size=32, calib_count=8, bundle=True, arch_options={"width_mult": 0.25}
    )
    onnx_path = root / "ex" / "mobilenet_v1.fp32.onnx"
    card = ModelCard.from_metadata({p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props})
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 32, 32])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3, 32, 32])
    seg = helper.make_model(
        helper.make_graph([helper.make_node("Identity", ["input"], ["logits"])], "seg", [x], [y]),
        opset_imports=[helper.make_opsetid("", 18)],
    )
    seg.ir_version = 9
    card.replace(
        task="segmentation",
        model="unet",
        output_name="logits",
        num_classes=3,
        labels=None,
        input_shape=["N", 3, 32, 32],
    ).attach(seg)
    onnx.save(seg, str(root / "seg.onnx"))
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 60, 20)).save(root / "photo.png")
    return {
        "export": root / "ex",
        "onnx": onnx_path,
        "bundle": root / "ex" / result.manifest["bundle"]["folder"],
        "seg": root / "seg.onnx",
        "img": root / "photo.png",
    }


class Ctx:
    def __init__(self, tmp, shared, monkeypatch):
        self.tmp, self.shared, self.monkeypatch, self.cleanups = tmp, shared, monkeypatch, []

    def skip(self, reason):
        pytest.skip(reason)


def _hashes(root: Path, names) -> dict:
    return {n: hashlib.sha256((root / n).read_bytes()).hexdigest() for n in names}


def _leftovers(root: Path) -> list:
    return [str(p) for p in root.rglob("*") if ".staging-" in p.name or p.name.endswith(".tmp") or ".old-" in p.name]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_catalogue_case(case, shared, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECNN_PROGRESS", "0")
    ctx = Ctx(tmp_path, shared, monkeypatch)
    try:
        if case.setup is not None:
            case.setup(ctx)
        before = _hashes(tmp_path, case.keep)
        argv = [a.format(tmp=tmp_path, **{k: str(v) for k, v in shared.items()}) for a in case.argv]
        if case.cwd is not None:
            monkeypatch.chdir(tmp_path / case.cwd)
        if case.address_space_mb is not None:
            exit_code, output, peak_mb = _run_limited(argv, case.address_space_mb, tmp_path)
            assert case.max_rss_mb is None or peak_mb < case.max_rss_mb, f"peak RSS {peak_mb:.0f} MB:\n{output}"
        else:
            result = CliRunner().invoke(app, argv)
            exit_code, output = result.exit_code, result.output  # stdout and stderr together
            # any exception but the CLI's own exit is a bug, even when the runner turned it into exit 1
            assert result.exception is None or isinstance(result.exception, SystemExit), (
                f"{type(result.exception).__name__}: {result.exception}\n{output}"
            )
        assert "Traceback" not in output, output
        assert exit_code == case.code, f"exit {exit_code}, expected {case.code}:\n{output}"
        assert case.fragment.lower() in output.lower(), output
        assert _hashes(tmp_path, case.keep) == before, "a file that was there before changed"
        assert not _leftovers(tmp_path), _leftovers(tmp_path)
        assert not (tmp_path / MARKER).exists(), "code from a data file ran"
    finally:
        for cleanup in ctx.cleanups:
            cleanup()


_LIMITED = """
import atexit, resource, runpy, sys
limit = int(sys.argv[1]) << 20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
peak_file = sys.argv[2]

def write_peak():  # this process's own high-water mark (VmHWM starts afresh at exec)
    with open("/proc/self/status") as status, open(peak_file, "w") as out:
        out.write(next(line.split()[1] for line in status if line.startswith("VmHWM:")))

atexit.register(write_peak)
sys.argv = ["edgecnn", *sys.argv[3:]]
runpy.run_module("edgecnn", run_name="__main__")
"""


def _run_limited(argv, address_space_mb: int, cwd: Path):
    """Run the CLI in a child process under an address-space limit: (exit code, output, peak RSS in MB).

    A memory regression then fails the row (MemoryError or a refused allocation in the child) instead of taking
    the test worker down. The peak is the child's own VmHWM, written by the child as it exits: wait4's ru_maxrss
    would also count the test worker's RSS at the fork (Linux carries the forking process's high-water mark
    into the child's until exec), hundreds of MB once torch is imported. A child killed before it could write
    it falls back to ru_maxrss.
    """
    import os
    import subprocess
    import tempfile
    import threading

    env = {**os.environ, "EDGECNN_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryFile("w+") as log, tempfile.TemporaryDirectory() as scratch:
        peak_file = os.path.join(scratch, "peak_kb")
        proc = subprocess.Popen(
            [sys.executable, "-c", _LIMITED, str(address_space_mb), peak_file, *argv],
            cwd=cwd,
            env=env,
            text=True,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        timer = threading.Timer(300, proc.kill)  # bounded: a hung row fails instead of stalling the suite
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        peak_kb = float(Path(peak_file).read_text()) if os.path.exists(peak_file) else usage.ru_maxrss  # kB
        return proc.returncode, log.read(), peak_kb / 1024


def test_catalogue_has_every_family_and_40_rows():
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)
    commands = {c.argv[0] for c in CASES}
    assert {"export", "predict", "bench", "selftest", "validate", "mobile"} <= commands
    assert sum(c.marker for c in CASES) >= 2


def test_reliability_doc_is_generated_from_the_catalogue():
    sys.path.insert(0, str(ROOT / "tools"))
    import reliability_report

    assert (ROOT / "docs" / "RELIABILITY.md").read_text(encoding="utf-8") == reliability_report.render(CASES), (
        "docs/RELIABILITY.md is out of date: run .venv/bin/python tools/reliability_report.py"
    )


# --- the cases that need real processes: two writers at once, kill -9 mid-export ---------------------------------


def _cli(*args, cwd):
    import os
    import subprocess

    env = {**os.environ, "EDGECNN_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "edgecnn", *map(str, args)],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


TINY = ("export", "mobilenet_v1", "--input-size", "32", "--calib-count", "8")


def test_two_concurrent_exports_exactly_one_writes(tmp_path):
    """Case 'two concurrent writers': one exits 0, the other exits 2 naming it; the folder matches its manifest."""
    import json
    import time

    first = _cli(*TINY, "--out", tmp_path / "out", cwd=tmp_path)
    deadline = time.monotonic() + 120  # the second starts once the first holds the lock: they overlap for sure
    while not (tmp_path / ".out.lock").exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    second = _cli(*TINY, "--out", tmp_path / "out", cwd=tmp_path)
    outputs = [p.communicate(timeout=240)[0] for p in (first, second)]
    codes = sorted(p.returncode for p in (first, second))
    assert codes == [0, 2], outputs
    loser = outputs[[first.returncode, second.returncode].index(2)]
    assert "is being written by process" in loser and "Traceback" not in loser, loser
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    for artifact in manifest["artifacts"]:
        assert hashlib.sha256((tmp_path / "out" / artifact["file"]).read_bytes()).hexdigest() == artifact["sha256"]
    assert not _leftovers(tmp_path) and not list(tmp_path.glob(".out.lock"))


def test_kill_9_mid_export_keeps_the_old_export_and_the_next_run_clears_staging(shared, tmp_path):
    import os
    import signal
    import time

    shutil.copytree(shared["export"], tmp_path / "ex")
    keep = ("manifest.json", "mobilenet_v1.fp32.onnx")
    before = _hashes(tmp_path / "ex", keep)
    victim = _cli(*TINY, "--out", tmp_path / "ex", "--force", cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".ex.staging-*")) and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate(timeout=30)
    assert list(tmp_path.glob(".ex.staging-*")), "the export was not caught mid-run"
    assert _hashes(tmp_path / "ex", keep) == before
    (tmp_path / "cal").mkdir()  # the next run fails early, after clearing what the killed one left
    result = CliRunner().invoke(
        app, [*TINY, "--int8", "--calib", str(tmp_path / "cal"), "--out", str(tmp_path / "ex"), "--force"]
    )
    assert result.exit_code == 2 and "cal" in result.output, result.output
    assert not (tmp_path / ".ex.lock").exists(), "the dead process's lock was not taken over and released"
    assert _hashes(tmp_path / "ex", keep) == before
    assert not _leftovers(tmp_path), _leftovers(tmp_path)


def test_force_over_a_good_export_whose_parity_fails_keeps_the_good_one(shared, tmp_path, monkeypatch):
    """Case '--force, new run fails parity': exit 1, the previous export untouched, nothing left behind."""
    import dataclasses

    import edgecnn.runtime.compare as compare_module

    real = compare_module.compare

    def failing(*args, **kwargs):
        report = real(*args, **kwargs)
        return dataclasses.replace(report, passed=False, judged=True, failures=[*report.failures, "forced by the test"])

    monkeypatch.setattr(compare_module, "compare", failing)
    shutil.copytree(shared["export"], tmp_path / "ex")
    keep = ("manifest.json", "mobilenet_v1.fp32.onnx")
    before = _hashes(tmp_path / "ex", keep)
    result = CliRunner().invoke(app, [*TINY, "--out", str(tmp_path / "ex"), "--force"])
    assert result.exit_code == 1 and "was kept" in result.output and "Traceback" not in result.output, result.output
    assert _hashes(tmp_path / "ex", keep) == before
    assert not _leftovers(tmp_path) and not (tmp_path / ".ex.lock").exists()


def test_random_init_is_the_same_every_run_and_leaves_the_callers_rng_alone():
    """Case 'flaky verdicts': the same command builds the same random model, so its parity verdict is stable."""
    import torch

    from edgecnn.models.registry import get_spec
    from edgecnn.pipeline import options_from_keywords
    from edgecnn.pipeline.steps import Run, build_model

    options = options_from_keywords(arch_options={"width_mult": 0.25}).replace(input_size=(32, 32))
    state = torch.random.get_rng_state()
    first, second = (build_model(get_spec("mobilenet_v1"), options, Run(None), None).model for _ in range(2))
    assert torch.equal(torch.random.get_rng_state(), state)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name


def test_the_bundle_model_is_a_copy_not_a_hard_link_to_the_export(shared):
    bundled = shared["bundle"] / shared["onnx"].name
    assert bundled.stat().st_ino != shared["onnx"].stat().st_ino and bundled.stat().st_nlink == 1


def test_a_bundle_folder_of_its_own_is_locked_and_staged(shared, tmp_path):
    import json
    import os

    from edgecnn.core.errors import ArtifactError
    from edgecnn.deploy.bundle import make_bundle

    (tmp_path / ".b.lock").write_text(json.dumps({"pid": os.getppid(), "command": "edgecnn export", "since": "?"}))
    with pytest.raises(ArtifactError, match="being written by process"):
        make_bundle(shared["export"], [shared["onnx"].name], out_dir=tmp_path / "b")
    (tmp_path / ".b.lock").unlink()
    made = make_bundle(shared["export"], [shared["onnx"].name], out_dir=tmp_path / "b", images=1)
    assert made.path == tmp_path / "b" and made.selftest.passed and (tmp_path / "b" / "bundle.json").is_file()
    assert not _leftovers(tmp_path) and not (tmp_path / ".b.lock").exists()


def test_a_relative_checkpoint_is_recorded_absolute(tmp_path, monkeypatch):
    """Case 'validate from another working folder': what the manifest records still finds the checkpoint."""
    import torch

    from edgecnn.models.registry import create_model_with_report

    model, _ = create_model_with_report("mobilenet_v1", num_classes=3, width_mult=0.25)
    torch.save(model.state_dict(), tmp_path / "c.pth")
    monkeypatch.chdir(tmp_path)
    _, report = create_model_with_report("mobilenet_v1", num_classes=3, weights="c.pth", width_mult=0.25)
    assert report.path == str(tmp_path / "c.pth")


def test_sigterm_mid_export_cleans_up_like_ctrl_c(shared, tmp_path):
    """Case 'SIGTERM': the staging folder and the lock go at once (not at the next export); the old export stays."""
    import os
    import signal
    import time

    shutil.copytree(shared["export"], tmp_path / "ex")
    before = _hashes(tmp_path / "ex", ("manifest.json", "mobilenet_v1.fp32.onnx"))
    victim = _cli(*TINY, "--out", tmp_path / "ex", "--force", cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".ex.staging-*")) and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGTERM)
    output = victim.communicate(timeout=60)[0]
    assert victim.returncode == 143 and "Traceback" not in output, output
    assert _hashes(tmp_path / "ex", ("manifest.json", "mobilenet_v1.fp32.onnx")) == before
    assert not _leftovers(tmp_path) and not (tmp_path / ".ex.lock").exists()
