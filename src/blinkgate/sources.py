"""Frame sources: a webcam index, a video file, a folder of frames, or an RTSP/HTTP URL.

Every source yields :class:`Frame` objects with the source's own clock in milliseconds:
a file's presentation times (:class:`FileClock`; index / fps where the container has none), a
folder's ``index * 1000 / fps``, and a live device's capture time (:class:`CaptureClock`).

Files and folders give every frame. A camera or stream opened by :func:`open_source` skips
frames more than ``MAX_BEHIND_MS`` older than the newest (:class:`FreshQueue`): a gate slower
than its camera must not work through a backlog, or what it sees falls seconds behind the
person at the door.
"""

from __future__ import annotations

import logging
import math
import os
import re
import socket
import stat
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import SourceError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
STREAM_PREFIXES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")
STREAM_TIMEOUT_MS = 10_000  # a network stream that takes longer to open, or to give a frame, is down
FOREVER_MAX_BACKOFF_S = 30.0  # a source that reconnects for ever tries at least this often
WARN_EVERY_S = 60.0  # while a source stays down, say so at most this often
MAX_BEHIND_MS = 250.0  # a live frame older than the newest by more is skipped
DROP_REPORT_S = 60.0  # how often frames skipped for being old are totted up
# Labelled real blinks the gate still counts when frames are dropped to a rate
# (scripts/frame_rate_study.py): 28 at the clips' own rates, 25 at 15 fps, 24 at 12, 22 at 10, 16 at 8.
MIN_BLINK_FPS = 10
# A damaged patch in a video fails one read per lost frame, and the frames after it decode (64 KB of
# junk in a 30 fps clip: 12-15 failed reads). A read past the end fails in microseconds, so reading
# on is cheap; this many failures in a row (2 s of frames, at least 30) is the end of the file.
MIN_BAD_READS, BAD_READS_S = 30, 2.0


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # BGR uint8 (H, W, 3)
    timestamp_ms: float
    index: int  # the frame's number in its source: a live source that skips stale frames skips numbers


def natural_key(name: str) -> list:
    """Sort 'f2' before 'f10' (frame dumps are rarely zero-padded)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


class FrameSource:
    """Base class: iterate to get frames; a context manager that releases the device."""

    description: str = ""
    live: bool = False  # a camera or stream: no end, frames arrive in real time
    fps: float | None = None
    truncated: bool = False  # set once read: frames are missing (the file ended well before its header said, or was damaged)
    skipped_frames: int = 0  # set once read: frames the decoder could not give and read past (a damaged patch)
    # A live source calls this with its clock (ms) while no frame comes (a stalled stream);
    # True ends the iteration, so a caller's time limit holds without frames.
    on_idle: Callable[[float], bool] | None = None

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _is_stream(target: int | str) -> bool:
    return isinstance(target, str) and target.strip().lower().startswith(STREAM_PREFIXES)


def not_utf8(name: str) -> str | None:
    """``name`` made printable if it is not UTF-8, else None. OpenCV's Python binding crashes the
    process (a segfault, not an exception) on such a name, e.g. a Latin-1 one unzipped on Linux."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return None


def _refuse_not_utf8(name: str) -> None:
    if (shown := not_utf8(name)) is not None:
        raise SourceError(f"cannot open {shown}: its name is not UTF-8, which OpenCV cannot take (rename it)")


def _open_capture(target: int | str) -> cv2.VideoCapture:
    if isinstance(target, str):
        _refuse_not_utf8(target)
    elif target < 0:  # OpenCV's "any camera": with none there, its backends crash the process (SIGSEGV)
        raise SourceError(f"cannot open {target!r}")
    try:
        cap = _new_capture(target)
    except cv2.error:  # a camera index past a C int (--source 99999999999999999999): no such camera
        raise SourceError(f"cannot open {target!r}") from None
    if not cap.isOpened():
        cap.release()
        raise SourceError(f"cannot open {target!r}")
    return cap


def _new_capture(target: int | str) -> cv2.VideoCapture:
    if _is_stream(target) and cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG):
        # FFmpeg's own defaults let a dead camera's open, or a stalled stream's read, block the
        # frame loop for a long time (or for ever); with these it fails, and the source reconnects.
        return cv2.VideoCapture(target, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS,
                                                         cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS])
    return cv2.VideoCapture(target)


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


class FileClock:
    """Times of a video file's frames in ms from its first frame: the container's own timestamps.

    Phone and webcam recordings are often variable-rate: a phone drops to 15-20 fps in dim light
    while the header still says 30. Timed by index / fps, a blink there would look shorter than it
    was and be refused as a flicker, and a slow closure would look short enough to count. So a
    frame takes its presentation time (``CAP_PROP_POS_MSEC`` after the read), rounded to 1 us so
    that float noise cannot move a closure across the blink detector's millisecond limits. When that
    is not later than the last frame's (a backend that reports 0, a reset in a joined file), the
    frame comes one nominal interval after the last and later times are anchored to it.
    """

    def __init__(self, fps: float):
        self.step_ms = 1000.0 / fps
        self._offset: float | None = None  # added to the container's time; starts the clip at 0
        self._last = float("-inf")

    def stamp(self, pts_ms: float) -> float:
        known = math.isfinite(pts_ms)  # a corrupt file can report NaN or inf
        if self._offset is None and known:
            self._offset = -pts_ms
        t = round(pts_ms + self._offset, 3) if known and self._offset is not None else math.nan
        if not t > self._last:  # also a NaN
            t = 0.0 if self._last == float("-inf") else self._last + self.step_ms
            if known:
                self._offset = t - pts_ms
        self._last = t
        return t


def _unopenable_why(path: Path) -> str:
    """Why OpenCV could not open an existing file: what a user can act on."""
    try:
        size = path.stat().st_size
        with path.open("rb"):
            pass
    except OSError as err:
        return err.strerror or str(err)
    if size == 0:
        return "the file is empty (0 bytes: an upload or copy that did not finish?)"
    return ("not a video OpenCV can read (damaged, cut short before its index was written, or in a "
            "format or codec its FFmpeg lacks)")


class VideoFileSource(FrameSource):
    """A video file, read to its end as fast as the decoder allows, on the file's own clock."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise SourceError(f"video file not found: {self.path}")
        if self.path.is_dir():
            raise SourceError(f"{self.path} is a folder, not a video")
        self.description = str(self.path)
        _refuse_not_utf8(str(self.path))  # its own message, not the "why" below
        try:
            self._cap = _open_capture(str(self.path))
        except SourceError:
            raise SourceError(f"cannot open {self.path}: {_unopenable_why(self.path)}") from None
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else 30.0
        ok, first = self._cap.read()
        if not ok or first is None:
            self._cap.release()
            raise SourceError(f"not a readable video: {self.path}")
        self._next: tuple[np.ndarray, float] | None = (first, self._cap.get(cv2.CAP_PROP_POS_MSEC))
        self._clock = FileClock(self.fps)
        self._ended = False  # the decoder gave its last frame (or the source was closed)
        self.frame_count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        self.frames_read = 0

    def __iter__(self) -> Iterator[Frame]:
        # Goes on where the last loop stopped, as a file's lines do: a loop after a `break` read
        # nothing, and warned that the file was cut short.
        while (frame := self._read()) is not None:
            yield frame
        if not self._ended:
            self._ended = True
            self._say_if_truncated()

    def _read(self) -> Frame | None:
        if self._next is None and not self._ended and (image := self._next_image()) is not None:
            self._next = (image, self._cap.get(cv2.CAP_PROP_POS_MSEC))
        if self._next is None:
            return None
        (image, pts), self._next = self._next, None  # a full-size frame: not kept once handed out
        self.frames_read += 1
        return Frame(_as_bgr(image), self._clock.stamp(pts), self.frames_read - 1)

    def _say_if_truncated(self) -> None:
        if self.skipped_frames:
            self.truncated = True  # judged without part of the recording: a verdict must say so
            log.warning("%s: %d frames could not be decoded and were skipped (a damaged file?)",
                        self.path, self.skipped_frames)
        expected = self.frame_count or 0
        if self.frames_read + self.skipped_frames < 0.9 * expected:  # headers count exactly or nearly
            self.truncated = True
            log.warning("%s: the decoder stopped after %d of %d frames (a truncated or damaged file?)",
                        self.path, self.frames_read, expected)

    def _next_image(self) -> np.ndarray | None:
        """The next frame the decoder gives, past a damaged patch's failed reads; None at the end.
        Stopping at the first failure threw away the rest of the clip, and the blinks in it."""
        limit = max(MIN_BAD_READS, round(BAD_READS_S * self.fps))
        for failed in range(limit):
            ok, image = self._cap.read()
            if ok and image is not None:
                self.skipped_frames += failed
                return image
        return None

    def close(self) -> None:
        self._cap.release()
        self._next, self._ended = None, True  # no frames after: not a file cut short


def is_frame_name(name: str) -> bool:
    """Whether a frame folder's file ``name`` is read as one of its frames."""
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES and not name.startswith(".")


def read_frame_file(file: Path) -> np.ndarray | None:
    """One still frame of a folder or a frame list, or None (warned about) if unreadable. A name
    that is not UTF-8 is not handed to OpenCV, which segfaults on it."""
    image = None if not_utf8(str(file)) else cv2.imread(str(file), cv2.IMREAD_COLOR)
    if image is None:
        log.warning("skipping unreadable frame %s", file)
    return image


class FolderSource(FrameSource):
    """A folder of still frames, in natural name order, timed at a fixed ``fps``."""

    def __init__(self, path: str | Path, fps: float = 20.0):
        self.path = Path(path)
        if not 0 < fps < math.inf:  # a NaN or infinite rate gave every frame the same or a NaN time
            raise SourceError(f"fps must be positive, got {fps}")
        if not self.path.is_dir():
            raise SourceError(f"frame folder not found: {self.path}")
        _refuse_not_utf8(str(self.path))
        # Not hidden files: macOS leaves a ._f1.jpg (AppleDouble) beside each frame copied to a
        # stick or a share. Unreadable, each was warned about and kept its time slot, so sorted
        # first they pushed every real frame (and first_live_s) late by their count / fps.
        self.files = sorted((p for p in self.path.iterdir() if is_frame_name(p.name)), key=lambda p: natural_key(p.name))
        if not self.files:
            # `check selfies/` (a folder of videos: too many for the shell's glob) is the likely mistake.
            raise SourceError(f"no images in folder {self.path} (a folder is read as the frames of one "
                              f"recording; give videos as files, e.g. {self.path / '*.mp4'})")
        self.fps = fps
        self.description = str(self.path)
        self.frame_count = len(self.files)
        self.skipped: list[Path] = []
        self._pos = 0  # the next frame: a loop after a break goes on there, as a video's does

    def __iter__(self) -> Iterator[Frame]:
        while self._pos < len(self.files):
            index, file = self._pos, self.files[self._pos]
            self._pos += 1
            image = read_frame_file(file)
            if image is None:
                self.skipped.append(file)
                continue
            yield Frame(image, index * 1000.0 / self.fps, index)
        # Judged without these frames, as a damaged video's skipped patch: a verdict must say so.
        self.skipped_frames, self.truncated = len(self.skipped), bool(self.skipped)
        if len(self.skipped) == len(self.files):
            raise SourceError(f"no readable images in folder {self.path}")


class CaptureClock:
    """Times of live frames on the source's read clock (ms): when captured, not when read.

    After a stall in the gate (a new face's ~150 ms recognition, a slow box) the frames queued
    in the driver come out back to back. Stamped when read, a blink queued there would look a
    fraction as long as it was, and be refused as a flicker. So a frame takes the backend's capture
    time (``CAP_PROP_POS_MSEC``: the V4L2 buffer time, a stream's presentation time) on the read
    clock's scale whenever it is sane: later than the last frame, not ahead of the read clock,
    and at most ``max_lag_ms`` behind it. Otherwise (no capture time, a restart after a
    reconnect, a drifting or made-up clock) the frame takes its read time, and the next capture
    times are anchored to it. So a lying backend can shift times by at most ``max_lag_ms``.
    A capture clock that runs slow (an MJPEG stream over HTTP, timed at an assumed 25 fps) and
    falls more than ``max_lag_ms`` behind is not re-anchored to the read time, which would jump
    the time by ``max_lag_ms`` between two frames, as a stalled stream does: the frame comes
    after the last by its own read gap, so the lag stays where it was.
    """

    def __init__(self, max_lag_ms: float = 1000.0):
        self.max_lag_ms = max_lag_ms
        self._offset: float | None = None  # read clock minus capture clock, from the anchor frame
        self._last = float("-inf")
        self._last_read = float("-inf")

    def stamp(self, capture_ms: float, read_ms: float) -> float:
        t = read_ms
        if math.isfinite(capture_ms) and capture_ms > 0:
            if self._offset is not None and self._last < capture_ms + self._offset < read_ms - self.max_lag_ms:
                self._offset = self._last + (read_ms - self._last_read) - capture_ms  # slow: keep the lag
            elif self._offset is None or not self._sane(capture_ms + self._offset, read_ms):
                self._offset = read_ms - capture_ms  # anchor: this frame counts as read at once
            t = capture_ms + self._offset
        self._last = t = max(t, self._last + 1e-3)  # strictly increasing, as the gate expects
        self._last_read = read_ms
        return t

    def _sane(self, t: float, read_ms: float) -> bool:
        return self._last < t <= read_ms and read_ms - t <= self.max_lag_ms


def redact_url(target: str) -> str:
    """``target`` with a URL's user, password and query string replaced by ``***``: the
    description of a source goes into logs, the browser view's title, the access log and
    every unlock message, and ``rtsp://admin:secret@cam/`` must not.

    The user and password end at the last ``@``, and go before the URL is parsed: a ``/``, ``?``
    or ``#`` in a password ends the parser's host early, which left the password in the path.
    An ``@`` later in the URL hides its host too, which is the safe side."""
    scheme, sep, rest = target.partition("://")
    if not sep:
        return target  # a path (including C:\\...), not a URL
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    try:
        parts = urllib.parse.urlsplit(f"{scheme}://{rest}")
    except ValueError:  # e.g. an unclosed "[" (an IPv6 host): no parse, but no secret shown either
        return f"{scheme}://{rest.split('?', 1)[0]}" + ("?***" if "?" in rest else "")
    if not parts.scheme or not parts.netloc:
        return f"{scheme}://{rest}"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "***" if parts.query else "", ""))


DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443, "rtmp": 1935}


def stream_diagnosis(url: str, timeout_s: float = 3.0, open_timed_out: bool = False) -> str:
    """Why a stream URL may not open, found by resolving its host and connecting to its port:
    OpenCV says only that it failed, and an IP camera's URL has four parts to get wrong.
    ``open_timed_out``: the open took its whole ``STREAM_TIMEOUT_MS``, so a port that takes the
    connection sent nothing, rather than refused the path or the password.
    The user and password go first, up to the last ``@`` as in :func:`redact_url`: parsed whole,
    a ``/`` in ``rtsp://u:p@ss/word@cam/`` ended the host early, and "ss", part of the password,
    was named as the host that does not resolve."""
    scheme, sep, rest = url.strip().partition("://")
    try:
        parts = urllib.parse.urlsplit(f"{scheme}{sep}{rest.rsplit('@', 1)[-1]}")
        host, port = parts.hostname, parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:  # not err: in rtsp://admin:secret/cam (no "@") the "port" is the password
        return ": the URL is malformed (its port is not a number from 1 to 65535)"
    if not host or port is None:  # udp:// and the like: nothing to connect to
        return ""
    where = f"{host}:{port}"
    if any(c in rest.rpartition("@")[0] for c in "/?#"):
        # FFmpeg ends the host at the first of these ("Port missing in uri"), so the camera was never
        # asked, though it answers. It decodes %-escapes in the user and password.
        return (f": FFmpeg cannot read a '/', '?' or '#' in the user or password, so {where} was not asked: "
                "write them as %2F, %3F and %23")
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except socket.gaierror:
        return f": the host name {host!r} does not resolve (a typo, or no DNS)"
    except ConnectionRefusedError:
        return f": nothing listens on {where} (connection refused: wrong port, or the camera's streaming is off)"
    except TimeoutError:
        return f": {where} does not answer within {timeout_s:.0f} s (wrong address, camera off, or a firewall)"
    except OSError as err:
        return f": {where} is unreachable ({err.strerror or err})"
    if open_timed_out:
        return (f": {where} takes the connection but sent no stream within {STREAM_TIMEOUT_MS / 1000:g} s (a hung "
                "camera or server, or the port of something else)")
    return (f": {where} answers, so the path, the user and password, or the stream's format was refused "
            "(check the URL in the camera's manual, or try it in VLC)")


class LiveSource(FrameSource):
    """A webcam or network stream; reconnects with exponential backoff when frames stop.

    Every failure counts until a frame comes: a read that fails, an open that fails, and an open
    that gives no frame (a camera that is half there), so the back-off grows in each case.
    ``max_retries=None`` reconnects for ever (the door: a USB camera unplugged for an hour must
    not end it); otherwise ``SourceError`` after that many attempts in a row. While the source is
    down, a warning is logged at the first failure and then at most every ``warn_every_s``.
    ``fresh_only`` reads on a thread from the open on and skips frames the caller fell behind on
    (:class:`FreshQueue`)."""

    live = True

    def __init__(
        self,
        target: int | str,
        max_retries: int | None = 10,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        opener: Callable[[int | str], cv2.VideoCapture] | None = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        warn_every_s: float = WARN_EVERY_S,
        fresh_only: bool = False,
    ):
        self.target = target
        self.fresh_only = fresh_only
        self._stopping = threading.Event()
        self._reader: FreshQueue | None = None
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.warn_every_s = warn_every_s
        self._opener, self._clock = opener or _open_capture, clock
        self._sleep = sleep or self._stopping.wait  # a back-off wait that close() cuts short
        self.description = f"camera {target}" if isinstance(target, int) else redact_url(str(target))
        started = time.monotonic()  # not self._clock: a test's scripted clock has no reading for this
        try:
            self._cap = self._opener(target)
        except SourceError:
            if isinstance(target, int):
                raise SourceError(f"cannot open camera {target} (no camera? pass a video file or URL "
                                  "with --source)") from None
            timed_out = time.monotonic() - started >= 0.9 * STREAM_TIMEOUT_MS / 1000.0
            raise SourceError(f"cannot open stream {self.description}"
                              f"{stream_diagnosis(str(target), open_timed_out=timed_out)}") from None
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else None
        self._t0 = clock()
        self._times = CaptureClock()
        self._failures = 0  # reconnect attempts since the last frame
        self._reconnects = 0  # ever: a report window with one in it measured an outage, not the camera
        self._down_since = 0.0
        self._warned_at = -math.inf  # when a warning was last logged
        self._said = False  # this outage was logged
        # Read from the open on, not from the first take: the frames that came while the caller got
        # ready were then read back to back, stamped 1-6 ms apart on the read clock, and all taken as
        # fresh. Read as they come, they are dropped as stale. Only while this thread gets the GIL:
        # a caller that loads dlib's models meanwhile (~1 s) has the same effect, so run and door
        # load them before the open (Gate.load_models).
        if fresh_only:
            self._reader = FreshQueue(self._reads(), name=f"blinkgate-read {self.description}",
                                      max_behind_s=MAX_BEHIND_MS / 1000.0, on_end=self._cap_release)

    def _reconnect(self) -> None:
        """One attempt after a failure: wait the back-off, reopen. Raises once retries are spent."""
        self._failures += 1
        self._reconnects += 1
        if self.max_retries is not None and self._failures > self.max_retries:
            raise SourceError(f"{self.description} lost after {self.max_retries} reconnect attempts")
        delay = min(self.backoff_s * 2 ** (self._failures - 1), self.max_backoff_s)
        self._warn(delay)
        self._sleep(delay)
        if self._stopping.is_set():
            return  # closed during the wait: no camera to reopen
        self._cap.release()
        try:
            self._cap = self._opener(self.target)
        except SourceError:
            self._cap = _Closed()  # reads fail: the next failure, a longer wait

    def _warn(self, delay: float) -> None:
        now = self._clock()
        if self._failures == 1:
            self._down_since = now
        if now - self._warned_at < self.warn_every_s:
            return  # a camera away for a day, or one that drops every few seconds, must not flood the log
        self._warned_at, self._said = now, True
        of = "" if self.max_retries is None else f"/{self.max_retries}"
        down = "dropped" if self._failures == 1 else f"down for {now - self._down_since:.0f} s"
        log.warning("%s %s; reconnect %d%s in %.1fs", self.description, down, self._failures, of, delay)

    def _recovered(self) -> None:
        if self._failures and self._said:  # only an outage that was logged, so at most once a minute too
            log.warning("%s is back after %d reconnect attempt%s (%.0f s)", self.description, self._failures,
                        "" if self._failures == 1 else "s", self._clock() - self._down_since)
        self._failures, self._said = 0, False

    def _reads(self) -> Iterator[tuple[int, np.ndarray, float, float]]:
        """(index, image, capture ms, read ms) of every frame the device gives, reconnecting."""
        index = 0
        while not self._stopping.is_set():
            ok, image = self._cap.read()
            if not ok or image is None:
                if self._stopping.is_set():
                    return  # closed while this read waited: the shutdown, not an outage
                self._reconnect()
                continue
            self._recovered()
            read_ms = (self._clock() - self._t0) * 1000.0
            yield index, image, float(self._cap.get(cv2.CAP_PROP_POS_MSEC) or 0.0), read_ms
            index += 1

    def _fresh(self) -> Iterator[tuple[int, np.ndarray, float, float]]:
        reader = self._reader
        assert reader is not None  # made in __init__ when fresh_only
        reader.counts()  # frames skipped before the first take: the caller getting ready, not a slow gate
        reported, reconnects, said, said_slow_camera = self._clock(), self._reconnects, False, False
        try:
            while True:
                item = reader.take(idle=self._idle)
                if item is None:
                    return
                yield item
                if self._clock() - reported >= DROP_REPORT_S:
                    skipped, taken = reader.counts()
                    rate = taken / (self._clock() - reported)
                    if skipped > 0.05 * (skipped + taken):  # not a hiccup: the box cannot keep up
                        # said once (the box is slower than the camera), then only with -v
                        level = logging.DEBUG if said else logging.WARNING if rate < MIN_BLINK_FPS else logging.INFO
                        log.log(level, "%s: the gate is slower than the camera; it took %d of %d frames (%.1f a "
                                "second), skipping those over %.0f ms old%s", self.description, taken,
                                taken + skipped, rate, MAX_BEHIND_MS,
                                f"; under {MIN_BLINK_FPS} a second blinks are missed" if rate < MIN_BLINK_FPS else "")
                        said = True
                    elif rate < MIN_BLINK_FPS and reconnects == self._reconnects and not said_slow_camera:
                        # The gate keeps up, so the camera is slow: webcams halve their rate in dim light.
                        log.warning("%s gives %.1f frames a second; under %d a second blinks are missed (a camera "
                                    "lowers its rate in dim light: more light, or a camera mode with a higher "
                                    "frame rate, helps)", self.description, rate, MIN_BLINK_FPS)
                        said_slow_camera = True
                    reported, reconnects = self._clock(), self._reconnects
        finally:
            reader.stop(timeout=0)  # close() waits for it, if it is ever called

    def _idle(self) -> bool:
        return self.on_idle is not None and self.on_idle((self._clock() - self._t0) * 1000.0)

    def __iter__(self) -> Iterator[Frame]:
        for index, image, capture_ms, read_ms in (self._fresh() if self.fresh_only else self._reads()):
            yield Frame(_as_bgr(image), self._times.stamp(capture_ms, read_ms), index)

    def _cap_release(self) -> None:
        self._cap.release()

    def close(self) -> None:
        self._stopping.set()
        if self._reader is not None and not self._reader.stop(timeout=2.0):
            return  # its thread is inside a read: it releases the capture when that returns
        self._cap.release()


class FreshQueue:
    """Runs an iterator on its own thread; the caller gets its items in order, but none that
    fell more than ``max_behind_s`` behind the newest.

    Read in turn, a gate slower than its camera works through a backlog that only grows until
    the stream's buffers fill. Measured on a 30 fps MJPEG stream read at 16 fps, frames reached
    the gate 1.8 s after they were taken: longer than a challenge gives a person to start
    blinking (1.2 s), so a slow door would fail every real answer. Here the gate stays at most
    ``max_behind_s`` behind, taking frames evenly at its own rate; a stall shorter than that
    (a full face scan, a pause on a small box) is worked through, so a blink in it is kept.
    The thread reads each frame as it arrives, so its read time is its capture time.
    ``on_end`` runs on the thread when the iterator stops, so a capture is never released while
    the thread is inside a read.
    """

    def __init__(self, items: Iterator, name: str, max_behind_s: float, max_items: int = 16,
                 on_end: Callable[[], None] | None = None):
        self.max_behind_s, self.max_items = max_behind_s, max_items  # max_items bounds memory (4K frames)
        self._cond = threading.Condition()
        self._queue: deque[tuple[float, object]] = deque()
        self._done = self._stopped = False
        self._error: BaseException | None = None
        self._skipped = self._taken = 0  # since the last counts()
        self._thread = threading.Thread(target=self._run, args=(items, on_end), name=name, daemon=True)
        self._thread.start()

    def _run(self, items: Iterator, on_end: Callable[[], None] | None) -> None:
        try:
            for item in items:
                with self._cond:
                    if self._stopped:
                        break
                    self._queue.append((time.monotonic(), item))
                    if len(self._queue) > self.max_items:
                        self._queue.popleft()
                        self._skipped += 1
                    self._cond.notify()
        except BaseException as err:  # the source gave up (SourceError), or a bug: the caller raises it
            with self._cond:
                self._error = err
        finally:
            try:
                if on_end is not None:
                    on_end()
            except BaseException as err:  # a release that fails: the caller hears of it, not waits for ever
                with self._cond:
                    self._error = self._error or err
            finally:
                with self._cond:
                    self._done = True
                    self._cond.notify()

    def take(self, idle: Callable[[], bool] | None = None) -> object:
        """The oldest item not taken and not too far behind, waiting for one; None once the
        thread has ended, or once ``idle()``, asked every 0.5 s of waiting, returns True."""
        with self._cond:
            while not self._queue:
                if self._error is not None:
                    raise self._error
                if self._done:
                    return None
                if not self._cond.wait(0.5) and idle is not None and not self._queue:  # 0.5: Ctrl-C stays prompt
                    self._cond.release()  # idle() may take its time: the reader must not wait on it
                    try:
                        if idle():
                            return None
                    finally:
                        self._cond.acquire()
            newest = self._queue[-1][0]
            while newest - self._queue[0][0] > self.max_behind_s:
                self._queue.popleft()
                self._skipped += 1
            self._taken += 1
            return self._queue.popleft()[1]

    def counts(self) -> tuple[int, int]:
        """(skipped, taken) since the last call."""
        with self._cond:
            counts = self._skipped, self._taken
            self._skipped = self._taken = 0
            return counts

    def stop(self, timeout: float = 2.0) -> bool:
        """Ask the thread to end; whether it did within ``timeout`` s."""
        with self._cond:
            self._stopped = True
        self._thread.join(timeout)
        return not self._thread.is_alive()


class _Closed:
    """A capture that could not be reopened: reads fail, so the next attempt waits longer."""

    def read(self) -> tuple[bool, None]:
        return False, None

    def get(self, prop: int) -> float:
        return 0.0

    def release(self) -> None:
        pass


def is_live(spec: str | int | Path) -> bool:
    """Whether a CLI-style spec names a camera index or a stream URL (not a file or folder)."""
    text = str(spec).strip()
    return isinstance(spec, int) or text.isdigit() or _is_stream(text)


def recording_name(spec: str | Path) -> str:
    """The name to open for ``spec``: as given if a file or folder (or a link) has that name, else
    without surrounding white space. The stripping is for a spec typed or pasted with a stray space
    or line end (``--source " 0"``, a path copied with its newline); a name that really starts or
    ends with a space (" clip.mp4") was stripped too and its file "not found", or another opened."""
    text = str(spec)
    if text.strip() != text and os.path.lexists(os.path.expanduser(text)):  # lexists: False on any OSError
        return text
    return text.strip()


def open_source(spec: str | int | Path, fps: float = 20.0, retries: int | None = 10) -> FrameSource:
    """Open a source from a CLI-style spec: camera index, URL, video file or frame folder.

    ``retries`` bounds a camera's or stream's reconnect attempts in a row; None: for ever, with
    the back-off capped at ``FOREVER_MAX_BACKOFF_S`` (for a door left running unattended)."""
    text = str(spec).strip()
    if is_live(spec):
        target = int(text) if isinstance(spec, int) or text.isdigit() else text
        if retries is None:
            return LiveSource(target, max_retries=None, max_backoff_s=FOREVER_MAX_BACKOFF_S, fresh_only=True)
        return LiveSource(target, max_retries=retries, fresh_only=True)
    return open_recording_path(spec, fps=fps, missing="no such file, folder or camera")


def open_recording_path(spec: str | Path, fps: float = 20.0, missing: str = "no such file or folder") -> FrameSource:
    """A video file or frame folder, whatever its name: a folder called ``1001`` is not camera 1001.
    ``missing`` starts the error for a name with nothing there (``check`` takes no cameras)."""
    text = recording_name(spec)
    if not text:  # Path("") is the current folder: a blank argument would read its images
        raise SourceError("empty source: give a camera index, video file, frame folder or URL")
    try:
        return _open_path(text, fps, missing)
    except OSError as err:  # a name too long, a folder that cannot be listed: the input's error, no traceback
        raise SourceError(f"cannot read {text}: {err.strerror or err}") from None


def _open_path(text: str, fps: float, missing: str) -> FrameSource:
    path = Path(text).expanduser()
    if path.is_dir():
        return FolderSource(path, fps=fps)
    if not path.exists():
        raise SourceError(f"{missing}: {text}")
    if stat.S_ISFIFO(mode := path.stat().st_mode) or stat.S_ISSOCK(mode):
        # Opened inside native code, a pipe with no writer blocks for good, and Ctrl-C with it.
        raise SourceError(f"{text} is a pipe or socket, not a video file")
    if path.suffix.lower() in IMAGE_SUFFIXES:  # OpenCV would read it as a one-frame video
        raise SourceError(f"{text} is a still image: a blink needs a video, a camera or a folder of frames")
    return VideoFileSource(path)
