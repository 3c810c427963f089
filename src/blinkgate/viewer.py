"""Showing and recording annotated frames, shared by ``blinkgate run`` and ``blinkgate door``."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from .errors import BlinkgateError
from .files import PRIVATE_FILE, create_private

log = logging.getLogger(__name__)


def has_display() -> bool:
    """Whether a window can open. On Linux a ``$DISPLAY`` that is set but does not answer (a
    dropped ``ssh -X``, a service's stale environment) made Qt abort the process (SIGABRT)."""
    if sys.platform in ("win32", "darwin"):
        return True
    wayland, x11 = os.environ.get("WAYLAND_DISPLAY"), os.environ.get("DISPLAY")
    if wayland and _wayland_reachable(wayland):
        return True
    if x11:
        if _x11_reachable(x11):
            return True
        log.warning("$DISPLAY=%s does not answer: running without a window", x11)
    return False


def _wayland_reachable(name: str) -> bool:
    path = Path(name) if os.path.isabs(name) else Path(os.environ.get("XDG_RUNTIME_DIR", "/nonexistent")) / name
    return path.exists()


def _x11_reachable(display: str, timeout_s: float = 0.5) -> bool:
    """Connect to the X server ``display`` names ([host]:N[.screen]), as a client would."""
    import socket

    host, _, rest = display.rpartition(":")
    number = rest.split(".")[0]
    if not number.isdigit():
        return False
    try:
        if host in ("", "unix"):
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(timeout_s)
                try:
                    sock.connect(f"/tmp/.X11-unix/X{number}")
                except OSError:  # Linux servers also listen on the abstract socket
                    sock.connect(f"\0/tmp/.X11-unix/X{number}")
            return True
        with socket.create_connection((host, 6000 + int(number)), timeout=timeout_s):
            return True
    except OSError:
        return False


# Containers OpenCV's FFmpeg writer handles with the mp4v codec. An MP4 (or MOV) gets its index
# only when closed: a power cut or a crash loses all of it. Matroska is written as it goes.
RECORD_FORMATS = (".mkv", ".mp4", ".avi", ".mov", ".m4v")
INDEX_AT_END = (".mp4", ".mov", ".m4v")
# Below this much free space a recording pauses: the access log needs room for the failures a
# lockout counts, and a recording left running for weeks is what fills a door box's card.
MIN_FREE_BYTES = 512 * 2**20
RESUME_FREE_BYTES = MIN_FREE_BYTES + 128 * 2**20  # hysteresis: no flapping around the floor
FREE_CHECK_S = 10.0
# Less than this free as a recording closes: the disk filled while it was written (a frame is tens of KB).
FULL_BYTES = 2**20
MAX_FILL_S = 2.0  # a longer gap between live frames (an outage, a pause) is cut, not filled with one picture


def free_bytes(folder: Path) -> int:
    return shutil.disk_usage(folder).free


def unused_path(path: Path) -> Path:
    """``path``, or if something is there, a new name beside it with the start time in it, said
    in the log. A recording never goes over an existing file: systemd restarts a door, and a
    crash-restart loop wiped the recording of what happened just before each crash; `run
    --record precious.mkv` replaced the user's own video."""
    if not os.path.lexists(path):  # lexists: not through a dangling symlink either
        return path
    stamped = f"{path.stem}-{datetime.now():%Y%m%d-%H%M%S}"
    # Two starts within a second (a crash-restart loop): the second must not overwrite the
    # first one's file, which holds what happened just before the crash.
    candidates = (path.with_name(f"{stamped}{'' if n == 1 else f'-{n}'}{path.suffix}") for n in range(1, 10_000))
    fresh = next(p for p in candidates if not os.path.lexists(p))
    log.info("recording to %s (the earlier recording is kept)", fresh)
    return fresh


class Recording:
    """An annotated video written frame by frame, made to survive long unattended runs.

    A file already at ``path`` is kept: the recording goes beside it (:func:`unused_path`).
    The file is its owner's only: it shows the faces at the door, as the database's snapshots.
    Frames of another size (a camera that reconnected in another mode) are resized to the
    first, since the writer silently drops them otherwise. An odd width or height gets one more
    column or row, a copy of the last: the writer needs even sizes (4:2:0 colour) and cut the
    last row or column off instead.
    """

    def __init__(self, path: str | Path, fps: float, live: bool):
        path = Path(path)
        if path.suffix.lower() not in RECORD_FORMATS:
            raise BlinkgateError(f"cannot record to {path}: use one of {', '.join(RECORD_FORMATS)} (.mkv plays "
                                 "even after a crash)")
        if not path.parent.is_dir():
            raise BlinkgateError(f"cannot record to {path}: no folder {path.parent}")
        try:  # a read-only folder failed only at the first frame, after --events had begun
            with tempfile.TemporaryFile(dir=path.parent):
                pass
        except OSError as err:
            raise BlinkgateError(f"cannot record to {path}: {err.strerror or err}") from None
        self.asked = path  # the name given; ``path`` is the one written
        path = unused_path(path)
        if live and path.suffix.lower() in INDEX_AT_END:
            log.warning("recording to %s: a %s file plays only once closed, so a power cut or crash loses all of "
                        "it; .mkv plays up to the last second written", path, path.suffix.lower())
        self.path, self.fps, self.live = path, fps, live
        self._t0: float | None = None  # a live recording's first frame time (ms), and frames written since
        self._written = 0
        self._writer = None
        self._size: tuple[int, int] | None = None
        self._paused, self._checked = False, -FREE_CHECK_S

    def write(self, canvas: np.ndarray, timestamp_ms: float | None = None) -> None:
        """Write one frame. A live frame with its time fills the ``1 / fps`` slots up to that
        time: a gate slower than its camera skips stale frames, and written once each they would
        play faster than the door saw them."""
        import cv2

        if not self._room():
            return
        copies = self._copies(timestamp_ms) if self.live and timestamp_ms is not None else 1
        if not copies:
            return
        if self._writer is None:
            self._open((canvas.shape[1], canvas.shape[0]))
        if (canvas.shape[1], canvas.shape[0]) != self._size:
            canvas = cv2.resize(canvas, self._size, interpolation=cv2.INTER_AREA)
        if self._size[0] % 2 or self._size[1] % 2:
            canvas = cv2.copyMakeBorder(canvas, 0, self._size[1] % 2, 0, self._size[0] % 2, cv2.BORDER_REPLICATE)
        for _ in range(copies):
            self._writer.write(canvas)

    def _open(self, size: tuple[int, int]) -> None:
        """Open the writer for frames of ``size``, on a file made for it, owner-only."""
        import cv2

        self._create()
        even = (size[0] + size[0] % 2, size[1] + size[1] % 2)
        if even != size:
            log.info("recording %dx%d frames at %dx%d: the video codec needs an even width and height, so the "
                     "last column or row is repeated", *size, *even)
        writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, even)
        if not writer.isOpened():
            self.path.unlink(missing_ok=True)  # ours, and empty
            raise BlinkgateError(f"cannot write video {self.path}")
        # The writer takes no mode; a backend that made the file anew would give it the umask's
        # (0644: every user could watch the door), so it is set again before the first frame.
        os.chmod(self.path, PRIVATE_FILE)
        self._writer, self._size = writer, size

    def _create(self) -> None:
        """Create the file, owner-only, for the writer to fill (it keeps the mode). A file that
        came to the path since the start is kept, as one there before: the recording goes
        beside it."""
        for _ in range(3):
            try:
                create_private(self.path)
                return
            except FileExistsError:
                self.path = unused_path(self.asked)
            except OSError as err:
                raise BlinkgateError(f"cannot record to {self.path}: {err.strerror or err}") from None
        raise BlinkgateError(f"cannot record to {self.path}: other files keep taking its name")

    def _copies(self, timestamp_ms: float) -> int:
        """How many times to write a live frame taken at ``timestamp_ms`` (0: it came early)."""
        if self._t0 is None:
            self._t0, self._written = timestamp_ms, 0
        copies = int((timestamp_ms - self._t0) * self.fps / 1000.0) + 1 - self._written
        if abs(copies) > MAX_FILL_S * self.fps:  # an outage, a pause, a clock that restarted: start again here
            self._t0, self._written, copies = timestamp_ms, 0, 1
        self._written += max(0, copies)
        return max(0, copies)

    def _room(self) -> bool:
        """Whether the disk has room; checked every FREE_CHECK_S, logged when it changes. Only a
        live recording has a floor: it can run for weeks, while a file's is bounded by the file
        (a 460 KB recording of a clip was refused outright on a disk with 99 MB free)."""
        if not self.live:
            return True
        now = time.monotonic()
        if now - self._checked < FREE_CHECK_S:
            return not self._paused
        self._checked = now
        try:
            free = free_bytes(self.path.parent)
        except OSError:
            return not self._paused
        if not self._paused and free < MIN_FREE_BYTES:
            self._paused = True
            log.warning("recording paused: %d MB free on the disk of %s (it resumes above %d MB)",
                        free // 2**20, self.path, RESUME_FREE_BYTES // 2**20)
        elif self._paused and free >= RESUME_FREE_BYTES:
            self._paused = False
            log.info("recording resumed: %d MB free", free // 2**20)
        return not self._paused

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            self._say_if_full()

    def _say_if_full(self) -> None:
        """Say so if the disk is full: OpenCV's writer drops what it cannot write without a word,
        and `run --record` on a full disk left an empty or cut recording and exited 0."""
        try:
            free = free_bytes(self.path.parent)
        except OSError:
            return
        if free < FULL_BYTES:
            log.error("recording %s may be cut short: its disk is full (%d KB free)", self.path, free // 1024)


class Viewer:
    """A window and/or a video file for annotated frames.

    A window falls back to headless with a one-line note when there is no display. Recorded
    files are shown at their own speed (``pace``) so a person can follow them.
    """

    def __init__(self, title: str, display: bool, record: str | Path | None, fps: float | None, pace: bool,
                 ui: bool = False, live: bool = False, outputs: bool = True):
        """``outputs``: the command has --ui and --record to offer when there is no display."""
        if display and not has_display():
            if ui:
                log.info("no display found: the video is in the browser view only")
            elif record:  # not a hint to add the --record the user gave
                log.info("no display found: running headless, the video goes to the recording only")
            elif outputs:
                log.warning("no display found: running headless (--ui PORT shows it in a browser, "
                            "--record OUT.mkv writes it)")
            else:
                log.warning("no display found: running headless")
            display = False
        self.title, self.display = title, display
        self.fps, self.pace = fps or 20.0, pace and (display or ui)  # someone watches: play files at their speed
        self.recording = Recording(record, self.fps, live) if record else None
        self._started, self.shown = time.monotonic(), 0

    @property
    def active(self) -> bool:
        return self.display or self.recording is not None

    @property
    def rate(self) -> float:
        """Frames shown per second of wall time so far."""
        return self.shown / max(1e-6, time.monotonic() - self._started)

    def show(self, canvas: np.ndarray, timestamp_ms: float) -> bool:
        """Write/show one frame; False when the user closed the window (q or Esc)."""
        import cv2

        self.shown += 1
        if self.recording is not None:
            self.recording.write(canvas, timestamp_ms)
        if not self.display:
            return True
        cv2.imshow(self.title, canvas)
        return cv2.waitKey(1) & 0xFF not in (ord("q"), 27)

    def wait(self, timestamp_ms: float) -> None:
        """Call once per frame: when pacing (a file someone watches), sleep until the frame's
        time has come in wall time."""
        if self.pace:
            time.sleep(max(0.0, timestamp_ms / 1000.0 - (time.monotonic() - self._started)))

    def close(self) -> None:
        if self.recording is not None:
            self.recording.close()
        if self.display:
            import cv2

            cv2.destroyAllWindows()
