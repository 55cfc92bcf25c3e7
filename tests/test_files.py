"""The shared file helpers: staged output folders and atomic text writes."""

import os
import subprocess
import sys

import pytest

from edgecnn.core.errors import ArtifactError
from edgecnn.core.files import sha256_file, staged_output, write_text_atomic


def test_staged_output_appears_only_when_complete(tmp_path):
    out = tmp_path / "out"
    with staged_output(out, force=False) as staging:
        (staging / "a.txt").write_text("new")
        assert not out.exists()  # nothing at the destination while the block runs
    assert (out / "a.txt").read_text() == "new"
    assert not list(tmp_path.glob(".out.*"))


def test_staged_output_refuses_a_full_folder_without_force(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    with pytest.raises(ArtifactError, match="already holds files.*--force"):
        with staged_output(out, force=False):
            pass
    assert (out / "keep.txt").read_text() == "old"


def test_staged_output_failure_keeps_the_old_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with staged_output(out, force=True) as staging:
            (staging / "half.txt").write_text("partial")
            raise RuntimeError("conversion failed")
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert not list(tmp_path.glob(".out.*"))  # the staging folder is gone too


def test_staged_output_force_replaces_the_whole_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    with staged_output(out, force=True) as staging:
        (staging / "fresh.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["fresh.txt"]


def test_staged_output_clears_a_dead_process_staging_folder(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
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
