"""The JSON Lines event log: one line per event, and a full disk does not stop the door."""

from __future__ import annotations

import json
import os

import pytest

from blinkgate.events import EventLog
from blinkgate.types import Event

from conftest import mode_of

BOX = (1.0, 2.0, 30.0, 40.0)


def test_events_are_appended_as_json_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventLog(path, "cam") as log:
        log.write([Event("appeared", 10.0, 1, None, BOX), Event("blink", 50.0, 1, "ada", BOX, {"start_ms": 20.0})])
        log.write([])
    with EventLog(path, "cam") as log:  # appends
        log.write([Event("lost", 90.0, 1, "ada", BOX)])
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["event"] for r in rows] == ["appeared", "blink", "lost"]
    assert all(r["source"] == "cam" and r["wall_time"] for r in rows)


def test_a_new_events_file_is_its_owners_only_and_an_existing_one_keeps_its_mode(tmp_path, common_umask):
    # Its lines say who came when: it was made 0644, readable by every user of the door box.
    new, shared = tmp_path / "new.jsonl", tmp_path / "shared.jsonl"
    shared.write_text("")
    shared.chmod(0o640)  # the user's choice (a group that reads it): >> keeps it, and so does --events
    for path in (new, shared):
        with EventLog(path, "cam") as log:
            log.write([Event("appeared", 10.0, 1, "ada", BOX)])
    assert (mode_of(new), mode_of(shared)) == (0o600, 0o640)
    assert len(shared.read_text().splitlines()) == 1


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux) to fake a full disk")
def test_a_full_disk_is_logged_once_and_does_not_stop_the_caller(caplog):
    log = EventLog("/dev/full", "cam")
    for i in range(5):
        log.write([Event("appeared", float(i), i, None, BOX)])
    log.close()
    assert log.dropped == 5
    assert caplog.text.count("cannot write events to /dev/full") == 1


def test_a_file_left_mid_line_by_a_crash_gets_a_line_break_before_the_new_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"event": "appeared"}\n{"event": "bli')  # a power cut during a write
    with EventLog(path, "cam") as log:
        log.write([Event("appeared", 10.0, 1, None, BOX)])
        log.write([Event("lost", 20.0, 1, None, BOX)])
    lines = path.read_text().splitlines()
    assert lines[1] == '{"event": "bli' and [json.loads(line)["event"] for line in lines[2:]] == ["appeared", "lost"]


def test_a_batch_that_fails_part_way_is_cut_back_off_the_file(tmp_path, monkeypatch):
    path = tmp_path / "events.jsonl"
    log = EventLog(path, "cam")
    log.write([Event("appeared", 10.0, 1, None, BOX)])
    real_write, calls = os.write, []

    def disk_fills(fd, data):  # the first call writes 40 bytes, then the disk is full
        calls.append(1)
        if len(calls) == 1:
            return real_write(fd, data[:40])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", disk_fills)
    log.write([Event("blink", 50.0, 1, "ada", BOX, {"start_ms": 20.0})])
    monkeypatch.setattr(os, "write", real_write)
    log.write([Event("lost", 90.0, 1, "ada", BOX)])
    log.close()
    assert [json.loads(line)["event"] for line in path.read_text().splitlines()] == ["appeared", "lost"]
    assert log.dropped == 1


def test_a_file_moved_or_deleted_by_log_rotation_is_followed(tmp_path):
    """logrotate moves the file and a door writing on went on into the moved one, unseen."""
    path = tmp_path / "events.jsonl"
    with EventLog(path, "cam") as log:
        log.write([Event("appeared", 10.0, 1, None, BOX)])
        path.rename(tmp_path / "events.jsonl.1")
        log.write([Event("blink", 50.0, 1, "ada", BOX)])
        assert [json.loads(x)["event"] for x in path.read_text().splitlines()] == ["blink"]
        path.unlink()
        log.write([Event("lost", 90.0, 1, "ada", BOX)])
    assert [json.loads(x)["event"] for x in (tmp_path / "events.jsonl.1").read_text().splitlines()] == ["appeared"]
    assert [json.loads(x)["event"] for x in path.read_text().splitlines()] == ["lost"]


def test_the_people_database_is_refused_as_an_events_file_and_left_as_it_is(tmp_path):
    from blinkgate.database import FaceDatabase
    from blinkgate.errors import BlinkgateError

    db = tmp_path / "faces.db"
    FaceDatabase(db).close()
    before = db.read_bytes()
    with pytest.raises(BlinkgateError, match="is a database, not an events file"):
        EventLog(db, "cam")
    assert db.read_bytes() == before
