"""Face encodings computed in a second process, off the frame loop.

dlib's ResNet encoding takes ~100 ms per face on this project's x86 machine and several times
that on a Raspberry Pi, and it holds Python's GIL while it runs (measured in
docs/benchmarks.md), so a thread would stall the frame loop all the same. A camera keeps only a
few frames queued in its driver: while the loop stands still, the rest are dropped, and so is a
blink that falls among them. ``BackgroundEncoder`` runs ``FaceEncoder.encode`` in a spawned
process instead: ``submit`` returns at once, ``poll`` hands back what has finished.

What crosses the process boundary is a crop around the face (twice the box's size), not the
frame: the 5-point alignment and the 150×150 chip lie well inside it.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np

from .errors import BlinkgateError
from .types import Box

MARGIN = 0.5  # crop this share of the box's size beyond each side of it


@dataclass(frozen=True)
class Encoded:
    """One finished request: the encoding, or why there is none."""

    key: Hashable
    encoding: np.ndarray | None
    error: str | None = None


def face_crop(image: np.ndarray, box: Box, margin: float = MARGIN) -> tuple[np.ndarray, Box]:
    """The part of ``image`` around ``box`` (clipped to the frame) and the box in its coordinates."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    cx1, cy1 = max(0, int(x1 - mx)), max(0, int(y1 - my))
    cx2, cy2 = min(w, int(np.ceil(x2 + mx))), min(h, int(np.ceil(y2 + my)))
    crop = np.ascontiguousarray(image[cy1:cy2, cx1:cx2])
    return crop, (x1 - cx1, y1 - cy1, x2 - cx1, y2 - cy1)


def _serve(requests, results, models_dir) -> None:
    """The worker: load the models once, then encode until told to stop (``None``)."""
    from .recognize import FaceEncoder

    encoder = FaceEncoder(models_dir)
    try:
        encoder.shape5, encoder.resnet  # noqa: B018 - load now, not on the first face
    except Exception as err:  # a missing or broken model file: say so and stop
        results.put(Encoded(None, None, f"cannot load the recognition models: {err}"))
        return
    while (item := requests.get()) is not None:
        key, crop, box = item
        try:
            results.put(Encoded(key, encoder.encode(crop, box)))
        except Exception as err:  # one bad face must not end the worker
            results.put(Encoded(key, None, f"{type(err).__name__}: {err}"))


class BackgroundEncoder:
    """``FaceEncoder.encode`` in a worker process. Use from one thread; ``close`` when done."""

    def __init__(self, models_dir=None):
        ctx = mp.get_context("spawn")  # dlib's state does not survive a fork reliably
        self._requests = ctx.Queue()
        self._results = ctx.Queue()
        self._proc = ctx.Process(target=_serve, args=(self._requests, self._results, models_dir),
                                 name="blinkgate-recognition", daemon=True)
        self._proc.start()
        self.pending = 0

    def submit(self, key: Hashable, image: np.ndarray, box: Box) -> None:
        """Queue the face in ``box`` of ``image`` (BGR uint8) for encoding; returns at once."""
        crop, shifted = face_crop(image, box)
        self._requests.put((key, crop, shifted))
        self.pending += 1

    def poll(self) -> list[Encoded]:
        """The requests finished since the last call, without waiting."""
        done = []
        while True:
            try:
                item = self._results.get_nowait()
            except queue.Empty:
                break
            if item.key is None:
                raise BlinkgateError(item.error)
            done.append(item)
        self.pending -= len(done)
        if self.pending and not done:
            self._check_alive()
        return done

    def _check_alive(self) -> None:
        if not self._proc.is_alive():
            raise BlinkgateError(f"the recognition process died (exit code {self._proc.exitcode})")

    def wait(self, timeout: float = 30.0) -> list[Encoded]:
        """Block until at least one request has finished (for tests and batch use)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                first = self._results.get(timeout=0.1)
                break
            except queue.Empty:
                self._check_alive()
                if time.monotonic() > deadline:
                    raise BlinkgateError(f"no face encoding within {timeout:g} s") from None
        if first.key is None:
            raise BlinkgateError(first.error)
        self.pending -= 1
        return [first, *self.poll()]

    def close(self) -> None:
        if self._proc.is_alive():
            self._requests.put(None)
            self._proc.join(timeout=5)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout=5)
        for q in (self._requests, self._results):
            q.close()
            q.cancel_join_thread()  # leftover requests of a dead worker must not block our exit

    def __enter__(self) -> BackgroundEncoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
