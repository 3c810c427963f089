"""Result types shared by every stage.

Conventions, stated once for the whole package:

* frames are BGR ``uint8`` arrays of shape (H, W, 3), as OpenCV reads them;
* boxes are ``xyxy`` float pixel coordinates in the full-resolution frame;
* time is milliseconds on the source's own clock (``timestamp_ms``), never frame counts;
* "left eye" is the subject's own left eye (on the image's right side).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator
from dataclasses import dataclass, field, fields

import numpy as np

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels


class EyeState(str, enum.Enum):
    """Per-frame eye state. UNKNOWN means the evidence was not confident either way."""

    OPEN = "open"
    CLOSED = "closed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class EyeReading:
    """What the eye stage saw in one face on one frame.

    ``p_open`` holds the classifier's probability that each eye is open (subject's right, left),
    ``None`` for an eye that was not found. ``boxes`` are the eye boxes in frame pixels.
    """

    state: EyeState
    p_open: tuple[float | None, float | None] = (None, None)
    boxes: tuple[Box, ...] = ()
    method: str = ""
    ear: float | None = None  # mean eye aspect ratio of both eyes (landmark backend only)
    crease: float | None = None  # fold.crease_score of the face (landmark backend only)
    crease_lines: np.ndarray | None = field(default=None, compare=False, repr=False)  # fold.crease_lines
    sharpness: float | None = None  # eyes.eye_sharpness of the blurrier eye crop (landmark backend only)


@dataclass(frozen=True)
class Event:
    """Something that happened to a track: appeared, recognised, blink, granted, expired, lost."""

    kind: str
    timestamp_ms: float
    track_id: int
    name: str | None
    box: Box
    detail: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "event": self.kind,
            "time_ms": round(self.timestamp_ms, 1),
            "track": self.track_id,
            "name": self.name,
            "box": [round(v, 1) for v in self.box],
            **self.detail,
        }


@dataclass(frozen=True)
class FaceResult:
    """One tracked face on one frame.

    ``live`` means this track blinked within the liveness window; ``granted`` means it is live
    *and* recognised as an enrolled person. An unknown face can be live but is never granted.
    """

    track_id: int
    box: Box
    name: str | None
    distance: float | None
    eyes: EyeReading
    blinks: int
    live: bool
    granted: bool
    live_until_ms: float | None = None
    eyes_blurred: bool = False  # too blurred for a blink to count (blink.BlinkDetector.blurred)
    recognising: bool = False  # its first encoding is still being computed (background recognition)


@dataclass(frozen=True)
class FrameResult:
    """Everything the gate concluded about one frame."""

    index: int
    timestamp_ms: float
    faces: list[FaceResult]
    events: list[Event]

    def __iter__(self) -> Iterator[FaceResult]:
        return iter(self.faces)

    def __len__(self) -> int:
        return len(self.faces)

    @property
    def granted(self) -> list[FaceResult]:
        return [f for f in self.faces if f.granted]


def as_encoding(vector: np.ndarray) -> np.ndarray:
    """Validate a face encoding: a float vector of 128 dlib features."""
    arr = np.asarray(vector, dtype=np.float64).reshape(-1)
    if arr.shape != (128,):
        raise ValueError(f"face encoding must have 128 values, got {arr.shape}")
    return arr


def refuse_nan(options: object, what: str = "") -> None:
    """Refuse an options dataclass with a NaN field: a NaN passes every "< 0" check, then compares
    false with everything (a blink of any length, a lockout that never locks, a grant that never
    ends). ``what`` names the unit in the error."""
    for f in fields(options):  # type: ignore[arg-type]
        value = getattr(options, f.name)
        if isinstance(value, float) and math.isnan(value):
            raise ValueError(f"{f.name} must be a number{what}, got nan")
