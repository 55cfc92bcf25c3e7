"""The options several commands share, defined once so that each spelling means one thing everywhere.

Each is an ``Annotated`` type a command names in its signature (``ep: Ep = "cpu"``); the fixed choices are
``str`` Enums. ``--ep``: a comma list of execution providers in priority order for ONE session (``cuda,cpu``).
``--each-ep``: (bench, validate) entries run each on its own session (``cpu,cuda``); ``+`` joins a priority
list inside one entry (``cpu,tensorrt+cuda``). ``--json``: a flag, JSON on stdout. ``--json-out FILE``: JSON
written to a file (refused when it exists, unless ``--force``).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

EP_HELP = "Execution providers for one session, comma-separated in priority order (e.g. cuda,cpu)."
EACH_EP_HELP = (
    "Instead of --ep: provider entries each run on its own session, comma-separated (cpu,cuda); "
    "join with + for one session with a priority list (cpu,tensorrt+cuda)."
)
JSON_HELP = "Print the result as JSON on stdout instead of text."
FORCE_HELP = "Replace what exists (only once the new one is complete)."
INPUT_SIZE_HELP = "S or HxW (default: the model's)."


class Precision(str, Enum):
    """An artifact's number format."""

    fp32 = "fp32"
    fp16 = "fp16"
    int8 = "int8"


class CalibMethod(str, Enum):
    """How int8 ranges are calibrated (auto: try each, keep the best agreement)."""

    minmax = "minmax"
    entropy = "entropy"
    percentile = "percentile"
    auto = "auto"


class Int8Policy(str, Enum):
    """``--int8`` (static QDQ) or ``--int8 auto`` (the fastest form that meets parity)."""

    static = "static"
    auto = "auto"


class GraphOpt(str, Enum):
    """onnxruntime's graph optimization level."""

    disable = "disable"
    basic = "basic"
    extended = "extended"
    all = "all"


class Runtime(str, Enum):
    """Where ``selftest`` runs the models."""

    python = "python"
    node = "node"
    browser = "browser"


class LabelsFrom(str, Enum):
    """Where ``eval`` takes the class of each folder from."""

    card = "card"
    folder = "folder"


# --- providers ---
Ep = Annotated[str, typer.Option("--ep", help=EP_HELP)]
EpDefaultCpu = Annotated[str | None, typer.Option("--ep", help=EP_HELP + " Default: cpu.")]
EachEp = Annotated[str | None, typer.Option("--each-ep", help=EACH_EP_HELP)]
Threads = Annotated[int | None, typer.Option("--threads", min=1, help="Intra-op threads (and torch threads).")]
Browser = Annotated[str | None, typer.Option("--browser", help="The Chromium to drive (default: the system's).")]

# --- output ---
Json = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
JsonOut = Annotated[
    Path | None,
    typer.Option(
        "--json-out", help="Also write the results as JSON to this file (refused when it exists, unless --force)."
    ),
]
MdOut = Annotated[Path | None, typer.Option("--md", help="Also write markdown to this file (refused when it exists).")]
Force = Annotated[bool, typer.Option("--force", help=FORCE_HELP)]
Out = Annotated[Path | None, typer.Option("--out", "-o", help="Output folder (default: see the command's help).")]

# --- the model ---
InputSize = Annotated[str | None, typer.Option("--input-size", help=INPUT_SIZE_HELP)]
Weights = Annotated[
    str | None, typer.Option("--weights", "-w", help="A checkpoint file, or a published checkpoint name ('imagenet').")
]
Precisions = Annotated[
    str, typer.Option("--precision", help=f"Comma-separated: {', '.join(p.value for p in Precision)}.")
]
Labels = Annotated[Path | None, typer.Option("--labels", help="Text file with one class name per line.")]


def session_providers(ep: str | None) -> list[str]:
    """``--ep cuda,cpu`` → ``["cuda", "cpu"]``: one session's priority list (``+`` accepted as a comma)."""
    from ..runtime.providers import parse_entries

    return [name for entry in parse_entries((ep or "cpu").replace("+", ",")) for name in entry]


def provider_entries(ep: str | None, each_ep: str | None) -> list[list[str]]:
    """The sessions to run: ``--each-ep`` entries one by one, or the single ``--ep`` session."""
    from ..core.errors import InputError
    from ..runtime.providers import parse_entries

    if each_ep is not None and ep is not None:
        raise InputError("give --ep (one session) or --each-ep (each provider on its own), not both")
    if each_ep is not None:
        return parse_entries(each_ep)
    return [session_providers(ep)]


def refuse_existing(path: Path | None, force: bool, flag: str) -> None:
    """A file an option would write must not exist already, unless ``--force``."""
    from ..core.errors import InputError

    if path is not None and Path(path).exists() and not force:
        raise InputError(f"{flag} {path}: the file exists; pass --force to replace it")


def refuse_unused(given: dict[str, object], message: str) -> None:
    """The one "does not apply" check of a route: the flags in ``given`` that were set are refused in one line.

    Args:
        given: ``{"--flag": value}``; a value other than ``None`` and ``False`` means the user gave the flag.
        message: the line, with ``{flags}`` where the flags given go.
    """
    from ..core.errors import InputError

    used = [flag for flag, value in given.items() if value is not None and value is not False]
    if used:
        raise InputError(message.format(flags=", ".join(used)))
