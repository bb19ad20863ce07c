"""The error a user can fix: the CLI prints its one line and exits 2, never a traceback."""

from __future__ import annotations


class StageError(ValueError):
    """Bad input to a stage: a missing or corrupt file, an unknown env id, wrong settings."""


def one_line(error: BaseException) -> str:
    """An error's message on one line (loaders' messages span several), or its type's name."""
    return " ".join(str(error).split()) or type(error).__name__
