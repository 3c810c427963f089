"""Batch verdicts: run the gate over a recorded video or frame folder as fast as it decodes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from .gate import Gate
from .sources import FrameSource

MIN_TRACK_FRAMES = 3  # shorter tracks are detector noise, not faces worth reporting


@dataclass
class FaceVerdict:
    track: int
    name: str | None
    blinks: int = 0
    live: bool = False
    granted: bool = False
    first_live_s: float | None = None
    eyes_blurred: bool = False  # on most of the track's frames: too blurred for a blink to count
    frames: int = 0
    blurred_frames: int = 0


@dataclass
class Verdict:
    source: str
    frames: int = 0
    live: bool = False
    granted: bool = False
    faces: list[FaceVerdict] = field(default_factory=list)

    def to_json(self) -> dict:
        out = asdict(self)
        for face in out["faces"]:
            face.pop("frames")
            face.pop("blurred_frames")
        return out

    def format(self) -> str:
        verdict = "LIVE" if self.live else "not live"
        if self.granted:
            names = sorted({f.name for f in self.faces if f.granted})
            verdict = f"LIVE, granted: {', '.join(names)}"
        blinks = sum(f.blinks for f in self.faces)
        first = min((f.first_live_s for f in self.faces if f.first_live_s is not None), default=None)
        when = f", first live at {first:.2f}s" if first is not None else ""
        blurred = any(f.eyes_blurred and not f.live for f in self.faces)
        why = "; eyes too blurred to see a blink" if blurred else ""
        return f"{self.source}: {verdict} ({self.frames} frames, {len(self.faces)} faces, {blinks} blinks{when}{why})"


def check_source(
    gate: Gate, source: FrameSource, name: str | None = None, on_frame: Callable[[], object] | None = None
) -> Verdict:
    """Run ``gate`` over every frame of ``source`` and summarise each face track.

    ``on_frame`` is called once per frame (a progress bar's ``update``)."""
    gate.reset()
    verdict = Verdict(source=name or source.description)
    faces: dict[int, FaceVerdict] = {}
    for frame, result in gate.run(source):
        verdict.frames += 1
        if on_frame:
            on_frame()
        for face in result.faces:
            fv = faces.setdefault(face.track_id, FaceVerdict(face.track_id, face.name))
            fv.frames += 1
            fv.name, fv.blinks = face.name, max(fv.blinks, face.blinks)
            if face.live and not fv.live:
                fv.live, fv.first_live_s = True, round(frame.timestamp_ms / 1000.0, 3)
            fv.granted = fv.granted or face.granted
            fv.blurred_frames += face.eyes_blurred
    for fv in faces.values():
        fv.eyes_blurred = 2 * fv.blurred_frames > fv.frames
    verdict.faces = [f for f in faces.values() if f.frames >= MIN_TRACK_FRAMES or f.live]
    verdict.live = any(f.live for f in verdict.faces)
    verdict.granted = any(f.granted for f in verdict.faces)
    return verdict
