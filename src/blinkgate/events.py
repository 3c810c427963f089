"""Append-only JSON Lines event log: one line per event, flushed as it happens."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TextIO

from .errors import BlinkgateError
from .types import Event


class EventLog:
    def __init__(self, path: str | Path, source: str):
        self.path = Path(path)
        self.source = source
        try:
            self._file: TextIO = self.path.open("a", encoding="utf-8")
        except OSError as err:
            raise BlinkgateError(f"cannot write events to {self.path}: {err.strerror}") from err

    def write(self, events: list[Event]) -> None:
        for event in events:
            line = {"wall_time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "source": self.source, **event.to_json()}
            self._file.write(json.dumps(line) + "\n")
        if events:
            self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
