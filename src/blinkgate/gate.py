"""The gate: detection → tracking → recognition (once per track) → eyes → blink → grant.

``Gate.process(frame, timestamp_ms)`` is the whole per-frame path. What it costs per frame
is one Haar pass over a downscaled frame, a few IoU comparisons, and per face an eye search
plus one CNN call per eye. The ~200 ms face encoding runs when a track starts and again every
``recheck_ms`` (at most one per frame), never on every frame.

Security rules, each enforced here and tested:
* all state is per track id: a blink counts only for the face that made it;
* liveness lapses ``liveness_ms`` after the blink, or at once when the track is lost;
* an unknown face may be live but is never granted;
* a blink counts under a name only once its own closed frame is named so (one encoding per
  blink), not only the start of the track: a photo lowered to show another face behind it, or
  swapped for a moment with someone's shut eyes, keeps its track, and that blink would
  otherwise inherit the photo's name;
* if a periodic re-check names someone else, the grant is revoked and the eye history reset
  (a re-check keeps the name a little past the tolerance, ``Recognizer.recheck``; a blink's
  closed frame does not).

With ``recognition="background"`` (the CLI's choice for cameras and streams) the encodings run
in a second process (``background.BackgroundEncoder``) and the frame loop never waits for one:
a track stays unnamed (``recognising``) until its first result arrives. The closed frame of
every blink is sent too, ahead of everything else: the ``blink`` event comes at once (marked
``checked: false``), and a ``blink_checked`` event follows when that frame names the track
(someone else: ``identity_changed``). The track is granted on the first such check within its
liveness window; door mode waits for the check of every blink of an answer. At most
``IN_FLIGHT`` faces are with the worker at a time and the rest wait here, so a crowd of decoy
faces cannot queue hours of work ahead of a blink, and nothing is sent for a track that left.
Results are applied only to the track (and ``reset`` generation) that asked. A request lost
with a worker that died or hung (``Encoded.lost``; the worker is replaced) names nobody: it is
asked again (``Gate._ask_again``).
"""

from __future__ import annotations

import logging
import math
import numbers
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .blink import BlinkDetector, BlinkOptions
from .detect import FaceDetector, FaceDetectorOptions
from .eyes import EyeBackend, HaarEyes, LandmarkEyes
from .recognize import DEFAULT_TOLERANCE, FaceEncoder, Match, Recognizer
from .sources import MIN_BLINK_FPS, Frame, FrameSource
from .tracker import IoUTracker, Track, dedupe
from .types import Box, Event, EyeReading, EyeState, FaceResult, FrameResult

if TYPE_CHECKING:
    from .background import BackgroundEncoder
    from .database import People

log = logging.getLogger(__name__)

EYE_BACKENDS = ("landmarks", "haar")
RECOGNITION = ("inline", "background")
IN_FLIGHT = 2  # faces with the background worker at once: one encoding, one ready to start
CLOCK_SAMPLE = 10  # frame gaps measured after a (re)start to catch timestamps in the wrong unit
MAX_BLINK_CHECKS = 4  # closed frames kept per track awaiting their check (an answer has at most 3 blinks)


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
        # NaN passes a "<= 0" test, then compares false with every time: a face live for good
        # (and never granted), a track that is never lost.
        for name in ("liveness_ms", "recheck_ms", "max_gap_ms", "full_scan_ms"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (value == 0 and name != "full_scan_ms"):
                raise ValueError(f"{name} must be a finite, positive number of milliseconds, got {value!r}")
        # A NaN tolerance passes no "distance > tolerance" test: every stranger would be named the
        # nearest enrolled person, and granted on a blink. The range is the CLI's --tolerance.
        if not (isinstance(self.tolerance, numbers.Real) and 0 <= self.tolerance <= 1):
            raise ValueError(f"tolerance must be a face distance from 0 to 1, got {self.tolerance!r}")


@dataclass
class _TrackInfo:
    name: str | None = None
    distance: float | None = None
    recognised_ms: float | None = None  # when the latest applied encoding was asked for
    asked_ms: float | None = None  # when the latest encoding was asked for (background mode)
    waiting: bool = False  # an encoding for this track is in the background worker
    live_until_ms: float | None = None
    blink_ms: float | None = None  # when the blink that made it live started
    confirmed: bool = False  # the encoding of the blink's closed frame named it
    eyes: EyeReading = field(default_factory=lambda: EyeReading(EyeState.UNKNOWN))
    closed_view: tuple[float, np.ndarray, Box] | None = None  # latest frame read CLOSED: time, copy, box
    # Background mode: the closed frames of blinks not yet sent to be named: (start_ms, image, box).
    blink_checks: list[tuple[float, np.ndarray, Box]] = field(default_factory=list)
    sent_check: tuple[float, np.ndarray, Box] | None = None  # the one with the worker: kept to ask again if lost

    def end_liveness(self) -> None:
        self.live_until_ms, self.blink_ms, self.confirmed = None, None, False
        self.blink_checks.clear()


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
        """The frames of a source, each read timed as the ``decode`` stage; for a camera or
        stream, as ``wait``: its frames are decoded on a reader thread, so the time is spent
        waiting for the next one, which a fast gate does for most of each frame interval."""
        stage = "wait" if source.live else "decode"
        frames = iter(source)
        while True:
            t = time.perf_counter()
            frame = next(frames, None)
            self.add(stage, t)
            if frame is None:
                return
            yield frame


class Gate:
    """A live-person gate over a stream of frames.

    Example::

        from blinkgate import Gate, default_db_path, open_source

        with Gate(db=default_db_path()) as gate:
            for frame in open_source("clip.mp4"):
                for event in gate.process(frame.image, frame.timestamp_ms).events:
                    if event.kind == "granted":  # once per grant; face.granted holds on every frame of it
                        print("granted", event.name)

    Blink liveness alone stops a photo, not a phone replaying a video of the person blinking:
    a door wants :class:`blinkgate.door.Door`, which adds a random challenge.
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
        self._start_background()
        self._generation = 0  # bumped by reset(): track ids restart, so older results are void
        self._tracks: dict[int, _TrackInfo] = {}
        self._last_ms = float("-inf")
        self._last_scan_ms = float("-inf")
        self._index = 0
        self._frame_copy: np.ndarray | None = None
        self._gaps: list[float] = []  # the first CLOCK_SAMPLE frame gaps (_check_clock)
        self._unenrolled: set[int] = set()  # tracks whose name set_people removed: unnamed next frame
        self._closed = False
        self._busy = threading.Lock()  # held by the one process() call running
        # Held by process() for a whole frame and by set_people() and reset(): those may come from
        # another thread (a kiosk's admin thread) and wait for the frame to end, not tear it.
        self._state = threading.RLock()

    def load_models(self) -> None:
        """Load now the dlib models the first face would load (the 68-point predictor, ~1 s; the
        recognition models when recognising inline). On a camera or stream that first face's
        stall let the reader skip past the tracker's gap (``max_gap_ms``): the first face in view
        was lost and appeared again as a second track. Call it before reading a live source."""
        if isinstance(self.eyes, LandmarkEyes) and isinstance(self.eyes.encoder, FaceEncoder):
            _ = self.eyes.encoder.shape68
        if self.options.recognition == "inline" and len(self.recognizer) and isinstance(self.encoder, FaceEncoder):
            _ = self.encoder.shape5, self.encoder.resnet

    def _eye_backend(self, eye_model: str | Path | None) -> EyeBackend:
        from .eye_model import EyeClassifier

        classifier = EyeClassifier(eye_model)
        if eye_model is not None:
            classifier.load()  # a missing or broken file fails here, not when the first face comes
        if self.options.eyes == "landmarks":
            return LandmarkEyes(classifier, self.encoder)
        return HaarEyes(classifier)

    def _start_background(self) -> None:
        """The recognition worker, once there is someone to recognise (background mode only)."""
        if self.background is None and self.options.recognition == "background" and len(self.recognizer):
            from .background import BackgroundEncoder

            self.background = BackgroundEncoder()

    def _load_recognizer(self, db: str | Path | None) -> Recognizer:
        if db is None:
            return Recognizer([], [], tolerance=self.options.tolerance)
        from .database import FaceDatabase

        with FaceDatabase(db, create=False) as store:
            encodings, names = store.known_encodings()
        return Recognizer(encodings, names, tolerance=self.options.tolerance)

    def set_people(self, encodings: np.ndarray, names: list[str]) -> str:
        """Replace who is enrolled while frames run (the door does, after ``enroll`` or
        ``forget``); what changed, in words ("" if nothing). A face named someone no longer
        enrolled loses the name, and any liveness, on the next frame (``identity_changed``,
        ``detail["unenrolled"]``), not at its next re-check, and an unknown face is asked about
        again at once; a named face is judged by the new encodings from its next re-check.
        From another thread than ``process``, it waits for the frame under way to end."""
        with self._state:
            return self._set_people(encodings, names)

    def _set_people(self, encodings: np.ndarray, names: list[str]) -> str:
        before, photos = set(self.recognizer.names), len(self.recognizer)
        self.recognizer = Recognizer(encodings, names, tolerance=self.options.tolerance)
        enrolled = set(names)
        self._unenrolled |= {tid for tid, info in self._tracks.items() if info.name is not None and info.name not in enrolled}
        if not self._closed:  # a worker started on a closed Gate would never be closed
            self._start_background()  # nobody may have been enrolled when the gate started
        gone, new = sorted(before - enrolled), sorted(enrolled - before)
        if not (gone or new or photos != len(names)):
            return ""
        for info in self._tracks.values():
            if info.name is None and info.recognised_ms is not None:
                info.recognised_ms = info.asked_ms = None  # an unknown face may be enrolled now: ask at once
        return "".join([f"{len(enrolled)} people, {len(names)} photos",
                        f"; no longer enrolled: {', '.join(gone)}" if gone else "",
                        f"; new: {', '.join(new)}" if new else ""])

    def __enter__(self) -> Gate:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """End the background worker, if any. A closed Gate processes no more frames (from
        another thread, once the frame under way ends)."""
        with self._state:
            self._reset()
            self._closed = True
        if self.background is not None:
            self.background.close()

    def reset(self) -> None:
        """Forget every track and the clock, e.g. before processing another video (from another
        thread, once the frame under way ends)."""
        with self._state:
            self._reset()

    def _reset(self) -> None:
        self.tracker = IoUTracker(max_gap_ms=self.options.max_gap_ms)
        self.blinks = BlinkDetector(self.options.blink)
        self._tracks.clear()
        self._generation += 1
        self._last_ms = float("-inf")
        self._last_scan_ms = float("-inf")
        self._index = 0
        self._frame_copy = None
        self._gaps = []
        self._unenrolled.clear()

    # -- per frame ---------------------------------------------------------------------------

    def process(self, image: np.ndarray, timestamp_ms: float) -> FrameResult:
        """Run the whole pipeline on one BGR uint8 frame taken at ``timestamp_ms``.

        One stream per Gate, from one thread at a time: a call while another thread's call runs
        raises RuntimeError (its stages are not thread-safe, and two cameras' frames interleaved
        into one set of tracks would mix their faces' eye histories)."""
        if not self._busy.acquire(blocking=False):
            raise RuntimeError("Gate.process is already running in another thread: use one Gate per thread")
        try:
            with self._state:
                if self._closed:  # its worker is gone: say so, not "Queue ... is closed"
                    raise ValueError("this Gate is closed: make a new one (reset() starts another stream on an open Gate)")
                return self._process(image, timestamp_ms)
        finally:
            self._busy.release()

    def _process(self, image: np.ndarray, timestamp_ms: float) -> FrameResult:
        _check_frame(image)
        # A NaN time compares false with everything: it would pass the order check and keep
        # a grant from ever lapsing.
        if not isinstance(timestamp_ms, (int, float, np.integer, np.floating)) or isinstance(timestamp_ms, bool):
            raise ValueError(f"timestamp_ms must be a finite number of milliseconds, got {timestamp_ms!r}")
        # A plain float: a NumPy time (np.int64 from an array, np.float32) went into every Event
        # and FrameResult, and Event.to_json() then failed json.dumps (the browser view's too).
        try:
            t = float(timestamp_ms)
        except OverflowError:  # an int past float's range is as unusable as infinity
            t = math.inf
        if not math.isfinite(t):
            raise ValueError(f"timestamp_ms must be a finite number of milliseconds, got {timestamp_ms!r}")
        timestamp_ms = t
        previous_ms = self._last_ms
        if timestamp_ms <= self._last_ms:
            raise ValueError(f"timestamps must increase: got {timestamp_ms} ms after {self._last_ms} ms "
                             "(another video or stream? call reset() first)")
        if len(self._gaps) < CLOCK_SAMPLE and self._last_ms > float("-inf"):
            self._gaps.append(timestamp_ms - self._last_ms)
            if len(self._gaps) == CLOCK_SAMPLE:
                self._check_clock()
        self._last_ms = timestamp_ms
        self._frame_copy = None  # this frame's one copy, shared by the faces read closed on it
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
            # ``stalled``: in view on the frame before, so no frame came for max_gap_ms (a stalled
            # stream, not the face leaving): the door does not count that against a challenge.
            stalled = {"stalled": True} if track.last_seen_ms == previous_ms else {}
            events.append(Event("lost", timestamp_ms, track.id, info.name, track.box, stalled))
        for track in update.new:
            self._tracks[track.id] = _TrackInfo()
            events.append(Event("appeared", timestamp_ms, track.id, None, track.box))

        self._unname(timestamp_ms, events)
        self._recognise_due(image, update.active, timestamp_ms, events)
        t = self.timer.add("recognise", t)

        faces = [self._face(image, gray, track, timestamp_ms, events) for track in update.active]
        self._index += 1
        return FrameResult(self._index - 1, timestamp_ms, faces, events)

    def _unname(self, now: float, events: list[Event]) -> None:
        """Tracks named someone ``set_people`` removed: unknown now, and no longer live. Every
        such track, not only those seen on this frame: one the detector missed lives on for
        ``max_gap_ms`` and would come back under the forgotten name, live and granted."""
        if not self._unenrolled:
            return  # the per-frame path: nothing to do unless the people just changed
        for track in list(self.tracker.tracks.values()):
            if track.id in self._unenrolled and (info := self._tracks.get(track.id)) and info.name is not None:
                events.append(Event("identity_changed", now, track.id, None, track.box,
                                    {"previous": info.name, "unenrolled": True}))
                info.name = None
                info.end_liveness()
                info.recognised_ms = info.asked_ms = None  # asked again at once, as a new face
                self.blinks.reset(track.id)
        self._unenrolled.clear()

    def _check_clock(self) -> None:
        """Warn once per stream when the frames' spacing rules out every blink: time in seconds,
        frame numbers or microseconds instead of milliseconds never counts one, and says nothing;
        nor does a source too slow for a track to outlive the gap between its frames."""
        gap = float(np.median(self._gaps))
        if gap > self.options.max_gap_ms:  # e.g. a 2 fps camera: said as a unit mistake, or not at all
            log.warning("frames are %.3g ms apart: a face's track ends %g ms after the last frame it was seen on, "
                        "so every frame is a new face and no blink counts; blinks need about %d frames a second "
                        "(or is timestamp_ms not in milliseconds?)", gap, self.options.max_gap_ms, MIN_BLINK_FPS)
            return
        if 2.0 <= gap <= self.options.blink.max_closed_ms:  # 500 fps down to a closure's length
            return
        log.warning("frames are %.3g ms apart: is timestamp_ms in milliseconds (not seconds, frame numbers or "
                    "microseconds)? A blink lasts %g-%g ms on this clock, so none will count",
                    gap, self.options.blink.min_blink_ms, self.options.blink.max_closed_ms)

    def _detect(self, gray: np.ndarray, now: float) -> list:
        """A full-frame scan when due (new faces appear within ``full_scan_ms``), otherwise a
        cheap search around each tracked face."""
        if not self.tracker.tracks or now - self._last_scan_ms >= self.options.full_scan_ms:
            self._last_scan_ms = now
            return dedupe(self.detector.detect(gray))
        found = [self.detector.detect_around(gray, t.box) for t in self.tracker.tracks.values()]
        if None in found:
            # A marginal face the small search misses on a frame the full scan finds it on (a
            # still photo: on every frame): scan now, not after max_gap_ms ends its track.
            self._last_scan_ms = now
            return dedupe([b for b in found if b is not None] + self.detector.detect(gray))
        return dedupe(found)

    def _recognise_due(self, image: np.ndarray, active: list[Track], now: float, events: list[Event]) -> None:
        """New tracks are recognised at once; of the rest, the most overdue one per frame."""
        if not len(self.recognizer):
            return
        if self.background is not None:
            self._recognise_in_background(image, active, now, events)
            return
        fresh = [t for t in active if self._tracks[t.id].recognised_ms is None]
        due = sorted((t for t in active if t not in fresh and self._due_since(t, now) is not None),
                     key=lambda t: self._due_since(t, now))
        for track in fresh + due[:1]:
            info = self._tracks[track.id]
            match = self._recheck(self.encoder.encode(image, track.box), info)
            self._apply_match(track, info, match, now, now, events)

    def _recheck(self, encoding: np.ndarray, info: _TrackInfo) -> Match:
        """Who a face is at its first recognition (strict) or at a re-check of its name (which
        keeps the name a little past the tolerance: ``Recognizer.recheck``)."""
        if info.name is None or info.recognised_ms is None:
            return self.recognizer.match(encoding)
        return self.recognizer.recheck(encoding, info.name)

    def _due_since(self, track: Track, now: float) -> float | None:
        """Since when ``track`` has been due for an encoding (None: it is not): since it appeared
        if it was never asked about, else since its re-check fell due."""
        info = self._tracks[track.id]
        asked = info.asked_ms if self.background is not None else info.recognised_ms
        if asked is None:
            return track.first_seen_ms
        return asked + self.options.recheck_ms if now - asked >= self.options.recheck_ms else None

    def _recognise_in_background(self, image: np.ndarray, active: list[Track], now: float,
                                 events: list[Event]) -> None:
        """Apply the encodings that finished, then send what is due, blink checks first, while
        fewer than ``IN_FLIGHT`` faces are with the worker (one request at a time per track)."""
        boxes = {t.id: t for t in active}
        for done in self.background.poll():
            generation, track_id, asked_ms, blink_start = done.key
            info = self._tracks.get(track_id) if generation == self._generation else None
            if info is None:
                continue  # the track left (or the gate was reset) while its face was encoded
            info.waiting = False
            if done.lost:
                self._ask_again(track_id, info, blink_start)
                continue
            info.sent_check = None
            if done.encoding is None:
                what = "its blink's closed frame" if blink_start is not None else "a face"
                log.warning("track %d: no encoding of %s (%s)", track_id, what, done.error)
                if blink_start is not None and info.confirmed:
                    # That blink already extended the grant; unnamed, it must not keep the face live.
                    info.end_liveness()
                    track = boxes.get(track_id) or self.tracker.tracks[track_id]
                    events.append(Event("expired", now, track_id, info.name, track.box, {"why": "blink not checked"}))
                continue
            track = boxes.get(track_id) or self.tracker.tracks[track_id]
            # A blink's closed frame is judged strictly; a re-check keeps the name a little longer.
            strict = blink_start is not None
            match = self.recognizer.match(done.encoding) if strict else self._recheck(done.encoding, info)
            self._apply_match(track, info, match, asked_ms, now, events, blink_start=blink_start)
        idle = [t for t in active if not self._tracks[t.id].waiting]
        checks = sorted((t for t in idle if self._tracks[t.id].name is not None and self._tracks[t.id].blink_checks),
                        key=lambda t: self._tracks[t.id].blink_checks[0][0])
        # The rest in the order they fell due, so a stream of new decoy faces cannot starve a re-check.
        rest = sorted((t for t in idle if t not in checks and self._due_since(t, now) is not None),
                      key=lambda t: self._due_since(t, now))
        for track in (checks + rest)[:max(0, IN_FLIGHT - self.background.pending)]:
            info = self._tracks[track.id]
            if track in checks:
                info.sent_check = blink_start, view, box = info.blink_checks.pop(0)
            else:
                blink_start, view, box = None, image, track.box
            self.background.submit((self._generation, track.id, now, blink_start), view, box)
            info.asked_ms, info.waiting = now, True

    @staticmethod
    def _ask_again(track_id: int, info: _TrackInfo, blink_start: float | None) -> None:
        """A request the worker never answered (it died or hung and was replaced): no match of
        anyone, so nothing is named, confirmed or granted on it. Ask again as if it had never
        been sent: a first recognition at once (the track stays ``recognising``), a re-check as
        it fell due, a blink check ahead of the rest while the track is still live. The door
        meanwhile fails an answer whose checks do not come back within its ``check_wait``."""
        info.asked_ms = info.recognised_ms
        check, info.sent_check = info.sent_check, None
        if blink_start is not None and check is not None and info.live_until_ms is not None:
            info.blink_checks = [check, *info.blink_checks][-MAX_BLINK_CHECKS:]
        log.info("track %d: its %s was lost with the recognition process; asking again", track_id,
                 "blink check" if blink_start is not None else "encoding")

    def _apply_match(self, track: Track, info: _TrackInfo, match: Match, asked_ms: float, now: float,
                     events: list[Event], blink_start: float | None = None) -> None:
        """A recognition result for ``track``, from its face at ``asked_ms``; ``blink_start``
        is set when the face was the closed frame of the blink that started then."""
        first = info.recognised_ms is None
        info.recognised_ms, info.distance = asked_ms, match.distance
        if first:
            info.name = match.name
            if match.name is None:
                info.blink_checks.clear()  # an unknown face is never granted: nothing to check
            events.append(Event("recognised", now, track.id, match.name, track.box, {"distance": round(match.distance, 3)}))
        elif match.name != info.name:
            # Someone else under the same track (a swapped photo, a second person): start over.
            # ``blink``: it was a blink's closed frame (someone else's shut eyes under the track).
            detail = {"previous": info.name, **({"blink": True} if blink_start is not None else {})}
            events.append(Event("identity_changed", now, track.id, match.name, track.box, detail))
            info.name = match.name
            info.end_liveness()
            self.blinks.reset(track.id)
            return
        if blink_start is None or info.name is None:
            return
        if self.background is not None:
            events.append(Event("blink_checked", now, track.id, info.name, track.box,
                                {"start_ms": blink_start, "distance": round(match.distance, 3)}))
        # A grant needs the name of the blink's own closed frame: a tracker keeps the track of a
        # photo lowered to show the attacker's face behind it, or swapped for a moment with
        # someone's shut eyes, and that blink would otherwise count under the photo's name.
        if (not info.confirmed and info.live_until_ms is not None and now <= info.live_until_ms
                and info.blink_ms is not None and blink_start >= info.blink_ms):  # not a blink of an earlier spell
            info.confirmed = True
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
        blink = self.blinks.update(track.id, now, info.eyes.state, info.eyes.ear, info.eyes.crease,
                                   info.eyes.crease_lines, info.eyes.sharpness)
        # Kept only if the detector took the frame as closed (not a 'closed' whose lids stayed
        # apart): otherwise the name checked could come from a frame other than the closure.
        if self.blinks.last_state(track.id) is EyeState.CLOSED:
            if self._frame_copy is None:  # copied: a source may reuse its buffer
                self._frame_copy = image.copy()
            info.closed_view = (now, self._frame_copy, track.box)
        view = None if blink is None else self._blink_view(info, blink.start_ms)
        if not self.blinks.closing(track.id):
            # No closure under way: no later blink can be named on this frame (its start comes after
            # it). Kept, a sheet of faces with shut eyes held a whole frame per face for ever.
            info.closed_view = None
        if blink is not None and view is None:
            log.warning("track %d: a blink without a closed frame kept; not counted", track.id)
            self.blinks.reset(track.id)
            blink = None
        if info.live_until_ms is not None and now > info.live_until_ms:
            info.end_liveness()
            events.append(Event("expired", now, track.id, info.name, track.box))
        t = self.timer.add("blink", t)
        closed, checked = None, False
        if blink is not None and info.name is not None and self.background is None:
            # Name the blink's closed frame before the blink counts (in the background it is sent
            # ahead of everything else): someone else's shut eyes end the track's liveness.
            closed = self.recognizer.match(self.encoder.encode(*view))
            t = self.timer.add("recognise", t)
            if closed.name != info.name:
                self._apply_match(track, info, closed, now, now, events, blink_start=blink.start_ms)  # identity_changed
                blink = None
            checked = blink is not None
        if blink is not None:
            detail = {"closed_ms": round(blink.closed_ms, 1), "start_ms": blink.start_ms, "end_ms": blink.end_ms,
                      "ear_low": None if blink.ear_low is None else round(blink.ear_low, 3),
                      "sharpness": None if blink.sharpness is None else round(blink.sharpness, 3),
                      "checked": checked}  # its closed frame named the track (else blink_checked follows)
            events.append(Event("blink", now, track.id, info.name, track.box, detail))
            if info.live_until_ms is None:
                info.blink_ms, info.confirmed = blink.start_ms, False
            info.live_until_ms = now + self.options.liveness_ms
            if self.background is not None and (info.name is not None or info.recognised_ms is None):
                info.blink_checks = [*info.blink_checks, (blink.start_ms, *view)][-MAX_BLINK_CHECKS:]
            if checked:
                self._apply_match(track, info, closed, now, now, events, blink_start=blink.start_ms)  # confirms
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
            recognising=self._recognising(info),
        )

    def _recognising(self, info: _TrackInfo) -> bool:
        """Not named yet, and an encoding on its way (sent, or waiting here for a free slot)."""
        queued = self.background is not None and len(self.recognizer) > 0 and info.asked_ms is None
        return info.recognised_ms is None and (info.waiting or queued)

    # -- whole sources -------------------------------------------------------------------------

    def run(self, source: FrameSource) -> Iterator[tuple[Frame, FrameResult]]:
        """Process every frame of a source, yielding each frame with its result."""
        for frame in self.timer.frames(source):
            yield frame, self.process(frame.image, frame.timestamp_ms)

    def end(self) -> list[Event]:
        """The source ended: a ``lost`` event, at the last frame's time, for each track still
        open, which then are forgotten (as by :meth:`reset`). A face in view until a video's
        last frame had no end in ``--events``, as if it were still there."""
        with self._state:
            events = [Event("lost", self._last_ms, track.id, self._tracks.get(track.id, _TrackInfo()).name, track.box)
                      for track in self.tracker.tracks.values()]
            self._reset()
            return events


def reload_people(gate: Gate, encodings: np.ndarray, names: list[str]) -> None:
    """Give a running ``gate`` who is enrolled now (read after `enroll` or `forget`), saying
    what changed."""
    if change := gate.set_people(encodings, names):
        log.warning("enrolment changed: %s", change)


class FollowPeople:
    """Keeps a running Gate's people those of its face database, for `blinkgate run`: `enroll`
    and `forget` reach it within ``poll_s`` without a restart, as they reach a door (whose
    access-log thread polls the same :class:`~blinkgate.database.PeopleWatch`). Call
    :meth:`poll` between frames: it reads the database once every ``poll_s`` (a stat and a small
    read; the encodings only after a change), in the frame loop's thread, which owns the
    connection. A database replaced or deleted at the path is followed too (PeopleWatch)."""

    poll_s: float = 2.0  # as a door's

    def __init__(self, gate: Gate, db: str | Path):
        from .database import PeopleWatch

        self.gate, self.db = gate, Path(db)
        self._watch = PeopleWatch()  # the first poll reads: a change since the gate loaded is not missed
        self._store = None
        self._last = float("-inf")

    def poll(self) -> None:
        if time.monotonic() - self._last < self.poll_s:
            return
        self._last = time.monotonic()
        people = self._read()
        if people is not None:
            reload_people(self.gate, *people)

    def _read(self) -> People | None:
        """Who is enrolled, if that changed; nobody while no readable database is at the path."""
        from .database import FaceDatabase
        from .errors import BlinkgateError

        if self._store is None:
            if not self.db.exists():
                return None  # nobody enrolled yet: the first `enroll` makes it
            try:
                self._store = FaceDatabase(self.db, create=False)
            except BlinkgateError as err:
                return self._watch.unreadable(self.db, err)
        try:
            return self._watch.poll(self._store)  # also reopens a file replaced at the path
        except BlinkgateError as err:
            log.error("reading the enrolled people: %s", err)
            return None

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
