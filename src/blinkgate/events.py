"""Append-only JSON Lines event log: one line per event, flushed as it happens."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TextIO

from .errors import BlinkgateError
from .files import open_append_private
from .types import Event

log = logging.getLogger("blinkgate")


class EventLog:
    """Appends events to ``path``, created readable by its owner only: its lines say who came
    when (an existing file keeps its mode, as with ``>>``). A write that fails (disk full, the disk gone) is logged once
    and the events are dropped (counted in ``dropped``): the door must keep running, and a
    restart would meet the same full disk."""

    def __init__(self, path: str | Path, source: str):
        self.path = Path(path)
        self.source = source
        self.dropped = 0
        self._failing = False
        try:
            self._file: TextIO = open_append_private(self.path)
        except OSError as err:
            raise BlinkgateError(f"cannot write events to {self.path}: {err.strerror}") from err

    def write(self, events: list[Event]) -> None:
        if not events:
            return
        wall = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        text = "".join(json.dumps({"wall_time": wall, "source": self.source, **e.to_json()}) + "\n" for e in events)
        try:
            self._file.write(text)
            self._file.flush()
        except OSError as err:
            self.dropped += len(events)
            if not self._failing:
                log.error("cannot write events to %s (%s): events are lost until it can", self.path,
                          err.strerror or err)
            self._failing = True
            return
        if self._failing:
            log.warning("events are written to %s again (%d lost)", self.path, self.dropped)
            self._failing = False

    def close(self) -> None:
        try:
            self._file.close()
        except OSError as err:  # the last buffered lines could not be written either
            log.error("closing %s: %s", self.path, err.strerror or err)

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
