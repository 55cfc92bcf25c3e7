"""The fault catalogue: bad inputs and faults a user can cause, one row each (issue 15; inputs made by
tests/catalogue_setups.py).

Each row names the command line, how its inputs are made, the exit code and the message fragment the user
sees, the files whose sha256 must not change, and the guarantee it stands for. ``tests/test_catalogue.py`` runs
the rows; ``tools/reliability_report.py`` writes docs/RELIABILITY.md from them. Placeholders in ``argv``:
``{tmp}`` (the case's folder), ``{onnx}`` / ``{bundle}`` / ``{export}`` (the shared tiny export, copied into
``{tmp}`` so nothing a case does reaches another), ``{seg}`` (a tiny segmentation model), ``{img}`` (a photo).
"""

from __future__ import annotations

from catalogue_case import Case
from catalogue_setups import *  # noqa: F401,F403  (the setup functions the rows name)
from catalogue_setups import MARKER  # noqa: F401


def _export(*extra):
    return ("export", "mobilenet_v1", "--input-size", "32", "--out", "{tmp}/out", *extra)


CASES: list[Case] = [
    # --- names and option values ---------------------------------------------------------------------------
    Case(
        "export-unknown-model",
        ("export", "mobilenet_v9", "--out", "{tmp}/out"),
        2,
        "mobilenet_v9",
        "an unknown or mistyped model name is one line (with the closest names), nothing written",
    ),
    Case("export-opset-abc", _export("--opset", "abc"), 2, "--opset", "a bad option value is one line, no usage box"),
    Case("export-int8-bogus", _export("--int8", "bogus"), 2, "bogus", "a bad option value is one line"),
    Case(
        "export-num-classes-0",
        _export("--num-classes", "0"),
        2,
        "num-classes",
        "class counts are range-checked (>= 1): 0 is not taken as 'the default'",
    ),
    Case(
        "export-num-classes-negative",
        _export("--num-classes", "-5"),
        2,
        "num-classes",
        "class counts are range-checked, without a traceback",
    ),
    Case(
        "export-calib-method-without-int8",
        _export("--calib-method", "entropy"),
        2,
        "only applies with --int8",
        "an option that only applies with another says so",
    ),
    Case(
        "export-int8-weight-bits-6",
        _export("--int8", "--int8-weight-bits", "6"),
        2,
        "must be 7 or 8",
        "a weight width int8 cannot use is refused before anything is written",
    ),
    Case(
        "export-int8-weight-bits-without-int8",
        _export("--int8-weight-bits", "8"),
        2,
        "only applies with --int8",
        "an option that only applies with another says so",
    ),
    Case(
        "export-input-size-huge",
        _export("--input-size", "10000x10000"),
        2,
        "4096",
        "input sizes have a stated ceiling; nothing runs out of memory",
    ),
    Case("export-input-size-text", _export("--input-size", "big"), 2, "input size 'big'", "a bad size is one line"),
    Case(
        "export-weights-unknown-name",
        _export("--weights", "imagenett"),
        2,
        "imagenett",
        "an unknown published checkpoint name is one line",
    ),
    # --- checkpoints -----------------------------------------------------------------------------------------
    Case(
        "export-weights-missing", _export("--weights", "{tmp}/nope.pth"), 2, "nope.pth", "a missing checkpoint is named"
    ),
    Case(
        "export-weights-truncated",
        _export("--weights", "{tmp}/c.pth"),
        2,
        "c.pth",
        "a truncated checkpoint is refused in one line",
        ckpt_truncated,
        ("c.pth",),
    ),
    Case(
        "export-weights-empty",
        _export("--weights", "{tmp}/c.pth"),
        2,
        "c.pth",
        "an empty checkpoint is refused in one line",
        ckpt_empty,
    ),
    Case(
        "export-weights-text",
        _export("--weights", "{tmp}/c.pth"),
        2,
        "c.pth",
        "a text file given as a checkpoint is refused in one line",
        ckpt_text,
        ("c.pth",),
    ),
    Case(
        "export-weights-directory",
        _export("--weights", "{tmp}/c.pth"),
        2,
        "folder",
        "a folder given as a checkpoint is called a folder (not 'does not exist')",
        ckpt_dir,
    ),
    Case(
        "export-weights-code",
        _export("--weights", "{tmp}/c.pth"),
        2,
        "c.pth",
        "a checkpoint whose pickle would run code is refused unread: the code never runs",
        ckpt_code,
        ("c.pth",),
        marker=True,
    ),
    Case(
        "export-weights-safetensors",
        _export("--weights", "{tmp}/c.safetensors"),
        2,
        "c.safetensors",
        "safetensors given as weights are read or refused in one line",
        ckpt_safetensors,
        ("c.safetensors",),
    ),
    Case(
        "export-weights-imagenet-torch-home-file",
        ("export", "resnet18", "--weights", "imagenet", "--out", "{tmp}/out"),
        2,
        "Not a directory",
        "a cache path that is a file is one line naming it",
        torch_home_file,
    ),
    Case(
        "export-weights-imagenet-home-unwritable",
        ("export", "resnet18", "--weights", "imagenet", "--out", "{tmp}/out"),
        2,
        "home/.cache",
        "an unwritable HOME/cache is one line naming the path (not 'without network')",
        home_is_file,
        ("home",),
    ),
    Case(
        "export-weights-imagenet-offline",
        ("export", "resnet18", "--weights", "imagenet", "--out", "{tmp}/out"),
        2,
        "network",
        "published weights without network: one line saying how to get them",
        offline,
    ),
    # --- calibration folders ---------------------------------------------------------------------------------
    Case(
        "export-calib-missing",
        _export("--int8", "--calib", "{tmp}/nope"),
        2,
        "nope",
        "a missing calibration folder is named",
    ),
    Case(
        "export-calib-empty", _export("--int8", "--calib", "{tmp}/cal"), 2, "cal", "an empty one is named", calib_empty
    ),
    Case(
        "export-calib-non-images",
        _export("--int8", "--calib", "{tmp}/cal"),
        2,
        "cal",
        "a folder of non-images is refused in one line",
        calib_text,
    ),
    Case(
        "export-calib-odd-modes-and-broken",
        _export("--int8", "--calib", "{tmp}/cal"),
        0,
        "skipped 1 unreadable image",
        "calibration converts L, RGBA, 16-bit, palette and CMYK images and lists the broken one it skipped",
        calib_odd,
        ("cal/c2.png",),
    ),
    Case(
        "export-calib-symlink-loop",
        _export("--int8", "--calib", "{tmp}/cal"),
        2,
        "cal",
        "a symlink loop does not hang or crash the search",
        calib_loop,
    ),
    Case(
        "export-calib-bomb",
        _export("--int8", "--calib", "{tmp}/cal"),
        2,
        "cal",
        "a decompression bomb is refused, not decoded",
        calib_bomb,
    ),
    # --- output folders --------------------------------------------------------------------------------------
    Case(
        "export-existing-without-force",
        ("export", "mobilenet_v1", "--out", "{tmp}/ex"),
        2,
        "--force",
        "an existing export is never replaced without --force",
        copy_export,
        ("ex/manifest.json", "ex/mobilenet_v1.fp32.onnx"),
    ),
    Case(
        "export-force-new-run-fails",
        ("export", "mobilenet_v1", "--int8", "--calib", "{tmp}/cal", "--out", "{tmp}/ex", "--force"),
        2,
        "cal",
        "--force over a good export whose new run fails keeps the good one, no staging left",
        copy_export_bad_calib,
        ("ex/manifest.json", "ex/mobilenet_v1.fp32.onnx"),
    ),
    Case(
        "export-out-dot-force",
        ("export", "mobilenet_v1", "--input-size", "32", "--calib-count", "8", "--out", ".", "--force"),
        0,
        "wrote",
        "'--out . --force' replaces the current folder's export like any other, no traceback",
        cwd_in_export,
    ),
    Case(
        "export-out-is-file",
        _export(),
        2,
        "is a file",
        "an output path that is a file is refused, file kept",
        out_is_file,
        ("out",),
    ),
    Case(
        "export-out-locked",
        _export(),
        2,
        "being written by process",
        "a second writer to one folder is refused at once, naming the first (pid, command, since)",
        locked_out,
    ),
    Case(
        "export-full-disk",
        ("export", "mobilenet_v1", "--input-size", "32", "--out", "{tmp}/full/out"),
        2,
        "No space left",
        "a full disk is one line naming the path; no half-written file stays",
        full_disk,
    ),
    # --- model files -----------------------------------------------------------------------------------------
    Case("predict-missing-model", ("predict", "{tmp}/nope.onnx", "{img}"), 2, "nope.onnx", "a missing model is named"),
    Case(
        "predict-onnx-empty",
        ("predict", "{tmp}/m.onnx", "{img}"),
        2,
        "m.onnx",
        "an empty .onnx is one line",
        onnx_bytes(b""),
    ),
    Case(
        "predict-onnx-random",
        ("predict", "{tmp}/m.onnx", "{img}"),
        2,
        "m.onnx",
        "random bytes are one line",
        onnx_bytes(bytes(range(256)) * 8),
    ),
    Case(
        "predict-onnx-truncated",
        ("predict", "{tmp}/m.onnx", "{img}"),
        2,
        "m.onnx",
        "a truncated .onnx is one line",
        onnx_truncated,
    ),
    Case(
        "predict-onnx-external-outside",
        ("predict", "{tmp}/m/m.onnx", "{img}"),
        2,
        "escapes",
        "external data outside the model's folder is refused, never read",
        onnx_external_outside,
    ),
    Case(
        "predict-onnx-unknown-op",
        ("predict", "{tmp}/m.onnx", "{img}"),
        2,
        "m.onnx",
        "an operator onnxruntime lacks is one line",
        onnx_unknown_op,
    ),
    Case(
        "bench-onnx-random",
        ("bench", "{tmp}/m.onnx", "--runs", "1", "--warmup", "0"),
        2,
        "m.onnx",
        "bench refuses a broken file in one line",
        onnx_bytes(b"\x00garbage"),
    ),
    Case(
        "validate-onnx-random",
        ("validate", "{tmp}/m.onnx"),
        2,
        "m.onnx",
        "validate refuses it in one line",
        onnx_bytes(b"\x00garbage"),
    ),
    Case(
        "mobile-onnx-random",
        ("mobile", "{tmp}/m.onnx", "--out", "{tmp}/mob"),
        2,
        "m.onnx",
        "mobile refuses it in one line",
        onnx_bytes(b"\x00garbage"),
    ),
    # --- predict -------------------------------------------------------------------------------------------
    Case("predict-missing-image", ("predict", "{onnx}", "{tmp}/nope.jpg"), 2, "nope.jpg", "a missing image is named"),
    Case(
        "predict-top-k-0",
        ("predict", "{onnx}", "{img}", "--top-k", "0"),
        2,
        "--top-k",
        "--top-k is range-checked in one line",
    ),
    Case(
        "predict-mixed-folder",
        ("predict", "{onnx}", "{tmp}/photos"),
        1,
        "broken.png",
        "good images are predicted, broken ones listed; exit 1 when any was skipped",
        photos_mixed,
    ),
    Case(
        "predict-odd-modes",
        ("predict", "{onnx}", "{tmp}/photos"),
        0,
        "p3.png",
        "L, RGBA, 16-bit and palette images are converted, not misread",
        photos("L", "RGBA", "I;16", "P"),
    ),
    Case("predict-cmyk", ("predict", "{onnx}", "{tmp}/photos"), 0, "p.jpg", "CMYK JPEGs are converted", photos_cmyk),
    Case(
        "predict-masks-classifier",
        ("predict", "{onnx}", "{img}", "--save-masks", "{tmp}/masks"),
        2,
        "segmentation",
        "--save-masks on a classifier says it is for segmentation models",
    ),
    Case(
        "predict-masks-over-inputs",
        ("predict", "{seg}", "{tmp}/photos", "--save-masks", "{tmp}/photos"),
        2,
        "input",
        "masks are never written over the input images",
        photos("RGB", "RGB"),
        ("photos/p0.png", "photos/p1.png"),
    ),
    Case(
        "predict-masks-existing-file",
        ("predict", "{seg}", "{tmp}/photos", "--save-masks", "{tmp}/masks"),
        2,
        "--force",
        "an existing file with a mask's name is not replaced without --force",
        photos_with_mask_name,
        ("masks/p0.png", "photos/p0.png"),
    ),
    Case(
        "predict-masks-regular-file",
        ("predict", "{seg}", "{tmp}/photos", "--save-masks", "{tmp}/masks"),
        2,
        "masks",
        "--save-masks naming a file is one line, the file kept",
        photos_masks_file,
        ("masks",),
    ),
    Case(
        "predict-masks-existing-force",
        ("predict", "{seg}", "{tmp}/photos", "--save-masks", "{tmp}/masks", "--force"),
        0,
        "p0.png",
        "with --force an existing mask-named file is replaced; the inputs never are",
        photos_with_mask_name,
        ("photos/p0.png",),
    ),
    Case(
        "predict-wrong-channels",
        ("predict", "{tmp}/m.onnx", "{img}", "--mean", "0.5", "--std", "0.5"),
        0,
        "photo.png",
        "an RGB photo is converted to the channel count the model takes (here 1)",
        onnx_one_channel,
    ),
    Case(
        "predict-masks-ok",
        ("predict", "{seg}", "{tmp}/photos", "--save-masks", "{tmp}/masks"),
        0,
        "p0.png",
        "masks go to a new folder",
        photos("RGB"),
    ),
    # --- bench outputs -------------------------------------------------------------------------------------
    Case(
        "bench-json-out-exists",
        ("bench", "{onnx}", "--runs", "1", "--warmup", "0", "--json-out", "{tmp}/r.json"),
        2,
        "--force",
        "bench never replaces a file without --force",
        bench_out_exists,
        ("r.json",),
    ),
    Case("bench-runs-text", ("bench", "{onnx}", "--runs", "many"), 2, "--runs", "a bad option value is one line"),
    # --- bundles -------------------------------------------------------------------------------------------
    Case("selftest-ok", ("selftest", "{tmp}/b"), 0, "files match", "a good bundle passes", bundle_copy),
    Case(
        "selftest-flipped-byte",
        ("selftest", "{tmp}/b"),
        2,
        "sha256 differs",
        "a flipped byte is found before any model runs",
        bundle_flipped,
    ),
    Case(
        "selftest-edited-json",
        ("selftest", "{tmp}/b"),
        2,
        "sha256 differs",
        "an edited bundle.json is found",
        bundle_edited,
    ),
    Case("selftest-missing-file", ("selftest", "{tmp}/b"), 2, "missing", "a missing file is named", bundle_missing),
    Case(
        "selftest-path-escapes",
        ("selftest", "{tmp}/b"),
        2,
        "outside",
        "a bundle.json path climbing out of the bundle is refused, never opened",
        bundle_escape("../../../../etc/passwd"),
    ),
    Case(
        "selftest-path-absolute",
        ("selftest", "{tmp}/b"),
        2,
        "absolute",
        "an absolute path in bundle.json is refused, never opened",
        bundle_escape("/etc/passwd"),
    ),
    Case(
        "selftest-golden-pickle",
        ("selftest", "{tmp}/b"),
        2,
        "golden",
        "a pickle in golden.npz never runs",
        bundle_pickle,
        marker=True,
    ),
    Case("selftest-not-a-bundle", ("selftest", "{tmp}"), 2, "bundle", "a folder without bundle.json is one line"),
]

# --- the second catalogue (issue 28), one module per theme, each with its own setups ---------------------------
from catalogue_malformed import CASES as _MALFORMED  # noqa: E402
from catalogue_memory import CASES as _MEMORY  # noqa: E402
from catalogue_misc import CASES as _MISC  # noqa: E402
from catalogue_ownership import CASES as _OWNERSHIP  # noqa: E402

CASES += _OWNERSHIP + _MEMORY + _MALFORMED + _MISC
