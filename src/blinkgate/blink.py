"""Blink detection: a per-track state machine over (timestamp_ms, eye state).

A blink is counted only on evidence a still photo cannot give:

1. a run of at least ``min_open_before`` confident OPEN frames;
2. then a *gap* with no confident OPEN frame, holding at least ``min_closed_frames``
   confident CLOSED frames (both eyes agreeing), and lasting at least ``min_blink_ms`` and at
   most ``max_closed_ms`` from the last OPEN frame to the next one — half-closed transition
   frames read UNKNOWN and are part of the gap, as they are part of a real blink;
3. then at least ``min_open_after`` confident OPEN frames again.

The article's string match ``'1' + '0'*k + '1'`` fires on any single flickering reading; this
needs open-closed-open evidence on both sides, timed in milliseconds from the source clock
(so any frame rate works), and a closure as long as a blink: not a one-frame flicker of a
flexing print at 30 fps (67 ms open to open; real blinks measured 100 ms or more), nor a
deliberate closure.

With the landmark eye backend three more signals guard against folded, blurred or flickering
prints:

* the lids must really meet: a CNN 'closed' counts only if the eye aspect ratio (EAR) is at
  most ``closed_ear_ratio`` of the track's recent open EAR, otherwise it reads UNKNOWN. A real
  blink halves the EAR; a print flexing at the eyes, or a blurry eye behind glasses that the
  CNN misreads, leaves the landmarks' lids apart. And somewhere in the closure (on any non-open
  frame) the EAR must reach ``blink_ear_ratio`` of the open EAR: one misread frame that only
  just passes the per-frame limit is not a blink;
* no crease comes or goes: a non-open frame voids the closure in progress if its
  ``fold.crease_score`` (the best straight line across the face at eye level) rose by
  ``crease_change`` or more over the median of the track's recent open frames, or fell by as
  much under the lowest of them (a line that was on every one is gone), or if any one candidate
  line (``fold.crease_lines``) rose by ``line_rise`` over the same line on those frames. The
  change, not the level, is what counts: glasses and lines in the background score on open and
  closed frames alike, while a fold appears with the closure, and a pleat that flexes can
  also take its line away as the printed lids meet (held-out ``sim-s5-0149``). A blink moves
  the lids, not a line running past the face outline. Line by line sees a fold that lands
  beside a glasses rim, which leaves the best line's score where it was;
* the eyes are sharp enough to show lids: no closure counts while the median
  ``eyes.eye_sharpness`` of the track's recent open frames is under ``min_sharpness``. On a
  blurred eye the CNN and the landmarks guess, and a blurry print that flexes makes the guesses
  flicker shut for single frames (held-out ``sim-s6-0136``: 0.05-0.08; the lowest on any real
  video track was 0.115). A camera that cannot focus on the face cannot see a blink.

The detector is a pure object: no images, only ``update(track_id, timestamp_ms, state, ...)``.
"""

from __future__ import annotations

import enum
import statistics
from collections import deque
from dataclasses import dataclass

import numpy as np

from .types import EyeState, refuse_nan


@dataclass(frozen=True)
class BlinkOptions:
    min_open_before: int = 2  # confident OPEN frames before the closure
    min_open_after: int = 2  # confident OPEN frames after it
    min_closed_frames: int = 1  # confident CLOSED frames inside the gap
    min_blink_ms: float = 80.0  # last open → next open; shorter is a flicker (one frame at 30 fps)
    max_closed_ms: float = 600.0  # last open → next open; longer is a deliberate closure
    max_unknown_frames: int = 1  # consecutive UNKNOWN frames tolerated inside an open run
    closed_ear_ratio: float = 0.75  # a CLOSED frame's EAR must be at most this share of the open EAR
    blink_ear_ratio: float = 0.68  # the closure's lowest EAR must be at most this share of the open EAR
    baseline_frames: int = 15  # recent OPEN frames whose median EAR and crease score are the baseline
    crease_change: float = 0.3  # rise (over the open median) or fall (under the open minimum) of crease_score
    line_rise: float = 0.5  # rise of any one fold.crease_lines line over its open baseline, same effect
    min_sharpness: float = 0.1  # median eyes.eye_sharpness of the recent OPEN frames a closure needs
    history: int = 64  # observations kept per track, for display and debugging

    def __post_init__(self) -> None:
        # max_closed_ms NaN counted a 2-s closure as a blink, closed_ear_ratio NaN a 'closed'
        # whose lids stayed apart.
        refuse_nan(self)


@dataclass(frozen=True)
class Blink:
    track_id: int
    start_ms: float  # last OPEN frame before the closure
    end_ms: float  # first OPEN frame after it
    closed_frames: int
    ear_low: float | None = None  # the closure's lowest EAR over the open EAR (landmark backend)
    sharpness: float | None = None  # median eye sharpness of the recent open frames (landmark backend)

    @property
    def closed_ms(self) -> float:
        return self.end_ms - self.start_ms


class _Phase(enum.Enum):
    OPEN = "open"  # counting confident open frames
    GAP = "gap"  # eyes not confidently open since ``last_open_ms``
    REOPEN = "reopen"  # counting open frames after a gap with a closure


@dataclass
class _TrackState:
    history: deque
    open_ears: deque  # EAR of the recent OPEN frames: the baseline a closure is compared with
    open_creases: deque  # fold.crease_score of the same frames
    open_lines: deque  # fold.crease_lines of the same frames
    open_sharpness: deque  # eyes.eye_sharpness of the same frames
    lines_base: np.ndarray | None = None  # their per-line median, kept until the next OPEN frame
    phase: _Phase = _Phase.OPEN
    open_frames: int = 0
    unknown_run: int = 0
    last_open_ms: float = 0.0
    closed_frames: int = 0
    reopen_ms: float = 0.0
    last_ms: float = float("-inf")
    blinks: int = 0
    ear_ratio: float | None = None  # this frame's EAR over the open EAR
    ear_low: float | None = None  # the lowest such ratio on a non-open frame of the closure in progress

    def restart(self, open_frames: int = 0, now: float = 0.0) -> None:
        self.phase, self.open_frames, self.unknown_run, self.closed_frames = _Phase.OPEN, open_frames, 0, 0
        self.last_open_ms = now


class BlinkDetector:
    """Counts blinks per track id. Tracks never share state; ``drop`` forgets one."""

    def __init__(self, options: BlinkOptions | None = None):
        self.options = options or BlinkOptions()
        self._tracks: dict[int, _TrackState] = {}

    def blinks(self, track_id: int) -> int:
        state = self._tracks.get(track_id)
        return state.blinks if state else 0

    def blurred(self, track_id: int) -> bool:
        """True while the track's recent open eyes are too blurred for a closure to count."""
        state = self._tracks.get(track_id)
        sharpness = self._open_sharpness(state) if state else None
        return sharpness is not None and sharpness < self.options.min_sharpness

    @staticmethod
    def _open_sharpness(track: _TrackState) -> float | None:
        """Median eye sharpness of the recent open frames; None without readings (Haar eyes)."""
        return statistics.median(track.open_sharpness) if track.open_sharpness else None

    def history(self, track_id: int) -> list[tuple[float, EyeState]]:
        state = self._tracks.get(track_id)
        return list(state.history) if state else []

    def last_state(self, track_id: int) -> EyeState | None:
        """The latest reading as the detector took it (after the EAR check), None if none yet."""
        state = self._tracks.get(track_id)
        return state.history[-1][1] if state and state.history else None

    def closing(self, track_id: int) -> bool:
        """True while a closure is under way: a blink may still be reported on its closed frames."""
        state = self._tracks.get(track_id)
        return state is not None and state.phase is not _Phase.OPEN

    def drop(self, track_id: int) -> None:
        self._tracks.pop(track_id, None)

    def reset(self, track_id: int) -> None:
        """Forget the eye history of a track (e.g. after its identity changed)."""
        self._tracks[track_id] = self._new_track()

    def _new_track(self) -> _TrackState:
        n = self.options.baseline_frames
        return _TrackState(deque(maxlen=self.options.history), *(deque(maxlen=n) for _ in range(4)))

    @staticmethod
    def _median(values: deque) -> float:
        return statistics.median(values) if values else 0.0

    def _fuse(self, track: _TrackState, state: EyeState, ear: float | None) -> EyeState:
        """CNN state plus EAR: a 'closed' whose lids did not come together is not evidence."""
        # An open EAR of 0 (eye_aspect_ratio of collapsed landmarks) is no baseline: no ratio to it.
        open_ear = statistics.median(track.open_ears) if track.open_ears else 0.0
        track.ear_ratio = ear / open_ear if ear is not None and open_ear > 0 else None
        if ear is None:
            return state
        if state is EyeState.OPEN:
            track.open_ears.append(ear)
        elif state is EyeState.CLOSED:
            if track.ear_ratio is None or track.ear_ratio > self.options.closed_ear_ratio:
                return EyeState.UNKNOWN
        return state

    @staticmethod
    def _track_low(track: _TrackState) -> None:
        if track.ear_ratio is not None and (track.ear_low is None or track.ear_ratio < track.ear_low):
            track.ear_low = track.ear_ratio

    def _fold_changed(self, track: _TrackState, state: EyeState, crease: float | None,
                       lines: np.ndarray | None) -> bool:
        """Keeps the open frames' crease baselines; True if a non-open frame shows a new line or
        lost a steady one."""
        if state is EyeState.OPEN:
            if crease is not None:
                track.open_creases.append(crease)
            if lines is not None:
                track.open_lines.append(lines)
                track.lines_base = None
            return False
        opts = self.options
        if crease is not None:
            if crease - self._median(track.open_creases) >= opts.crease_change:
                return True  # a line appeared
            if track.open_creases and min(track.open_creases) - crease >= opts.crease_change:
                return True  # a line that was on every recent open frame is gone
        if lines is None:
            return False
        if track.lines_base is None:  # once per closure: the open frames do not change during it
            opened = np.stack(track.open_lines) if track.open_lines else np.zeros_like(lines)[None]
            track.lines_base = np.median(opened, axis=0)
        return float((lines - track.lines_base).max()) >= opts.line_rise

    def update(self, track_id: int, timestamp_ms: float, state: EyeState,
               ear: float | None = None, crease: float | None = None,
               crease_lines: np.ndarray | None = None, sharpness: float | None = None) -> Blink | None:
        """Feed one observation; returns a Blink when this observation completes one.

        ``ear``, ``crease``, ``crease_lines`` and ``sharpness`` (landmark backend) are optional:
        without them only ``state`` counts.
        """
        track = self._tracks.get(track_id)
        if track is None:
            track = self._tracks[track_id] = self._new_track()
        if timestamp_ms <= track.last_ms:
            raise ValueError(
                f"timestamps must increase per track: got {timestamp_ms} after {track.last_ms} on track {track_id}"
            )
        track.last_ms = timestamp_ms
        state = self._fuse(track, state, ear)
        if state is EyeState.OPEN and sharpness is not None:
            track.open_sharpness.append(sharpness)
        track.history.append((timestamp_ms, state))
        if self._fold_changed(track, state, crease, crease_lines):
            track.restart()  # a fold line appeared across the face: this closure is paper
            return None
        step = {_Phase.OPEN: self._open_phase, _Phase.GAP: self._gap_phase, _Phase.REOPEN: self._reopen_phase}
        return step[track.phase](track_id, track, timestamp_ms, state)

    def _open_phase(self, track_id: int, track: _TrackState, t: float, state: EyeState) -> None:
        opts = self.options
        if state is EyeState.OPEN:
            track.open_frames, track.unknown_run, track.last_open_ms = track.open_frames + 1, 0, t
        elif track.open_frames >= opts.min_open_before:
            track.phase, track.closed_frames, track.ear_low = _Phase.GAP, int(state is EyeState.CLOSED), None
            self._track_low(track)
        elif state is EyeState.CLOSED:
            track.restart()
        else:
            track.unknown_run += 1
            if track.unknown_run > opts.max_unknown_frames:
                track.restart()
        return None

    def _gap_phase(self, track_id: int, track: _TrackState, t: float, state: EyeState) -> None:
        opts = self.options
        if t - track.last_open_ms > opts.max_closed_ms:
            track.restart()  # too long for a blink: deliberate closure, or eyes lost
        elif state is not EyeState.OPEN:
            track.closed_frames += state is EyeState.CLOSED
            self._track_low(track)
        else:
            if track.closed_frames >= opts.min_closed_frames and t - track.last_open_ms >= opts.min_blink_ms:
                track.phase, track.reopen_ms, track.open_frames, track.unknown_run = _Phase.REOPEN, t, 1, 0
            else:  # only UNKNOWN readings, or a flicker too short for a blink: noise, not a closure
                track.phase, track.open_frames, track.last_open_ms = _Phase.OPEN, track.open_frames + 1, t
        return None

    def _reopen_phase(self, track_id: int, track: _TrackState, t: float, state: EyeState) -> Blink | None:
        opts = self.options
        if state is EyeState.CLOSED:
            # Lids flickering while reopening: the same closure goes on, still time-bounded.
            track.phase, track.closed_frames = _Phase.GAP, track.closed_frames + 1
            return self._gap_phase(track_id, track, t, EyeState.UNKNOWN)
        if state is EyeState.UNKNOWN:
            track.unknown_run += 1
            if track.unknown_run > opts.max_unknown_frames:
                track.restart()
            return None
        track.open_frames, track.unknown_run = track.open_frames + 1, 0
        if track.open_frames < opts.min_open_after:
            return None
        sharpness = self._open_sharpness(track)
        blink = Blink(track_id, track.last_open_ms, track.reopen_ms, track.closed_frames, track.ear_low, sharpness)
        # The open run after this closure may serve as the run before the next one.
        track.restart(open_frames=track.open_frames, now=t)
        if blink.ear_low is not None and blink.ear_low > opts.blink_ear_ratio:
            return None  # the lids never came far enough together: a misread, not a blink
        if sharpness is not None and sharpness < opts.min_sharpness:
            return None  # eyes too blurred to show lids: the closed readings were guesses
        track.blinks += 1
        return blink
