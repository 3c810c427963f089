"""Simulated challenge attempts against the real :class:`~blinkgate.door.DoorLogic`.

Two kinds of subject stand in front of a simulated camera, one attempt each:

* a **replay**: a real clip's blink timeline (hand labels, or the Gate's own blink events),
  looped from a random starting point as a phone on a stand would play it. It cannot see the
  prompt;
* a **crafted video** (:func:`aligned_pass_rate`): a timeline made for the door that starts
  playing as the face appears, so it knows when the track began;
* a **responsive person** (:class:`Responder`): reacts to the prompt after a human reaction
  time, blinks the asked number of times, then keeps the eyes open, with occasional misses and
  an occasional extra blink.

The frames carry what the Gate would report: the track appears and is recognised on its first
frame, and a blink is reported as the Gate reports it, with ``start_ms`` the last open frame
before the closure, ``end_ms`` the first open frame after it, on the frame after that one
(``min_open_after = 2``). No images: the eye stage's accuracy is what the Responder's
``miss``/``extra`` stand for.
"""

from __future__ import annotations

import bisect
import csv
import math
import random
from dataclasses import dataclass
from pathlib import Path

from .door import GRANTED, Decision, DoorLogic, DoorOptions
from .types import Event, EyeReading, EyeState, FaceResult, FrameResult

BOX = (100.0, 100.0, 220.0, 220.0)


@dataclass(frozen=True)
class Trace:
    """What the Gate saw of one face in a clip: its frame rate, per-frame eye states, and the
    blinks as closures ``(start, end)`` in ms (the lids move half a frame after the last open
    frame and half a frame before the first open one)."""

    fps: float
    frames: int
    blinks: tuple[tuple[float, float], ...]
    eye_states: tuple[EyeState, ...] = ()

    @property
    def duration_ms(self) -> float:
        return self.frames * 1000.0 / self.fps

    @property
    def blinks_per_min(self) -> float:
        return len(self.blinks) * 60_000.0 / self.duration_ms

    def eye_state(self, frame: int) -> EyeState:
        return self.eye_states[frame % self.frames] if self.eye_states else EyeState.OPEN


def label_trace(csv_path: str | Path, fps: float, frames: int) -> Trace:
    """A Trace from a clip's hand labels ``labels/<clip>.csv`` (frames 0-based, inclusive):
    every ``blink`` (sure and likely) is a blink; blinks and ``long_closure`` s read CLOSED,
    every other frame OPEN (winks, squints and down-gazes too: generous to the replay)."""
    blinks, states = [], [EyeState.OPEN] * frames
    with open(csv_path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            a, b = int(row["start_frame"]), int(row["end_frame"])
            if row["kind"] in ("blink", "long_closure"):
                for i in range(a, min(b + 1, frames)):
                    states[i] = EyeState.CLOSED
            if row["kind"] == "blink":
                blinks.append(((a - 0.5) * 1000.0 / fps, (b + 0.5) * 1000.0 / fps))
    return Trace(fps, frames, tuple(sorted(blinks)), tuple(states))


def gate_trace(result_stream, fps: float) -> Trace:
    """A Trace from the Gate's own output over a clip (an iterable of ``FrameResult``): the
    eye state of the first face on each frame (UNKNOWN without a face) and its ``blink``
    events."""
    dt = 1000.0 / fps
    states, blinks = [], []
    for result in result_stream:
        states.append(result.faces[0].eyes.state if result.faces else EyeState.UNKNOWN)
        for ev in result.events:
            if ev.kind == "blink":
                blinks.append((ev.detail["start_ms"] + dt / 2, ev.detail["end_ms"] - dt / 2))
    return Trace(fps, len(states), tuple(blinks), tuple(states))


@dataclass(frozen=True)
class Responder:
    """A person who follows the prompt. Times in ms.

    Reaction (prompt on screen → first lid movement) is log-normal with median
    ``reaction_median_ms`` and log-sd ``reaction_sigma``; each closure lasts
    ``closure_ms``; between deliberate blinks the eyes are open ``open_gap_ms``. Each blink is
    missed by the eye stage with probability ``miss``; with probability ``extra`` one more
    blink (a spontaneous one, or a false detection) falls anywhere in the answer or the hold.
    Before the prompt the person blinks naturally at ``natural_per_min``.
    """

    reaction_median_ms: float = 500.0
    reaction_sigma: float = 0.3
    closure_ms: tuple[float, float] = (120.0, 250.0)
    open_gap_ms: tuple[float, float] = (150.0, 450.0)
    miss: float = 0.01
    extra: float = 0.01
    natural_per_min: float = 17.0


class _Subject:
    """Blink closures ``(start, end)`` in ms, and the eye state on a frame."""

    def prompted(self, prompt_ms: float, count: int, hold_ms: float, rng: random.Random) -> None:
        pass

    def blinks(self) -> list[tuple[float, float]]:
        raise NotImplementedError

    def eye_state(self, frame: int, now: float) -> EyeState:
        raise NotImplementedError


class _Replay(_Subject):
    """A trace looped from frame ``phase`` on, shown at the trace's own frame rate."""

    def __init__(self, trace: Trace, phase: int, horizon_ms: float):
        self.trace, self.phase = trace, phase
        shift, self._blinks = phase * 1000.0 / trace.fps, []
        for n in range(int(math.ceil(horizon_ms / trace.duration_ms)) + 2):
            for s, e in trace.blinks:
                t = s + n * trace.duration_ms - shift
                if t > 0:
                    self._blinks.append((t, e + n * trace.duration_ms - shift))

    def blinks(self) -> list[tuple[float, float]]:
        return self._blinks

    def eye_state(self, frame: int, now: float) -> EyeState:
        return self.trace.eye_state(frame + self.phase)


class _Person(_Subject):
    def __init__(self, responder: Responder, rng: random.Random, horizon_ms: float):
        self.r, self._blinks = responder, []
        t, rate = 0.0, responder.natural_per_min / 60_000.0
        while rate > 0:
            t += rng.expovariate(rate)
            if t > horizon_ms:
                break
            self._blinks.append((t, t + rng.uniform(*responder.closure_ms)))

    def prompted(self, prompt_ms: float, count: int, hold_ms: float, rng: random.Random) -> None:
        r = self.r
        # Natural blinking stops when the prompt appears (attention suppresses it); the answer
        # starts one reaction time after the prompt reached the screen.
        self._blinks = [b for b in self._blinks if b[0] < prompt_ms]
        t = prompt_ms + math.exp(math.log(r.reaction_median_ms) + r.reaction_sigma * rng.gauss(0.0, 1.0))
        answer = []
        for _ in range(count):
            closure = rng.uniform(*r.closure_ms)
            answer.append((t, t + closure))
            t += closure + rng.uniform(*r.open_gap_ms)
        kept = [b for b in answer if rng.random() >= r.miss]
        if rng.random() < r.extra:
            s = rng.uniform(prompt_ms + 200.0, answer[-1][0] + hold_ms)
            kept.append((s, s + rng.uniform(*r.closure_ms)))
        # Blinks must not overlap: one starting inside (or right after) another merges with it.
        merged: list[tuple[float, float]] = []
        for s, e in sorted(self._blinks + kept):
            if merged and s < merged[-1][1] + 100.0:
                merged[-1] = (merged[-1][0], max(merged[-1][1], e))
            else:
                merged.append((s, e))
        self._blinks = merged

    def blinks(self) -> list[tuple[float, float]]:
        return self._blinks

    def eye_state(self, frame: int, now: float) -> EyeState:
        i = bisect.bisect_left(self._blinks, (now, math.inf)) - 1
        return EyeState.CLOSED if i >= 0 and self._blinks[i][0] < now < self._blinks[i][1] else EyeState.OPEN


def run_attempt(subject: _Subject, options: DoorOptions, seed: int, fps: float = 20.0,
                horizon_ms: float = 60_000.0, name: str = "alice") -> Decision | None:
    """Show ``subject`` to a fresh DoorLogic (rng seeded with ``seed``) until its first
    grant or denial; returns that decision (None if the horizon passes first)."""
    rng = random.Random(seed)
    logic = DoorLogic(options, rng=random.Random(rng.getrandbits(64)))
    subject_rng = random.Random(rng.getrandbits(64))
    dt = 1000.0 / fps
    reported: set[tuple[float, float]] = set()
    blinks, starts = None, []
    n = 0
    while n * dt <= horizon_ms:
        n += 1
        now = n * dt
        events: list[Event] = []
        if n == 1:
            events += [Event("appeared", now, 1, None, BOX), Event("recognised", now, 1, name, BOX, {"distance": 0.3})]
        if blinks is not subject.blinks():
            blinks = subject.blinks()
            starts = [s for s, _ in blinks]
        # Blinks that started in the last few seconds and are not reported yet.
        for s, e in blinks[bisect.bisect_left(starts, now - 3000.0):bisect.bisect_right(starts, now)]:
            if (s, e) in reported:
                continue
            last_open = math.floor(s / dt) * dt  # last frame before the lids moved
            first_open = math.ceil(e / dt) * dt
            if first_open - last_open < 2 * dt:
                continue  # no frame saw the eyes closed
            if now >= first_open + dt:  # the Gate needs two open frames after the closure
                reported.add((s, e))
                events.append(Event("blink", now, 1, name, BOX, {"start_ms": last_open, "end_ms": first_open,
                                                                     "checked": True}))
        face = FaceResult(1, BOX, name, 0.3, EyeReading(subject.eye_state(n, now)), 0, False, False)
        result = logic.update(FrameResult(n, now, [face], events))
        for ev in result.events:
            if ev.kind == "challenge":  # every round of it
                # The prompt reaches the screen with this frame.
                subject.prompted(now + dt, ev.detail["count"], options.challenge.hold_ms, subject_rng)
        for d in result.decisions:
            if d.decision in ("granted", "denied"):
                return d
    return None


def crafted_trace(blinks_s, shut_s=(), seconds: float = 16.0, fps: float = 20.0) -> Trace:
    """A timeline made for the door: 150-ms blinks starting at ``blinks_s`` and the eyes shut
    over each ``(start, end)`` of ``shut_s``, all in s from the video's first frame."""
    blinks = tuple((b * 1000.0, b * 1000.0 + 150.0) for b in blinks_s)
    states = []
    for i in range(int(seconds * fps)):
        t = i * 1000.0 / fps
        shut = any(s < t < e for s, e in blinks) or any(a * 1000.0 <= t < b * 1000.0 for a, b in shut_s)
        states.append(EyeState.CLOSED if shut else EyeState.OPEN)
    return Trace(fps, len(states), blinks, tuple(states))


def _pass_rate(seeds: range | list[int], attempt) -> tuple[int, int]:
    """(passes, attempts) of ``attempt(seed)`` (a Decision or None) over the seeds."""
    passes = 0
    for seed in seeds:
        d = attempt(seed)
        passes += d is not None and d.decision == GRANTED
    return passes, len(seeds)


def replay_pass_rate(trace: Trace, seeds: range | list[int], options: DoorOptions | None = None) -> tuple[int, int]:
    """(passes, attempts): the looped clip against one fresh challenge per seed, each attempt
    starting at a random frame of the clip."""
    options = options or DoorOptions()
    return _pass_rate(seeds, lambda seed: run_attempt(
        _Replay(trace, random.Random(f"phase-{seed}").randrange(trace.frames), 60_000.0), options, seed, trace.fps))


def aligned_pass_rate(trace: Trace, seeds: range | list[int], options: DoorOptions | None = None) -> tuple[int, int]:
    """(passes, attempts): a video made for the door, which starts playing on the frame the face
    appears (the attacker brings the phone into view as it starts), one challenge per seed.
    It knows when the track starts; only the prompt's random delay and count are hidden."""
    options, horizon = options or DoorOptions(), trace.duration_ms
    return _pass_rate(seeds, lambda seed: run_attempt(
        _Replay(trace, 0, horizon), options, seed, trace.fps, horizon_ms=horizon))


def responsive_pass_rate(seeds: range | list[int], options: DoorOptions | None = None,
                         responder: Responder | None = None, fps: float = 20.0) -> tuple[int, int]:
    """(passes, attempts) of a simulated person following the prompt, one attempt per seed."""
    options, responder = options or DoorOptions(), responder or Responder()
    passes = 0
    for seed in seeds:
        person = _Person(responder, random.Random(f"person-{seed}"), 60_000.0)
        d = run_attempt(person, options, seed, fps)
        passes += d is not None and d.decision == GRANTED
    return passes, len(seeds)
