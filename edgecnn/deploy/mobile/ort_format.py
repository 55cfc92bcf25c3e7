"""ORT-format files (``.ort``) for onnxruntime's mobile builds, by onnxruntime's own converter."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ...core.errors import ArtifactError


def convert_to_ort(onnx_path: Path, out_dir: Path) -> tuple[list[tuple[Path, str]], list[str]]:
    """Convert ``onnx_path`` to ORT format with onnxruntime's converter, in a subprocess of this Python.

    Both optimisation styles are written (see the module notes); the target platform is ``arm`` (phones), which
    only keeps the x86-specific NCHWc layout out and allows int8 QDQ fusions. The converter runs as its own
    process because it prints progress and onnxruntime logs on the C++ side, which a library call cannot
    silence; its output is kept for the error message when it fails.

    Returns:
        ``([(ort_path, kind), ...], [config file names])``.
    """
    work = Path(tempfile.mkdtemp(prefix=".ort-", dir=out_dir))
    try:
        cmd = [
            sys.executable,
            "-m",
            "onnxruntime.tools.convert_onnx_models_to_ort",
            str(onnx_path.resolve()),
            "--output_dir",
            str(work.resolve()),
            "--optimization_style",
            "Fixed",
            "Runtime",
            "--target_platform",
            "arm",
        ]
        env = {**os.environ, "ORT_CONVERT_ONNX_MODELS_TO_ORT_OPTIMIZATION_LEVEL": "all"}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        stem = onnx_path.name[: -len(".onnx")]
        wanted = {f"{stem}.ort": "ort", f"{stem}.with_runtime_opt.ort": "ort-runtime-opt"}
        missing = [name for name in wanted if not (work / name).is_file()]
        if proc.returncode != 0 or missing:
            lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
            why = next((ln for ln in reversed(lines) if "rror" in ln), lines[-1] if lines else "no output")
            raise ArtifactError(f"ORT-format conversion of {onnx_path.name} failed: {why.strip()[:300]}")
        orts = []
        for name, kind in wanted.items():
            os.replace(work / name, out_dir / name)
            orts.append((out_dir / name, kind))
        configs = []
        for cfg in sorted(work.glob("*.config")):
            # <stem>.required_operators[.with_runtime_opt].config → required_operators[...].config
            name = cfg.name[len(stem) + 1 :] if cfg.name.startswith(stem + ".") else cfg.name
            os.replace(cfg, out_dir / name)
            configs.append(name)
        return orts, configs
    finally:
        shutil.rmtree(work, ignore_errors=True)
