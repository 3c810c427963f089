"""The gate: detection → tracking → recognition (once per track) → eyes → blink → grant.

``Gate.process(frame, timestamp_ms)`` is the whole per-frame path. What it costs per frame
is one Haar pass over a downscaled frame, a few IoU comparisons, and per face an eye search
plus one CNN call per eye. The ~200 ms face encoding runs when a track starts and again every
``recheck_ms`` (at most one per frame), never on every frame.

Security rules, each enforced here and tested:
* all state is per track id: a blink counts only for the face that made it;
* liveness lapses ``liveness_ms`` after the blink, or at once when the track is lost;
* an unknown face may be live but is never granted;
* a grant needs the name of the face as it was after its blink (one encoding per blink), not
  only at the start of the track: a photo lowered to show another face behind it keeps its
  track, and that face's blink would otherwise inherit the photo's name;
* if a periodic re-check names someone else, the grant is revoked and the eye history reset.

With ``recognition="background"`` (the CLI's choice for cameras and streams) the encodings run
in a second process (``background.BackgroundEncoder``) and the frame loop never waits for one:
a track stays unnamed (``recognising``) until its first result arrives. After a blink the
face is sent again, and the track is granted when that answer names it, within the same
liveness window. Results are applied only to the track (and ``reset`` generation) that asked.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .blink import BlinkDetector, BlinkOptions
from .detect import FaceDetector, FaceDetectorOptions
from .eyes import EyeBackend, HaarEyes, LandmarkEyes
from .recognize import DEFAULT_TOLERANCE, FaceEncoder, Match, Recognizer
from .sources import Frame, FrameSource
from .tracker import IoUTracker, Track, dedupe
from .types import Box, Event, EyeReading, EyeState, FaceResult, FrameResult

if TYPE_CHECKING:
    from .background import BackgroundEncoder

log = logging.getLogger(__name__)

EYE_BACKENDS = ("landmarks", "haar")
RECOGNITION = ("inline", "background")


@dataclass
class GateOptions:
    liveness_ms: float = 10_000.0  # a blink keeps a track live this long
    recheck_ms: float = 3_000.0  # re-run recognition on a track this often
    tolerance: float = DEFAULT_TOLERANCE
    eyes: str = "landmarks"
    recognition: str = "inline"  # "background": encode in a second process, never stall a frame
    max_gap_ms: float = 400.0  # a track survives this long without a detection
    full_scan_ms: float = 250.0  # between full-frame scans, faces are re-found near their tracks
    detector: FaceDetectorOptions = field(default_factory=FaceDetectorOptions)
    blink: BlinkOptions = field(default_factory=BlinkOptions)

    def __post_init__(self) -> None:
        if self.eyes not in EYE_BACKENDS:
            raise ValueError(f"unknown eye backend {self.eyes!r}; choose one of {', '.join(EYE_BACKENDS)}")
        if self.recognition not in RECOGNITION:
            raise ValueError(f"unknown recognition mode {self.recognition!r}; choose one of {', '.join(RECOGNITION)}")
        if self.liveness_ms <= 0 or self.recheck_ms <= 0:
            raise ValueError("liveness_ms and recheck_ms must be positive")


@dataclass
class _TrackInfo:
    name: str | None = None
    distance: float | None = None
    recognised_ms: float | None = None  # when the latest applied encoding was asked for
    asked_ms: float | None = None  # when the latest encoding was asked for (background mode)
    waiting: bool = False  # an encoding for this track is in the background worker
    live_until_ms: float | None = None
    blink_ms: float | None = None  # when the blink that made it live was seen
    confirmed: bool = False  # the encoding of the blink's closed frame named it
    eyes: EyeReading = field(default_factory=lambda: EyeReading(EyeState.UNKNOWN))
    closed_view: tuple[float, np.ndarray, Box] | None = None  # latest frame read CLOSED: time, copy, box
    blink_view: tuple[np.ndarray, Box] | None = None  # the closed frame of the blink awaiting confirmation

    def end_liveness(self) -> None:
        self.live_until_ms, self.blink_ms, self.confirmed, self.blink_view = None, None, False, None


def _check_frame(image: object) -> None:
    if not isinstance(image, np.ndarray):
        raise ValueError(f"expected a BGR uint8 frame (H, W, 3), got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
        raise ValueError(f"expected a BGR uint8 frame (H, W, 3), got {image.dtype} {image.shape}")


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
        background: BackgroundEncoder | None = None,
    ):
        """``db`` is a face database path (None: nobody enrolled). The keyword-only stages
        replace the defaults, e.g. with fakes in tests or a shared encoder; ``background`` is
        the worker for ``recognition="background"`` (started here if not given)."""
        self.options = options or GateOptions()
        self.encoder = encoder or FaceEncoder()
        self.recognizer = recognizer if recognizer is not None else self._load_recognizer(db)
        self.detector = detector or FaceDetector(self.options.detector)
        self.tracker = IoUTracker(max_gap_ms=self.options.max_gap_ms)
        self.eyes: EyeBackend = eyes or self._eye_backend(eye_model)
        self.blinks = BlinkDetector(self.options.blink)
        self.timer = StageTimer()
        self.background = background
        if self.background is None and self.options.recognition == "background" and len(self.recognizer):
            from .background import BackgroundEncoder

            self.background = BackgroundEncoder()
        self._generation = 0  # bumped by reset(): track ids restart, so older results are void
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
        if self.background is not None:
            self.background.close()

    def reset(self) -> None:
        """Forget every track and the clock, e.g. before processing another video."""
        self.tracker = IoUTracker(max_gap_ms=self.options.max_gap_ms)
        self.blinks = BlinkDetector(self.options.blink)
        self._tracks.clear()
        self._generation += 1
        self._last_ms = float("-inf")
        self._last_scan_ms = float("-inf")
        self._index = 0

    # -- per frame ---------------------------------------------------------------------------

    def process(self, image: np.ndarray, timestamp_ms: float) -> FrameResult:
        """Run the whole pipeline on one BGR uint8 frame taken at ``timestamp_ms``."""
        _check_frame(image)
        # A NaN time compares false with everything: it would pass the order check and keep
        # a grant from ever lapsing.
        if not isinstance(timestamp_ms, (int, float, np.number)) or not math.isfinite(timestamp_ms):
            raise ValueError(f"timestamp_ms must be a finite number of milliseconds, got {timestamp_ms!r}")
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

        faces = [self._face(image, gray, track, timestamp_ms, events) for track in update.active]
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
        if self.background is not None:
            self._recognise_in_background(image, active, now, events)
            return
        for track in self._due(active, now, lambda info: info.recognised_ms):
            match = self.recognizer.match(self.encoder.encode(image, track.box))
            self._apply_match(track, self._tracks[track.id], match, now, now, events)

    def _due(self, active: list[Track], now: float, asked: Callable[[_TrackInfo], float | None]) -> list[Track]:
        """Tracks never asked about, or not since the blink that made them live; and the one
        most overdue for its re-check."""
        fresh = [t for t in active if asked(self._tracks[t.id]) is None or self._unconfirmed(self._tracks[t.id], asked)]
        due = [t for t in active if t not in fresh and now - asked(self._tracks[t.id]) >= self.options.recheck_ms]
        due.sort(key=lambda t: asked(self._tracks[t.id]))
        return fresh + due[:1]

    @staticmethod
    def _unconfirmed(info: _TrackInfo, asked: Callable[[_TrackInfo], float | None]) -> bool:
        """Live, not confirmed, and not asked about since the blink."""
        last = asked(info)
        return (info.name is not None and info.blink_ms is not None and not info.confirmed
                and (last is None or last < info.blink_ms))

    def _recognise_in_background(self, image: np.ndarray, active: list[Track], now: float,
                                 events: list[Event]) -> None:
        """Apply the encodings that finished, then ask for the ones due (one at a time per track)."""
        boxes = {t.id: t for t in active}
        for done in self.background.poll():
            generation, track_id, asked_ms = done.key
            info = self._tracks.get(track_id) if generation == self._generation else None
            if info is None:
                continue  # the track left (or the gate was reset) while its face was encoded
            info.waiting = False
            if done.encoding is None:
                log.warning("track %d: no face encoding (%s); asking again at the next re-check", track_id, done.error)
                continue
            track = boxes.get(track_id) or self.tracker.tracks[track_id]
            self._apply_match(track, info, self.recognizer.match(done.encoding), asked_ms, now, events)
        idle = [t for t in active if not self._tracks[t.id].waiting]
        for track in self._due(idle, now, lambda info: info.asked_ms):
            info = self._tracks[track.id]
            # While a blink awaits confirmation, only its closed frame is asked about (see _blink_view).
            view, box = info.blink_view if info.blink_view is not None else (image, track.box)  # cleared once confirmed
            self.background.submit((self._generation, track.id, now), view, box)
            info.asked_ms, info.waiting = now, True

    def _apply_match(self, track: Track, info: _TrackInfo, match: Match, asked_ms: float, now: float,
                     events: list[Event]) -> None:
        """A recognition result for ``track``, from its face at ``asked_ms``."""
        first = info.recognised_ms is None
        info.recognised_ms, info.distance = asked_ms, match.distance
        if first:
            info.name = match.name
            events.append(Event("recognised", now, track.id, match.name, track.box, {"distance": round(match.distance, 3)}))
        elif match.name != info.name:
            # Someone else under the same track (a swapped photo, a second person): start over.
            events.append(Event("identity_changed", now, track.id, match.name, track.box, {"previous": info.name}))
            info.name = match.name
            info.end_liveness()
            self.blinks.reset(track.id)
            return
        # A grant needs the name from the face as it was after its blink: a tracker keeps the
        # track of a photo lowered to show the attacker's own face behind it, and that face's
        # blink would otherwise be granted under the photo's name until the next re-check.
        if (info.name is not None and not info.confirmed and info.blink_ms is not None and asked_ms >= info.blink_ms
                and info.live_until_ms is not None and now <= info.live_until_ms):
            info.confirmed, info.blink_view = True, None
            events.append(Event("granted", now, track.id, info.name, track.box))

    @staticmethod
    def _blink_view(info: _TrackInfo, start_ms: float) -> tuple[np.ndarray, Box] | None:
        """The last frame of the blink's closure. A grant is confirmed on it, not on a frame after
        the blink: otherwise a photo held open, swapped for a moment with any face whose eyes are
        shut (the attacker's own, or a second print), then raised again would make one blink
        under the photo's name."""
        if info.closed_view is None or info.closed_view[0] <= start_ms:
            return None
        _, image, box = info.closed_view
        return image, box

    def _face(self, image: np.ndarray, gray: np.ndarray, track: Track, now: float, events: list[Event]) -> FaceResult:
        info = self._tracks[track.id]
        t = time.perf_counter()
        info.eyes = self.eyes.read(gray, track.box)
        t = self.timer.add("eyes", t)
        if info.eyes.state is EyeState.CLOSED:
            info.closed_view = (now, image.copy(), track.box)  # copied: a source may reuse its buffer
        blink = self.blinks.update(track.id, now, info.eyes.state, info.eyes.ear, info.eyes.crease,
                                   info.eyes.crease_lines, info.eyes.sharpness)
        view = None if blink is None else self._blink_view(info, blink.start_ms)
        if blink is not None and view is None:
            log.warning("track %d: a blink without a closed frame kept; not counted", track.id)
            self.blinks.reset(track.id)
            blink = None
        if info.live_until_ms is not None and now > info.live_until_ms:
            info.end_liveness()
            events.append(Event("expired", now, track.id, info.name, track.box))
        t = self.timer.add("blink", t)
        closed = None
        if blink is not None and info.name is not None and self.background is None:
            # Name the blink's closed frame before the blink counts (in the background it is asked
            # next and confirms the grant): someone else's shut eyes end the track's liveness.
            closed = self.recognizer.match(self.encoder.encode(*view))
            t = self.timer.add("recognise", t)
            if closed.name != info.name:
                self._apply_match(track, info, closed, now, now, events)  # identity_changed, blinks reset
                blink = closed = None
        if blink is not None:
            detail = {"closed_ms": round(blink.closed_ms, 1), "start_ms": blink.start_ms, "end_ms": blink.end_ms,
                      "ear_low": None if blink.ear_low is None else round(blink.ear_low, 3),
                      "sharpness": None if blink.sharpness is None else round(blink.sharpness, 3)}
            events.append(Event("blink", now, track.id, info.name, track.box, detail))
            if info.live_until_ms is None:
                info.blink_ms, info.confirmed, info.blink_view = now, False, view
            info.live_until_ms = now + self.options.liveness_ms
        if closed is not None and not info.confirmed:
            self._apply_match(track, info, closed, now, now, events)  # the same name: granted
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
            granted=live and info.name is not None and info.confirmed,
            live_until_ms=info.live_until_ms,
            eyes_blurred=self.blinks.blurred(track.id),
            recognising=info.waiting and info.recognised_ms is None,
        )

    # -- whole sources -------------------------------------------------------------------------

    def run(self, source: FrameSource) -> Iterator[tuple[Frame, FrameResult]]:
        """Process every frame of a source, yielding each frame with its result."""
        for frame in self.timer.frames(source):
            yield frame, self.process(frame.image, frame.timestamp_ms)
