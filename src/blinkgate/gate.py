"""The gate: detection → tracking → recognition (once per track) → eyes → blink → grant.

``Gate.process(frame, timestamp_ms)`` is the whole per-frame path. What it costs per frame
is one Haar pass over a downscaled frame, a few IoU comparisons, and per face an eye search
plus one CNN call per eye. The ~200 ms face encoding runs when a track starts and again every
``recheck_ms`` (at most one per frame), never on every frame.

Security rules, each enforced here and tested:
* all state is per track id: a blink counts only for the face that made it;
* liveness lapses ``liveness_ms`` after the blink, or at once when the track is lost;
* an unknown face may be live but is never granted;
* if a periodic re-check names someone else, the grant is revoked and the eye history reset.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .blink import BlinkDetector, BlinkOptions
from .detect import FaceDetector, FaceDetectorOptions
from .eyes import EyeBackend, HaarEyes, LandmarkEyes
from .recognize import DEFAULT_TOLERANCE, FaceEncoder, Recognizer
from .sources import Frame, FrameSource
from .tracker import IoUTracker, Track, dedupe
from .types import Event, EyeReading, EyeState, FaceResult, FrameResult

EYE_BACKENDS = ("landmarks", "haar")


@dataclass
class GateOptions:
    liveness_ms: float = 10_000.0  # a blink keeps a track live this long
    recheck_ms: float = 3_000.0  # re-run recognition on a track this often
    tolerance: float = DEFAULT_TOLERANCE
    eyes: str = "landmarks"
    max_gap_ms: float = 400.0  # a track survives this long without a detection
    full_scan_ms: float = 250.0  # between full-frame scans, faces are re-found near their tracks
    detector: FaceDetectorOptions = field(default_factory=FaceDetectorOptions)
    blink: BlinkOptions = field(default_factory=BlinkOptions)

    def __post_init__(self) -> None:
        if self.eyes not in EYE_BACKENDS:
            raise ValueError(f"unknown eye backend {self.eyes!r}; choose one of {', '.join(EYE_BACKENDS)}")
        if self.liveness_ms <= 0 or self.recheck_ms <= 0:
            raise ValueError("liveness_ms and recheck_ms must be positive")


@dataclass
class _TrackInfo:
    name: str | None = None
    distance: float | None = None
    recognised_ms: float | None = None
    live_until_ms: float | None = None
    eyes: EyeReading = field(default_factory=lambda: EyeReading(EyeState.UNKNOWN))


class StageTimer:
    """Accumulated wall time per pipeline stage, in milliseconds."""

    def __init__(self) -> None:
        self.total_ms: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def add(self, stage: str, started: float) -> float:
        now = time.perf_counter()
        self.total_ms[stage] += (now - started) * 1000.0
        self.calls[stage] += 1
        return now

    def frames(self, source: FrameSource) -> Iterator[Frame]:
        """The frames of a source, each read timed as the ``decode`` stage."""
        frames = iter(source)
        while True:
            t = time.perf_counter()
            frame = next(frames, None)
            self.add("decode", t)
            if frame is None:
                return
            yield frame


class Gate:
    """A live-person gate over a stream of frames.

    Example::

        with Gate(db="faces.db") as gate:
            for frame in open_source("clip.mp4"):
                for face in gate.process(frame.image, frame.timestamp_ms):
                    if face.granted:
                        print("open the door for", face.name)
    """

    def __init__(
        self,
        db: str | Path | None = None,
        options: GateOptions | None = None,
        *,
        recognizer: Recognizer | None = None,
        encoder: FaceEncoder | None = None,
        detector: FaceDetector | None = None,
        eyes: EyeBackend | None = None,
        eye_model: str | Path | None = None,
    ):
        """``db`` is a face database path (None: nobody enrolled). The keyword-only stages
        replace the defaults, e.g. with fakes in tests or a shared encoder."""
        self.options = options or GateOptions()
        self.encoder = encoder or FaceEncoder()
        self.recognizer = recognizer if recognizer is not None else self._load_recognizer(db)
        self.detector = detector or FaceDetector(self.options.detector)
        self.tracker = IoUTracker(max_gap_ms=self.options.max_gap_ms)
        self.eyes: EyeBackend = eyes or self._eye_backend(eye_model)
        self.blinks = BlinkDetector(self.options.blink)
        self.timer = StageTimer()
        self._tracks: dict[int, _TrackInfo] = {}
        self._last_ms = float("-inf")
        self._last_scan_ms = float("-inf")
        self._index = 0

    def _eye_backend(self, eye_model: str | Path | None) -> EyeBackend:
        from .eye_model import EyeClassifier

        classifier = EyeClassifier(eye_model)
        if self.options.eyes == "landmarks":
            return LandmarkEyes(classifier, self.encoder)
        return HaarEyes(classifier)

    def _load_recognizer(self, db: str | Path | None) -> Recognizer:
        if db is None:
            return Recognizer([], [], tolerance=self.options.tolerance)
        from .database import FaceDatabase

        with FaceDatabase(db, create=False) as store:
            encodings, names = store.known_encodings()
        return Recognizer(encodings, names, tolerance=self.options.tolerance)

    def __enter__(self) -> Gate:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget every track and the clock, e.g. before processing another video."""
        self.tracker = IoUTracker(max_gap_ms=self.options.max_gap_ms)
        self.blinks = BlinkDetector(self.options.blink)
        self._tracks.clear()
        self._last_ms = float("-inf")
        self._last_scan_ms = float("-inf")
        self._index = 0

    # -- per frame ---------------------------------------------------------------------------

    def process(self, image: np.ndarray, timestamp_ms: float) -> FrameResult:
        """Run the whole pipeline on one BGR uint8 frame taken at ``timestamp_ms``."""
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected a BGR uint8 frame (H, W, 3), got {getattr(image, 'shape', type(image))}")
        if timestamp_ms <= self._last_ms:
            raise ValueError(f"timestamps must increase: got {timestamp_ms} ms after {self._last_ms} ms")
        self._last_ms = timestamp_ms
        t = time.perf_counter()
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        boxes = self._detect(gray, timestamp_ms)
        t = self.timer.add("detect", t)
        update = self.tracker.update(boxes, timestamp_ms)
        t = self.timer.add("track", t)

        events: list[Event] = []
        for track in update.lost:
            info = self._tracks.pop(track.id, _TrackInfo())
            self.blinks.drop(track.id)
            events.append(Event("lost", timestamp_ms, track.id, info.name, track.box))
        for track in update.new:
            self._tracks[track.id] = _TrackInfo()
            events.append(Event("appeared", timestamp_ms, track.id, None, track.box))

        self._recognise_due(image, update.active, timestamp_ms, events)
        t = self.timer.add("recognise", t)

        faces = [self._face(gray, track, timestamp_ms, events) for track in update.active]
        self._index += 1
        return FrameResult(self._index - 1, timestamp_ms, faces, events)

    def _detect(self, gray: np.ndarray, now: float) -> list:
        """A full-frame scan when due (new faces appear within ``full_scan_ms``), otherwise a
        cheap search around each tracked face."""
        if not self.tracker.tracks or now - self._last_scan_ms >= self.options.full_scan_ms:
            self._last_scan_ms = now
            return dedupe(self.detector.detect(gray))
        found = (self.detector.detect_around(gray, t.box) for t in self.tracker.tracks.values())
        return dedupe([b for b in found if b is not None])

    def _recognise_due(self, image: np.ndarray, active: list[Track], now: float, events: list[Event]) -> None:
        """New tracks are recognised at once; of the rest, the most overdue one per frame."""
        if not len(self.recognizer):
            return
        fresh = [t for t in active if self._tracks[t.id].recognised_ms is None]
        due = [t for t in active if t not in fresh and now - self._tracks[t.id].recognised_ms >= self.options.recheck_ms]
        due.sort(key=lambda t: self._tracks[t.id].recognised_ms)
        for track in fresh + due[:1]:
            info = self._tracks[track.id]
            match = self.recognizer.match(self.encoder.encode(image, track.box))
            first = info.recognised_ms is None
            info.recognised_ms, info.distance = now, match.distance
            if first:
                info.name = match.name
                events.append(Event("recognised", now, track.id, match.name, track.box, {"distance": round(match.distance, 3)}))
            elif match.name != info.name:
                # Someone else under the same track (a swapped photo, a second person): start over.
                events.append(Event("identity_changed", now, track.id, match.name, track.box, {"previous": info.name}))
                info.name, info.live_until_ms = match.name, None
                self.blinks.reset(track.id)

    def _face(self, gray: np.ndarray, track: Track, now: float, events: list[Event]) -> FaceResult:
        info = self._tracks[track.id]
        t = time.perf_counter()
        info.eyes = self.eyes.read(gray, track.box)
        t = self.timer.add("eyes", t)
        blink = self.blinks.update(track.id, now, info.eyes.state, info.eyes.ear, info.eyes.crease,
                                   info.eyes.crease_lines, info.eyes.sharpness)
        if info.live_until_ms is not None and now > info.live_until_ms:
            info.live_until_ms = None
            events.append(Event("expired", now, track.id, info.name, track.box))
        if blink is not None:
            detail = {"closed_ms": round(blink.closed_ms, 1), "start_ms": blink.start_ms, "end_ms": blink.end_ms,
                      "ear_low": None if blink.ear_low is None else round(blink.ear_low, 3),
                      "sharpness": None if blink.sharpness is None else round(blink.sharpness, 3)}
            events.append(Event("blink", now, track.id, info.name, track.box, detail))
            was_live = info.live_until_ms is not None
            info.live_until_ms = now + self.options.liveness_ms
            if info.name is not None and not was_live:
                events.append(Event("granted", now, track.id, info.name, track.box))
        self.timer.add("blink", t)
        live = info.live_until_ms is not None
        return FaceResult(
            track_id=track.id,
            box=track.box,
            name=info.name,
            distance=info.distance,
            eyes=info.eyes,
            blinks=self.blinks.blinks(track.id),
            live=live,
            granted=live and info.name is not None,
            live_until_ms=info.live_until_ms,
            eyes_blurred=self.blinks.blurred(track.id),
        )

    # -- whole sources -------------------------------------------------------------------------

    def run(self, source: FrameSource) -> Iterator[tuple[Frame, FrameResult]]:
        """Process every frame of a source, yielding each frame with its result."""
        for frame in self.timer.frames(source):
            yield frame, self.process(frame.image, frame.timestamp_ms)
