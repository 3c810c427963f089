"""The access log: every door decision, in the face database, with a JPEG of the face.

One row per decision (table ``access_log``, schema version 2 of the face database): wall time
(UTC ISO 8601 and unix seconds), source, source-clock time, track, identity (NULL if unknown),
``decision`` (granted, denied, revoked, expired) and ``reason`` (see
:data:`blinkgate.door.REASONS`), the recognition distance, a JSON ``detail`` (the challenge:
count asked, blinks seen and their onsets after the prompt, why it failed) and the face
snapshot.

Snapshots are stored as JPEG BLOBs in the same SQLite file rather than as loose files: one
file to back up, protect (chmod 600) and delete, written in the same transaction as its row,
so a row never points at a missing image. A face crop is 5–20 kB. Snapshots older than
``retention_days`` are deleted (set to NULL; the row stays), and rows older than a year with
them, when the log opens, hourly while a door runs, and by ``blinkgate log --prune``.

:class:`AccessLogWriter` does the JPEG encoding and the SQLite writes on a background thread
with its own connection, so a slow SD card never stalls the video loop.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .database import FaceDatabase, PeopleWatch, name_key
from .errors import BlinkgateError
from .files import one_line

log = logging.getLogger("blinkgate.accesslog")

DEFAULT_RETENTION_DAYS = 30.0
ROW_RETENTION_DAYS = 366.0  # rows (without snapshots) are kept a year, then deleted
CLEARED_KEY = "lockout_cleared:"  # meta key per name: when `blinkgate unlock` cleared it (unix s)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: float | None = None) -> float:
    """``1h``, ``30m``, ``2d``, ``90s``, ``1w`` ago, or an ISO date/time → unix seconds."""
    now = time.time() if now is None else now
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if m:
        return now - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BlinkgateError(f"--since wants e.g. 30m, 1h, 2d or an ISO date, got {text!r}") from None
    try:
        if when.tzinfo is None:
            when = when.astimezone()  # local time, as a person types it
        return when.timestamp()
    except (ValueError, OverflowError, OSError):  # year 1: no local time zone or timestamp for it
        raise BlinkgateError(f"--since {text!r} is out of range") from None


def encode_jpeg(image: np.ndarray, quality: int = 85) -> bytes | None:
    import cv2

    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return buf.tobytes() if ok else None


@dataclass(frozen=True)
class LogEntry:
    id: int
    at: str
    at_unix: float
    source: str
    time_ms: float | None
    track: int | None
    name: str | None
    decision: str
    reason: str
    distance: float | None
    detail: dict
    snapshot_bytes: int  # 0 when there is none (never taken, or deleted by retention)

    def to_json(self) -> dict:
        return {
            "id": self.id, "at": self.at, "source": self.source, "time_ms": self.time_ms, "track": self.track,
            "name": self.name, "decision": self.decision, "reason": self.reason, "distance": self.distance,
            "detail": self.detail, "snapshot_bytes": self.snapshot_bytes,
        }

    def format(self) -> str:
        who = one_line(self.name or "unknown")  # refused at enrolment; a row written before must not forge a line
        why = self.detail.get("why")
        extra = f" ({why})" if why else ""
        if "count" in self.detail and self.decision in ("granted", "denied"):
            extra += f" asked {self.detail['count']}, saw {self.detail.get('blinks', 0)}"
        dist = "" if self.distance is None else f" d={_number(self.distance, '.2f')}"
        snap = " [snapshot]" if self.snapshot_bytes else ""
        return f"{self._local_at()}  #{self.id:<5} {self.decision:<8} {self.reason:<17} {who} track {self.track}{dist}{extra}{snap}"

    def _local_at(self) -> str:
        """Local time, as --since reads a date a person types: "who came in last night" must not
        need converting from UTC (the row and --json keep UTC). A damaged row's time (text, or
        out of range) is shown as stored, not a traceback, as its ``detail`` is (:func:`_detail`)."""
        try:
            return datetime.fromtimestamp(self.at_unix).astimezone().isoformat(timespec="milliseconds")
        except (TypeError, ValueError, OverflowError, OSError):
            return one_line(str(self.at))


def _number(value: object, spec: str) -> str:
    """``value`` formatted with ``spec`` if it is a number; as it is if a damaged row holds text."""
    return format(value, spec) if isinstance(value, (int, float)) else one_line(str(value))


# A failed challenge that counts towards a lockout, as an SQL condition on an access_log row. A
# challenge cut short because its identity was just locked out (by another face's failure) is no
# guess: the door does not count it, and a restart or another process must not either.
# A row whose detail is not JSON (damaged) counts, as a row without the key does: json_extract
# on it raised "malformed JSON" and the door would not start until the row was mended.
COUNTED_FAILURE = ("decision = 'denied' AND reason IN ('no_blink', 'challenge_failed', 'expired', 'identity_changed', "
                   "'stalled') AND coalesce(CASE WHEN json_valid(detail) THEN json_extract(detail, '$.counted') END, 1) != 0 "
                   "AND coalesce(CASE WHEN json_valid(detail) THEN json_extract(detail, '$.why') END, '') != 'identity locked out'")


def _detail(text: str | None) -> dict:
    """A row's ``detail``; one that is not a JSON object (a damaged row) is shown as it is, not a
    traceback: `log` is where one looks when the door says its database is corrupt."""
    try:
        detail = json.loads(text or "{}")
    except ValueError:
        detail = None
    return detail if isinstance(detail, dict) else {"unreadable": text}


class AccessLog:
    """Reads and writes the ``access_log`` table of a face database. One instance per thread."""

    def __init__(self, db_path: str | Path, retention_days: float = DEFAULT_RETENTION_DAYS, create: bool = True):
        if retention_days <= 0:
            raise BlinkgateError("snapshot retention must be a positive number of days")
        self.retention_days = retention_days
        self.db = FaceDatabase(db_path, create=create)  # checks the file is ours, migrates to v2
        self.path = self.db.path

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> AccessLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def record(self, decision, snapshot: bytes | None = None, source: str = "", at: float | None = None) -> int:
        """Append one decision (a :class:`blinkgate.door.Decision`); returns the row id."""
        at = time.time() if at is None else at
        iso = datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="milliseconds")
        with self.db._transaction() as tx:
            cur = tx.execute(
                "INSERT INTO access_log (at, at_unix, source, time_ms, track, name, decision, reason, distance, "
                "detail, snapshot) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (iso, at, source, decision.time_ms, decision.track_id, decision.name, decision.decision,
                 decision.reason, decision.distance, json.dumps(decision.detail, default=str), snapshot),
            )
            return int(cur.lastrowid)

    def entries(self, since: float | None = None, name: str | None = None, decision: str | None = None,
                limit: int | None = None) -> list[LogEntry]:
        """Rows, oldest first; ``since`` in unix seconds; ``limit`` keeps the newest."""
        where, params = [], []
        if since is not None:
            where.append("at_unix >= ?")
            params.append(since)
        if name is not None:
            names = self._logged_as(name)
            where.append(f"name IN ({', '.join('?' * len(names))})")
            params.extend(names)
        if decision is not None:
            where.append("decision = ?")
            params.append(decision)
        sql = ("SELECT id, at, at_unix, source, time_ms, track, name, decision, reason, distance, detail, "
               "coalesce(length(snapshot), 0) FROM access_log")
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = self.db._query(sql, tuple(params))
        return [LogEntry(*row[:10], _detail(row[10]), row[11]) for row in reversed(rows)]

    def _logged_as(self, name: str) -> list[str]:
        """The names in the log that are ``name`` but for what cannot be seen (``name_key``: its
        Unicode form, spaces around it), as `unlock` and `verify --name` take it: 'José' typed on
        a Mac, or pasted with a space, listed nothing for a person with many entries."""
        rows = self.db._query("SELECT DISTINCT name FROM access_log WHERE name IS NOT NULL")
        return [name] + [n for (n,) in rows if n != name and name_key(n) == name_key(name)]

    def snapshot(self, entry_id: int) -> bytes | None:
        rows = self.db._query("SELECT snapshot FROM access_log WHERE id = ?", (entry_id,)) if 0 < entry_id < 2**63 else []
        if not rows:  # (an id past SQLite's integers raised OverflowError)
            raise BlinkgateError(f"no access-log entry #{entry_id}")
        return rows[0][0]

    def failures(self, name: str, since: float) -> list[float]:
        """Unix times of the counted failed challenges of ``name`` since ``since`` and since
        its lockout was last cleared (to restore a lockout count after a restart)."""
        cleared = self.cleared_at(name)
        rows = self.db._query(
            f"SELECT at_unix FROM access_log WHERE name = ? AND at_unix >= ? AND {COUNTED_FAILURE} ORDER BY at_unix",
            (name, since if cleared is None else max(since, cleared)),
        )
        return [r[0] for r in rows]

    def last_id(self) -> int:
        return int(self.db._query("SELECT coalesce(max(id), 0) FROM access_log")[0][0])

    def failures_after(self, row_id: int) -> list[tuple[int, str, float]]:
        """(id, name, unix time) of the counted failed challenges logged after row ``row_id``,
        each after its name's last cleared lockout: what other processes on this database (a
        door, a `verify`) counted since."""
        rows = self.db._query(
            f"SELECT id, name, at_unix FROM access_log WHERE id > ? AND name IS NOT NULL AND {COUNTED_FAILURE} "
            "ORDER BY id", (row_id,))
        clears = self.clears()
        return [(int(i), n, at) for i, n, at in rows if at > clears.get(n, float("-inf"))]

    def counted_failure(self, row_id: int) -> bool:
        """True if row ``row_id`` is a failed challenge that counts towards a lockout."""
        return bool(self.db._query(f"SELECT 1 FROM access_log WHERE id = ? AND {COUNTED_FAILURE}", (row_id,)))

    def clear_lockout(self, name: str, at: float | None = None) -> None:
        """Forget ``name``'s failures up to now (``blinkgate unlock``): a restart does not
        restore them, and a running door lifts the lockout when it polls (:meth:`clears`)."""
        with self.db._transaction() as tx:
            tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                       (CLEARED_KEY + name, repr(time.time() if at is None else at)))

    def cleared_at(self, name: str) -> float | None:
        rows = self.db._query("SELECT value FROM meta WHERE key = ?", (CLEARED_KEY + name,))
        return float(rows[0][0]) if rows else None

    def clears(self) -> dict[str, float]:
        """Every name whose lockout was cleared, with when."""
        rows = self.db._query("SELECT key, value FROM meta WHERE substr(key, 1, ?) = ?",
                              (len(CLEARED_KEY), CLEARED_KEY))
        return {key[len(CLEARED_KEY):]: float(value) for key, value in rows}

    def names_since(self, since: float) -> list[str]:
        rows = self.db._query("SELECT DISTINCT name FROM access_log WHERE name IS NOT NULL AND at_unix >= ?", (since,))
        return [r[0] for r in rows]

    def prune(self, now: float | None = None) -> int:
        """Delete snapshots older than the retention, and rows older than ``ROW_RETENTION_DAYS``
        or the retention, whichever is longer (so the file stops growing: SQLite reuses the freed
        pages); returns how many snapshots."""
        now = time.time() if now is None else now
        with self.db._transaction() as tx:
            keep_days = max(ROW_RETENTION_DAYS, self.retention_days)  # a row outlives its snapshot
            tx.execute("DELETE FROM access_log WHERE at_unix < ?", (now - keep_days * 86400.0,))
            return tx.execute(
                "UPDATE access_log SET snapshot = NULL WHERE snapshot IS NOT NULL AND at_unix < ?",
                (now - self.retention_days * 86400.0,),
            ).rowcount


class AccessLogWriter:
    """Writes decisions on a background thread (its own SQLite connection).

    ``record`` never blocks: it queues the decision and a copy of the face crop; the thread
    encodes the JPEG and inserts the row. Snapshots past the retention are pruned at start and
    every ``prune_every_s``. ``flush`` waits for the queue; ``close`` drains it and stops.
    Every ``poll_clears_s`` it looks for lockouts cleared by ``blinkgate unlock``, which the
    door takes with :meth:`take_cleared`, and for a change of who is enrolled (``enroll``,
    ``forget``), which it takes with :meth:`take_people`: a running door must stop opening for
    someone forgotten without a restart. A database replaced at the path (a backup restored with
    mv) is followed for all of it; while none is readable there, the door names nobody and
    decisions are not logged (``unlogged`` counts them).
    """

    def __init__(self, db_path: str | Path, retention_days: float = DEFAULT_RETENTION_DAYS,
                 queue_size: int = 1024, prune_every_s: float = 3600.0, jpeg_quality: int = 85,
                 poll_clears_s: float = 2.0):
        # Open once here so a bad path or a foreign file fails at start, in the caller's thread,
        # and take stock of the cleared lockouts now: one cleared after this is polled, one
        # cleared before is honoured by the restore that follows (doorrun._restore_failures).
        with AccessLog(db_path, retention_days) as store:
            self._clears_seen = store.clears()
            # failures logged from here on by other processes are polled; earlier ones are
            # restored at start (doorrun._restore_failures)
            self._failures_seen = store.last_id()
            self._file_seen = store.db.file  # the file these were taken from
        self._own_ids: set[int] = set()  # counted failures it wrote since the last poll: its door counted them
        self._failed: queue.SimpleQueue[tuple[str, float]] = queue.SimpleQueue()
        self.db_path, self.retention_days = Path(db_path), retention_days
        self.prune_every_s, self.jpeg_quality, self.poll_clears_s = prune_every_s, jpeg_quality, poll_clears_s
        self._cleared: queue.SimpleQueue[str] = queue.SimpleQueue()
        # The newest enrolment read, until the door takes it. The first poll always reads one, so a
        # change between the door loading its people and this thread starting is not missed.
        self._people: tuple[np.ndarray, list[str]] | None = None
        self._watch = PeopleWatch()  # used by the thread only
        self._people_lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue(queue_size)
        self.dropped = 0
        self.written = 0
        self.unlogged = 0  # decisions made while no readable database was at the path
        self._unlogged_said = 0
        self._thread = threading.Thread(target=self._run, name="blinkgate-accesslog", daemon=True)
        self._thread.start()

    def record(self, decision, snapshot: np.ndarray | None = None, source: str = "") -> None:
        try:
            self._queue.put_nowait((decision, snapshot, source, time.time()))
        except queue.Full:
            self.dropped += 1
            log.error("access log is not keeping up: decision %s/%s for %s not logged",
                      decision.decision, decision.reason, decision.name)

    def _run(self) -> None:
        store: AccessLog | None = None  # opened at the first poll, in this thread, which owns it
        last_prune = last_poll = float("-inf")
        while True:
            if time.monotonic() - last_poll >= self.poll_clears_s:
                last_poll = time.monotonic()
                if store is None:
                    store = self._open()
                if store is not None:
                    self._poll(store)
            if store is not None and time.monotonic() - last_prune >= self.prune_every_s:
                last_prune = time.monotonic()
                self._prune(store)
            try:
                wake = min(last_prune + self.prune_every_s, last_poll + self.poll_clears_s)
                item = self._queue.get(timeout=max(0.05, min(60.0, wake - time.monotonic())))
            except queue.Empty:
                continue
            try:
                if item is None:
                    break
                decision, crop, source, at = item
                if store is None:
                    self.unlogged += 1  # said once a database is open (_poll_people)
                    continue
                if not self._writable(store):
                    continue
                jpeg = encode_jpeg(crop, self.jpeg_quality) if crop is not None and crop.size else None
                try:
                    row_id = store.record(decision, jpeg, source, at)
                    self.written += 1
                    if store.counted_failure(row_id):  # only these come back from failures_after
                        self._own_ids.add(row_id)
                except BlinkgateError as err:
                    log.error("access log: %s", err)
            finally:
                self._queue.task_done()
        if store is not None:
            store.close()

    def _open(self) -> AccessLog | None:
        """The access log at the path; None, naming nobody (said once), while it cannot be opened
        there. Tried again at each poll: opened once for all, a database that could not be
        opened as the thread started (locked, replaced that moment) left the door's people, and
        its log, as they were until a restart."""
        try:
            # create=False: a database deleted meanwhile is not made anew here (made at start only)
            return AccessLog(self.db_path, self.retention_days, create=False)
        except BlinkgateError as err:
            if (nobody := self._watch.unreadable(self.db_path, err)) is not None:
                with self._people_lock:
                    self._people = nobody
            return None

    def _poll(self, store: AccessLog) -> None:
        self._poll_people(store)  # first: it follows a database replaced at the path
        if self._watch.trouble is None:
            self._clears_seen = self._poll_clears(store, self._clears_seen)
            self._poll_failures(store)

    def _prune(self, store: AccessLog) -> None:
        if self._watch.trouble is not None:
            return  # no readable database at the path (said): nothing to prune
        try:
            if n := store.prune():
                log.info("access log: deleted %d snapshots older than %g days", n, self.retention_days)
        except BlinkgateError as err:
            log.error("access log prune: %s", err)

    def _poll_clears(self, store: AccessLog, seen: dict[str, float]) -> dict[str, float]:
        """Queue the names cleared since ``seen``."""
        try:
            now = store.clears()
        except BlinkgateError as err:
            log.error("access log: %s", err)
            return seen
        for name, at in now.items():
            if seen.get(name) != at:
                self._cleared.put(name)
        return now

    def _poll_failures(self, store: AccessLog) -> None:
        """Queue the failures other processes logged since the last poll. Each process restores
        the failures logged before it started, so two `verify` runs, or a door and a `verify`,
        on one database each gave a replay its own 5 tries."""
        try:
            rows = store.failures_after(self._failures_seen)
        except BlinkgateError as err:
            log.error("access log: %s", err)
            return
        for row_id, name, at in rows:
            self._failures_seen = max(self._failures_seen, row_id)
            if row_id not in self._own_ids:
                self._failed.put((name, at))
        # This thread wrote all its rows before this query: one not returned now never will be
        # (its name was unlocked since), and kept its id for as long as the door ran.
        self._own_ids.clear()

    def take_failures(self) -> list[tuple[str, float]]:
        """(name, unix time) of failed challenges other processes logged since the last call."""
        return _drain(self._failed)

    def _writable(self, store: AccessLog) -> bool:
        """Whether a row can go to the database at the path: one stat a decision, so no row
        goes to a file replaced since the last poll."""
        if self._watch.trouble is None and store.db.replaced():
            self._poll_people(store)
        if self._watch.trouble is not None:
            self.unlogged += 1
            return False
        return True

    def _poll_people(self, store: AccessLog) -> None:
        """Read who is enrolled if it changed since the last poll, following the file at the path."""
        try:
            people = self._watch.poll(store.db)
        except BlinkgateError as err:
            log.error("access log: reading the enrolled people: %s", err)
            return
        if people is not None:
            with self._people_lock:
                self._people = people
        if self._watch.trouble is not None:
            return
        if missed := self.unlogged - self._unlogged_said:
            log.warning("access log: %d decision%s not logged while %s could not be read",
                        missed, "s" if missed != 1 else "", store.path)
            self._unlogged_said = self.unlogged
        if store.db.file != self._file_seen:
            self._start_over(store)

    def _start_over(self, store: AccessLog) -> None:
        """Take stock of another file as at start: its lockouts cleared and failures logged so
        far are its past, not news (a restored backup's old rows would count again)."""
        try:
            self._clears_seen, self._failures_seen = store.clears(), store.last_id()
        except BlinkgateError as err:
            log.error("access log: %s", err)
            return  # taken stock of at the next poll
        self._file_seen = store.db.file
        self._own_ids.clear()

    def take_people(self) -> tuple[np.ndarray, list[str]] | None:
        """(encodings, names) of who is enrolled, if read since the last call (never blocks)."""
        with self._people_lock:
            people, self._people = self._people, None
        return people

    def take_cleared(self) -> list[str]:
        """Names whose lockout ``blinkgate unlock`` cleared since the last call (never blocks)."""
        return _drain(self._cleared)

    def flush(self, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def close(self, timeout_s: float = 10.0) -> None:
        self.flush(timeout_s)
        try:
            self._queue.put(None, timeout=1.0)
        except queue.Full:
            pass
        self._thread.join(timeout=timeout_s)

    def __enter__(self) -> AccessLogWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _drain(items: queue.SimpleQueue) -> list:
    """Everything in ``items`` now, without waiting."""
    taken = []
    while True:
        try:
            taken.append(items.get_nowait())
        except queue.Empty:
            return taken
