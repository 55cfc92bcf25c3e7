"""ExecuTorch, one runtime behind ``runtime.runner``: ``runner`` opens a ``.pte`` on ExecuTorch's Python runtime.

Importing this package imports neither torch nor executorch (the device install imports ``runtime/`` whole); opening
a file does, and without them says in one line what to install.
"""

from __future__ import annotations

from .runner import ACCEPTED, CARD_METHOD, NAME, ExecuTorchRunner, open_executorch, program_delegation, read_program

__all__ = [
    "ACCEPTED",
    "CARD_METHOD",
    "NAME",
    "ExecuTorchRunner",
    "open_executorch",
    "program_delegation",
    "read_program",
]
