"""Errors that describe what a user did wrong, in one plain sentence.

Every error a user can cause (a bad name, a bad file, a bad option) is an ``EdgeCNNError``;
the CLI prints its message on one line and exits non-zero. Anything else is a bug in edgecnn.
"""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (libraries such as onnx and onnxruntime write pages), or its
    type's name when it has none: what a one-line error can quote."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class EdgeCNNError(Exception):
    """Base class: a problem with the user's input, explained in the message."""

    exit_code = 2


class UnknownModelError(EdgeCNNError, KeyError):
    """A model name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class CheckpointError(EdgeCNNError):
    """A checkpoint that cannot be read or does not fit the architecture."""


class InputError(EdgeCNNError):
    """An input (image, tensor shape, option value) that the model cannot take."""


class ArtifactError(EdgeCNNError):
    """An output that cannot be written, or an artifact that cannot be read."""


class ProviderUnavailableError(EdgeCNNError):
    """An onnxruntime execution provider that this installation does not offer."""


class ParityError(EdgeCNNError):
    """An exported artifact whose outputs disagree with its PyTorch source."""

    exit_code = 1
