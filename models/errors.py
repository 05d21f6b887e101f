"""Typed errors of the core: each says what went wrong and what to do about it.

The app catches `WorkbenchError` and shows its message; a notebook user sees the same text.
"""
from __future__ import annotations


class WorkbenchError(Exception):
    """Base class of every error the core raises on purpose."""


class ModelNotFoundError(WorkbenchError):
    """An embedded name, folder or hub id that cannot be resolved (or not offline)."""


class UnsupportedArchitectureError(WorkbenchError):
    """A checkpoint whose architecture has no family registered here."""


class WeightFileError(WorkbenchError):
    """A weight file that is missing, truncated, corrupt, or does not fit the config."""


class InputError(WorkbenchError):
    """Input the model cannot run on: empty text, bad image or audio, wrong shapes."""


class HeadIndexError(WorkbenchError):
    """A layer or head index out of range, or a head selection that cannot be applied."""
