"""ExecuTorch's Python runtime behind the ``Runner`` interface: a ``.pte`` file run with the XNNPACK delegate
compiled into it at export.

ExecuTorch's Python runtime takes and returns torch tensors and loads libtorch first, so torch (and executorch) are
imported inside the functions that open and run a file, never at import: the device install imports
``runtime/`` whole and meets the one-line install hint only when it opens a ``.pte``.

What differs from onnxruntime, and is said where it shows:

- the delegate is chosen when the file is written (``convert/targets/pte.py``): ``cpu`` and ``xnnpack`` open the
  same file, any other provider is refused in one line;
- XNNPACK's thread pool is one per process, and a loaded method keeps the pool it was loaded with: ``threads``
  sizes the pool before the file is loaded, and a different count while other .pte files are open is refused in
  one line (a reset under them would crash their next run); ``info()`` reports the count read back from the pool;
- the file is static-shape, batch 1, so ``runtime.session.run_batched`` feeds it one image at a time;
- the card is a constant method, ``edgecnn_card``, returning the JSON of ``ModelCard.to_metadata()``;
- a quantized-I/O file (int8 in and out) carries its scales as constant methods (``forward_input0_scale`` …):
  floats fed to it are quantized with them, its int8 outputs come back as they are (``io_quantization`` says
  how to read them);
- a damaged file is checked before the runtime sees it: ExecuTorch aborts the whole process (no exception) when
  a name it logs is not UTF-8, as a flipped byte in the file identifier makes it;
- what was delegated is read from the program itself (its flatbuffer: delegate ids, delegate calls, kernels left
  outside) and, where the exporter stored it, from the card's ``extra["delegation"]`` (node counts).
"""

from __future__ import annotations

import json
import weakref
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ...core.card import ModelCard
from ...core.errors import ArtifactError, InputError, ProviderUnavailableError, first_line
from ..providers import _split, get_provider
from ..runner import IOSpec, Runner, RunnerOptions

NAME = "executorch"
CARD_METHOD = "edgecnn_card"
INSTALL = 'a .pte runs on ExecuTorch\'s Python runtime, which needs torch: pip install "edgecnn[executorch]"'
#: Provider names a .pte opens with: its delegate was compiled in at export, so both mean "as the file says".
ACCEPTED = ("xnnpack", "cpu")

# ExecuTorch's ScalarType codes (runtime/core/portable_type/scalar_type.h) → numpy dtype and ONNX type string
_SCALAR = {
    0: (np.uint8, "tensor(uint8)"),
    1: (np.int8, "tensor(int8)"),
    3: (np.int32, "tensor(int32)"),
    4: (np.int64, "tensor(int64)"),
    5: (np.float16, "tensor(float16)"),
    6: (np.float32, "tensor(float)"),
    7: (np.float64, "tensor(double)"),
    11: (np.bool_, "tensor(bool)"),
}


def _modules():
    """ExecuTorch's runtime and its pybindings module (threads live there), or the one-line install hint."""
    import warnings

    try:
        import torch  # noqa: F401 - the pybindings resolve libtorch's symbols: torch loads first

        with warnings.catch_warnings():  # "experimental API" on every import: not the user's concern
            warnings.simplefilter("ignore")
            from executorch.extension.pybindings import portable_lib
            from executorch.runtime import Runtime
    except ImportError:
        raise InputError(INSTALL) from None
    return Runtime.get(), portable_lib


def _check_providers(providers) -> None:
    for name in _split(providers):
        key = name.strip().lower()
        if key in ACCEPTED:
            continue
        try:
            if get_provider(name).name == "cpu":
                continue
        except ProviderUnavailableError:
            pass
        raise ProviderUnavailableError(
            f"a .pte runs the delegate compiled into it at export (XNNPACK on the CPU), not {name!r}: "
            f"open it with --ep {' or '.join(ACCEPTED)}, or export it again for another delegate"
        )


# Methods loaded in this process and still referenced (by a runner or a closure from ``bind``). XNNPACK keeps the
# thread pool a method was loaded with: resetting the pool under a loaded method leaves it a dangling pool (a
# segfault on its next run, measured), so the pool changes only while none is alive.
_LOADED: weakref.WeakSet = weakref.WeakSet()


def _claim_threads(lib, threads: int | None) -> None:
    """Size XNNPACK's process-wide pool to ``threads`` before a method is loaded (``None``: leave it)."""
    if not threads:
        return
    current = lib._threadpool_get_thread_count()
    if current == threads:
        return
    if len(_LOADED):
        raise InputError(
            f"ExecuTorch's thread pool is one per process and runs {current} threads for the .pte files open in it: "
            f"close them before opening one with {threads} threads, or open it with {current}"
        )
    lib._unsafe_reset_threadpool(int(threads))


def _spec(name: str, meta) -> IOSpec:
    dtype, onnx_type = _SCALAR.get(meta.dtype(), (None, f"tensor(scalar_type {meta.dtype()})"))
    return IOSpec(name, tuple(int(d) for d in meta.sizes()), np.dtype(dtype) if dtype else None, onnx_type)


def _names(base: str, count: int) -> list[str]:
    # one tensor keeps the card's name; more get an index (edgecnn's files have one input and one output)
    return [base] if count == 1 else [f"{base}_{i}" for i in range(count)]


def _read_card(program, shown: str) -> dict[str, str]:
    """The card stored in the ``edgecnn_card`` method, as metadata (``{}`` for a file without one)."""
    if CARD_METHOD not in program.method_names:
        return {}
    try:
        (text,) = program.load_method(CARD_METHOD).execute([])
        metadata = json.loads(text)
    except Exception as exc:  # a damaged string or a method of another shape: the card cannot be trusted
        raise ArtifactError(f"{shown}: its {CARD_METHOD} method holds no readable card ({first_line(exc)})") from None
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ArtifactError(f"{shown}: its {CARD_METHOD} method holds no card (a JSON object of strings expected)")
    return metadata


def _read_io_quantization(program) -> dict:
    """The int8 input's and output's scale and zero point of a quantized-I/O file (``{}`` for float I/O), from the
    constant methods ExecuTorch's ``QuantizeInputs``/``QuantizeOutputs`` write (``forward_input0_scale`` …)."""
    out = {}
    for side in ("input", "output"):
        names = (f"forward_{side}0_scale", f"forward_{side}0_zp")
        if all(n in program.method_names for n in names):
            scale, zero = (program.load_method(n).execute([])[0] for n in names)
            out[side] = {"scale": float(scale), "zero_point": int(zero)}
    return out


def _program_bytes(path: Path) -> bytes:
    """The flatbuffer part of a .pte: its extended header (``eh00`` at byte 8) gives the size, so the weights
    stored in the segments after it are not read."""
    with path.open("rb") as f:
        head = f.read(32)
        if head[8:12] != b"eh00":
            return head + f.read()
        size = int.from_bytes(head[16:24], "little")
        if not len(head) <= size <= path.stat().st_size:
            raise ValueError(f"its header states a {size}-byte program in a {path.stat().st_size}-byte file")
        return head + f.read(size - len(head))


# Slots of program.fbs (file identifier ET12) that the delegation is read from: (table, field) → vtable offset
_PROGRAM_PLANS = 6
_PLAN_NAME, _PLAN_CHAINS, _PLAN_OPERATORS, _PLAN_DELEGATES = 4, 14, 16, 18
_CHAIN_INSTRUCTIONS = 8
_INSTRUCTION_TYPE, _INSTRUCTION_ARGS = 4, 6
_KERNEL_CALL, _DELEGATE_CALL = 1, 2  # the InstructionArguments union's tags
_NAME = 4  # Operator.name, BackendDelegate.id


def _tables(table, slot: int) -> list:
    """The tables of a vector field (``[]`` when absent)."""
    from flatbuffers.table import Table

    o = table.Offset(slot)
    if not o:
        return []
    start = table.Vector(o)
    return [Table(table.Bytes, table.Indirect(start + 4 * i)) for i in range(table.VectorLen(o))]


def _text(table, slot: int) -> str:
    o = table.Offset(slot)
    return table.String(o + table.Pos).decode() if o else ""


def _plan_delegation(plan) -> dict:
    from flatbuffers.number_types import Int32Flags, Uint8Flags
    from flatbuffers.table import Table

    operators = [_text(op, _NAME) for op in _tables(plan, _PLAN_OPERATORS)]
    calls, kernels = 0, Counter()
    for chain in _tables(plan, _PLAN_CHAINS):
        for instruction in _tables(chain, _CHAIN_INSTRUCTIONS):
            o = instruction.Offset(_INSTRUCTION_TYPE)
            kind = instruction.Get(Uint8Flags, o + instruction.Pos) if o else 0
            if kind == _DELEGATE_CALL:
                calls += 1
            elif kind == _KERNEL_CALL:
                args = Table(bytearray(), 0)
                instruction.Union(args, instruction.Offset(_INSTRUCTION_ARGS))
                index = args.Offset(_NAME)
                kernels[operators[args.Get(Int32Flags, index + args.Pos) if index else 0]] += 1
    backends = Counter(_text(d, _NAME) for d in _tables(plan, _PLAN_DELEGATES))
    return {"backends": dict(backends), "delegate_calls": calls, "kernels": dict(kernels)}


_PROGRAM_NAMED_DATA, _NAMED_DATA_KEY = 18, 4


def _check_strings(root) -> None:
    """Every name the runtime may print (named-data keys, delegate ids, operator names) must be UTF-8: ExecuTorch
    logs a name it cannot resolve through Python, and a damaged one aborts the whole process there (measured:
    a flipped byte in a key or in the file identifier), where this check makes it one line."""
    for entry in _tables(root, _PROGRAM_NAMED_DATA):
        _text(entry, _NAMED_DATA_KEY)
    for plan in _tables(root, _PROGRAM_PLANS):
        _text(plan, _PLAN_NAME)
        for table, slot in ((_PLAN_OPERATORS, _NAME), (_PLAN_DELEGATES, _NAME)):
            for item in _tables(plan, table):
                _text(item, slot)


def read_program(path: Path) -> dict:
    """Check a .pte's header and names before ExecuTorch's runtime sees it, and say what ran where, per method:
    ``{"forward": {"backends": {"XnnpackBackend": 1}, "delegate_calls": 1, "kernels": {"aten::…": n}}}``
    (kernels: the operators outside every delegate).

    Read from the file's flatbuffer, since ExecuTorch's Python runtime does not say which backends a method uses
    (and its generated Python reader of this version cannot walk nested tables).

    Raises:
        ArtifactError: not a .pte, or damaged where the runtime would abort the process instead of failing.
    """
    from flatbuffers.table import Table

    try:
        data = _program_bytes(path)
        if not (data[4:6] == b"ET" and data[6:8].isdigit()):
            raise ValueError("no ExecuTorch file identifier (ET12) at byte 4")
        root = Table(data, int.from_bytes(data[:4], "little"))
        _check_strings(root)
        return {_text(plan, _PLAN_NAME): _plan_delegation(plan) for plan in _tables(root, _PROGRAM_PLANS)}
    except Exception as exc:  # a damaged flatbuffer reads as garbage offsets or bytes that are no text
        raise ArtifactError(
            f"{path.name} is not a readable .pte ({first_line(exc)}): the file is damaged; export it again"
        ) from None


def program_delegation(path: Path) -> dict:
    """``read_program``'s delegation, or ``{}`` where the file cannot be read."""
    try:
        return read_program(path)
    except ArtifactError:
        return {}


class ExecuTorchRunner(Runner):
    """A ``.pte`` file's ``forward`` method on ExecuTorch's runtime.

    Attributes:
        path: the file.
        program: ExecuTorch's ``Program`` (its other methods, ``write_etdump_result_to_file``); ``None`` once closed.
        method: the loaded ``forward`` method; ``None`` once closed.
        io_quantization: a quantized-I/O file's ``{"input": {"scale", "zero_point"}, "output": {...}}``; ``{}``
            for float I/O. Floats fed to its int8 input are quantized with the input's; outputs are returned as
            the file gives them (int8), to be dequantized with the output's.
    """

    runtime = NAME

    def __init__(self, path: Path, threads: int | None) -> None:
        runtime, self._lib = _modules()
        self.path = path
        _claim_threads(self._lib, threads)
        shown = path.name
        self._delegation = read_program(path).get("forward", {})  # first: a damaged name would abort the runtime
        try:
            self.program = runtime.load_program(path)
            if "forward" not in self.program.method_names:
                raise ArtifactError(f"{shown} has no forward method; export it again")
            self.method = self.program.load_method("forward")
            _LOADED.add(self.method)
        except ArtifactError:
            raise
        except Exception as exc:
            raise ArtifactError(
                f"{shown}: ExecuTorch cannot load it ({first_line(exc)}); the file is damaged or was written by "
                "another ExecuTorch version: export it again"
            ) from None
        self.metadata = _read_card(self.program, shown)
        card = ModelCard.from_metadata(self.metadata, shown)
        meta = self.method.metadata
        ins, outs = meta.num_inputs(), meta.num_outputs()
        in_names = _names(card.input_name if card else "input", ins)
        out_names = _names(card.output_name if card else "output", outs)
        self.inputs = tuple(_spec(n, meta.input_tensor_meta(i)) for i, n in enumerate(in_names))
        self.outputs = tuple(_spec(n, meta.output_tensor_meta(i)) for i, n in enumerate(out_names))
        self._card_delegation = (card.extra or {}).get("delegation") if card else None
        self.io_quantization = _read_io_quantization(self.program)

    def _tensors(self, feeds: Mapping[str, np.ndarray]) -> list:
        import torch

        missing = [s.name for s in self.inputs if s.name not in feeds]
        if missing:
            raise InputError(f"{self.path.name} needs input {missing[0]!r}; given: {', '.join(feeds) or 'none'}")
        tensors = []
        for spec in self.inputs:
            array = np.asarray(feeds[spec.name])
            quant = self.io_quantization.get("input")
            if quant and array.dtype.kind == "f" and spec.dtype is not None and spec.dtype.kind == "i":
                # a quantized-I/O file fed floats: quantized as the file's own first layer would have
                info = np.iinfo(spec.dtype)
                array = np.clip(np.round(array / quant["scale"]) + quant["zero_point"], info.min, info.max)
            array = np.ascontiguousarray(array, dtype=spec.dtype)
            if array.shape != spec.shape:
                raise InputError(
                    f"{self.path.name} takes {spec.name} of shape {'x'.join(map(str, spec.shape))} only "
                    f"(a .pte is static-shape), got {'x'.join(map(str, array.shape))}"
                )
            tensors.append(torch.from_numpy(array))
        return tensors

    def _method(self):
        if self.method is None:
            raise InputError(f"{self.path.name} was closed: open it again to run it")
        return self.method

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> list[np.ndarray]:
        results = self._method().execute(self._tensors(feeds))
        names = [s.name for s in self.outputs]
        wanted = list(outputs) if outputs else names
        unknown = [n for n in wanted if n not in names]
        if unknown:
            raise InputError(f"{self.path.name} has no output {unknown[0]!r}; outputs: {', '.join(names)}")
        return [results[names.index(n)].numpy() for n in wanted]

    def bind(self, feeds: Mapping[str, np.ndarray]):
        execute, tensors = self._method().execute, self._tensors(feeds)  # made once, outside the timed call
        return lambda: execute(tensors)

    def info(self) -> dict:
        backends = self._delegation.get("backends") or {}
        delegation = dict(self._delegation)
        if self._card_delegation:
            delegation["export"] = self._card_delegation
        return {
            "runtime": NAME,
            "providers": ["xnnpack"] if "XnnpackBackend" in backends else ["cpu"],
            "device": "cpu",
            "threads": self._lib._threadpool_get_thread_count(),
            "backend": "executorch",
            "delegation": delegation,
            **({"io_quantization": self.io_quantization} if self.io_quantization else {}),
        }

    def node_assignment(self) -> dict[str, int] | None:
        """Nodes per side, as the exporter counted them (``{"xnnpack": 205, "cpu": 0}``); ``None`` without its
        record (the program keeps a delegate as one opaque call, not its nodes)."""
        counts = self._card_delegation or {}
        if "delegated_nodes" not in counts:
            return None
        return {"xnnpack": int(counts["delegated_nodes"]), "cpu": int(counts.get("other_nodes", 0))}

    def close(self) -> None:
        """Let go of the program, so that a later runner may set another thread count (once no bound call holds
        the method either); the pool itself is left as it is."""
        self.method = self.program = None


def open_executorch(source, options: RunnerOptions) -> ExecuTorchRunner:
    """The ``executorch`` opener: a ``.pte`` path, with ``options.providers`` (``cpu``/``xnnpack``) and
    ``options.threads`` (XNNPACK's thread pool)."""
    _check_providers(options.providers)
    if isinstance(source, bytes):
        raise InputError("a .pte opens from its file: give the path, not its bytes")
    path = Path(source)
    if not path.is_file():
        raise ArtifactError(f"model file not found: {path}")
    return ExecuTorchRunner(path, options.threads)
