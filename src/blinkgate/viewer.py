"""Showing and recording annotated frames, shared by ``blinkgate run`` and ``blinkgate door``."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from .errors import BlinkgateError

log = logging.getLogger(__name__)


def has_display() -> bool:
    return sys.platform in ("win32", "darwin") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class Viewer:
    """A window and/or an mp4 file for annotated frames.

    A window falls back to headless with a one-line note when there is no display. Recorded
    files are shown at their own speed (``pace``) so a person can follow them.
    """

    def __init__(self, title: str, display: bool, record: str | Path | None, fps: float | None, pace: bool,
                 ui: bool = False):
        if display and not has_display():
            if ui:
                log.info("no display found: the video is in the browser view only")
            else:
                log.warning("no display found: running headless (--ui PORT shows it in a browser, "
                            "--record OUT.mp4 writes it)")
            display = False
        self.title, self.display, self.record = title, display, record
        self.fps, self.pace = fps or 20.0, pace and (display or ui)  # someone watches: play files at their speed
        self._writer = None
        self._started, self.shown = time.monotonic(), 0

    @property
    def active(self) -> bool:
        return self.display or bool(self.record)

    @property
    def rate(self) -> float:
        """Frames shown per second of wall time so far."""
        return self.shown / max(1e-6, time.monotonic() - self._started)

    def show(self, canvas: np.ndarray, timestamp_ms: float) -> bool:
        """Write/show one frame; False when the user closed the window (q or Esc)."""
        import cv2

        self.shown += 1
        if self.record:
            if self._writer is None:
                size = (canvas.shape[1], canvas.shape[0])
                self._writer = cv2.VideoWriter(str(self.record), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, size)
                if not self._writer.isOpened():
                    raise BlinkgateError(f"cannot write video {self.record}")
            self._writer.write(canvas)
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
        if self._writer is not None:
            self._writer.release()
        if self.display:
            import cv2

            cv2.destroyAllWindows()
