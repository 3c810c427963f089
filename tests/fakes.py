"""Scripted pipeline stages for Gate and Door tests: no images, no models."""

from __future__ import annotations

import numpy as np

from blinkgate.types import Event, EyeReading, EyeState, FaceResult, FrameResult

FRAME = np.zeros((480, 640, 3), np.uint8)


def vec(seed: int) -> np.ndarray:
    """A reproducible 128-d face encoding; different seeds are different people."""
    return np.random.default_rng(seed).normal(size=128) * 0.2


class FakeDetector:
    """Finds exactly the boxes a test puts in ``boxes``."""

    def __init__(self):
        self.boxes: list = []

    def detect(self, gray):
        return list(self.boxes)

    def detect_around(self, gray, box):
        return box if box in self.boxes else None


class FakeEncoder:
    """Who stands at a box is set by the test in ``identity``; counts encode calls. A frame whose
    first pixel is stamped with a key of ``stamped`` shows that person instead, wherever the box."""

    def __init__(self):
        self.identity: dict = {}
        self.stamped: dict = {}
        self.calls = 0

    def encode(self, image, box):
        self.calls += 1
        stamp = int(image[0, 0, 0])
        return self.stamped[stamp] if stamp in self.stamped else self.identity[tuple(box)]


class FakeEyes:
    """Eye state (default OPEN) and crop sharpness per box, set by the test."""

    name = "fake"

    def __init__(self):
        self.state: dict = {}
        self.sharpness: dict = {}  # per box; none: no sharpness reading (like the Haar backend)
        self.ear: dict = {}  # per box; none: no EAR (like the Haar backend)

    def read(self, gray, box):
        box = tuple(box)
        return EyeReading(self.state.get(box, EyeState.OPEN), ear=self.ear.get(box), sharpness=self.sharpness.get(box))


def die_in_worker(*_):
    """A worker initializer (or task) that dies at once, as a process killed for memory would."""
    import os

    os._exit(3)


def refuse_database(*_):
    """A worker initializer that fails as a Gate on a file that is no face database does."""
    from blinkgate.errors import DatabaseError

    raise DatabaseError("bad.db is not a blinkgate database (not an SQLite file)")


def square(x: int) -> int:
    return x * x


def square_unless_3(x: int) -> int:
    """x * x, but input 3 kills its worker, as a corrupt video that crashes a decoder would."""
    if x == 3:
        die_in_worker()
    return x * x


class CrashOnName:
    """A Gate for ``check`` workers that dies on an input whose name contains "crash", as a
    decoder crashing on a corrupt file would, and sees no face elsewhere."""

    def reset(self):
        pass

    def run(self, source):
        if "crash" in source.description:
            die_in_worker()
        for frame in source:
            yield frame, type("Result", (), {"faces": [], "events": []})()


def crash_on_name_gate():
    return CrashOnName()


class CrashOnWhite:
    """An eval pipeline that dies on a white frame (a decoder crashing on a corrupt file) and
    sees no face elsewhere."""

    def reset(self):
        pass

    def process(self, image, timestamp_ms):
        if image.mean() > 250:
            die_in_worker()
        return [], 0


def sleep_then_square(x: int) -> int:
    """A slow input (``check`` of a long clip): x seconds, then x * x."""
    import time

    time.sleep(x)
    return x * x


def echo_worker(requests, results, models_dir):
    """A recognition worker without models (as ``background._serve``): each face's "encoding"
    is its crop's mean, at once."""
    from blinkgate.background import Encoded

    while (item := requests.get()) is not None:
        key, crop, _ = item
        results.put(Encoded(key, np.full(128, float(crop.mean()))))


class FakeBackground:
    """A background encoder whose results come back only when the test calls ``release``.

    The encoding is taken when the face is submitted, as the real worker encodes the crop it
    was sent, whoever stands at the box by the time the result comes back."""

    def __init__(self, encoder: FakeEncoder):
        self.encoder = encoder
        self.queued: list = []
        self.released: list = []
        self.failing = False  # True: the next results come back as errors
        self.closed = False

    def submit(self, key, image, box):
        self.queued.append((key, self.encoder.encode(image, box)))

    def release(self):
        self.released += self.queued
        self.queued = []

    @property
    def pending(self) -> int:
        """Requests submitted and not yet polled, as ``BackgroundEncoder.pending``."""
        return len(self.queued) + len(self.released)

    def poll(self):
        from blinkgate.background import Encoded

        done = [Encoded(k, None, "boom") if self.failing else Encoded(k, e) for k, e in self.released]
        self.released = []
        return done

    def close(self):
        self.closed = True


class ScriptedGate:
    """A Gate that reports what a script says, for a Door run from the command line: ``script``
    holds (time_ms, kind, track, name, detail) events (appeared, recognised, blink, lost), each
    reported on the first frame at or after its time; a track is a face from appeared to lost,
    live (and granted, if named) once it has blinked, as the Gate's blink-only grant."""

    def __init__(self, script: list[tuple]):
        self.script = sorted(script, key=lambda step: step[0])
        self.names: dict[int, str | None] = {}
        self.blinked: set[int] = set()
        self.frames = 0
        self.last_ms = 0.0

    @staticmethod
    def box(track: int) -> tuple:
        return (4.0 + 32 * (track - 1), 4.0, 28.0 + 32 * (track - 1), 28.0)

    def process(self, image, timestamp_ms: float) -> FrameResult:
        events = []
        while self.script and self.script[0][0] <= timestamp_ms:
            _, kind, track, name, detail = self.script.pop(0)
            if kind == "lost":
                self.names.pop(track, None)
            else:
                self.names[track] = name
            if kind == "blink":
                self.blinked.add(track)
            events.append(Event(kind, timestamp_ms, track, name, self.box(track), dict(detail)))
        faces = [FaceResult(t, self.box(t), n, 0.3, EyeReading(EyeState.OPEN), 0, t in self.blinked,
                            t in self.blinked and n is not None) for t, n in self.names.items()]
        self.frames += 1
        self.last_ms = timestamp_ms
        return FrameResult(self.frames, timestamp_ms, faces, events)

    def end(self) -> list[Event]:
        """As Gate.end: a ``lost`` for each face still in view, which is then forgotten."""
        events = [Event("lost", self.last_ms, t, n, self.box(t)) for t, n in self.names.items()]
        self.names.clear()
        return events

    def set_people(self, encodings, names) -> str:
        return ""

    def close(self) -> None:
        pass


def noise_clip(path, frames: int = 40, fps: float = 25.0) -> None:
    """An MJPG .avi of random 64x48 frames: each costs its own bytes, so a cut file loses frames."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    for i in range(frames):
        writer.write(np.random.default_rng(i).integers(0, 255, (48, 64, 3), np.uint8))
    writer.release()


def silent_worker(requests, results, models_dir):
    """A recognition worker that takes every request and answers none, as one stuck in a native
    call on each face (or in loading its models) would."""
    while requests.get() is not None:
        pass
