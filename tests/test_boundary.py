"""The device boundary: the torch-free commands run with the export stack unimportable, and the import graph
keeps the rooms apart (no cycles between rooms; runtime/core never reach torch or the exporting rooms)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "edgecnn"
BLOCKED = ("torch", "torchvision", "onnxscript", "onnxsim", "sklearn", "skimage")

# Run before edgecnn is imported: the export stack behaves as if it were not installed.
PRELUDE = f"""
import sys
BLOCKED = {BLOCKED!r}
class _NoExportStack:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
        return None
sys.meta_path.insert(0, _NoExportStack())
from edgecnn.cli import app
app(prog_name="edgecnn", args=sys.argv[1:])
"""


def edgecnn_without_torch(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", PRELUDE, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def device_files(tmp_path_factory):
    """A small export with a bundle, made with the real API (torch here), and one image."""
    from PIL import Image

    import edgecnn

    root = tmp_path_factory.mktemp("device")
    result = edgecnn.export("mobilenet_v2", root / "m", input_size=32, arch_options={"width_mult": 0.25}, bundle=True)
    onnx_file = next(p for p in sorted(result.out_dir.glob("*.onnx")) if "fp32" in p.name)
    bundle = result.out_dir / result.manifest["bundle"]["folder"]
    image = root / "cat.png"
    Image.new("RGB", (48, 40), (200, 120, 40)).save(image)
    return {"root": root, "onnx": onnx_file, "bundle": bundle, "image": image}


@pytest.mark.parametrize(
    "args",
    [
        ("list",),
        ("list", "--json"),
        ("info", "mobilenet"),
        ("info", "unet", "--json"),
        ("providers",),
        ("providers", "--json"),
    ],
)
def test_registry_and_provider_commands_run_without_torch(args, tmp_path):
    proc = edgecnn_without_torch(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if "--json" in args:
        json.loads(proc.stdout)


def test_predict_bench_selftest_run_without_torch(device_files):
    d = device_files
    proc = edgecnn_without_torch("predict", d["onnx"], d["image"], "--json", cwd=d["root"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(json.loads(proc.stdout)["results"]) == 1

    proc = edgecnn_without_torch("bench", d["onnx"], "--runs", "3", "--warmup", "1", "--json", cwd=d["root"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["results"][0]["providers_requested"] == ["cpu"]

    proc = edgecnn_without_torch("selftest", d["bundle"], cwd=d["root"])
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("args", [("export", "mobilenet"), ("bench", "{onnx}", "--torch", "--runs", "2")])
def test_export_stack_commands_say_the_extra_in_one_line(args, device_files):
    args = [a.format(onnx=device_files["onnx"]) for a in args]
    proc = edgecnn_without_torch(*args, cwd=device_files["root"])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("error: ") and "needs the export stack" in lines[0]
    assert 'pip install "edgecnn[export]"' in lines[0]


# --- the import graph ------------------------------------------------------------------------------------

ROOMS = ("core", "models", "convert", "runtime", "deploy", "pipeline", "cli")
DEVICE_ROOMS = ("core", "runtime")
FORBIDDEN_INTERNAL = ("edgecnn.convert", "edgecnn.models", "edgecnn.pipeline", "edgecnn.deploy")
ALLOWED_INTERNAL = ("edgecnn.models.specs",)
# None left: bench --torch's eager model is a runner the torch side registers (edgecnn/convert/torch_runner.py).
# ExecuTorch's Python runtime takes torch tensors: its runner imports torch inside the functions that open and run a
# .pte (never at import), as pyproject's forbidden contract also names; the device install refuses a .pte in one line.
KNOWN_DEVICE_VIOLATIONS: set[tuple[str, str]] = {("edgecnn.runtime.executorch.runner", "torch")}
# Where a runtime's session may be made: the runner folders behind runtime.runner.open_runner.
RUNNER_FOLDERS = ("runtime/onnxrt/", "runtime/openvino/", "runtime/litert/", "runtime/executorch/")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every module an import statement names (module level and inside functions), absolute, with its line."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, node.lineno))
            # `from . import zoo` names a submodule
            found.extend((f"{target}.{alias.name}", node.lineno) for alias in node.names)
    return found


def _graph() -> dict[str, list[tuple[str, int]]]:
    return {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "edgecnn" and len(parts) > 1 and parts[1] in ROOMS else None


def _room_cycles(graph) -> list[list[str]]:
    edges: dict[str, set[str]] = {r: set() for r in ROOMS}
    for module, targets in graph.items():
        src = _room(module)
        for target, _ in targets:
            dst = _room(target)
            if src and dst and src != dst and (target in graph or target.rpartition(".")[0] in graph):
                edges[src].add(dst)
    cycles, seen = [], set()

    def walk(node, trail):
        for nxt in sorted(edges[node]):
            if nxt in trail:
                cycle = trail[trail.index(nxt) :]
                key = frozenset(cycle)
                if key not in seen:
                    seen.add(key)
                    cycles.append(cycle + [nxt])
            else:
                walk(nxt, trail + [nxt])

    for room in ROOMS:
        walk(room, [room])
    return cycles


def _room_edges_detail(graph, a: str, b: str) -> list[str]:
    return [
        f"{m}:{line} -> {t}"
        for m, ts in graph.items()
        if _room(m) == a
        for t, line in ts
        if _room(t) == b and (t in graph or t.rpartition(".")[0] in graph)
    ]


def test_no_import_cycle_between_rooms():
    graph = _graph()
    cycles = _room_cycles(graph)
    detail = [
        " -> ".join(c) + ": " + "; ".join(_room_edges_detail(graph, x, y) for x, y in zip(c, c[1:])) for c in cycles
    ]
    assert not cycles, "\n".join(detail)


def test_runtime_and_core_stay_torch_free():
    bad = []
    for module, targets in _graph().items():
        if _room(module) not in DEVICE_ROOMS:
            continue
        for target, line in targets:
            top = target.split(".")[0]
            internal = (
                target.startswith(FORBIDDEN_INTERNAL)
                and not target.startswith(ALLOWED_INTERNAL)
                and target not in ("edgecnn.models",)
            )  # the package a `from ..models.specs` passes
            if (top in BLOCKED or internal) and (module, target) not in KNOWN_DEVICE_VIOLATIONS:
                bad.append(f"{module}:{line} imports {target}")
    assert not bad, "\n".join(bad)


def test_sessions_are_made_only_in_the_runner_folders():
    """One factory opens every model: an onnxruntime ``InferenceSession`` or an OpenVINO ``Core`` is created only
    inside runtime/onnxrt/ and runtime/openvino/."""
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(RUNNER_FOLDERS):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if name in ("InferenceSession", "Core"):
                    bad.append(f"edgecnn/{rel}:{node.lineno} calls {name}(")
    assert not bad, "\n".join(bad)


def test_openvino_config_does_not_import_its_runner():
    """The config ↔ session cycle stays broken: the runner imports the config, never the other way."""
    graph = _graph()
    back = [t for t, _ in graph["edgecnn.runtime.openvino.config"] if t.startswith("edgecnn.runtime.openvino.runner")]
    assert not back and any(
        t.startswith("edgecnn.runtime.openvino.config") for t, _ in graph["edgecnn.runtime.openvino.runner"]
    )
