"""The access log: schema migration, records with snapshots, queries, retention, the CLI, and
a whole door session whose every decision lands in the log with its reason."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import stat
import threading
import time

import cv2
import numpy as np
import pytest

from blinkgate.accesslog import AccessLog, AccessLogWriter, encode_jpeg, parse_since
from blinkgate.actions import ActionRunner, WebhookAction
from blinkgate.cli import main
from blinkgate.database import _MIGRATIONS, APPLICATION_ID, FaceDatabase
from blinkgate.door import Decision, LockoutPolicy
from blinkgate.errors import BlinkgateError
from blinkgate.types import FrameResult

from test_actions import Hook
from test_door import DoorRig

BOX = (10.0, 10.0, 60.0, 60.0)


def decision(reason="no_blink", kind="denied", name="alice", t=1000.0, **detail) -> Decision:
    return Decision(t, 3, name, kind, reason, BOX, 0.42, detail)


def face_image() -> np.ndarray:
    img = np.zeros((64, 64, 3), np.uint8)
    cv2.circle(img, (32, 32), 20, (200, 180, 160), -1)
    return img


def test_forget_deletes_the_persons_snapshots_from_the_log_and_the_file_and_keeps_the_entries(tmp_path, capsys):
    """`log --snapshot N` still wrote Alice's face after `forget alice`."""
    path = tmp_path / "faces.db"
    faces = {who: b"\xff\xd8" + f"face of {who} ".encode() * 800 for who in ("alice", "bob")}  # many pages each
    with FaceDatabase(path) as db:
        for k, who in enumerate(faces):
            db.add_image(who, f"/p/{who}.jpg", who, np.full(128, k / 10.0))
    with AccessLog(path) as log:
        alice = [log.record(decision("granted", "granted"), faces["alice"]),
                 log.record(decision("challenge_failed"), faces["alice"]), log.record(decision())]
        bob = log.record(decision(name="bob"), faces["bob"])
    with FaceDatabase(path):  # a running door has it open: the WAL is not emptied as forget closes
        assert main(["forget", "alice", "--db", str(path)]) == 0
        stored = b"".join(p.read_bytes() for p in tmp_path.glob("faces.db*"))
    assert "forgot alice (1 image; 2 face snapshots deleted from the access log, its entries kept)" in capsys.readouterr().out
    # Nor left in the file's free pages, or in its WAL, where any reader of the files finds the JPEG.
    assert faces["alice"][:100] not in stored and faces["bob"][:100] in stored
    with AccessLog(path) as log:
        assert [(e.id, e.snapshot_bytes) for e in log.entries(name="alice")] == [(i, 0) for i in alice]
        assert log.snapshot(bob) == faces["bob"]
    assert main(["log", "--snapshot", str(alice[0]), "--out", str(tmp_path / "x.jpg"), "--db", str(path)]) == 2
    assert "its person forgotten" in capsys.readouterr().err and not (tmp_path / "x.jpg").exists()


def test_a_person_no_longer_enrolled_loses_their_snapshots_and_forget_still_finds_old_ones(tmp_path, capsys):
    """Bob's last image removed (his folder deleted, then `enroll`): he was "no longer enrolled",
    yet his faces stayed in the log and `forget bob` said nobody of that name was enrolled."""
    path = tmp_path / "faces.db"
    with FaceDatabase(path) as db:
        db.add_image("alice", "/p/alice.jpg", "a", np.full(128, 0.1))
        db.add_image("bob", "/p/bob.jpg", "b", np.full(128, 0.2))
    with AccessLog(path) as log:
        bob = log.record(decision(name="bob"), b"\xff\xd8 bob")
        alice = log.record(decision(name="alice"), b"\xff\xd8 alice")
    with FaceDatabase(path) as db:
        assert db.remove_image("/p/bob.jpg") and db.people() == [("alice", 1)]
    with AccessLog(path) as log:
        assert log.snapshot(bob) is None and log.snapshot(alice) == b"\xff\xd8 alice"
        carol = log.record(decision(name="carol"), b"\xff\xd8 carol")  # as a database written before kept it
    assert main(["forget", "carol", "--db", str(path)]) == 0
    assert "forgot carol (0 images; 1 face snapshot deleted" in capsys.readouterr().out
    with AccessLog(path) as log:
        assert log.snapshot(carol) is None and log.snapshot(alice) == b"\xff\xd8 alice"
    assert main(["forget", "carol", "--db", str(path)]) == 2  # nothing of hers left: a typo, as before
    assert "no enrolled person named 'carol'" in capsys.readouterr().err


def test_a_version_1_database_is_upgraded_and_keeps_its_people(tmp_path):
    path = tmp_path / "faces.db"
    conn = sqlite3.connect(path)
    for statement in _MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("INSERT INTO people (name) VALUES ('alice')")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with AccessLog(path) as log:
        log.record(decision())
        assert [e.reason for e in log.entries()] == ["no_blink"]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] >= 2
    assert conn.execute("SELECT name FROM people").fetchall() == [("alice",)]
    conn.close()
    with FaceDatabase(path) as db:  # the face database API is unchanged
        assert db.people() == [("alice", 0)]


def test_records_round_trip_with_a_jpeg_snapshot(tmp_path):
    with AccessLog(tmp_path / "f.db") as log:
        jpeg = encode_jpeg(face_image())
        i = log.record(decision("challenge_failed", why="too many", count=2, blinks=3), jpeg, source="cam 0")
        log.record(decision("challenge_passed", "granted", count=2, blinks=2))
        a, b = log.entries()
        assert (a.id, a.decision, a.reason, a.name, a.track, a.source) == (i, "denied", "challenge_failed", "alice", 3, "cam 0")
        assert a.distance == pytest.approx(0.42) and a.time_ms == 1000.0 and a.detail["why"] == "too many"
        assert a.snapshot_bytes == len(jpeg) and b.snapshot_bytes == 0
        decoded = cv2.imdecode(np.frombuffer(log.snapshot(i), np.uint8), cv2.IMREAD_COLOR)
        assert decoded.shape == (64, 64, 3)
        assert "asked 2, saw 3" in a.format() and "[snapshot]" in a.format()
        forged = dataclasses.replace(a, name="Eve\n2026-12-07T03:12:09  #7  granted  challenge_passed  Ada")
        assert "\n" not in forged.format() and "Eve\\n2026" in forged.format()  # a row from before names were checked
        assert json.loads(json.dumps(a.to_json()))["reason"] == "challenge_failed"


def test_log_lines_are_in_the_local_time_that_since_reads(tmp_path, monkeypatch):
    """An admin in New York asking `--since "2026-11-27 22:00"` was shown 03:30+00:00 for 22:30."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        at = parse_since("2026-11-27 22:30")
        with AccessLog(tmp_path / "f.db") as log:
            log.record(decision(), at=at)
            (entry,) = log.entries(since=parse_since("2026-11-27 22:00"))
        assert entry.format().startswith("2026-11-27T22:30:00.000-05:00  #1")
        assert entry.to_json()["at"] == "2026-11-28T03:30:00.000+00:00"  # machine-readable stays UTC
    finally:
        monkeypatch.undo()
        time.tzset()


def test_queries_by_time_name_and_limit(tmp_path):
    now = time.time()
    with AccessLog(tmp_path / "f.db") as log:
        for k, age in enumerate([7200, 1800, 60]):
            log.record(decision(name=["alice", "bob", "alice"][k]), at=now - age)
        assert len(log.entries(since=now - 3600)) == 2
        assert [e.name for e in log.entries(name="alice")] == ["alice", "alice"]
        assert [e.at_unix for e in log.entries(limit=1)] == [pytest.approx(now - 60)]
        assert log.failures("alice", now - 3600) == [pytest.approx(now - 60)]


def test_retention_deletes_old_snapshots_but_keeps_the_rows(tmp_path):
    now = time.time()
    jpeg = encode_jpeg(face_image())
    with AccessLog(tmp_path / "f.db", retention_days=30) as log:
        ancient = log.record(decision(), None, at=now - 400 * 86400)
        old = log.record(decision(), jpeg, at=now - 31 * 86400)
        new = log.record(decision(), jpeg, at=now - 29 * 86400)
        assert log.prune(now) == 1
        assert log.snapshot(old) is None and log.snapshot(new) == jpeg
        assert [e.id for e in log.entries()] == [old, new] and ancient not in (old, new)  # a year on, rows go too
    # The background writer prunes when it starts.
    with AccessLog(tmp_path / "g.db") as log:
        old = log.record(decision(), jpeg, at=now - 40 * 86400)
    writer = AccessLogWriter(tmp_path / "g.db", retention_days=30)
    writer.close()
    with AccessLog(tmp_path / "g.db") as log:
        assert log.snapshot(old) is None


def test_the_writer_does_not_block_and_writes_everything(tmp_path, monkeypatch):
    # A disk that takes 20 ms a row: recording 50 in the frame loop must not wait for them
    # (measured against the 1 s the writes take, not as an absolute time).
    slow_record = AccessLog.record

    def record(self, *args, **kwargs):
        time.sleep(0.02)
        return slow_record(self, *args, **kwargs)

    monkeypatch.setattr(AccessLog, "record", record)
    writer = AccessLogWriter(tmp_path / "f.db")
    t = time.perf_counter()
    for k in range(50):
        writer.record(decision(t=float(k)), snapshot=face_image())
    handed_over = time.perf_counter() - t
    writer.close()
    assert handed_over < 0.2 * 50 * 0.02, handed_over
    with AccessLog(tmp_path / "f.db") as log:
        entries = log.entries()
    assert len(entries) == 50 and all(e.snapshot_bytes > 100 for e in entries)


def test_the_writer_remembers_only_its_own_counted_failures(tmp_path):
    """It kept the id of every row it wrote and let go only of counted failures: a door's
    memory grew with every decision for as long as it ran."""
    writer = AccessLogWriter(tmp_path / "f.db")
    for k in range(40):
        writer.record(decision("unknown", name=None, t=float(k)))
    writer.record(decision("no_blink", t=50.0))  # counted: held until a poll sees it, so not counted twice
    writer.flush()
    assert len(writer._own_ids) <= 1
    writer.close()


def test_the_writer_forgets_its_failures_unlocked_before_a_poll(tmp_path):
    """A counted failure whose name was unlocked before the next poll never comes back from
    failures_after: its id stayed in the writer for as long as the door ran."""
    db = tmp_path / "f.db"
    writer = AccessLogWriter(db, poll_clears_s=0.05)
    for k in range(10):
        writer.record(decision("no_blink", t=float(k)))
        writer.flush()
        with AccessLog(db) as log:
            log.clear_lockout("alice", at=time.time() + 1.0)  # `blinkgate unlock alice` at once
    deadline = time.monotonic() + 5.0
    while writer._own_ids and time.monotonic() < deadline:
        time.sleep(0.05)  # a poll
    assert len(writer._own_ids) == 0
    assert writer.take_failures() == []  # its own failures are not counted again
    writer.close()


def test_a_foreign_file_is_refused(tmp_path):
    path = tmp_path / "x.db"
    path.write_bytes(b"not a database at all" * 50)
    with pytest.raises(BlinkgateError, match="not a blinkgate database"):
        AccessLog(path)


def test_parse_since():
    assert parse_since("1h", now=10_000) == 6400
    assert parse_since("30m", now=10_000) == 8200
    assert parse_since("2d", now=200_000) == 200_000 - 172_800
    assert parse_since("2024-01-02T03:04:05+00:00") == 1704164645
    with pytest.raises(BlinkgateError):
        parse_since("yesterday")
    with pytest.raises(BlinkgateError, match="out of range"):
        parse_since("0001-01-01")  # a ValueError from the local time zone of year 1


def test_log_name_takes_a_name_that_differs_from_the_logged_one_only_invisibly(tmp_path, capsys):
    """`log --name` compared bytes: 'José' typed on a Mac (NFD) or with a space listed nothing."""
    import unicodedata

    db = tmp_path / "f.db"
    with AccessLog(db) as log:
        log.record(decision("challenge_passed", "granted", name=unicodedata.normalize("NFC", "José")), at=1000.0)
        log.record(decision("challenge_passed", "granted", name="bob"), at=1001.0)
        log.record(decision("no_blink", name="José "), at=1002.0)  # an older enrolment, spaces and all
        for typed in ("José", unicodedata.normalize("NFD", "José"), " José "):
            assert [e.id for e in log.entries(name=typed)] == [1, 3]
        assert log.entries(name="jose") == [] and log.entries(name="nobody") == []
    assert main(["log", "--db", str(db), "--name", unicodedata.normalize("NFD", "José"), "--json"]) == 0
    assert [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()] == [1, 3]


def test_a_row_whose_detail_is_damaged_is_listed_as_it_is(tmp_path, capsys):
    """A detail that is not JSON (a damaged row) was a JSONDecodeError traceback in `log`."""
    db = tmp_path / "f.db"
    with AccessLog(db) as log:
        log.record(decision("challenge_passed", "granted"), at=1000.0)
        log.record(decision(), at=1001.0)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE access_log SET detail = '{bad' WHERE id = 1")
        conn.execute("UPDATE access_log SET detail = '[1]' WHERE id = 2")
    conn.close()
    assert main(["log", "--db", str(db), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["detail"] for r in rows] == [{"unreadable": "{bad"}, {"unreadable": "[1]"}]
    assert main(["log", "--db", str(db)]) == 0
    assert "challenge_passed" in capsys.readouterr().out


def test_a_row_whose_time_or_distance_is_damaged_is_listed_as_it_is(tmp_path, capsys):
    """A time that is text or out of range, or a distance that is text, was a traceback
    (TypeError, OverflowError, ValueError) in `log`, and hid every other row."""
    db = tmp_path / "f.db"
    with AccessLog(db) as log:
        for _ in range(4):
            log.record(decision(), at=1000.0)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE access_log SET at_unix = 'abc', at = 'when?' WHERE id = 1")
        conn.execute("UPDATE access_log SET at_unix = 1e30 WHERE id = 2")
        conn.execute("UPDATE access_log SET at_unix = -1e12 WHERE id = 3")
        conn.execute("UPDATE access_log SET distance = 'far' WHERE id = 4")
    conn.close()
    assert main(["log", "--db", str(db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[0].startswith("when?  #1") and "d=far" in lines[3]


def test_log_cli(tmp_path, capsys):
    db = tmp_path / "f.db"
    now = time.time()
    with AccessLog(db) as log:
        log.record(decision("unknown", name=None), at=now - 7200)
        i = log.record(decision("challenge_passed", "granted"), encode_jpeg(face_image()), at=now - 60)
    assert main(["log", "--db", str(db), "--since", "1h", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["decision"], r["reason"], r["name"]) for r in rows] == [("granted", "challenge_passed", "alice")]
    assert main(["log", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "unknown" in out and "challenge_passed" in out
    target = tmp_path / "snap.jpg"
    assert main(["log", "--db", str(db), "--snapshot", str(i), "--out", str(target)]) == 0
    assert cv2.imread(str(target)) is not None
    assert main(["log", "--db", str(tmp_path / "none.db")]) == 2
    assert main(["log", "--db", str(db), "--since", ""]) == 2  # `--since "$WHEN"`, WHEN unset: listed everything
    assert "--since wants" in capsys.readouterr().err
    assert main(["log", "--db", str(db), "--snapshot", "9" * 20]) == 2  # past SQLite's integers: OverflowError
    assert "no access-log entry #999" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [[], ["--prune"], ["--snapshot", "1"], ["--json", "--since", "1h"]])
def test_the_log_of_an_empty_file_is_an_error_and_leaves_it_empty(tmp_path, capsys, argv):
    """An empty file (a typo'd --db, `touch`) became a 45 KB database of mode 600 when only read."""
    db = tmp_path / "e.db"
    db.touch()
    db.chmod(0o644)
    assert main(["log", "--db", str(db), *argv]) == 2
    assert "is an empty file, not a face database" in capsys.readouterr().err
    assert db.stat().st_size == 0 and stat.S_IMODE(db.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.db"]  # no -wal or -shm either


def test_an_exported_snapshot_is_readable_by_its_owner_only(tmp_path, capsys):
    """The database keeps faces 0600; `log --snapshot` wrote the copy 0644 (the umask)."""
    db = tmp_path / "f.db"
    with AccessLog(db) as log:
        i = log.record(decision("challenge_passed", "granted"), encode_jpeg(face_image()))
    old = os.umask(0o022)
    try:
        assert main(["log", "--db", str(db), "--snapshot", str(i), "--out", str(tmp_path / "face.jpg")]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "face.jpg").stat().st_mode) == 0o600


def test_a_snapshot_exported_over_an_existing_file_is_private_too(tmp_path, capsys):
    """Written in place, the new face kept the old file's 0644."""
    db = tmp_path / "f.db"
    with AccessLog(db) as log:
        i = log.record(decision("challenge_passed", "granted"), encode_jpeg(face_image()))
    target = tmp_path / "face.jpg"
    old = encode_jpeg(np.zeros((8, 8, 3), np.uint8))  # an earlier export
    target.write_bytes(old)
    target.chmod(0o644)
    assert main(["log", "--db", str(db), "--snapshot", str(i), "--out", str(target)]) == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and target.read_bytes() != old
    assert cv2.imread(str(target)) is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.db", "face.jpg"]  # no temporary file left
    assert main(["log", "--db", str(db), "--snapshot", str(i), "--out", str(tmp_path / "no" / "x.jpg")]) == 2


def test_a_snapshot_a_killed_export_left_hidden_is_deleted_by_the_next_export_to_that_name(tmp_path, capsys, caplog):
    """kill -9 between writing the copy and renaming it left ".face.jpg.PID.tmp", a face nobody
    sees, for ever: rerunning the export wrote face.jpg and kept it. Only that target's
    temporary files of a process gone are deleted, not another name's nor a running export's."""
    import subprocess
    import sys

    db = tmp_path / "f.db"
    with AccessLog(db) as log:
        i = log.record(decision("challenge_passed", "granted"), encode_jpeg(face_image()))
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    killed = tmp_path / f".face.jpg.{child.pid}.tmp"
    running = tmp_path / f".face.jpg.{os.getppid()}.tmp"  # another export to that name, now
    kept = [tmp_path / f".other.jpg.{child.pid}.tmp", running]
    for path in (killed, *kept):
        path.write_bytes(b"\xff\xd8\xff a face")
    with caplog.at_level("INFO", logger="blinkgate"):
        assert main(["log", "--db", str(db), "--snapshot", str(i), "--out", str(tmp_path / "face.jpg")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["f.db", "face.jpg", *(p.name for p in kept)])
    assert f"deleted {killed.name}, a copy a killed export never finished writing" in caplog.text


def test_a_snapshot_export_replaces_no_file_but_an_earlier_export(tmp_path, capsys):
    """`--out faces.db` replaced the face database (enrolments, audit trail) with a JPEG, exit 0."""
    db = tmp_path / "f.db"
    with AccessLog(db) as log:
        i = log.record(decision("challenge_passed", "granted"), encode_jpeg(face_image()))
    before = db.read_bytes()
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    for target, why in ((db, "is not a JPEG"), (notes, "is not a JPEG"), (tmp_path, "is a folder")):
        assert main(["log", "--db", str(db), "--snapshot", str(i), "--out", str(target)]) == 2
        assert why in capsys.readouterr().err
    assert db.read_bytes() == before and notes.read_text() == "keep me"
    with AccessLog(db, create=False) as log:
        assert log.snapshot(i)  # the database still works


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs")
def test_a_snapshot_export_refuses_a_pipe_or_a_device(tmp_path, capsys):
    """Opened to check it was a JPEG, a FIFO (as /dev/stdout on a pipe) hung the command until
    something wrote to it, and then was renamed over (as /dev/null would be, by root)."""
    db = tmp_path / "f.db"
    with AccessLog(db) as log:
        i = log.record(decision("challenge_passed", "granted"), encode_jpeg(face_image()))
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    done = threading.Event()

    def unblock() -> None:  # a reader of the FIFO waits for a writer: be one (after a while) if it hangs there
        while not done.wait(0.05):
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO while nobody reads it
            except OSError:
                continue
            os.write(fd, b"\xff\xd8\xff")
            os.close(fd)
            return

    helper = threading.Thread(target=unblock, daemon=True)
    helper.start()
    try:
        assert main(["log", "--db", str(db), "--snapshot", str(i), "--out", str(fifo)]) == 2
    finally:
        done.set()
        helper.join()
    assert "is not a regular file" in capsys.readouterr().err
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


# -- a whole door session --------------------------------------------------------------------------------


def test_the_log_records_every_decision_with_its_reason_and_the_webhook_fires_once_per_visit(tmp_path):
    db = tmp_path / "faces.db"
    hook = Hook()
    rig = DoorRig(seed=1, lockout=LockoutPolicy(failures=2, window_ms=180_000, cooldown_ms=600_000))
    rig.door.access_log = AccessLogWriter(db)
    rig.door.actions = ActionRunner([WebhookAction(hook.url, secret="k")], cooldown_s=30)

    def leave():
        rig.show(None)
        rig.step(20)

    rig.show(1)  # alice answers her challenge
    rig.respond()
    leave()  # ... walks through: her grant ends (expired, lost)
    rig.show(1)  # she comes back at once, answers again: logged, but the door fires once per visit
    rig.respond()
    leave()
    rig.show(None)
    rig.show(0)  # a stranger
    rig.step(40)
    leave()
    rig.show(1)  # alice's face appears, is challenged, leaves before answering
    rig.until_challenge()
    leave()
    rig.show(2)  # bob: a photo, never blinks
    rig.until_challenge()
    before = len(rig.decisions)
    while len(rig.decisions) == before:
        rig.step()
    rig.step(30)
    rig.blink()  # not asked again until he blinks: then he is
    count = rig.until_challenge()  # and blinks one time too many
    rig.step(12)
    for _ in range(count + 1):
        rig.blink()
        rig.step(6)
    for _ in range(400):  # the next challenge goes unanswered, counted now he has blinked: locked out
        if rig.step().decisions and rig.decisions[-1].reason == "locked_out":
            break
    rig.step(30)
    leave()
    rig.door.close()
    hook.close()

    with AccessLog(db) as log:
        entries = log.entries()
    got = [(e.decision, e.reason, e.name) for e in entries]
    assert got == [
        ("granted", "challenge_passed", "alice"),
        ("expired", "lost", "alice"),
        ("granted", "challenge_passed", "alice"),
        ("expired", "lost", "alice"),
        ("denied", "unknown", None),
        ("denied", "expired", "alice"),
        ("denied", "no_blink", "bob"),
        ("denied", "challenge_failed", "bob"),
        ("denied", "no_blink", "bob"),
        ("denied", "locked_out", "bob"),
    ], got
    assert entries[7].detail["why"] == "too many" and entries[7].detail["blinks"] == entries[7].detail["count"] + 1
    # alice left and bob's photo stared before either had blinked: denied, but no guess to count
    assert entries[5].detail["counted"] is False and entries[6].detail["counted"] is False
    assert "counted" not in entries[7].detail and "counted" not in entries[8].detail
    assert all(e.snapshot_bytes > 0 for e in entries) and all(e.source == "" for e in entries)
    assert all(e.distance is not None for e in entries if e.name)
    assert len(hook.requests) == 1 and json.loads(hook.requests[0][1])["name"] == "alice"


# -- lockouts across restarts, and lifting one ---------------------------------------------------------


class _NoGate:
    """A gate that sees nobody: the door's lockout bookkeeping alone."""

    def process(self, image, timestamp_ms: float) -> FrameResult:
        return FrameResult(0, timestamp_ms, [], [])

    def set_people(self, encodings, names) -> str:
        return ""

    def close(self) -> None:
        pass


def _door(db):
    from blinkgate.config import resolve
    from blinkgate.doorrun import build_door

    return build_door(resolve({"cfg_db": str(db), "config": None}, env={}), gate=_NoGate())


def _log_failures(db, name: str, times: list[float], **detail) -> None:
    with AccessLog(db) as log:
        for at in times:
            log.record(decision("challenge_failed", name=name, **detail), at=at)


def test_a_restart_restores_a_lockout_but_not_from_failures_dated_in_the_future(tmp_path, caplog):
    db, now = tmp_path / "f.db", time.time()
    _log_failures(db, "alice", [now - 60 + i for i in range(5)])
    # bob's five are dated two days ahead: logged while the clock was wrong (no RTC, before NTP)
    _log_failures(db, "bob", [now + 2 * 86400 + i for i in range(5)])
    _log_failures(db, "carol", [now - 60 + i for i in range(5)], counted=False)  # a photo never blinked
    door = _door(db)
    try:
        until = door.logic.locked_until("alice", 0.0)
        assert until is not None and until <= 600_000  # 10 min, counted from her last failure
        assert door.logic.locked_until("bob", 0.0) is None and door.logic.failures("bob") == 0
        assert door.logic.locked_until("carol", 0.0) is None and door.logic.failures("carol") == 0
    finally:
        door.close()
    assert "dated after now" in caplog.text and "blinkgate unlock alice" in caplog.text


def test_a_challenge_cut_short_by_its_identitys_lockout_is_not_counted_at_a_restart(tmp_path):
    """Two faces named alice are prompted at once; the first fails and locks alice out, which
    ends the second's challenge ("identity locked out"). The door counted one failure; the log,
    replayed at a restart or by another process, counted two."""
    from blinkgate.door import ChallengePolicy, DoorOptions

    from test_door import BOX2, Scene, _blinked

    s = Scene(DoorOptions(challenge=ChallengePolicy(delay_min_ms=500.0, delay_max_ms=500.0),
                          lockout=LockoutPolicy(failures=1)))
    s.appear(1, "alice")
    s.appear(2, "alice", box=BOX2)
    _blinked(s, 1)
    _blinked(s, 2)
    s.until("lockout", 5000)
    assert [(d.decision, d.reason, d.detail.get("why")) for d in s.decisions] == [
        ("denied", "no_blink", "no blink"), ("denied", "locked_out", None),
        ("denied", "expired", "identity locked out"), ("denied", "locked_out", None)]
    db, now = tmp_path / "f.db", time.time()
    with AccessLog(db) as log:
        ids = [log.record(d, at=now - 60 + d.time_ms / 1000.0) for d in s.decisions]
        assert [log.counted_failure(i) for i in ids] == [True, False, False, False]
        assert len(log.failures("alice", 0.0)) == 1 and [r[0] for r in log.failures_after(0)] == ids[:1]


def test_a_restart_keeps_the_lockouts_growing_as_a_door_that_ran_on_would(tmp_path):
    """A replay tried again whenever the lockout ends, for four days: by then a running door
    locks it out for a day after five failures. A door restarted then (or a `verify`, which
    restarts for each attempt) replayed only the last day of failures, forgot the lockouts
    before, and locked it out for 20 minutes: over 12 days, 275 tries instead of 95."""
    from blinkgate.door import DoorLogic, DoorOptions

    ran_on, failures, t = DoorLogic(DoorOptions()), [], 0.0
    while t < 4 * 86_400_000:
        if (until := ran_on.locked_until("eve", t)) is not None:
            t = until  # tried again the moment the lockout ends
            continue
        failures.append(t)
        ran_on.count_elsewhere("eve", t)
        t += 10_000.0
    db, now = tmp_path / "f.db", time.time()
    _log_failures(db, "eve", [now - (t - f) / 1000.0 for f in failures])  # the last lockout ends now
    door = _door(db)
    try:
        assert door.logic.locked_until("eve", 0.0) is None
        expected = [ran_on.count_elsewhere("eve", t + i * 10_000.0) for i in range(5)][-1] - t
        restored = [door.logic.count_elsewhere("eve", i * 10_000.0) for i in range(5)][-1]
        assert expected == 40_000 + 86_400_000 and restored == expected
    finally:
        door.close()


def test_unlock_lifts_a_lockout_for_a_restart_and_for_a_running_door(tmp_path, capsys):
    from blinkgate.door import Door

    db, now = tmp_path / "f.db", time.time()
    with FaceDatabase(db) as fdb:
        fdb.add_image("alice", "a.jpg", "0" * 64, np.zeros(128))
    _log_failures(db, "alice", [now - 60 + i for i in range(5)])
    door = _door(db)
    assert door.logic.locked_until("alice", 0.0) is not None
    door.close()
    assert main(["unlock", "alice", "--db", str(db)]) == 0
    assert "cleared" in capsys.readouterr().out
    door = _door(db)
    assert door.logic.locked_until("alice", 0.0) is None and door.logic.failures("alice") == 0
    door.close()
    # a door that is running when the lockout is lifted picks it up from the database
    door = Door(_NoGate(), access_log=AccessLogWriter(db, poll_clears_s=0.05))
    door.logic.seed_failures("alice", [-5000.0 + i for i in range(5)])
    assert door.logic.locked_until("alice", 0.0) is not None
    with AccessLog(db) as log:
        log.clear_lockout("alice", at=now + 1)
    deadline, t = time.monotonic() + 10, 0.0
    while door.logic.locked_until("alice", t) is not None and time.monotonic() < deadline:
        door.process(face_image(), t)
        t += 33.0
        time.sleep(0.02)
    door.close()
    assert door.logic.locked_until("alice", t) is None and t < 600_000
    # a name nobody knows is an error, not a silent no-op
    assert main(["unlock", "mallory", "--db", str(db)]) == 2
    assert "enrolled: alice" in capsys.readouterr().err


def test_failures_another_process_logs_count_towards_a_running_doors_lockout(tmp_path):
    """Each process read the failures logged before it started, and no more: two `verify` runs
    side by side on one database logged 6 failures in 16 s and neither locked the name out."""
    from blinkgate.door import Door

    db = tmp_path / "f.db"
    door = Door(_NoGate(), access_log=AccessLogWriter(db, poll_clears_s=0.05))

    def run_until(done, limit_s: float = 10.0) -> float:
        t, deadline = 0.0, time.monotonic() + limit_s
        while not done(t) and time.monotonic() < deadline:
            door.process(face_image(), t)
            t += 33.0
            time.sleep(0.02)
        return t

    for _ in range(2):  # the door's own rows: counted by its logic when it decided them, not again
        door.access_log.record(decision("challenge_failed"))
    assert door.access_log.flush()
    run_until(lambda t: False, limit_s=0.5)
    assert door.logic.failures("alice") == 0
    with AccessLog(db) as other:  # another process on the database
        for k in range(4):
            other.record(decision("challenge_failed"), at=time.time() - 5 + k)
        other.record(decision("challenge_failed", counted=False))  # a face that never blinked: not a guess
        other.record(decision("unknown", name=None))
    t = run_until(lambda t: door.logic.failures("alice") == 4)
    assert door.logic.failures("alice") == 4 and door.logic.locked_until("alice", t) is None
    with AccessLog(db) as other:
        other.record(decision("no_blink"))
    t = run_until(lambda t: door.logic.locked_until("alice", t) is not None)
    door.close()
    assert door.logic.locked_until("alice", t) is not None


def test_unlock_takes_a_name_that_differs_from_the_enrolled_one_only_invisibly(tmp_path, capsys):
    """'Zoë' typed (NFC) for 'Zoe' + U+0308 enrolled from a Mac folder: the lockout is the
    enrolled spelling's, so that is the one cleared."""
    db = tmp_path / "f.db"
    with FaceDatabase(db) as fdb:
        fdb.add_image("Zoe\u0308", "z.jpg", "0" * 64, np.zeros(128))
    assert main(["unlock", "Zo\u00eb", "--db", str(db)]) == 0
    with AccessLog(db) as log:
        assert set(log.clears()) == {"Zoe\u0308"}


def test_a_running_door_stops_naming_a_person_forgotten_while_it_runs(tmp_path):
    # `blinkgate forget bob` in another process: the door reloads the people within its poll,
    # without a restart (before, it named and let in bob until it was restarted).
    from blinkgate.door import Door

    db = tmp_path / "f.db"
    with FaceDatabase(db) as fdb:
        fdb.add_image("alice", "a.jpg", "0" * 64, np.zeros(128))
        fdb.add_image("bob", "b.jpg", "1" * 64, np.ones(128))

    class SpyGate(_NoGate):
        people: list = []

        def set_people(self, encodings, names) -> str:
            self.people.append(sorted(set(names)))
            return ""

    gate = SpyGate()
    door = Door(gate, access_log=AccessLogWriter(db, poll_clears_s=0.05))
    deadline, t = time.monotonic() + 10, 0.0
    while not gate.people and time.monotonic() < deadline:
        door.process(face_image(), t)
        t += 33.0
        time.sleep(0.02)
    assert gate.people == [["alice", "bob"]]  # read once at start, whatever happened before
    with FaceDatabase(db) as fdb:
        fdb.forget("bob")
    while gate.people[-1] != ["alice"] and time.monotonic() < deadline:
        door.process(face_image(), t)
        t += 33.0
        time.sleep(0.02)
    door.close()
    assert gate.people[-1] == ["alice"] and len(gate.people) == 2


def test_a_running_door_follows_its_database_replaced_deleted_or_corrupted(tmp_path, caplog):
    """A backup without bob restored with mv over the database (a new inode), or the database
    deleted: the door kept its connection to the old file, named and let in bob until a restart,
    and logged its decisions into a file no longer there. Now it follows the file at the path;
    with none readable there it names nobody (said once) and logs nothing until one is back."""
    from blinkgate.door import Door

    db = tmp_path / "f.db"

    def database(path, *names):
        with FaceDatabase(path) as fdb:
            for k, name in enumerate(names):
                fdb.add_image(name, f"{name}.jpg", str(k) * 64, np.full(128, float(k)))
        return path

    def rows(path) -> int:
        with AccessLog(path, create=False) as log:
            return len(log.entries())

    class SpyGate(_NoGate):
        def __init__(self) -> None:
            self.people: list = []

        def set_people(self, encodings, names) -> str:
            self.people.append(sorted(set(names)))
            return ""

    database(db, "alice", "bob")
    gate = SpyGate()
    door = Door(gate, access_log=AccessLogWriter(db, poll_clears_s=0.05))
    t = 0.0

    def run_until(names) -> None:
        nonlocal t
        deadline = time.monotonic() + 5
        while (not gate.people or gate.people[-1] != names) and time.monotonic() < deadline:
            door.process(face_image(), t)
            t += 33.0
            time.sleep(0.02)
        assert gate.people and gate.people[-1] == names

    try:
        run_until(["alice", "bob"])
        door.access_log.record(decision("challenge_failed", name="bob"))  # into the file at the path
        assert door.access_log.flush()
        backup = database(tmp_path / "backup.db", "alice")  # made first: no moment with nothing at the path
        os.rename(db, tmp_path / "old.db")
        os.rename(backup, db)
        run_until(["alice"])
        door.access_log.record(decision("unknown", name=None))
        assert door.access_log.flush()
        assert rows(db) == 1 and rows(tmp_path / "old.db") == 1  # each row in the file at the path then
        with caplog.at_level("WARNING", logger="blinkgate"):
            os.remove(db)
            run_until([])
            door.access_log.record(decision("unknown", name=None))
            assert door.access_log.flush()
            assert door.access_log.unlogged == 1 and caplog.text.count("nobody is named") == 1
            caplog.clear()
            os.rename(database(tmp_path / "back.db", "carol"), db)
            run_until(["carol"])
            assert "can be read again" in caplog.text and "1 decision not logged" in caplog.text
            caplog.clear()
            junk = tmp_path / "junk.db"
            junk.write_bytes(b"\x00not sqlite" * 500)
            junk.chmod(0o600)
            os.rename(junk, db)
            run_until([])
            for _ in range(10):  # several polls: said once
                door.process(face_image(), t)
                t += 33.0
                time.sleep(0.02)
        assert caplog.text.count("nobody is named") == 1 and "not a blinkgate database" in caplog.text
    finally:
        door.close()


def test_a_restored_backups_logged_failures_are_its_past_and_new_ones_count(tmp_path):
    """The door counts failures other processes log after the last row it saw. A restored
    backup's rows are numbered anew: its old failures would have counted again, as if made
    now, and locked alice out; those logged into it after the restore count as before."""
    from blinkgate.door import Door

    db = tmp_path / "f.db"
    with FaceDatabase(db) as fdb:
        fdb.add_image("alice", "a.jpg", "0" * 64, np.zeros(128))
    backup = tmp_path / "backup.db"
    with FaceDatabase(backup) as fdb:
        fdb.add_image("alice", "a.jpg", "0" * 64, np.zeros(128))
    _log_failures(backup, "alice", [time.time() - 30 + i for i in range(4)])
    door = Door(_NoGate(), access_log=AccessLogWriter(db, poll_clears_s=0.05))
    t = 0.0

    def frames(seconds: float) -> None:
        nonlocal t
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            door.process(face_image(), t)
            t += 33.0
            time.sleep(0.02)

    try:
        frames(0.3)
        os.replace(backup, db)
        frames(0.5)
        assert door.logic.failures("alice") == 0
        _log_failures(db, "alice", [time.time()])  # another process, into the restored file
        deadline = time.monotonic() + 5
        while door.logic.failures("alice") == 0 and time.monotonic() < deadline:
            frames(0.1)
        assert door.logic.failures("alice") == 1
    finally:
        door.close()


def test_the_log_thread_opens_its_database_again_when_it_could_not_at_first(tmp_path, monkeypatch, caplog):
    """The thread opened the database once: if that failed (locked, replaced that moment), the
    door never learnt of an enroll or forget again, and logged nothing, until a restart. Now it
    names nobody meanwhile, tries again at each poll, and says how many decisions went unlogged."""
    import threading

    import blinkgate.accesslog as accesslog

    db = tmp_path / "f.db"
    with FaceDatabase(db) as fdb:
        fdb.add_image("alice", "a.jpg", "0" * 64, np.zeros(128))
    unlocked = threading.Event()

    def flaky(*args, **kwargs):
        if threading.current_thread() is not threading.main_thread() and not unlocked.is_set():
            raise BlinkgateError(f"face database {db} is locked")
        return AccessLog(*args, **kwargs)

    monkeypatch.setattr(accesslog, "AccessLog", flaky)
    with caplog.at_level("WARNING", logger="blinkgate"):
        writer = AccessLogWriter(db, poll_clears_s=0.05)
        try:
            deadline = time.monotonic() + 5
            people = writer.take_people()
            while people is None and time.monotonic() < deadline:
                people = writer.take_people()
            assert people is not None and people[1] == []  # nobody, while it cannot be opened
            writer.record(decision("unknown", name=None))
            while writer.unlogged == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            unlocked.set()
            while (people is None or people[1] == []) and time.monotonic() < deadline:
                people = writer.take_people() or people
                time.sleep(0.01)
            assert people[1] == ["alice"] and writer.unlogged == 1
            writer.record(decision("granted", kind="granted"))
            assert writer.flush()
        finally:
            writer.close()
    assert caplog.text.count("nobody is named") == 1 and "decision not logged" in caplog.text
    with AccessLog(db, create=False) as log:
        assert len(log.entries()) == 1


def test_the_log_thread_does_not_make_a_database_anew_where_one_was_deleted(tmp_path, monkeypatch):
    """Its open, retried at each poll, created a missing file: a database deleted while the
    first open failed came back empty, made by the door, and was "read again"."""
    import threading

    import blinkgate.accesslog as accesslog

    db = tmp_path / "f.db"
    with FaceDatabase(db) as fdb:
        fdb.add_image("alice", "a.jpg", "0" * 64, np.zeros(128))
    unlocked, tried = threading.Event(), threading.Event()

    def flaky(*args, **kwargs):
        if threading.current_thread() is not threading.main_thread() and not unlocked.is_set():
            tried.set()
            raise BlinkgateError(f"face database {db} is locked")
        if threading.current_thread() is not threading.main_thread():
            tried.set()
        return AccessLog(*args, **kwargs)

    monkeypatch.setattr(accesslog, "AccessLog", flaky)
    writer = AccessLogWriter(db, poll_clears_s=0.05)
    try:
        assert tried.wait(5)  # its first open failed
        for suffix in ("", "-wal", "-shm"):
            (tmp_path / f"f.db{suffix}").unlink(missing_ok=True)
        tried.clear()
        unlocked.set()
        assert tried.wait(5)
        time.sleep(0.3)  # a few more polls (every 0.05 s), each opening it
        assert not db.exists()
    finally:
        writer.close()


def test_a_failure_row_whose_detail_is_damaged_still_counts_and_does_not_stop_the_count(tmp_path):
    """json_extract on a detail that is not JSON raised "malformed JSON": one damaged row kept
    the door from starting (it restores lockouts from the log). The row counts as a failure."""
    db = tmp_path / "f.db"
    with AccessLog(db) as log:
        for t in (1000.0, 1001.0):
            log.record(decision(), at=t)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE access_log SET detail = '{' WHERE id = 1")
    conn.close()
    with AccessLog(db) as log:
        assert log.failures("alice", 0.0) == [1000.0, 1001.0]
        assert [i for i, _, _ in log.failures_after(0)] == [1, 2]
        assert log.counted_failure(1)
