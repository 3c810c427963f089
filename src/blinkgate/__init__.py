"""blinkgate: a face-liveness gate. Nothing heavy happens at import; models load on first use.

    >>> import blinkgate
    >>> with blinkgate.Gate(db=blinkgate.default_db_path()) as gate:  # doctest: +SKIP
    ...     for event in gate.process(frame, timestamp_ms).events:
    ...         if event.kind == "granted": print(event.name)  # once per grant

``default_db_path()`` is where ``blinkgate enroll`` writes unless told otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

__all__ = [
    "Gate", "GateOptions", "open_source", "default_db_path", "FrameResult", "FaceResult", "Event", "EyeReading", "EyeState",
    "BlinkgateError", "SourceError", "ImageError", "DatabaseError", "ModelError",
]

_LAZY = {
    "Gate": "gate", "GateOptions": "gate", "open_source": "sources", "default_db_path": "database",
    "FrameResult": "types", "FaceResult": "types", "Event": "types", "EyeReading": "types", "EyeState": "types",
    "BlinkgateError": "errors", "SourceError": "errors", "ImageError": "errors", "DatabaseError": "errors",
    "ModelError": "errors",
}

if TYPE_CHECKING:
    from .database import default_db_path
    from .errors import BlinkgateError, DatabaseError, ImageError, ModelError, SourceError
    from .gate import Gate, GateOptions
    from .sources import open_source
    from .types import Event, EyeReading, EyeState, FaceResult, FrameResult


def __getattr__(name: str):
    # Lazy imports keep `import blinkgate` free of OpenCV/dlib start-up cost.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'blinkgate' has no attribute {name!r}")


def __dir__() -> list[str]:
    # The lazy names too, so help(blinkgate), dir() and tab completion show the API.
    return sorted({*globals(), *__all__})
