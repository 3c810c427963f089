"""Face encodings computed in a second process, off the frame loop.

dlib's ResNet encoding takes ~100 ms per face on this project's x86 machine and several times
that on a Raspberry Pi, and it holds Python's GIL while it runs (measured in
docs/benchmarks.md), so a thread would stall the frame loop all the same. A camera keeps only a
few frames queued in its driver: while the loop stands still, the rest are dropped, and so is a
blink that falls among them. ``BackgroundEncoder`` runs ``FaceEncoder.encode`` in a spawned
process instead: ``submit`` returns at once, ``poll`` hands back what has finished.

What crosses the process boundary is a crop around the face (twice the box's size), not the
frame: the 5-point alignment and the 150×150 chip lie well inside it.

The worker is supervised from ``poll``: a door box runs for weeks, and a worker that dies (the
kernel's OOM killer, a crash in native code) or hangs (a stuck native call, heavy swap) would
otherwise leave faces unnamed forever, or end the door. When the worker has died, or the oldest
request has waited ``timeout_s`` (15 s; an encoding takes well under 1 s even on a Pi; 60 s more
before a worker's first answer, as it loads dlib's models first), it is
killed and replaced, and every request it still held comes back from ``poll`` marked ``lost``
(no encoding: it can never match anyone), for the caller to ask again. A worker that fails
``max_restarts`` times in a row before answering anything (a broken install, a face that crashes
dlib each time) ends in a ``BlinkgateError`` instead of a restart loop.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np

from .errors import BlinkgateError
from .types import Box

log = logging.getLogger(__name__)

MARGIN = 0.5  # crop this share of the box's size beyond each side of it
TIMEOUT_S = 15.0  # a request unanswered this long means the worker hangs
MAX_RESTARTS = 3  # replacements in a row that fail before answering anything, then give up
# A worker that begins to fail (dies, or gets the request it hangs on) this soon after its start,
# unanswering, "failed at once".
QUICK_S = 60.0
STARTUP_S = 60.0  # more time for a worker's first answer: it loads dlib's models (a cold SD card on a Pi)


@dataclass(frozen=True)
class Encoded:
    """One finished request: the encoding, or why there is none."""

    key: Hashable
    encoding: np.ndarray | None
    error: str | None = None
    lost: bool = False  # never answered: the worker died or hung with it; ask again


def face_crop(image: np.ndarray, box: Box, margin: float = MARGIN) -> tuple[np.ndarray, Box]:
    """The part of ``image`` around ``box`` (clipped to the frame) and the box in its coordinates."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    cx1, cy1 = max(0, int(x1 - mx)), max(0, int(y1 - my))
    cx2, cy2 = min(w, int(np.ceil(x2 + mx))), min(h, int(np.ceil(y2 + my)))
    crop = np.ascontiguousarray(image[cy1:cy2, cx1:cx2])
    return crop, (x1 - cx1, y1 - cy1, x2 - cx1, y2 - cy1)


def _exit_with_parent() -> None:
    """End this worker when its parent ends, however it ends. A parent killed (SIGKILL, the OOM
    killer) never sends the stop: the worker waited on its queue for ever, holding dlib's models,
    one more at each restart of the door (the queue's pipe stays open: the worker holds both ends)."""
    parent = mp.parent_process()
    if parent is not None:
        threading.Thread(target=lambda: (parent.join(), os._exit(0)), name="blinkgate-parent-watch",
                         daemon=True).start()


def _serve(requests, results, models_dir) -> None:
    """The worker: load the models once, then encode until told to stop (``None``)."""
    from .recognize import FaceEncoder

    _exit_with_parent()
    # Ctrl-C reaches the whole process group: the parent stops this worker itself (_stop), and
    # a KeyboardInterrupt here only printed a traceback of the worker under the parent's exit.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
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


def _end_worker(proc) -> None:
    """Kill a worker whose BackgroundEncoder was dropped without ``close`` (it holds dlib's models)."""
    if proc.is_alive():
        proc.kill()
        proc.join(timeout=5)


class BackgroundEncoder:
    """``FaceEncoder.encode`` in a worker process. Use from one thread; ``close`` when done.

    ``timeout_s``, ``max_restarts``, ``quick_s``, ``startup_s`` and ``target`` (the worker
    function, as ``_serve``) are there for tests; ``clock`` is a monotonic clock in seconds."""

    def __init__(self, models_dir=None, *, timeout_s: float = TIMEOUT_S, max_restarts: int = MAX_RESTARTS,
                 quick_s: float = QUICK_S, startup_s: float = STARTUP_S, target: Callable = _serve,
                 clock: Callable[[], float] = time.monotonic):
        self.models_dir, self.timeout_s, self.max_restarts, self.quick_s = models_dir, timeout_s, max_restarts, quick_s
        self.startup_s = startup_s
        self._target, self._clock = target, clock
        self._ctx = mp.get_context("spawn")  # dlib's state does not survive a fork reliably
        self._seq = 0  # request numbers: a caller's keys need not be unique
        self._outstanding: dict[int, tuple[Hashable, float]] = {}  # number -> (key, sent at), oldest first
        self._failures = 0  # workers in a row that failed at once (before answering anything)
        self.restarts = 0
        self._start()

    def _start(self) -> None:
        # Fresh queues for every worker: one killed inside ``get`` keeps the queue's lock for ever.
        self._requests = self._ctx.Queue()
        # Once the worker is gone, a request too big for the pipe would block the queue's feeder
        # thread for ever; with this (and the reader closed in ``_stop``) it ends quietly instead.
        self._requests._ignore_epipe = True
        self._results = self._ctx.Queue()
        self._proc = self._ctx.Process(target=self._target, args=(self._requests, self._results, self.models_dir),
                                       name="blinkgate-recognition", daemon=True)
        self._proc.start()
        # A caller that forgets ``close`` must not leave a process per encoder until it exits.
        self._reaper = weakref.finalize(self, _end_worker, self._proc)
        self._started, self._answered = self._clock(), False

    @property
    def pending(self) -> int:
        """Requests submitted and not yet handed back by ``poll``."""
        return len(self._outstanding)

    def submit(self, key: Hashable, image: np.ndarray, box: Box) -> None:
        """Queue the face in ``box`` of ``image`` (BGR uint8) for encoding; returns at once."""
        crop, shifted = face_crop(image, box)
        self._seq += 1
        self._requests.put((self._seq, crop, shifted))
        self._outstanding[self._seq] = (key, self._clock())

    def poll(self) -> list[Encoded]:
        """The requests finished since the last call, without waiting; and, if the worker died or
        hangs, those it held (``lost``), after it has been replaced."""
        return self._poll(0.0)

    def _poll(self, timeout: float) -> list[Encoded]:
        done = self._collect(timeout)
        if not self._proc.is_alive():
            done += self._collect(0.0)  # what it wrote just before it ended (why it could not start)
        return done + self._supervise()

    def _collect(self, timeout: float) -> list[Encoded]:
        """The results in the queue, waiting up to ``timeout`` s for the first."""
        done = []
        while True:
            try:
                item = self._results.get(timeout=timeout) if timeout > 0 else self._results.get_nowait()
            except queue.Empty:
                return done
            timeout = 0.0
            if item.key is None:  # the models did not load: a restart cannot mend that
                raise BlinkgateError(item.error)
            key, _ = self._outstanding.pop(item.key, (None, None))
            if key is None:
                continue  # not ours (cannot happen: every worker has its own queues)
            self._answered, self._failures = True, 0
            done.append(Encoded(key, item.encoding, item.error))

    def _supervise(self) -> list[Encoded]:
        """Replace a dead or hung worker; its requests come back lost."""
        problem = self._problem()
        if problem is None:
            return []
        lost = [Encoded(key, None, f"lost: the recognition process {problem}", lost=True)
                for key, _ in self._outstanding.values()]
        # When it began to fail: a hang, when it was given the request it never answered.
        began = min([sent for _, sent in self._outstanding.values()] + [self._clock()])
        self._outstanding.clear()
        self._replace(problem, len(lost), began)
        return lost

    def _problem(self) -> str | None:
        """Why the worker must be replaced, or None. Checked on every poll (``is_alive`` is one
        ``waitpid``) so a worker that died while idle is replaced before the next face waits."""
        if not self._proc.is_alive():
            return f"died (exit code {self._proc.exitcode})"
        if self._outstanding:
            waited = self._clock() - next(iter(self._outstanding.values()))[1]
            if waited > self.timeout_s + (0.0 if self._answered else self.startup_s):
                return f"has held a request for {waited:.0f} s (hung?)"
        return None

    def _replace(self, problem: str, lost: int, began: float) -> None:
        # Judged by when it began to fail, not when that was seen: a hang is seen only after
        # timeout_s + startup_s (75 s), past quick_s, so one that hung on every face never counted
        # and was replaced for ever instead of ending in the error.
        at_once = not self._answered and began - self._started < self.quick_s
        self._failures = self._failures + 1 if at_once else 0
        self._stop(graceful=False)
        if self._failures > self.max_restarts:
            raise BlinkgateError(f"the recognition process {problem}; it failed {self._failures} times in a row "
                                 "before answering anything: giving up (see the log above for its errors)")
        self.restarts += 1
        log.warning("the recognition process %s; %d request%s it held handed back as lost; starting a new one (restart %d)",
                    problem, lost, "" if lost == 1 else "s", self.restarts)
        self._start()

    def wait(self, timeout: float = 30.0) -> list[Encoded]:
        """Block until at least one request has finished or was lost (for tests and batch use)."""
        deadline = time.monotonic() + timeout
        while not (done := self._poll(0.1)):
            if time.monotonic() > deadline:
                raise BlinkgateError(f"no face encoding within {timeout:g} s")
        return done

    def _stop(self, graceful: bool) -> None:
        self._reaper.detach()
        if graceful and self._proc.is_alive():
            self._requests.put(None)
            self._proc.join(timeout=5)
        if self._proc.is_alive():
            self._proc.kill()  # also ends a stopped (SIGSTOP) process
            self._proc.join(timeout=5)
        try:  # no reader left: a feeder thread blocked on a full pipe gets EPIPE and ends
            self._requests._reader.close()
        except (AttributeError, OSError):
            pass
        for q in (self._requests, self._results):
            q.close()
            q.cancel_join_thread()  # leftover requests of a dead worker must not block our exit

    def close(self) -> None:
        self._stop(graceful=True)

    def __enter__(self) -> BackgroundEncoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
