"""The shared file helpers: staged output folders and atomic text writes."""

import os
import subprocess
import sys

import pytest

from edgecnn.core.errors import ArtifactError, InputError
from edgecnn.core.files import process_start, sha256_file, staged_output, write_text_atomic
from edgecnn.core.owned import LISTING, foreign_files


def _names(folder):
    """What a folder holds besides edgecnn's listing of it."""
    return sorted(p.name for p in folder.iterdir() if p.name != LISTING)


def _written(out, **files):
    """A folder as an earlier edgecnn run leaves it (staged, with its listing)."""
    with staged_output(out, force=True) as staging:
        for name, text in files.items():
            (staging / name).write_text(text)


def test_staged_output_appears_only_when_complete(tmp_path):
    out = tmp_path / "out"
    with staged_output(out, force=False) as staging:
        (staging / "a.txt").write_text("new")
        assert not out.exists()  # nothing at the destination while the block runs
    assert (out / "a.txt").read_text() == "new"
    assert not list(tmp_path.glob(".out.*"))
    assert foreign_files(out) == [] and (out / LISTING).is_file()  # a later --force knows these files as edgecnn's


def test_staged_output_refuses_a_full_folder_without_force(tmp_path):
    out = tmp_path / "out"
    _written(out, **{"keep.txt": "old"})
    with pytest.raises(ArtifactError, match="already holds files.*--force"):
        with staged_output(out, force=False):
            pass
    assert (out / "keep.txt").read_text() == "old"


def test_staged_output_failure_keeps_the_old_folder(tmp_path):
    out = tmp_path / "out"
    _written(out, **{"keep.txt": "old"})
    with pytest.raises(RuntimeError):
        with staged_output(out, force=True) as staging:
            (staging / "half.txt").write_text("partial")
            raise RuntimeError("conversion failed")
    assert _names(out) == ["keep.txt"]
    assert not list(tmp_path.glob(".out.*"))  # the staging folder is gone too


def test_staged_output_force_replaces_what_edgecnn_wrote(tmp_path):
    out = tmp_path / "out"
    _written(out, **{"stale.txt": "old"})
    with staged_output(out, force=True) as staging:
        (staging / "fresh.txt").write_text("new")
    assert _names(out) == ["fresh.txt"]


def test_force_never_replaces_a_folder_holding_a_users_file(tmp_path):
    out = tmp_path / "out"
    _written(out, **{"model.onnx": "ours"})
    (out / "thesis.txt").write_text("theirs")
    (out / "photos").mkdir()
    (out / "photos" / "a.jpg").write_bytes(b"theirs")
    assert foreign_files(out) == ["photos/", "thesis.txt"]
    with pytest.raises(ArtifactError, match=r"did not write \(photos/, thesis.txt\)"):
        with staged_output(out, force=True) as staging:
            (staging / "model.onnx").write_text("new")
    assert (out / "thesis.txt").read_text() == "theirs" and (out / "model.onnx").read_text() == "ours"
    assert not list(tmp_path.glob(".out.*"))


def test_a_file_dropped_in_while_the_run_works_is_not_swapped_away(tmp_path):
    out = tmp_path / "out"
    _written(out, **{"model.onnx": "ours"})
    with pytest.raises(ArtifactError, match="late.txt"):
        with staged_output(out, force=True) as staging:
            (out / "late.txt").write_text("theirs")
            (staging / "model.onnx").write_text("new")
    assert (out / "late.txt").read_text() == "theirs" and (out / "model.onnx").read_text() == "ours"


def test_a_command_never_writes_over_the_folder_of_its_own_input(tmp_path):
    out = tmp_path / "out"
    _written(out, **{"model.onnx": "ours"})
    for inputs in ([out / "model.onnx"], [out], [tmp_path / "link" / "model.onnx"]):
        (tmp_path / "link").unlink(missing_ok=True)
        (tmp_path / "link").symlink_to(out)
        with pytest.raises(InputError, match="holds this command's input"):
            with staged_output(out, force=True, inputs=inputs):
                pass
    assert (out / "model.onnx").read_text() == "ours"


def test_an_older_folder_is_recognised_by_its_record(tmp_path):
    """Folders written before listings existed: the manifest / report / bundle.json name edgecnn's files."""
    import json

    ex = tmp_path / "ex"
    (ex / "bundle").mkdir(parents=True)
    (ex / "manifest.json").write_text(
        json.dumps({"edgecnn_manifest": 1, "artifacts": [{"file": "m.onnx"}, {"file": "../../x"}]})
    )
    (ex / "m.onnx").write_bytes(b"x")
    (ex / "bundle" / "bundle.json").write_text(
        json.dumps({"edgecnn_bundle": 1, "files": {"golden.npz": {}}, "models": [{"file": "m.onnx"}]})
    )
    (ex / "bundle" / "m.onnx").write_bytes(b"x")
    assert foreign_files(ex) == []
    (ex / "bundle" / "mine.txt").write_text("x")
    (ex / "manifest.json.bak").write_text("x")
    assert foreign_files(ex) == ["bundle/mine.txt", "manifest.json.bak"]
    (ex / "manifest.json").write_text("not json")  # a record that cannot be read says nothing is edgecnn's
    assert "m.onnx" in foreign_files(ex)


def test_process_start_tells_a_reused_pid_from_the_lock_holder(tmp_path):
    """A lock records its writer's start time: the same pid with another start time is another process."""
    import json

    assert process_start(os.getpid()) == process_start(os.getpid()) is not None
    (tmp_path / ".out.lock").write_text(
        json.dumps({"pid": os.getppid(), "command": "edgecnn export x", "since": "then", "started": "not-this-one"})
    )
    notes = []
    with staged_output(tmp_path / "out", force=False, notes=notes):
        pass
    assert "took over the lock" in notes[0]
    (tmp_path / ".out2.lock").write_text(
        json.dumps(
            {
                "pid": os.getppid(),
                "command": "edgecnn export x",
                "since": "then",
                "started": process_start(os.getppid()),
            }
        )
    )
    with pytest.raises(ArtifactError, match="being written by process"):
        with staged_output(tmp_path / "out2", force=False):
            pass


def test_staged_output_clears_a_dead_process_staging_folder(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    ).stdout.strip()
    leftover = tmp_path / f".out.staging-{dead}"
    leftover.mkdir()
    (leftover / "junk.onnx").write_bytes(b"x")
    with staged_output(tmp_path / "out", force=False) as staging:
        assert staging.name == f".out.staging-{os.getpid()}"
    assert not leftover.exists()


def test_staged_output_rejects_a_file_path(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ArtifactError, match="is a file"):
        with staged_output(target, force=True):
            pass


def test_write_text_atomic_and_sha256(tmp_path):
    path = write_text_atomic(tmp_path / "sub" / "r.md", "hello\n")
    assert path.read_text() == "hello\n"
    assert oct(path.stat().st_mode & 0o777) != oct(0o600)  # readable like any report, not mkstemp's private mode
    assert sha256_file(path) == "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"


_HOLD = """
import sys, time
from edgecnn.core.files import staged_output
with staged_output(sys.argv[1], force=False) as staging:
    (staging / "a.txt").write_text("first")
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder(out, seconds):
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(out), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_a_second_writer_is_refused_at_once_naming_the_first(tmp_path):
    out = tmp_path / "out"
    first = _holder(out, 3)
    try:
        with pytest.raises(ArtifactError, match=rf"being written by process {first.pid} .*since"):
            with staged_output(out, force=True) as staging:
                (staging / "b.txt").write_text("second")
    finally:
        first.wait(timeout=30)
    assert first.returncode == 0
    assert _names(out) == ["a.txt"]  # the first writer's folder, whole
    assert not list(tmp_path.glob(".out.*"))  # no lock, no staging left


def test_a_dead_writers_lock_is_taken_over_and_said(tmp_path):
    out = tmp_path / "out"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / ".out.lock").write_text(
        f'{{"pid": {int(dead.stdout)}, "command": "edgecnn export x", "since": "then"}}'
    )
    notes = []
    with staged_output(out, force=False, notes=notes) as staging:
        (staging / "a.txt").write_text("new")
    assert (out / "a.txt").read_text() == "new"
    assert len(notes) == 1 and f"left by process {int(dead.stdout)}" in notes[0]
    assert not (tmp_path / ".out.lock").exists()


def test_sigterm_removes_the_staging_folder_like_ctrl_c(tmp_path):
    import signal

    out = tmp_path / "out"
    proc = _holder(out, 30)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert not out.exists()
    assert not list(tmp_path.glob(".out.*"))  # staging and lock both gone


def test_force_through_a_symlink_keeps_the_link_and_leaves_nothing_behind(tmp_path):
    real = tmp_path / "real"
    _written(real, **{"old.txt": "old"})
    link = tmp_path / "link"
    link.symlink_to(real)
    with staged_output(link, force=True) as staging:
        (staging / "new.txt").write_text("new")
    assert link.is_symlink() and _names(link) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]
