"""Typed errors. Every error a user can cause is a BlinkgateError with a one-line message."""

from __future__ import annotations


# blinkgate is installed from a checkout; plain PyPI torch on Linux is the multi-GB CUDA build.
TRAIN_EXTRA_HINT = ("from the blinkgate checkout: pip install '.[train]' --extra-index-url "
                    "https://download.pytorch.org/whl/cpu (or make dev)")


class BlinkgateError(Exception):
    """Base class: the CLI prints ``str(err)`` on one line and exits with code 2."""


class BatchStopped(BlinkgateError):
    """A batch stopped before its end (its output could not be written, or its workers kept
    dying): exit 1, not the 2 of a batch that ended with some input unusable, so a script does
    not take it as done."""


class SourceError(BlinkgateError):
    """A camera, video, frame folder or stream cannot be opened or read."""


class ImageError(BlinkgateError):
    """An image file is missing, unreadable or corrupt."""


class DatabaseError(BlinkgateError):
    """The face database is corrupt, foreign or cannot be written."""


class ModelError(BlinkgateError):
    """A model file is missing or cannot be loaded."""
