"""The face database: enrolled people and one 128-d encoding per enrolled image, in SQLite.

Safety properties the rest of blinkgate relies on:

* every write is one transaction: an interrupted enrolment keeps everything committed before
  it and never leaves half an image row (SQLite's atomic commit, WAL journal);
* a file that is not ours is refused, never modified: a non-SQLite/corrupt file or a foreign
  SQLite database, or ours missing a table or column, raises DatabaseError("... is not a
  blinkgate database ..."); an empty 0-byte file (or a missing one, when ``create=True``)
  becomes a new database;
* only we (and root) can change it: a database, -wal or -shm file another user owns or every
  user can write, or a folder where others could swap it (writable by others, no sticky bit),
  is refused before it is read, since whoever writes it can enrol their own face. That runs
  before an empty file is adopted, so a 0-byte file planted in a shared folder stays refused;
* only we (and our group) can read it: the encodings and the door's face snapshots are
  biometric data. A new database is created 0600 (SQLite gives its -wal/-shm the database's
  mode); one an older blinkgate left readable by every user (0644) loses the other users' access;
* the schema is versioned with ``PRAGMA user_version``; a new table (e.g. an access log) is
  one more entry in ``_MIGRATIONS`` and older databases are upgraded on open;
* encodings are stored as raw little-endian float64 bytes (never pickle).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import threading
import unicodedata
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Iterator

import numpy as np
from platformdirs import user_data_dir

from .config import check_file_owner
from .errors import DatabaseError
from .files import PRIVATE_FILE, make_folders
from .types import as_encoding

APPLICATION_ID = 0x426C4B47  # "BlKG": marks the file as ours in the SQLite header
SQLITE_MAGIC = b"SQLite format 3\x00"
ENCODING_DTYPE = np.dtype("<f8")
ENCODING_BYTES = 128 * ENCODING_DTYPE.itemsize
PRIVATE_MODE = PRIVATE_FILE  # the faces are biometric data: the owner only
BUSY_TIMEOUT_MS = 10_000  # how long a write waits for another process's (enroll beside a running door)
PEOPLE_VERSION_KEY = "people_version"  # meta: bumped by every change of who is enrolled

# SQLite's POSIX locks belong to the process, and closing any descriptor of the file drops them
# all. Reading the header of a database this process already has open would let another process
# take itself for the last user on close and delete the -wal and -shm under the open connection:
# each side then writes to its own copy, and one side's writes are lost. So the files open here
# (or being opened) are counted by inode, and only the first open reads the header.
_OPEN_FILES: Counter[tuple[int, int]] = Counter()
_OPEN_LOCK = threading.Lock()
SIDE_SUFFIXES = ("-wal", "-shm")  # SQLite's WAL and its index, next to the database in WAL mode
# Why another user must not be able to change the database (see check_file_owner).
_WRITE_HARM = "could enrol their own face or remove someone"

log = logging.getLogger("blinkgate.database")

# _MIGRATIONS[i] upgrades schema version i to i + 1, in one transaction. Append only; never
# edit a released step (e.g. version 2 could add an access_log table).
_MIGRATIONS: list[tuple[str, ...]] = [
    (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
        f"""CREATE TABLE images (
            id INTEGER PRIMARY KEY,
            person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
            path TEXT NOT NULL UNIQUE,
            sha256 TEXT NOT NULL,
            encoding BLOB NOT NULL CHECK (length(encoding) = {ENCODING_BYTES}),
            added_at TEXT NOT NULL
        )""",
        "CREATE INDEX images_person ON images(person_id)",
        "INSERT INTO meta (key, value) VALUES ('application', 'blinkgate')",
    ),
    # 2: the door's access log (blinkgate.accesslog). One row per decision; the face
    # snapshot is a JPEG BLOB, set to NULL when it passes the retention age.
    (
        """CREATE TABLE access_log (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            at_unix REAL NOT NULL,
            source TEXT NOT NULL DEFAULT '',
            time_ms REAL,
            track INTEGER,
            name TEXT,
            decision TEXT NOT NULL CHECK (decision IN ('granted', 'denied', 'revoked', 'expired')),
            reason TEXT NOT NULL,
            distance REAL,
            detail TEXT NOT NULL DEFAULT '{}',
            snapshot BLOB
        )""",
        "CREATE INDEX access_log_at ON access_log(at_unix)",
        "CREATE INDEX access_log_name_at ON access_log(name, at_unix)",
    ),
]
SCHEMA_VERSION = len(_MIGRATIONS)
# Every table and column at SCHEMA_VERSION. A file missing one (a table dropped or rebuilt by
# hand or by another tool) is refused as it opens: `people` listed it, while `enroll` failed
# at its first photo and a door ran with every decision unlogged ("no such column").
_COLUMNS = {
    "meta": ("key", "value"),
    "people": ("id", "name"),
    "images": ("id", "person_id", "path", "sha256", "encoding", "added_at"),
    "access_log": ("id", "at", "at_unix", "source", "time_ms", "track", "name", "decision", "reason",
                   "distance", "detail", "snapshot"),
}


@dataclass(frozen=True)
class EnrolledImage:
    name: str
    path: str
    sha256: str
    encoding: np.ndarray  # (128,) float64
    added_at: str  # ISO 8601, UTC


@dataclass(frozen=True)
class Forgotten:
    """What ``forget`` removed: the person's enrolled images, and the face snapshots of their
    access-log entries (the entries themselves stay)."""

    images: int
    snapshots: int
    names: tuple[str, ...] = ()  # as enrolled: every name with the given name's name_key


class UnknownPersonError(DatabaseError):
    """``forget`` was given a name nobody is enrolled under."""


def default_db_path() -> Path:
    """``$BLINKGATE_DB`` if set, else ``<user data dir>/blinkgate/faces.db``. Creates nothing."""
    env = os.environ.get("BLINKGATE_DB")
    if env:
        return Path(env).expanduser()
    return Path(user_data_dir("blinkgate", appauthor=False)) / "faces.db"


def existing_database(path: Path, hint: str = "") -> Path:
    """``path`` for a command that only reads the database (``log``, ``eval``). FaceDatabase
    adopts an empty file as a new database (``touch e.db`` then ``enroll``), which for a reader
    left a 45 KB database of mode 600 in its place: a missing or empty file is refused here,
    untouched. ``hint`` ends both errors."""
    if not path.exists():
        raise DatabaseError(f"no face database at {path}{hint}")
    if path.is_file() and path.stat().st_size == 0:
        raise DatabaseError(f"{path} is an empty file, not a face database{hint}")
    return path


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def name_key(name: str) -> str:
    """``name`` with what cannot be seen taken away: its Unicode form (a folder from a Mac is named
    'Zoe' + combining diaeresis, a keyboard types 'Zoë') and spaces around it. Two names with one
    key are one person's. Case still counts."""
    return unicodedata.normalize("NFC", name).strip()


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be enrolled, or None. A name reaches unlock commands as one argument
    (``open-door {name}``), so one starting with '-' would be read as an option (--all-doors)."""
    if not name or not name.strip():
        return "must not be empty"
    if name.startswith("-"):
        return ("must not start with '-' (an unlock command like 'open-door {name}' would read it "
                "as an option)")
    for i, c in enumerate(name, 1):
        if unicodedata.category(c) == "Cc":
            return (f"must not hold control characters: {char_name(c)} at character {i} (a line break in it would "
                    "forge lines in `blinkgate log`)")
        if unicodedata.category(c) in HIDDEN and not _joiner_in_a_word(name, i - 1):
            return (f"must not hold invisible or text-direction characters: {char_name(c)} at character {i} (the "
                    "name would look like another, or read otherwise, in `people`, `log` and on screen)")
    return None


# Format characters (U+200B zero width space, U+202E right-to-left override, U+2066-2069 isolates)
# and line/paragraph separators: "bob" + U+200B showed as "bob" beside "bob", one a look-alike's.
HIDDEN = ("Cf", "Zl", "Zp")


def _joiner_in_a_word(name: str, i: int) -> bool:
    """U+200C/U+200D between two letters: written in Persian ('Mohammad' ZWNJ 'Reza') and Indic
    names, so kept; ``people`` still shows them escaped."""
    return (name[i] in "\u200c\u200d" and 0 < i < len(name) - 1
            and unicodedata.category(name[i - 1])[0] in "LM" and unicodedata.category(name[i + 1])[0] in "LM")


def char_name(c: str) -> str:
    """'U+200B ZERO WIDTH SPACE'; a control character has no name: 'U+000A'."""
    return f"U+{ord(c):04X} {unicodedata.name(c, '')}".rstrip()


def shown_name(name: str) -> str:
    """``name`` as a listing shows it: quoted, with Python escapes, if spaces around it or a
    character that cannot be seen would make it look like another (an older database's rows)."""
    return repr(name) if name != name.strip() or not name.isprintable() else name


def text_width(text: str) -> int:
    """Terminal columns ``text`` takes: a combining mark none, a wide (CJK) character two.
    Padding by len() shifted the columns after 'Zoe' + U+0308 (a Mac folder's name) or '山田'."""
    return sum(0 if unicodedata.combining(c) or unicodedata.category(c) in ("Mn", "Me", "Cf")
               else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


People = tuple[np.ndarray, list[str]]  # (N, 128) encodings and their N names, as known_encodings


class PeopleWatch:
    """Who is enrolled, read again only once it changed (``people_version``): how a running door
    (on its access-log thread) and a running `run` (between frames) follow `enroll` and `forget`
    without a restart, at the cost of one stat and one small read a poll.

    It also follows the file: a database moved into place over the open one (a backup restored
    with mv) is opened afresh and read. With none at the path, or one it cannot read, it names
    nobody until a readable one is back: the old file's people, kept, would still be let in."""

    def __init__(self) -> None:
        self.version: int | None = None  # None: not read yet, so the first poll reads
        self.trouble: str | None = None  # why nobody is named now, while there is no readable database

    def poll(self, db: FaceDatabase) -> People | None:
        """(encodings, names) as in ``known_encodings`` if who is enrolled changed since the last
        poll (or this is the first, or the file at the path is another), else None. Nobody (empty)
        once the database is gone or unreadable, said once."""
        replaced = db.replaced()
        try:
            if replaced:
                self.version = None  # another file: its count says nothing about the old one's
                db.reopen()
            now = db.people_version()
            if now == self.version:
                return None
            people = db.known_encodings()
        except DatabaseError as err:
            if not (replaced or self.trouble):
                raise  # the file read so far: keep its people and read again next poll (as for a lock held long)
            return self.unreadable(db.path, err)
        self.version = now  # only once read: an error reading them leaves the change to the next poll
        self._following(db.path, replaced)
        return people

    def unreadable(self, path: Path, err: Exception) -> People | None:
        """Nobody, once no readable database is at ``path`` (``err`` says why): said, and
        returned, once a reason."""
        why = str(err) if path.exists() else f"face database {path} is gone (deleted or moved away)"
        if why == self.trouble:
            return None  # nobody is named already
        self.trouble, self.version = why, None
        log.error("%s: nobody is named until a readable face database is back at %s", why, path)
        return np.empty((0, 128), dtype=np.float64), []

    def _following(self, path: Path, replaced: bool) -> None:
        if self.trouble is not None:
            self.trouble = None
            log.warning("face database %s can be read again: following it", path)
        elif replaced:
            log.warning("face database %s is another file now (restored or replaced): following it", path)


class FaceDatabase:
    """Enrolled people and their face encodings. Use as a context manager.

    ``create=False`` refuses to create a missing database (for commands that only read it).
    One instance per thread (sqlite3 connections are not shared across threads).
    """

    def __init__(self, path: Path | str, create: bool = True):
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._file: tuple[int, int] | None = None  # its entry in _OPEN_FILES, while counted
        self._open(create)

    def _open(self, create: bool) -> None:
        fresh = self._check_file(create)
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves (see _transaction).
            self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
            self._check_identity(fresh)
            self._make_private(fresh)  # only once it is ours: a foreign file is refused untouched
            self._conn.execute("PRAGMA foreign_keys = ON")
            # Deleted rows and BLOBs are overwritten with zeros, not left in free pages: a face
            # forgotten, or past retention, must be gone from the file, not only from the tables.
            self._conn.execute("PRAGMA secure_delete = ON")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._migrate()
            self._check_schema()
        except sqlite3.Error as err:
            self.close()
            raise self._error(err) from err
        except BaseException:  # ours, or Ctrl-C while waiting on a lock: uncount the file, close
            self.close()
            raise

    # -- opening ---------------------------------------------------------------------

    def _not_ours(self, why: str) -> DatabaseError:
        return DatabaseError(f"{self.path} is not a blinkgate database ({why})")

    def _error(self, err: sqlite3.Error) -> DatabaseError:
        text = str(err)
        if "not a database" in text or "malformed" in text:
            return self._not_ours(f"corrupt: {text}")
        folder = self.path.parent
        if "readonly" in text and not os.access(folder, os.W_OK | os.X_OK):
            # The file's own mode was fine, and a user who checked it with ls was none the wiser.
            text += (f": its folder {folder} is not writable, and SQLite makes the database's -wal and -shm "
                     "files there, even to read it")
        return DatabaseError(f"face database {self.path}: {text}")

    def _check_file(self, create: bool) -> bool:
        """Decide from the bytes on disk, before SQLite touches the file. True → new database."""
        if self.path.is_dir():
            raise DatabaseError(f"face database path {self.path} is a directory")
        self._check_folder(create)
        if not self.path.exists():
            if not create:
                raise DatabaseError(f"no face database at {self.path} (enrol someone first)")
            self._create_private()
        if not self.path.is_file():  # reading a FIFO's header waited for a writer for ever
            raise DatabaseError(f"face database path {self.path} is not a regular file (a device or a pipe)")
        # Before anything is read or adopted: an empty file another user planted is theirs.
        for path in self._files():
            self._check_owner(path)
        self._writable_sides()
        with _OPEN_LOCK:
            try:
                info = self.path.stat()
                key = (info.st_dev, info.st_ino)
                if _OPEN_FILES[key]:
                    header = SQLITE_MAGIC  # open here already, as ours: reading it would drop its locks
                else:
                    with open(self.path, "rb") as f:
                        header = f.read(len(SQLITE_MAGIC))
            except OSError as err:
                raise DatabaseError(f"cannot read face database {self.path}: {err}") from err
            if header and header != SQLITE_MAGIC:
                raise self._not_ours("not an SQLite file")
            _OPEN_FILES[key] += 1
            self._file = key
        return not header  # 0-byte file: made by us above, or by touch or mktemp

    def _files(self) -> list[Path]:
        """The database and its -wal/-shm, those that exist. A -wal is replayed into the database
        on open, so a planted one is as dangerous as a planted database."""
        sides = [Path(f"{self.path}{suffix}") for suffix in SIDE_SUFFIXES]
        return [p for p in (self.path, *sides) if p.exists()]

    def _writable_sides(self) -> None:
        """Give a -wal or -shm its owner's write access back once the database has it. A
        connection to a database its owner could not write (chmod 400) leaves them behind with
        that mode, and SQLite, finding the -shm read-only, opened the database read-only: after
        chmod 600, every enroll and forget failed with "attempt to write a readonly database"."""
        if os.name != "posix":
            return
        try:
            if not self.path.stat().st_mode & stat.S_IWUSR:
                return
            for side in self._files()[1:]:
                mode = stat.S_IMODE(side.stat().st_mode)
                if not mode & stat.S_IWUSR:
                    os.chmod(side, mode | stat.S_IWUSR)
        except OSError:  # gone meanwhile, or root's: SQLite's own error follows if it matters
            pass

    def _check_folder(self, create: bool) -> None:
        """Refuse a folder where another user could swap the database or its -wal for their own;
        create it if missing and ``create`` (if not, the missing database is reported next)."""
        folder = self.path.parent
        if not folder.exists():
            if not create:
                return
            try:
                make_folders(folder)  # a file in the way is named, not "Not a directory: 'FOLDER'"
            except OSError as err:
                raise DatabaseError(f"cannot create {folder}: {err.strerror or err}") from err
        if os.name != "posix":
            return
        info = folder.stat()
        mode = stat.S_IMODE(info.st_mode)
        where = f"face database folder {folder}"
        if info.st_uid not in (os.getuid(), 0):
            raise DatabaseError(f"{where} belongs to another user (uid {info.st_uid}), who could swap "
                                f"the database for their own: use a folder you or root own")
        if mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
            raise DatabaseError(f"{where} can be changed by any user (mode {mode:o}), who could swap "
                                f"the database for their own: chmod o-w {folder}")
        if mode & stat.S_IWOTH:
            # Sticky (like /tmp): others cannot replace our files, but can plant a -wal while no
            # connection has one open. We refuse one found at open; a race remains.
            log.warning("%s is shared with every user (mode %o), who can plant files next to the "
                        "database: keep it in a folder of its own", where, mode)

    def _create_private(self) -> None:
        """Create the file 0600 before SQLite does: SQLite would follow the umask (0644 on most
        systems). O_EXCL: never open a file someone slipped in between; if one appeared, the
        owner checks that follow judge it like any existing file."""
        try:
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE))
        except FileExistsError:
            pass
        except OSError as err:
            raise DatabaseError(f"cannot create {self.path}: {err.strerror or err}") from err

    def _check_owner(self, path: Path) -> None:
        try:
            check_file_owner(path, "face database", _WRITE_HARM, DatabaseError)
        except FileNotFoundError:
            pass  # a -wal the last connection of another process removed as it closed
        except OSError as err:
            raise DatabaseError(f"cannot read face database {path}: {err.strerror or err}") from err

    def _make_private(self, fresh: bool) -> None:
        """Take other users' read access to the faces. A new database becomes 0600; an existing
        one loses only the 'other' bits: a group that can read it may be deliberate."""
        if os.name != "posix":
            return
        for path in self._files():
            try:
                mode = stat.S_IMODE(path.stat().st_mode)
            except FileNotFoundError:
                continue  # a -wal removed meanwhile by another process's last close
            wanted = PRIVATE_MODE if fresh else mode & ~stat.S_IRWXO
            if mode == wanted:
                continue
            try:
                os.chmod(path, wanted)
            except OSError:  # e.g. root's file and we are not root
                if mode & stat.S_IROTH:
                    log.warning("face database %s is readable by every user (mode %o), who can copy "
                                "everyone's face encodings and snapshots: chmod o-rwx %s", path, mode, path)
                continue
            if not fresh:
                log.warning("face database %s was readable by every user (mode %o), who could copy "
                            "everyone's face encodings and snapshots: now mode %o", path, mode, wanted)

    def _check_identity(self, fresh: bool) -> None:
        conn = self._require()
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        if app_id == APPLICATION_ID:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise DatabaseError(
                    f"{self.path} has schema version {version}, newer than this blinkgate "
                    f"understands ({SCHEMA_VERSION}); upgrade blinkgate"
                )
            return
        objects = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if fresh or (app_id == 0 and objects == 0):
            return  # nothing in it yet: ours to initialise
        raise self._not_ours(f"SQLite application_id {app_id:#x}, {objects} schema objects")

    def _migrate(self) -> None:
        conn = self._require()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self._transaction() as tx:
                # Read again under the write lock: another process opening the new database at
                # the same moment (a `run` waiting for the first `enroll`) may have made this step.
                if tx.execute("PRAGMA user_version").fetchone()[0] >= target:
                    continue
                # Not executescript(): it would COMMIT first, outside our transaction.
                for statement in _MIGRATIONS[target - 1]:
                    tx.execute(statement)
                tx.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                tx.execute(f"PRAGMA user_version = {target}")
                tx.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(target),),
                )

    def _check_schema(self) -> None:
        conn = self._require()
        for table, columns in _COLUMNS.items():
            have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            if not have:
                raise self._not_ours(f"damaged: it has no {table} table")
            if missing := [c for c in columns if c not in have]:
                raise self._not_ours(f"damaged: its {table} table has no {', '.join(missing)} column")

    # -- plumbing --------------------------------------------------------------------

    def _require(self) -> sqlite3.Connection:
        if self._conn is None:
            raise DatabaseError(f"face database {self.path} is closed")
        return self._conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, ROLLBACK on any exception; sqlite3 errors → DatabaseError."""
        conn = self._require()
        try:
            conn.execute("BEGIN IMMEDIATE")  # take the write lock now, not halfway through
        except sqlite3.Error as err:
            raise self._error(err) from err
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # SQLite may already have rolled back (e.g. after a disk I/O error)
            if isinstance(exc, sqlite3.Error):
                raise self._error(exc) from exc
            raise

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        try:
            return self._require().execute(sql, params).fetchall()
        except sqlite3.Error as err:
            raise self._error(err) from err

    @property
    def file(self) -> tuple[int, int] | None:
        """(st_dev, st_ino) of the file open here; None while closed."""
        return self._file

    def replaced(self) -> bool:
        """True if the path no longer names the file open here (or nothing is open): another was
        moved into place (a backup restored with mv), or it was deleted. One stat, nothing read."""
        try:
            info = os.stat(self.path)
        except OSError:
            return True
        return (info.st_dev, info.st_ino) != self._file

    def reopen(self) -> None:
        """Let go of the file open here (:meth:`_let_go`), then open the file at the path now,
        afresh: never creating one, and closed if that fails."""
        self._let_go()
        self._open(create=False)

    def _let_go(self) -> None:
        """Close, first emptying the WAL into the file it belongs to. SQLite names the -wal and
        -shm after the path, and does not checkpoint a file moved or deleted under it as it
        closes: its -wal stays at the path, and the next file opened there takes the old pages
        for its own (a restored backup without bob named bob, and got him for good at its own
        checkpoint; sqlite.org/howtocorrupt.html, 'Mispairing database files and hot journals').
        The checkpoint writes into the old file only what was committed to it already. Raises,
        still open, while another connection reads inside the old WAL and it cannot be emptied."""
        if self._conn is not None:
            if not self._checkpoint():
                raise DatabaseError(f"face database {self.path} was replaced, and its old write-ahead log "
                                    f"is still in use by another process: not opened again until it is free")
        self.close()

    def _checkpoint(self) -> bool:
        """Write the WAL into the database file and empty it; False if another connection reads
        inside it, and some of it stays until a later checkpoint."""
        try:
            conn = self._require()
            # No wait for a reader inside it: `run` polls in its frame loop, and the connection's
            # 10 s busy timeout froze it; a checkpoint put off is tried again at the next poll.
            conn.execute("PRAGMA busy_timeout = 0")
            try:
                return not conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            finally:
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        except sqlite3.Error as err:
            raise self._error(err) from err

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._file is not None:
            with _OPEN_LOCK:
                _OPEN_FILES[self._file] -= 1
                if not _OPEN_FILES[self._file]:
                    del _OPEN_FILES[self._file]
            self._file = None

    def __enter__(self) -> FaceDatabase:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- writes ----------------------------------------------------------------------

    def add_image(self, name: str, path: str | Path, sha256: str, encoding: np.ndarray) -> bool:
        """Store the encoding of one image of ``name``; replaces any earlier row for ``path``.

        Returns True if an earlier encoding of ``path`` was replaced. Atomic.
        """
        problem = name_problem(name)
        if problem:
            raise ValueError(f"person name {name!r} {problem}")
        vector = as_encoding(encoding)
        if not np.isfinite(vector).all():
            raise ValueError("face encoding contains NaN or infinity")
        blob = vector.astype(ENCODING_DTYPE).tobytes()
        with self._transaction() as tx:
            tx.execute("INSERT OR IGNORE INTO people (name) VALUES (?)", (name,))
            (person_id,) = tx.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
            replaced = tx.execute("DELETE FROM images WHERE path = ?", (str(path),)).rowcount > 0
            tx.execute(
                "INSERT INTO images (person_id, path, sha256, encoding, added_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (person_id, str(path), sha256, blob, _now()),
            )
            self._delete_orphans(tx)  # the replaced row may have been someone else's last
            self._bump_version(tx)
        return replaced

    def remove_image(self, path: str | Path) -> bool:
        """Drop the encoding of ``path`` (e.g. its file no longer shows one face). Atomic."""
        with self._transaction() as tx:
            removed = tx.execute("DELETE FROM images WHERE path = ?", (str(path),)).rowcount > 0
            self._delete_orphans(tx)
            if removed:
                self._bump_version(tx)
        return removed

    def forget(self, name: str) -> Forgotten:
        """Remove a person, all their images and the snapshots of their face in the access log.

        Every enrolled name with the same ``name_key`` goes too: 'José' from a Mac folder (NFD)
        beside a typed 'José' (NFC) is one person, and forgetting one left the other letting
        him in, under a name that `people` shows the same.

        An unknown name raises UnknownPersonError listing who is enrolled: for a CLI user a
        silent "0" would hide a typo while the person they meant stays enrolled.
        """
        with self._transaction() as tx:
            names = [n for (n,) in tx.execute("SELECT name FROM people ORDER BY name") if name_key(n) == name_key(name)]
            count = snapshots = 0
            for enrolled in names:
                (person_id,) = tx.execute("SELECT id FROM people WHERE name = ?", (enrolled,)).fetchone()
                count += tx.execute("DELETE FROM images WHERE person_id = ?", (person_id,)).rowcount
                tx.execute("DELETE FROM people WHERE id = ?", (person_id,))
                snapshots += self._delete_snapshots(tx, enrolled)
            # No longer enrolled but still in the log (an enroll run removed them and, before
            # _delete_orphans did, kept their faces): those faces go too.
            if name not in names:
                snapshots += self._delete_snapshots(tx, name)
            if not names and not snapshots:
                enrolled = [n for (n,) in tx.execute("SELECT name FROM people ORDER BY name")]
                listing = ", ".join(enrolled) if enrolled else "nobody is enrolled"
                raise UnknownPersonError(f"no enrolled person named {name!r} ({listing})")
            self._bump_version(tx)
        # secure_delete zeroed the pages in the WAL; the file and the WAL's older frames hold the
        # faces until a checkpoint, which a running door's open connection would put off.
        if not self._checkpoint():
            log.info("the deleted images and snapshots leave the database's write-ahead log at its next "
                     "checkpoint: another process is reading it")
        return Forgotten(count, snapshots, tuple(names))

    def enrolled_name(self, name: str) -> str | None:
        """``name`` as enrolled (see _enrolled_name), or None if nobody is enrolled under it."""
        return self._enrolled_name(self._require(), name)

    @staticmethod
    def _enrolled_name(conn: sqlite3.Connection, name: str) -> str | None:
        """``name`` if enrolled, else the one enrolled name with its ``name_key``. Without this,
        `people` shows a name that `forget` and `unlock` cannot be given."""
        names = [n for (n,) in conn.execute("SELECT name FROM people")]
        if name in names:
            return name
        same = [n for n in names if name_key(n) == name_key(name)]
        return same[0] if len(same) == 1 else None

    @staticmethod
    def _delete_snapshots(tx: sqlite3.Connection, name: str) -> int:
        """Delete the face snapshots of ``name``'s access-log entries (the access log is this
        file's table, schema version 2); returns how many. The entries stay: who was let in or
        turned away, when, is the door's audit trail; a forgotten person's face is not kept.
        A face logged as unknown cannot be told to be theirs, and stays until retention."""
        return tx.execute("UPDATE access_log SET snapshot = NULL WHERE name = ? AND snapshot IS NOT NULL",
                          (name,)).rowcount

    @staticmethod
    def _bump_version(tx: sqlite3.Connection) -> None:
        """Count a change of who is enrolled, in its own transaction: a running door polls
        :meth:`people_version` and reloads, so a forgotten person stops opening it."""
        tx.execute(f"INSERT INTO meta (key, value) VALUES ('{PEOPLE_VERSION_KEY}', '1') ON CONFLICT (key) "
                   "DO UPDATE SET value = CAST(value AS INTEGER) + 1")

    @classmethod
    def _delete_orphans(cls, tx: sqlite3.Connection) -> None:
        """A person left with no image is no longer enrolled, and their face snapshots go as with
        `forget` (an enroll run that removed them used to keep their faces in the log)."""
        orphans = "SELECT name FROM people WHERE id NOT IN (SELECT person_id FROM images)"
        for (name,) in tx.execute(orphans).fetchall():
            cls._delete_snapshots(tx, name)
        tx.execute("DELETE FROM people WHERE id NOT IN (SELECT person_id FROM images)")

    # -- reads -----------------------------------------------------------------------

    def has_image(self, path: str | Path, sha256: str) -> bool:
        """True if ``path`` is enrolled with exactly this content hash."""
        rows = self._query("SELECT 1 FROM images WHERE path = ? AND sha256 = ?", (str(path), sha256))
        return bool(rows)

    def image_hashes(self) -> dict[str, str]:
        """path → sha256 of every enrolled image (for incremental enrolment)."""
        return dict(self._query("SELECT path, sha256 FROM images"))

    def people(self) -> list[tuple[str, int]]:
        """(name, number of enrolled images), sorted by name."""
        return self._query(
            "SELECT p.name, count(i.id) FROM people p LEFT JOIN images i ON i.person_id = p.id "
            "GROUP BY p.id ORDER BY p.name"
        )

    def images(self, name: str | None = None) -> list[EnrolledImage]:
        """Every enrolled image (of ``name`` only, if given), by name then enrolment order."""
        where, params = ("WHERE p.name = ?", (name,)) if name is not None else ("", ())
        rows = self._query(
            "SELECT p.name, i.path, i.sha256, i.encoding, i.added_at "
            f"FROM images i JOIN people p ON p.id = i.person_id {where} ORDER BY p.name, i.id",
            params,
        )
        return [EnrolledImage(n, path, sha, self._decode(blob), at) for n, path, sha, blob, at in rows]

    def people_version(self) -> int:
        """How many changes of who is enrolled this database has seen (0: none recorded)."""
        rows = self._query("SELECT value FROM meta WHERE key = ?", (PEOPLE_VERSION_KEY,))
        return int(rows[0][0]) if rows else 0

    def known_encodings(self) -> tuple[np.ndarray, list[str]]:
        """All encodings as an (N, 128) float64 array and the N matching names."""
        rows = self._query(
            "SELECT p.name, i.encoding FROM images i JOIN people p ON p.id = i.person_id "
            "ORDER BY p.name, i.id"
        )
        encodings = np.empty((len(rows), 128), dtype=np.float64)
        for k, (_, blob) in enumerate(rows):
            encodings[k] = self._decode(blob)
        return encodings, [name for name, _ in rows]

    def _decode(self, blob: bytes) -> np.ndarray:
        if len(blob) != ENCODING_BYTES:  # the CHECK constraint makes this unreachable unless tampered
            raise self._not_ours(f"image encoding of {len(blob)} bytes")
        return np.frombuffer(blob, dtype=ENCODING_DTYPE).astype(np.float64)
