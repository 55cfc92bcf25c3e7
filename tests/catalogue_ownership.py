"""Fault catalogue rows: ``--force`` replaces only what edgecnn wrote, no command writes over its own input, and a
lock whose pid was reused is taken over (gathered into tests/catalogue_cases.py's CASES; setups live here)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from catalogue_case import Case

LISTING = ".edgecnn-files.json"
TINY = ("export", "mobilenet_v1", "--input-size", "32", "--calib-count", "8")


def _copy_export(ctx):
    shutil.copytree(ctx.shared["export"], ctx.tmp / "ex")


def export_with_checkpoint_inside(ctx):
    _copy_export(ctx)
    (ctx.tmp / "ex" / "c.pth").write_bytes(b"a checkpoint the user keeps here")


def user_files_no_manifest(ctx):
    (ctx.tmp / "out").mkdir()
    (ctx.tmp / "out" / "thesis.txt").write_text("three years of work\n")
    (ctx.tmp / "out" / "holiday.png").write_bytes(b"\x89PNG not really")


def export_with_user_file(ctx):
    _copy_export(ctx)
    (ctx.tmp / "ex" / "notes.txt").write_text("my notes\n")


def export_with_user_file_in_mobile(ctx):
    export_with_mobile(ctx)
    (ctx.tmp / "ex" / "mobile" / "private.txt").write_text("mine\n")


def export_with_mobile(ctx):
    """An export with a mobile/ folder as `edgecnn mobile` writes it (its report names its files)."""
    _copy_export(ctx)
    mobile = ctx.tmp / "ex" / "mobile"
    mobile.mkdir()
    (mobile / "m.fixed.onnx").write_bytes(b"onnx")
    (mobile / "report.txt").write_text("report\n")
    (mobile / "report.json").write_text(
        json.dumps({"edgecnn_mobile_report": 1, "artifacts": [{"file": "m.fixed.onnx"}], "required_operators": []})
    )


def legacy_export(ctx):
    """An export as the release before listings wrote it: no .edgecnn-files.json, recognised by its manifest."""
    _copy_export(ctx)
    for listing in (ctx.tmp / "ex").rglob(LISTING):
        listing.unlink()
    (ctx.tmp / "ex" / "bundle" / "golden_0.png").unlink()  # the next row's check: files it names may be gone


def legacy_export_with_user_file(ctx):
    legacy_export(ctx)
    (ctx.tmp / "ex" / "bundle" / "todo.txt").write_text("mine\n")


def folder_of_exports(ctx):
    """Like exported/: a folder holding other exports, with no record of its own."""
    shutil.copytree(ctx.shared["export"], ctx.tmp / "all" / "a")
    shutil.copytree(ctx.shared["export"], ctx.tmp / "all" / "b")


def lock_pid_reused(ctx):
    """A lock whose pid now belongs to another live process: the recorded start time does not match it."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    ctx.cleanups.append(lambda: (sleeper.kill(), sleeper.wait()))
    (ctx.tmp / ".out.lock").write_text(
        json.dumps(
            {
                "pid": sleeper.pid,
                "command": "edgecnn export resnet18",
                "since": "2026-01-01T00:00:00+00:00",
                "started": "another-boot:12345",
            }
        )
    )


def sweep_folder_with_user_file(ctx):
    (ctx.tmp / "sw").mkdir()
    (ctx.tmp / "sw" / "sweep.json").write_text(json.dumps({"out_dir": "sw", "exports": [], "benchmarks": []}))
    (ctx.tmp / "sw" / "results.xlsx").write_bytes(b"mine")


_EX_KEEP = ("ex/manifest.json", "ex/mobilenet_v1.fp32.onnx", "ex/bundle/bundle.json", "ex/bundle/golden.npz")

CASES: list[Case] = [
    Case(
        "export-force-over-user-folder",
        (*TINY, "--out", "{tmp}/out", "--force"),
        2,
        "thesis.txt",
        "--force never replaces a folder holding files no edgecnn run wrote: one line naming some of them",
        user_files_no_manifest,
        ("out/thesis.txt", "out/holiday.png"),
    ),
    Case(
        "export-force-export-with-user-file",
        (*TINY, "--out", "{tmp}/ex", "--force"),
        2,
        "notes.txt",
        "--force over an export that also holds a user's file is refused, everything kept",
        export_with_user_file,
        ("ex/notes.txt", *_EX_KEEP),
    ),
    Case(
        "export-force-user-file-in-mobile",
        (*TINY, "--out", "{tmp}/ex", "--force"),
        2,
        "mobile/private.txt",
        "a user's file inside an edgecnn sub-folder (mobile/) is found too",
        export_with_user_file_in_mobile,
        ("ex/mobile/private.txt", *_EX_KEEP),
    ),
    Case(
        "export-force-replaces-mobile-and-says-so",
        (*TINY, "--out", "{tmp}/ex", "--force"),
        0,
        "replaced mobile/",
        "--force over an export replaces the mobile/ folder an earlier `edgecnn mobile` wrote, and says so",
        export_with_mobile,
    ),
    Case(
        "export-force-legacy-export",
        (*TINY, "--out", "{tmp}/ex", "--force"),
        0,
        "wrote",
        "an export written before listings existed is recognised by its manifest and replaced with --force",
        legacy_export,
    ),
    Case(
        "export-force-legacy-export-user-file",
        (*TINY, "--out", "{tmp}/ex", "--force"),
        2,
        "bundle/todo.txt",
        "in an older export, a file its records do not name is the user's: refused",
        legacy_export_with_user_file,
        ("ex/bundle/todo.txt", "ex/manifest.json", "ex/mobilenet_v1.fp32.onnx"),
    ),
    Case(
        "export-force-folder-of-exports",
        (*TINY, "--out", "{tmp}/all", "--force"),
        2,
        "another edgecnn output",
        "a folder of other exports (like exported/) is not an export: --force does not replace it",
        folder_of_exports,
        ("all/a/manifest.json", "all/b/mobilenet_v1.fp32.onnx"),
    ),
    Case(
        "mobile-out-over-source",
        ("mobile", "{tmp}/ex/mobilenet_v1.fp32.onnx", "--out", "{tmp}/ex", "--force"),
        2,
        "input",
        "mobile never writes its folder over its own source export, even with --force",
        _copy_export,
        _EX_KEEP,
    ),
    Case(
        "web-out-over-bundle",
        ("web", "{tmp}/ex/bundle", "--out", "{tmp}/ex/bundle", "--force"),
        2,
        "input",
        "web never writes its site over the bundle it reads, even with --force",
        _copy_export,
        _EX_KEEP,
    ),
    Case(
        "web-out-over-export",
        ("web", "{tmp}/ex", "--out", "{tmp}/ex", "--force"),
        2,
        "input",
        "web never writes its site over the export it reads",
        _copy_export,
        _EX_KEEP,
    ),
    Case(
        "export-weights-inside-out",
        (*TINY, "--weights", "{tmp}/ex/c.pth", "--out", "{tmp}/ex", "--force"),
        2,
        "input",
        "an export never replaces the folder holding its own checkpoint",
        export_with_checkpoint_inside,
        ("ex/c.pth", *_EX_KEEP),
    ),
    Case(
        "export-lock-pid-reused",
        (*TINY, "--out", "{tmp}/out"),
        0,
        "took over the lock",
        "a lock whose pid now belongs to an unrelated process (its start time differs) is stale: taken over, said",
        lock_pid_reused,
    ),
    Case(
        "sweep-force-user-file",
        ("sweep", "mobilenet_v1", "--out", "{tmp}/sw", "--force"),
        2,
        "results.xlsx",
        "sweep --force refuses a folder holding a user's file, before Ray starts",
        sweep_folder_with_user_file,
        ("sw/results.xlsx", "sw/sweep.json"),
    ),
]
