"""The options several commands share, defined once so that each spelling means one thing everywhere.

``--ep``: a comma list of execution providers in priority order for ONE session (``cuda,cpu``).
``--each-ep``: (bench, validate) entries run each on its own session (``cpu,cuda``); ``+`` joins a priority
list inside one entry (``cpu,tensorrt+cuda``). ``--json``: a flag, JSON on stdout. ``--json-out FILE``: JSON
written to a file (refused when it exists, unless ``--force``).
"""

from __future__ import annotations

from pathlib import Path

import typer

EP_HELP = "Execution providers for one session, comma-separated in priority order (e.g. cuda,cpu)."
EACH_EP_HELP = (
    "Instead of --ep: provider entries each run on its own session, comma-separated (cpu,cuda); "
    "join with + for one session with a priority list (cpu,tensorrt+cuda)."
)


def ep_option(default: str | None = "cpu", extra: str = "") -> str | None:
    return typer.Option(default, "--ep", help=EP_HELP + extra)


def each_ep_option() -> str | None:
    return typer.Option(None, "--each-ep", help=EACH_EP_HELP)


def json_option(what: str = "the result") -> bool:
    return typer.Option(False, "--json", help=f"Print {what} as JSON on stdout instead of text.")


def json_out_option() -> Path | None:
    return typer.Option(
        None, "--json-out", help="Also write the results as JSON to this file (refused when it exists, unless --force)."
    )


def threads_option() -> int | None:
    return typer.Option(None, "--threads", min=1, help="Intra-op threads (and torch threads).")


def input_size_option(help_text: str = "S or HxW (default: the model's).") -> str | None:
    return typer.Option(None, "--input-size", help=help_text)


def force_option(what: str = "Replace an existing output.") -> bool:
    return typer.Option(False, "--force", help=what)


def out_option(help_text: str) -> Path | None:
    return typer.Option(None, "--out", "-o", help=help_text)


def weights_option(help_text: str) -> str | None:
    return typer.Option(None, "--weights", "-w", help=help_text)


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
