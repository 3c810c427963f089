"""Blink detection: a per-track state machine over (timestamp_ms, eye state).

A blink is counted only on evidence a still photo cannot give: a run of confident OPEN
frames, then a confident CLOSED run (both eyes agreeing) lasting at most ``max_closed_ms``,
then another run of confident OPEN frames. Per-frame noise on a photo (an eye cascade that
flickers, a crop that drifts) rarely produces that whole sequence, whereas the article's
string match ``'1' + '0'*k + '1'`` fires on any single flicker.

The detector is a pure object: no images, only ``update(track_id, timestamp_ms, state)``.
Time is in milliseconds from the source clock, so any frame rate works.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from .types import EyeState


@dataclass(frozen=True)
class BlinkOptions:
    min_open_before: int = 2  # confident OPEN frames right before the closure
    min_open_after: int = 2  # confident OPEN frames right after it
    min_closed_frames: int = 1
    max_closed_ms: float = 500.0  # longer closures are deliberate, not blinks
    max_unknown_frames: int = 1  # UNKNOWN frames tolerated inside a run (blur, a missed eye)
    history: int = 64  # observations kept per track, for display and debugging


@dataclass(frozen=True)
class Blink:
    track_id: int
    start_ms: float  # first CLOSED frame
    end_ms: float  # first OPEN frame after the closure
    closed_frames: int

    @property
    def closed_ms(self) -> float:
        return self.end_ms - self.start_ms


class _Phase(enum.Enum):
    OPEN = "open"  # counting confident open frames
    CLOSED = "closed"  # inside a closure
    REOPEN = "reopen"  # counting open frames after a closure


@dataclass
class _TrackState:
    phase: _Phase = _Phase.OPEN
    open_frames: int = 0
    closed_frames: int = 0
    unknown_run: int = 0
    closed_start_ms: float = 0.0
    reopen_ms: float = 0.0
    last_ms: float = float("-inf")
    blinks: int = 0
    history: deque = field(default_factory=deque)

    def restart(self, open_frames: int = 0) -> None:
        self.phase, self.open_frames, self.closed_frames, self.unknown_run = _Phase.OPEN, open_frames, 0, 0


class BlinkDetector:
    """Counts blinks per track id. Tracks never share state; ``drop`` forgets one."""

    def __init__(self, options: BlinkOptions | None = None):
        self.options = options or BlinkOptions()
        self._tracks: dict[int, _TrackState] = {}

    def blinks(self, track_id: int) -> int:
        state = self._tracks.get(track_id)
        return state.blinks if state else 0

    def history(self, track_id: int) -> list[tuple[float, EyeState]]:
        state = self._tracks.get(track_id)
        return list(state.history) if state else []

    def drop(self, track_id: int) -> None:
        self._tracks.pop(track_id, None)

    def reset(self, track_id: int) -> None:
        """Forget the eye history of a track (e.g. after its identity changed)."""
        self._tracks[track_id] = _TrackState(history=deque(maxlen=self.options.history))

    def update(self, track_id: int, timestamp_ms: float, state: EyeState) -> Blink | None:
        """Feed one observation; returns a Blink when this observation completes one."""
        track = self._tracks.get(track_id)
        if track is None:
            track = self._tracks[track_id] = _TrackState(history=deque(maxlen=self.options.history))
        if timestamp_ms <= track.last_ms:
            raise ValueError(
                f"timestamps must increase per track: got {timestamp_ms} after {track.last_ms} on track {track_id}"
            )
        track.last_ms = timestamp_ms
        track.history.append((timestamp_ms, state))

        if state is EyeState.UNKNOWN:
            track.unknown_run += 1
            if track.unknown_run > self.options.max_unknown_frames:
                track.restart()
            return None
        track.unknown_run = 0
        if state is EyeState.OPEN:
            return self._on_open(track_id, track, timestamp_ms)
        self._on_closed(track, timestamp_ms)
        return None

    def _on_open(self, track_id: int, track: _TrackState, t: float) -> Blink | None:
        opts = self.options
        if track.phase is _Phase.OPEN:
            track.open_frames += 1
            return None
        if track.phase is _Phase.CLOSED:
            if t - track.closed_start_ms > opts.max_closed_ms or track.closed_frames < opts.min_closed_frames:
                track.restart(open_frames=1)
                return None
            track.phase, track.reopen_ms, track.open_frames = _Phase.REOPEN, t, 0
        track.open_frames += 1
        if track.open_frames < opts.min_open_after:
            return None
        blink = Blink(track_id, track.closed_start_ms, track.reopen_ms, track.closed_frames)
        track.blinks += 1
        # The open run after this blink may serve as the run before the next one.
        track.restart(open_frames=track.open_frames)
        return blink

    def _on_closed(self, track: _TrackState, t: float) -> None:
        opts = self.options
        if track.phase is _Phase.OPEN:
            if track.open_frames >= opts.min_open_before:
                track.phase, track.closed_start_ms, track.closed_frames = _Phase.CLOSED, t, 1
            else:
                track.restart()
            return
        if track.phase is _Phase.REOPEN:
            # A flicker while reopening: the closure goes on (its length is still bounded).
            track.phase, track.open_frames = _Phase.CLOSED, 0
        track.closed_frames += 1
        if t - track.closed_start_ms > opts.max_closed_ms:
            track.restart()
