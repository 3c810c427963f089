"""FaceDatabase with synthetic encodings: no models or shared data needed."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import time
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from blinkgate import database
from blinkgate.database import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    FaceDatabase,
    UnknownPersonError,
    default_db_path,
)
from blinkgate.errors import BlinkgateError, DatabaseError

SRC = Path(__file__).resolve().parents[1] / "src"


def enc(seed: float) -> np.ndarray:
    """A deterministic, recognisable 128-d vector."""
    return np.linspace(seed, seed + 1.0, 128)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "faces.db"


def test_add_and_read_back(db_path: Path) -> None:
    with FaceDatabase(db_path) as db:
        assert db.add_image("Ada", "/p/ada1.jpg", "a1", enc(1)) is False
        db.add_image("Ada", "/p/ada2.jpg", "a2", enc(2))
        db.add_image("Bob", "/p/bob1.jpg", "b1", enc(3))
        assert db.people() == [("Ada", 2), ("Bob", 1)]
        encodings, names = db.known_encodings()
    assert names == ["Ada", "Ada", "Bob"]
    assert encodings.shape == (3, 128) and encodings.dtype == np.float64
    np.testing.assert_array_equal(encodings, np.stack([enc(1), enc(2), enc(3)]))  # bit-exact


def test_images_lists_rows(db_path: Path) -> None:
    with FaceDatabase(db_path) as db:
        db.add_image("Bob", "/p/bob1.jpg", "b1", enc(3))
        db.add_image("Ada", "/p/ada1.jpg", "a1", enc(1))
        rows = db.images()
        assert [(r.name, r.path, r.sha256) for r in rows] == [
            ("Ada", "/p/ada1.jpg", "a1"), ("Bob", "/p/bob1.jpg", "b1")
        ]
        np.testing.assert_array_equal(rows[1].encoding, enc(3))
        assert rows[0].added_at.endswith("+00:00")
        assert [r.path for r in db.images("Bob")] == ["/p/bob1.jpg"]
        assert db.images("Nobody") == []


def test_empty_database(db_path: Path) -> None:
    with FaceDatabase(db_path) as db:
        encodings, names = db.known_encodings()
        assert encodings.shape == (0, 128) and names == []
        assert db.people() == [] and db.image_hashes() == {}


def test_encoding_is_raw_float64_bytes_not_pickle(db_path: Path) -> None:
    with FaceDatabase(db_path) as db:
        db.add_image("Ada", "/p/a.jpg", "h", enc(7))
    conn = sqlite3.connect(db_path)
    (blob,) = conn.execute("SELECT encoding FROM images").fetchone()
    conn.close()
    assert len(blob) == 1024 and not blob.startswith(b"\x80")  # pickle protocol marker
    np.testing.assert_array_equal(np.frombuffer(blob, dtype="<f8"), enc(7))


def test_schema_is_marked_and_versioned(db_path: Path) -> None:
    FaceDatabase(db_path).close()
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 2  # 2 added the access log
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    conn.close()
    assert meta == {"application": "blinkgate", "schema_version": str(SCHEMA_VERSION)}


def test_incremental_lookup_and_replace(db_path: Path) -> None:
    with FaceDatabase(db_path) as db:
        db.add_image("Ada", "/p/a.jpg", "old", enc(1))
        assert db.has_image("/p/a.jpg", "old")
        assert not db.has_image("/p/a.jpg", "new")
        assert not db.has_image("/p/other.jpg", "old")
        assert db.image_hashes() == {"/p/a.jpg": "old"}
        # Same path, new content: replaces, never duplicates.
        assert db.add_image("Ada", "/p/a.jpg", "new", enc(5)) is True
        assert db.image_hashes() == {"/p/a.jpg": "new"}
        assert db.people() == [("Ada", 1)]
        np.testing.assert_array_equal(db.known_encodings()[0], [enc(5)])


def test_path_moved_to_another_person_leaves_no_empty_person(db_path: Path) -> None:
    with FaceDatabase(db_path) as db:
        db.add_image("Ada", "/p/x.jpg", "h", enc(1))
        db.add_image("Bob", "/p/x.jpg", "h", enc(1))
        assert db.people() == [("Bob", 1)]


def test_remove_image(db_path: Path) -> None:
    with FaceDatabase(db_path) as db:
        db.add_image("Ada", "/p/a.jpg", "h", enc(1))
        db.add_image("Ada", "/p/b.jpg", "h", enc(2))
        assert db.remove_image("/p/a.jpg") is True
        assert db.remove_image("/p/a.jpg") is False
        assert db.people() == [("Ada", 1)]
        db.remove_image("/p/b.jpg")
        assert db.people() == []


def test_forget(db_path: Path) -> None:
    with FaceDatabase(db_path) as db:
        for i in range(3):
            db.add_image("Ada", f"/p/a{i}.jpg", f"h{i}", enc(i))
        db.add_image("Bob", "/p/b.jpg", "hb", enc(9))
        assert db.forget("Ada").images == 3
        assert db.people() == [("Bob", 1)]
        assert db.known_encodings()[1] == ["Bob"]
        with pytest.raises(UnknownPersonError, match=r"no enrolled person named 'ada' \(Bob\)"):
            db.forget("ada")  # names are case-sensitive
        assert db.people() == [("Bob", 1)]
    assert issubclass(UnknownPersonError, BlinkgateError)


def test_forget_takes_a_name_that_differs_only_invisibly(db_path: Path) -> None:
    """A folder copied from a Mac is named in NFD ('Zoe' + U+0308): `people` shows 'Zoë', the
    keyboard types 'Zoë' (NFC), and `forget` said nobody had that name."""
    with FaceDatabase(db_path) as db:
        db.add_image("Zoe\u0308", "/p/z.jpg", "hz", enc(1))
        db.add_image("Ada ", "/p/a.jpg", "ha", enc(2))
        db.add_image("Bob", "/p/b.jpg", "hb", enc(3))
        assert db.enrolled_name("Zo\u00eb") == "Zoe\u0308" and db.enrolled_name("bob") is None
        assert db.forget("Zo\u00eb").images == 1
        assert db.forget("Ada").images == 1
        assert db.people() == [("Bob", 1)]


def test_forget_forgets_every_name_that_differs_only_invisibly(db_path: Path) -> None:
    """'José' enrolled from two folders, NFC and NFD (typed, and copied from a Mac): forget
    'José' removed one, and the other went on naming, and letting in, the person it forgot."""
    with FaceDatabase(db_path) as db:
        db.add_image("Jos\u00e9", "/p/1.jpg", "h1", enc(1))
        db.add_image("Jose\u0301", "/p/2.jpg", "h2", enc(2))
        db.add_image("Jos\u00e9 ", "/p/3.jpg", "h3", enc(3))
        db.add_image("jos\u00e9", "/p/4.jpg", "h4", enc(4))  # case counts: someone else
        forgotten = db.forget("Jos\u00e9")
        assert (forgotten.images, sorted(forgotten.names)) == (3, sorted(["Jos\u00e9", "Jose\u0301", "Jos\u00e9 "]))
        assert db.people() == [("jos\u00e9", 1)]


def test_rejects_bad_input(db_path: Path) -> None:
    with FaceDatabase(db_path) as db:
        with pytest.raises(ValueError, match="128"):
            db.add_image("Ada", "/p/a.jpg", "h", np.zeros(127))
        with pytest.raises(ValueError, match="NaN"):
            db.add_image("Ada", "/p/a.jpg", "h", np.full(128, np.nan))
        with pytest.raises(ValueError, match="empty"):
            db.add_image("  ", "/p/a.jpg", "h", enc(1))
        assert db.people() == []


def test_reopen_keeps_data(db_path: Path) -> None:
    with FaceDatabase(db_path) as db:
        db.add_image("Ada", "/p/a.jpg", "h", enc(1))
    with FaceDatabase(db_path) as db:
        assert db.people() == [("Ada", 1)]
        db.add_image("Bob", "/p/b.jpg", "h", enc(2))
    with FaceDatabase(db_path, create=False) as db:
        assert db.people() == [("Ada", 1), ("Bob", 1)]


def test_creates_parent_dirs(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "faces.db"
    with FaceDatabase(path) as db:
        db.add_image("Ada", "/p/a.jpg", "h", enc(1))
    assert path.is_file()


def test_a_file_in_the_way_of_the_database_folder_is_named(tmp_path: Path) -> None:
    # Was "cannot create X/file/sub: [Errno 20] Not a directory: 'X/file/sub'", naming no file.
    (tmp_path / "file").write_text("")
    message = f"cannot create {tmp_path / 'file' / 'sub'}: {tmp_path / 'file'} is there and is not a folder"
    with pytest.raises(DatabaseError) as caught:
        FaceDatabase(tmp_path / "file" / "sub" / "faces.db")
    assert str(caught.value) == message


def test_missing_database_not_created_when_reading(db_path: Path) -> None:
    with pytest.raises(DatabaseError, match="no face database"):
        FaceDatabase(db_path, create=False)
    assert not db_path.exists()


def test_corrupt_file_is_refused_and_untouched(db_path: Path) -> None:
    junk = np.random.default_rng(0).bytes(5000)
    db_path.write_bytes(junk)
    with pytest.raises(DatabaseError, match="is not a blinkgate database"):
        FaceDatabase(db_path)
    assert db_path.read_bytes() == junk


def test_damaged_blinkgate_database_raises_database_error(db_path: Path) -> None:
    with FaceDatabase(db_path) as db:
        for i in range(50):
            db.add_image(f"P{i}", f"/p/{i}.jpg", "h", enc(i))
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # move everything into the main file
    conn.close()
    data = bytearray(db_path.read_bytes())
    data[100:] = np.random.default_rng(1).bytes(len(data) - 100)  # keep only the file header
    db_path.write_bytes(bytes(data))
    with pytest.raises(DatabaseError, match="is not a blinkgate database"):
        with FaceDatabase(db_path) as db:
            db.known_encodings()


@pytest.mark.parametrize("damage, says", [
    ("ALTER TABLE images DROP COLUMN added_at", "its images table has no added_at column"),
    ("ALTER TABLE access_log DROP COLUMN detail", "its access_log table has no detail column"),
    ("DROP TABLE meta", "it has no meta table")])
def test_a_blinkgate_database_missing_a_table_or_column_is_refused_as_it_opens(db_path: Path, damage, says) -> None:
    # `people` listed it, `enroll` failed at its first photo, and a door ran with every decision
    # unlogged: "no such column", one command at a time.
    with FaceDatabase(db_path) as db:
        db.add_image("Ada", "/p/a.jpg", "h", enc(1))
    with sqlite3.connect(db_path) as conn:
        conn.execute(damage)
    conn.close()
    with pytest.raises(DatabaseError, match=f"is not a blinkgate database \\(damaged: {says}\\)"):
        FaceDatabase(db_path, create=False)


def test_foreign_sqlite_file_is_refused_and_untouched(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO people (name) VALUES ('someone else')")
    conn.commit()
    conn.close()
    db_path.chmod(0o644)
    before = db_path.read_bytes()
    with pytest.raises(DatabaseError, match="is not a blinkgate database"):
        FaceDatabase(db_path)
    assert db_path.read_bytes() == before
    assert db_path.stat().st_mode & 0o777 == 0o644  # not even its mode: it is someone else's file


def test_other_application_id_is_refused(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA application_id = 1234")
    conn.close()
    with pytest.raises(DatabaseError, match="application_id 0x4d2"):
        FaceDatabase(db_path)


def test_empty_file_is_a_new_database(db_path: Path) -> None:
    db_path.touch()
    with FaceDatabase(db_path) as db:
        db.add_image("Ada", "/p/a.jpg", "h", enc(1))
    with FaceDatabase(db_path) as db:
        assert db.people() == [("Ada", 1)]


def test_newer_schema_is_refused(db_path: Path) -> None:
    FaceDatabase(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(DatabaseError, match="newer than this blinkgate"):
        FaceDatabase(db_path)


def test_directory_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="is a directory"):
        FaceDatabase(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs")
@pytest.mark.parametrize("create", [True, False])
def test_a_pipe_at_the_path_is_refused_without_waiting_on_it(tmp_path: Path, create: bool) -> None:
    """Its header was read: `blinkgate log --db FIFO` (any command) waited for a writer for ever."""
    import threading

    fifo = tmp_path / "f.db"
    os.mkfifo(fifo)
    done = threading.Event()

    def unblock() -> None:  # be the writer a reader of the FIFO waits for, if one does
        while not done.wait(0.05):
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO while nobody reads it
            except OSError:
                continue
            os.write(fd, b"x" * 16)
            os.close(fd)
            return

    helper = threading.Thread(target=unblock, daemon=True)
    helper.start()
    try:
        with pytest.raises(DatabaseError, match="is not a regular file"):
            FaceDatabase(fifo, create=create)
    finally:
        done.set()
        helper.join()


def test_failed_write_rolls_back_completely(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FaceDatabase(db_path) as db:
        db.add_image("Ada", "/p/a.jpg", "old", enc(1))

        def crash(tx: sqlite3.Connection) -> None:
            raise RuntimeError("simulated crash after the old row was deleted")

        # _delete_orphans runs after DELETE old row + INSERT new row, inside the transaction.
        monkeypatch.setattr(FaceDatabase, "_delete_orphans", staticmethod(crash))
        with pytest.raises(RuntimeError, match="simulated crash"):
            db.add_image("Bob", "/p/a.jpg", "new", enc(2))
        monkeypatch.undo()
        assert db.image_hashes() == {"/p/a.jpg": "old"}
        assert db.people() == [("Ada", 1)]  # Bob's person row was rolled back too
        np.testing.assert_array_equal(db.known_encodings()[0], [enc(1)])
        db.add_image("Bob", "/p/b.jpg", "h", enc(3))  # the connection is still usable
        assert db.people() == [("Ada", 1), ("Bob", 1)]


WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from blinkgate.database import FaceDatabase

    with FaceDatabase(sys.argv[1]) as db:
        for i in range(1_000_000):
            db.add_image(f"P{i % 7}", f"/p/{i}.jpg", f"h{i}", np.full(128, float(i)))
            print(i, flush=True)  # printed only after the commit
    """
)


def test_killed_enrolment_loses_nothing_committed(db_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db_path)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    committed = -1
    try:
        for line in proc.stdout:
            committed = int(line)
            if committed >= 200:
                break
    finally:
        proc.send_signal(signal.SIGKILL)  # no cleanup, no rollback: like a power cut for the app
        proc.wait()
    assert committed >= 200, "writer did not get going"

    with FaceDatabase(db_path) as db:
        hashes = db.image_hashes()
        encodings, _ = db.known_encodings()
        # Every commit it reported survived; at most the in-flight ones beyond.
        assert all(f"/p/{i}.jpg" in hashes for i in range(committed + 1))
        # No gaps, no half rows: paths 0..n-1, each encoding exactly the vector written for it.
        n = len(hashes)
        assert sorted(int(p[len("/p/") : -len(".jpg")]) for p in hashes) == list(range(n))
        assert sorted(encodings[:, 0].tolist()) == [float(i) for i in range(n)]
        assert all((row == row[0]).all() for row in encodings)
        assert sum(count for _, count in db.people()) == n
        db.add_image("After", "/p/after.jpg", "h", enc(1))  # reopen and write works
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_default_db_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BLINKGATE_DB", str(tmp_path / "x" / "mine.db"))
    assert default_db_path() == tmp_path / "x" / "mine.db"
    assert not (tmp_path / "x").exists()  # computing the path creates nothing
    monkeypatch.delenv("BLINKGATE_DB")
    path = default_db_path()
    assert path.name == "faces.db" and "blinkgate" in path.parent.name
    assert path.parent == Path(database.user_data_dir("blinkgate", appauthor=False))


# -- who can read and change the file (the faces are biometric data) ---------------------------

NOBODY = 65534
needs_root = pytest.mark.skipif(os.name != "posix" or os.getuid() != 0,
                                reason="making a file another user's needs root")


def mode_of(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.fixture
def umask_022():
    """The usual umask, under which SQLite alone made the database 0644."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_new_database_and_its_wal_files_are_private(tmp_path: Path, umask_022) -> None:
    path = tmp_path / "new" / "faces.db"
    with FaceDatabase(path) as db:
        db.add_image("Ada", "/p/a.jpg", "h", enc(1))
        sides = [Path(f"{path}-wal"), Path(f"{path}-shm")]
        assert all(p.exists() for p in sides)  # checked while open: the last close removes them
        assert [mode_of(p) for p in (path, *sides)] == [0o600, 0o600, 0o600]


def test_an_adopted_empty_file_is_made_private(db_path: Path, umask_022) -> None:
    db_path.touch()  # 0644
    FaceDatabase(db_path).close()
    assert mode_of(db_path) == 0o600


def test_older_world_readable_database_opens_and_loses_other_users_access(db_path: Path, caplog) -> None:
    with FaceDatabase(db_path) as db:
        db.add_image("Ada", "/p/a.jpg", "h", enc(1))
    db_path.chmod(0o644)  # as older versions left it
    with FaceDatabase(db_path, create=False) as db:
        assert db.people() == [("Ada", 1)]
    assert mode_of(db_path) == 0o640  # a group that reads it may be deliberate: kept
    assert "was readable by every user (mode 644)" in caplog.text


def test_wal_files_a_read_only_open_left_get_write_access_back_with_the_database(db_path: Path) -> None:
    # chmod 400, `run` or `people` (SQLite then leaves the -wal and -shm, mode 400), chmod 600:
    # for a user who is not root, every enroll and forget after that failed with "attempt to
    # write a readonly database", since SQLite opened the database read-only for the -shm.
    with FaceDatabase(db_path) as db:
        db.add_image("Ada", "/p/a.jpg", "h", enc(1))
        sides = [Path(f"{db_path}-wal"), Path(f"{db_path}-shm")]
        left = {p: p.read_bytes() for p in sides}  # the last close removes them
    for side, data in left.items():
        side.write_bytes(data)
        side.chmod(0o400)
    with FaceDatabase(db_path) as db:
        assert [mode_of(p) for p in sides] == [0o600, 0o600]
        db.add_image("Bob", "/p/b.jpg", "h2", enc(2))
        assert db.people() == [("Ada", 1), ("Bob", 1)]


def test_wal_files_of_a_database_not_writable_are_left_as_they_are(db_path: Path) -> None:
    with FaceDatabase(db_path) as db:
        db.add_image("Ada", "/p/a.jpg", "h", enc(1))
        shm = Path(f"{db_path}-shm")
        data = shm.read_bytes()
    shm.write_bytes(data)
    shm.chmod(0o400)
    db_path.chmod(0o400)  # still read-only on purpose: so are they
    with FaceDatabase(db_path, create=False):
        assert mode_of(shm) == 0o400  # checked while open: root's last close removes it


def test_a_read_only_error_in_a_folder_that_cannot_be_written_names_the_folder(db_path: Path, monkeypatch) -> None:
    # A database whose folder its user cannot write cannot even be read (SQLite makes its -wal
    # and -shm there): `people`, `run` and `log` said "attempt to write a readonly database" of
    # a file mode 600, and nothing pointed at the folder.
    with FaceDatabase(db_path) as db:
        readonly = sqlite3.OperationalError("attempt to write a readonly database")
        assert str(db._error(readonly)) == f"face database {db_path}: attempt to write a readonly database"
        monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != db_path.parent)
        assert f"its folder {db_path.parent} is not writable" in str(db._error(readonly))


def test_database_any_user_can_write_is_refused_untouched(db_path: Path, caplog) -> None:
    with FaceDatabase(db_path) as db:
        db.add_image("Ada", "/p/a.jpg", "h", enc(1))
    db_path.chmod(0o666)
    before = db_path.read_bytes()
    with pytest.raises(DatabaseError, match=r"can be changed by any user \(mode 666\).*chmod o-w"):
        FaceDatabase(db_path)
    assert db_path.read_bytes() == before and mode_of(db_path) == 0o666
    db_path.chmod(0o660)  # group-writable: many systems give each user a group of their own
    FaceDatabase(db_path).close()
    assert "can be changed by its group" in caplog.text


@needs_root
def test_database_another_user_owns_is_refused(db_path: Path) -> None:
    FaceDatabase(db_path).close()
    os.chown(db_path, NOBODY, -1)
    with pytest.raises(DatabaseError, match=r"belongs to another user \(uid 65534\).*chown 0"):
        FaceDatabase(db_path)


@needs_root
def test_empty_file_another_user_planted_is_not_adopted(db_path: Path) -> None:
    """BLINKGATE_DB in a shared folder: a local user creates the file first, empty."""
    db_path.parent.chmod(0o1777)
    db_path.touch()
    os.chown(db_path, NOBODY, -1)
    with pytest.raises(DatabaseError, match="belongs to another user"):
        FaceDatabase(db_path)
    assert db_path.stat().st_size == 0


@needs_root
def test_wal_file_another_user_planted_is_refused(db_path: Path) -> None:
    """SQLite replays a -wal into the database on open: a planted one could add any face."""
    with FaceDatabase(db_path) as db:
        db.add_image("Ada", "/p/a.jpg", "h", enc(1))
    wal = Path(f"{db_path}-wal")
    wal.touch()
    os.chown(wal, NOBODY, -1)
    with pytest.raises(DatabaseError, match=f"{wal} belongs to another user"):
        FaceDatabase(db_path)


def test_folder_others_could_swap_the_database_in_is_refused(tmp_path: Path, caplog) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o777)
    with pytest.raises(DatabaseError, match=r"folder .* can be changed by any user \(mode 777\).*chmod o-w"):
        FaceDatabase(folder / "faces.db")
    assert not (folder / "faces.db").exists()
    folder.chmod(0o1777)  # sticky, like /tmp: others cannot replace our files, only plant new ones
    FaceDatabase(folder / "faces.db").close()
    assert "shared with every user" in caplog.text


@needs_root
def test_folder_another_user_owns_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "theirs"
    folder.mkdir()
    os.chown(folder, NOBODY, -1)
    with pytest.raises(DatabaseError, match=r"folder .* belongs to another user \(uid 65534\)"):
        FaceDatabase(folder / "faces.db")


def test_name_starting_with_a_dash_is_refused(db_path: Path) -> None:
    """With on_grant = "open-door {name}", a person named --all-doors would be an option."""
    with FaceDatabase(db_path) as db:
        with pytest.raises(ValueError, match="must not start with '-'"):
            db.add_image("--all-doors", "/p/a.jpg", "h", enc(1))
        db.add_image("Jean-Luc", "/p/j.jpg", "h", enc(2))  # a dash inside a name is fine
        assert db.people() == [("Jean-Luc", 1)]


def test_a_name_with_a_line_break_is_refused(db_path: Path) -> None:
    """`capture` lets people type their own name: "Eve\n<date>  #7  granted ... Ada" forged a line
    of `blinkgate log`."""
    with FaceDatabase(db_path) as db:
        for name in ("Eve\n2026-12-07T03:12:09  #7  granted  challenge_passed  Ada", "Eve\r", "Eve\x1b[2J"):
            with pytest.raises(ValueError, match="control characters"):
                db.add_image(name, "/p/e.jpg", "h", enc(1))
        assert db.people() == []


@pytest.mark.parametrize("name, said", [
    ("bob\u200b", "U+200B ZERO WIDTH SPACE at character 4"),  # shown as 'bob', beside the real bob
    ("\u202eboB", "U+202E RIGHT-TO-LEFT OVERRIDE at character 1"),  # shown as 'Bob', backwards
    ("Ada \u2066Lovelace\u2069", "U+2066 LEFT-TO-RIGHT ISOLATE at character 5"),
    ("Eve\u2028Ada", "U+2028 LINE SEPARATOR at character 4"),
])
def test_a_name_with_an_invisible_or_text_direction_character_is_refused(db_path: Path, name, said) -> None:
    with FaceDatabase(db_path) as db:
        with pytest.raises(ValueError, match=re.escape(f"invisible or text-direction characters: {said} ")):
            db.add_image(name, "/p/e.jpg", "h", enc(1))
        db.add_image("Zoe\u0308 \u5c71\u7530", "/p/z.jpg", "hz", enc(2))  # combining marks and CJK are fine
        assert db.people() == [("Zoe\u0308 \u5c71\u7530", 1)]


def test_a_joiner_inside_a_word_is_part_of_a_name_and_elsewhere_refused() -> None:
    from blinkgate.database import name_problem

    assert name_problem("Mohammad\u200cReza") is None  # Persian: ZWNJ between letters
    assert name_problem("\u0915\u094d\u200d\u0937") is None  # Devanagari: ZWJ after a virama (a mark)
    assert "U+200C" in name_problem("bob\u200c")
    assert "U+200D" in name_problem("b\u200d ob")


def test_every_change_of_who_is_enrolled_is_counted(tmp_path):
    # A running door polls this count and reloads the people when it moves.
    with FaceDatabase(tmp_path / "f.db") as db:
        assert db.people_version() == 0
        db.add_image("alice", "a.jpg", "0" * 64, np.zeros(128))
        db.add_image("bob", "b.jpg", "1" * 64, np.ones(128))
        assert db.people_version() == 2
        assert not db.remove_image("nothing.jpg") and db.people_version() == 2  # no change, no count
        db.remove_image("b.jpg")
        db.forget("alice")
        assert db.people_version() == 4


def test_a_second_open_in_one_process_does_not_split_the_database(tmp_path):
    # Reading the file's header with open()/close() while this process had the database open
    # dropped that connection's POSIX locks (they are per process and file). Another process's
    # close then took itself for the last user and deleted the -wal and -shm under it: from
    # then on each side wrote to its own copy, and one side's writes were lost. For a door: its
    # log's connection, then a second open to restore lockouts; `forget` and `unlock` from the
    # command line never reached it, and one side's rows were lost when it stopped.
    db = tmp_path / "f.db"
    other = ("import sys, numpy as np\nfrom blinkgate.database import FaceDatabase\n"
             "with FaceDatabase(sys.argv[1]) as db:\n    exec(sys.argv[2])\n")

    def in_another_process(code: str) -> None:
        subprocess.run([sys.executable, "-c", other, str(db), code], check=True, timeout=60)

    with FaceDatabase(db) as held:
        held.add_image("alice", "a.jpg", "0" * 64, np.zeros(128))
        with FaceDatabase(db):
            pass
        in_another_process("db.forget('alice')")
        assert Path(f"{db}-wal").exists()  # still in use here: the other process left it in place
        held.add_image("bob", "b.jpg", "1" * 64, np.ones(128))
        in_another_process("db.add_image('carol', 'c.jpg', '2' * 64, np.full(128, 2.0))")
        assert [n for n, _ in held.people()] == ["bob", "carol"]
    with FaceDatabase(db) as after:
        assert [n for n, _ in after.people()] == ["bob", "carol"]  # before: carol lost


def test_an_open_interrupted_after_the_file_was_counted_leaves_no_count_or_connection(tmp_path, monkeypatch):
    # Ctrl-C (or any error other than sqlite3's or ours) while the open waits on a lock or
    # migrates: the file stayed counted as open here for good, so later opens of it skipped the
    # header check, and the half-made connection was left open.
    from blinkgate import database

    db = tmp_path / "f.db"
    with FaceDatabase(db):
        pass
    assert not database._OPEN_FILES

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(FaceDatabase, "_migrate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        FaceDatabase(db)
    assert not database._OPEN_FILES


def test_a_database_another_process_makes_at_the_same_time_is_opened(tmp_path, monkeypatch):
    """`blinkgate run` (FollowPeople) opens the database the moment the first `enroll` creates it:
    both read schema version 0, and the second to take the write lock failed, 'table meta already
    exists' (enroll exited 2, or run logged an error)."""
    db = tmp_path / "f.db"
    db.touch(mode=0o600)  # the first enroll's empty file, not made yet
    transaction = FaceDatabase._transaction

    def other_process_first(self):
        monkeypatch.setattr(FaceDatabase, "_transaction", transaction)
        FaceDatabase(db).close()  # the other opener migrates between our look and our write lock
        return transaction(self)

    monkeypatch.setattr(FaceDatabase, "_transaction", other_process_first)
    with FaceDatabase(db, create=False) as store:
        assert store.people() == [] and store.people_version() == 0


def _database(path: Path, *images: tuple[str, float]) -> Path:
    """A database at ``path`` with one image of each (name, encoding seed)."""
    with FaceDatabase(path) as db:
        for k, (name, seed) in enumerate(images):
            db.add_image(name, f"{name}{k}.jpg", str(k) * 64, enc(seed))
    return path


def _names(people: tuple[np.ndarray, list[str]] | None) -> list[str] | None:
    return None if people is None else people[1]


def test_a_people_watch_follows_a_backup_moved_over_the_database_without_the_old_wal(tmp_path, caplog):
    """A backup without bob restored with mv over the database a running door had open (a new
    inode): the door went on reading the old file through its connection, and named (so let in)
    bob until a restart. The backup has as many changes counted as the old file: the count alone
    says nothing. Reopened without first emptying the old file's WAL (SQLite leaves the -wal of a
    file moved under it at the path), the backup took the old pages for its own: bob again."""
    from blinkgate.database import PeopleWatch

    path = tmp_path / "faces.db"
    backup = _database(tmp_path / "backup.db", ("alice", 1), ("alice", 2))
    held = FaceDatabase(path)  # the door's connection: its writes stay in its WAL until it closes
    held.add_image("alice", "a.jpg", "0" * 64, enc(1))
    held.add_image("bob", "b.jpg", "1" * 64, enc(3))
    watch = PeopleWatch()
    assert _names(watch.poll(held)) == ["alice", "bob"]
    os.rename(path, tmp_path / "old.db")  # kept aside, as an admin might
    os.rename(backup, path)
    with caplog.at_level("WARNING", logger="blinkgate"):
        assert _names(watch.poll(held)) == ["alice", "alice"]
    assert "another file now" in caplog.text
    assert watch.poll(held) is None  # followed: nothing new
    held.add_image("carol", "c.jpg", "2" * 64, enc(5))  # written to the file at the path
    held.close()
    with FaceDatabase(path, create=False) as restored:
        assert restored.people() == [("alice", 2), ("carol", 1)]
    with FaceDatabase(tmp_path / "old.db", create=False) as old:  # its WAL went into it, not into the backup
        assert old.people() == [("alice", 1), ("bob", 1)]


def test_a_people_watch_names_nobody_while_no_readable_database_is_at_the_path(tmp_path, caplog):
    """Deleted, or a corrupt file moved in: the running door went on naming the old file's
    people. Now nobody, said once however many polls, until a readable database is back."""
    from blinkgate.database import PeopleWatch

    path = _database(tmp_path / "faces.db", ("alice", 1), ("bob", 3))
    held = FaceDatabase(path, create=False)
    watch = PeopleWatch()
    assert _names(watch.poll(held)) == ["alice", "bob"]
    with caplog.at_level("WARNING", logger="blinkgate"):
        os.remove(path)
        assert _names(watch.poll(held)) == []
        assert watch.poll(held) is None and watch.poll(held) is None  # nobody already
        assert caplog.text.count("nobody is named") == 1 and "is gone" in caplog.text
        os.rename(_database(tmp_path / "new.db", ("alice", 1)), path)
        assert _names(watch.poll(held)) == ["alice"] and "can be read again" in caplog.text
        caplog.clear()
        junk = tmp_path / "junk.db"
        junk.write_bytes(b"not a database at all " * 200)
        junk.chmod(0o600)
        os.rename(junk, path)
        assert _names(watch.poll(held)) == []
        assert all(watch.poll(held) is None for _ in range(3))
    assert caplog.text.count("nobody is named") == 1 and "not a blinkgate database" in caplog.text
    held.close()


def test_a_people_watch_waits_with_nobody_named_while_another_reader_holds_the_old_wal(tmp_path, caplog):
    """The old file's WAL can be emptied (and the new file opened without it) only once no
    reader is inside it: until then, nobody is named rather than the old people. The poll does
    not wait for the reader: `run` polls in its frame loop, which the connection's 10 s busy
    timeout froze."""
    from blinkgate.database import PeopleWatch

    path = tmp_path / "faces.db"
    held = FaceDatabase(path)
    held.add_image("alice", "a.jpg", "0" * 64, enc(1))
    held.add_image("bob", "b.jpg", "1" * 64, enc(3))
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM people").fetchone()  # a read transaction inside the WAL
    watch = PeopleWatch()
    assert _names(watch.poll(held)) == ["alice", "bob"]
    os.rename(path, tmp_path / "old.db")
    os.rename(_database(tmp_path / "new.db", ("alice", 1)), path)
    with caplog.at_level("WARNING", logger="blinkgate"):
        started = time.monotonic()
        assert _names(watch.poll(held)) == [] and watch.poll(held) is None
        assert time.monotonic() - started < 5  # two polls: not the 10 s busy timeout
    assert "still in use by another process" in caplog.text
    reader.execute("COMMIT")
    reader.close()
    assert _names(watch.poll(held)) == ["alice"]
    held.close()
    with FaceDatabase(tmp_path / "old.db", create=False) as old:
        assert old.people() == [("alice", 1), ("bob", 1)]
