"""Where the numbers were measured (CPU, versions, GPU) and how much memory a session took."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .results import MachineInfo


def _cpuinfo() -> tuple[str, int | None]:
    model, cores = platform.processor() or platform.machine(), set()
    try:
        phys = core = None
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "model name":
                    model = value
                elif key == "physical id":
                    phys = value
                elif key == "core id":
                    core = value
                elif not key and core is not None:
                    cores.add((phys, core))
                    phys = core = None
        if core is not None:
            cores.add((phys, core))
    except OSError:
        pass
    return model, (len(cores) or None)


def _nvidia_smi(*args: str) -> list[str] | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, *args], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [line.strip() for line in out.splitlines() if line.strip()]


def machine_info(*, gpu: bool = False, torch_version: str | None = None) -> MachineInfo:
    """Describe this machine and the library versions; ``gpu`` asks nvidia-smi for the GPU name."""
    cpu_model, physical = _cpuinfo()
    try:
        import onnx

        onnx_version = onnx.__version__
    except ImportError:
        onnx_version = None
    gpu_name = None
    if gpu:
        names = _nvidia_smi("--query-gpu=name", "--format=csv,noheader")
        gpu_name = ", ".join(names) if names else None
    return MachineInfo(
        cpu_model=cpu_model,
        logical_cores=os.cpu_count() or 1,
        physical_cores=physical,
        platform=platform.platform(),
        python=platform.python_version(),
        onnxruntime=ort.__version__,
        onnx=onnx_version,
        numpy=np.__version__,
        torch=torch_version,
        gpu=gpu_name,
        date=_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
    )


def cpu_has_vnni() -> bool | None:
    """Whether the CPU has VNNI (one-instruction int8 dot products: avx512_vnni, avx_vnni, or AMX); None if unknown.

    An int8 file with 8-bit weights is exact only there (or on ARM): x86 without VNNI saturates int16 sums."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    if not flags:
        return None
    return bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})


# ------------------------------------------------------------------------------------------------ memory


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _max_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0  # bytes on macOS, kB on Linux


def _gpu_mem_mb() -> float | None:
    rows = _nvidia_smi("--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits")
    if rows is None:
        return None
    total, found = 0.0, False
    for row in rows:
        parts = [p.strip() for p in row.split(",")]
        if len(parts) == 2 and parts[0] == str(os.getpid()):
            try:
                total += float(parts[1])
                found = True
            except ValueError:
                pass
    return total if found else None


def _r(x: float | None, nd: int = 2) -> float | None:
    return None if x is None else round(float(x), nd)


def _affinity() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS / Windows
        return os.cpu_count() or 1
