"""Append-only JSON Lines event log: one line per event, flushed as it happens."""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from pathlib import Path

from .errors import BlinkgateError
from .files import PRIVATE_FILE
from .types import Event

log = logging.getLogger("blinkgate")


class EventLog:
    """Appends events to ``path``, created readable by its owner only: its lines say who came
    when (an existing file keeps its mode, as with ``>>``). A write that fails (disk full, the disk gone) is logged once
    and the events are dropped (counted in ``dropped``): the door must keep running, and a
    restart would meet the same full disk.

    Each batch is one unbuffered write, cut back off the file if it fails part-way, so the file
    holds whole lines only; a file that an earlier crash left mid-line gets a line break before
    the first new line, which would otherwise be glued to the torn one.

    A file moved or deleted (logrotate's default, ``mv``) is followed, as logging's
    WatchedFileHandler does: the next write goes to a new file at ``path``, not on into the
    moved one, where it went unseen (about 10 MB a day on a busy door)."""

    def __init__(self, path: str | Path, source: str):
        self.path = Path(path)
        self.source = source
        self.dropped = 0
        self._failing = False
        self._refuse_a_database()
        try:
            self._fd = self._open()
        except OSError as err:
            raise BlinkgateError(f"cannot write events to {self.path}: {err.strerror}") from err
        self._torn = self._ends_mid_line()

    def _refuse_a_database(self) -> None:
        """``--events faces.db`` appended JSON lines to the people database: the events were lost
        (SQLite ignores what lies past its pages) and nothing said so."""
        try:
            if not stat.S_ISREG(os.stat(self.path).st_mode):  # a FIFO would block a read
                return
            with open(self.path, "rb") as f:
                head = f.read(16)
        except OSError:
            return
        if head == b"SQLite format 3\x00":
            raise BlinkgateError(f"{self.path} is a database, not an events file: give --events a file of its own "
                                 "(events.jsonl)")

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE)

    def _follow_rotation(self) -> None:
        """Reopen ``path`` if the file open is no longer the one there (moved or deleted)."""
        try:
            mine = os.fstat(self._fd)
            if not stat.S_ISREG(mine.st_mode):  # /dev/full, a pipe: nothing to rotate
                return
            there = os.stat(self.path)
            if (there.st_dev, there.st_ino) == (mine.st_dev, mine.st_ino):
                return
        except FileNotFoundError:
            pass
        except OSError:  # cannot tell: write on where we are
            return
        try:
            fd = self._open()
        except OSError:  # the folder gone or read-only: the write below goes to the old file
            return
        os.close(self._fd)
        self._fd = fd
        self._torn = self._ends_mid_line()

    def _ends_mid_line(self) -> bool:
        size = self._size()
        if not size:  # empty, or not a regular file (/dev/full, a pipe): nothing to mend
            return False
        try:
            with open(self.path, "rb") as f:
                f.seek(size - 1)
                return f.read(1) != b"\n"
        except OSError:  # write-only for us: leave it as it is
            return False

    def write(self, events: list[Event]) -> None:
        if not events:
            return
        wall = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        text = "".join(json.dumps({"wall_time": wall, "source": self.source, **e.to_json()}) + "\n" for e in events)
        self._follow_rotation()
        data = ("\n" if self._torn else "").encode() + text.encode("utf-8")
        try:
            self._write_all(data)
        except OSError as err:
            self.dropped += len(events)
            if not self._failing:
                log.error("cannot write events to %s (%s): events are lost until it can", self.path,
                          err.strerror or err)
            self._failing = True
            return
        self._torn = False
        if self._failing:
            log.warning("events are written to %s again (%d lost)", self.path, self.dropped)
            self._failing = False

    def _write_all(self, data: bytes) -> None:
        """All of ``data`` at the end of the file, or none of it (OSError)."""
        start = self._size()
        done = 0
        try:
            while done < len(data):
                done += os.write(self._fd, data[done:])
        except OSError:
            if done and start is not None and self._size() == start + done:  # no one else wrote since
                try:
                    os.ftruncate(self._fd, start)
                except OSError:
                    self._torn = True  # the cut line stays: the next write starts a new one
            raise

    def _size(self) -> int | None:
        try:
            info = os.fstat(self._fd)
        except OSError:
            return None
        return info.st_size if stat.S_ISREG(info.st_mode) else None

    def close(self) -> None:
        try:
            os.close(self._fd)
        except OSError as err:
            log.error("closing %s: %s", self.path, err.strerror or err)

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
