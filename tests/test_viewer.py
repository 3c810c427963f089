"""The window/recording helper: who gets a file played at its own speed, and recordings that outlive
crashes, restarts, full disks and camera reconnects."""

from __future__ import annotations

import logging
import subprocess
import sys

import cv2
import numpy as np
import pytest

from blinkgate import viewer as viewer_module
from blinkgate.errors import BlinkgateError
from blinkgate.viewer import Recording, Viewer

from conftest import mode_of


@pytest.mark.parametrize("live, ui, paced", [(False, True, True), (False, False, False), (True, True, False)])
def test_a_file_plays_at_its_own_speed_only_when_someone_watches(monkeypatch, live, ui, paced):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    clock = _Clock()  # the viewer's own clock, so that the test measures its waits, not the machine
    monkeypatch.setattr(viewer_module, "time", clock)
    started = clock.now
    viewer = Viewer("t", display=False, record=None, fps=25.0, pace=not live, ui=ui)
    for i in range(6):
        clock.now += 0.01  # the frame's own work
        viewer.wait(i * 40.0)  # 6 frames at 25 fps: the last is due 0.2 s in
    assert viewer.pace is paced
    if paced:  # each frame waited for its time: the run took the clip's 0.2 s
        assert clock.now - started == pytest.approx(0.2) and len(clock.slept) == 6
    else:
        assert clock.slept == [] and clock.now - started == pytest.approx(0.06)
    viewer.close()


class _Clock:
    """Stands in for the ``time`` module: sleeping moves it on at once."""

    def __init__(self):
        self.now, self.slept = 100.0, []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


# -- recordings ---------------------------------------------------------------------------------

def _frames_in(path) -> list:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            return frames
        frames.append(image)


def _canvas(i: int, size=(320, 240)) -> np.ndarray:
    image = np.random.default_rng(i).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return cv2.putText(image, str(i), (20, 60), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 4)


def test_an_mkv_recording_cut_by_a_crash_still_plays(tmp_path):
    # The process dies without closing the file, as in a power cut or a kill -9.
    script = (
        "import os, sys, numpy as np, cv2\n"
        "from blinkgate.viewer import Recording\n"
        "rec = Recording(sys.argv[1], 20.0, live=True)\n"
        "for i in range(120):\n"
        "    rec.write(np.random.default_rng(i).integers(0, 256, (240, 320, 3), dtype=np.uint8))\n"
        "os._exit(0)\n")
    for name in ("cut.mkv", "cut.mp4"):
        subprocess.run([sys.executable, "-c", script, str(tmp_path / name)], check=True, timeout=120)
    assert len(_frames_in(tmp_path / "cut.mkv")) >= 60  # all but what sat in the last write buffer
    assert _frames_in(tmp_path / "cut.mp4") == []  # why the door warns about .mp4


@pytest.mark.parametrize("live", [True, False])
def test_a_recording_never_goes_over_an_earlier_file(tmp_path, live):
    # The door's (live) and `run --record precious.mkv` on a file (not live) alike: run replaced
    # the user's own video with its recording.
    earlier = tmp_path / "door.mkv"
    earlier.write_bytes(b"yesterday")
    kept = Recording(earlier, 20.0, live=live)
    kept.write(_canvas(0))
    kept.close()
    assert earlier.read_bytes() == b"yesterday"
    assert kept.path != earlier and kept.path.parent == tmp_path and kept.path.name.startswith("door-")
    assert len(_frames_in(kept.path)) == 1


def test_a_recording_is_its_owners_only_from_its_first_frame(tmp_path, common_umask, monkeypatch):
    # It shows the faces at the door: OpenCV's writer made it 0644, for every user to watch.
    (tmp_path / "door.mkv").write_bytes(b"yesterday")
    modes = []
    real = cv2.VideoWriter

    class Watched:  # the file's mode as the first frame goes in
        def __init__(self, *args):
            self._writer = real(*args)

        def __getattr__(self, name):
            return getattr(self._writer, name)

        def write(self, image):
            modes.append(mode_of(rec.path))
            self._writer.write(image)

    monkeypatch.setattr(cv2, "VideoWriter", Watched)
    for name in ("new.mkv", "door.mkv"):  # a new file, and one beside an earlier recording
        rec = Recording(tmp_path / name, 20.0, live=False)
        rec.write(_canvas(0))
        rec.close()
        assert mode_of(rec.path) == 0o600 and len(_frames_in(rec.path)) == 1
    assert modes == [0o600, 0o600]


def test_a_file_that_comes_to_the_path_before_the_first_frame_is_kept_too(tmp_path):
    # The file is made at the first frame: another `run --record` started meanwhile took the name.
    rec = Recording(tmp_path / "r.mkv", 20.0, live=False)
    (tmp_path / "r.mkv").write_bytes(b"the other run's")
    rec.write(_canvas(0))
    rec.close()
    assert (tmp_path / "r.mkv").read_bytes() == b"the other run's"
    assert rec.path.name.startswith("r-") and len(_frames_in(rec.path)) == 1


def test_two_door_starts_in_one_second_keep_both_recordings(tmp_path, monkeypatch):
    # A crash-restart loop can start the door twice within a second: the second start wrote over
    # the first one's timestamped file, the footage of what happened just before the crash.
    from datetime import datetime

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2026, 1, 2, 3, 4, 5)

    monkeypatch.setattr(viewer_module, "datetime", Frozen)
    (tmp_path / "door.mkv").write_bytes(b"first start")
    paths = []
    for i in range(3):
        rec = Recording(tmp_path / "door.mkv", 20.0, live=True)
        rec.write(_canvas(i))
        rec.close()
        paths.append(rec.path)
    assert len(set(paths)) == 3 and (tmp_path / "door.mkv") not in paths
    assert (tmp_path / "door.mkv").read_bytes() == b"first start"
    assert all(len(_frames_in(p)) == 1 for p in paths)


def test_a_live_recording_keeps_real_time_when_the_gate_skips_frames(tmp_path):
    # A gate slower than its camera takes every other frame (FreshQueue skips the stale ones):
    # written one per frame at the camera's 20 fps, 2 s of the door played in 1 s. Frames now
    # fill the time they stand for; one that comes early (a camera faster than it says) is
    # dropped; an outage (or a pause) is not filled with one frozen picture.
    rec = Recording(tmp_path / "r.mkv", 20.0, live=True)
    for i, t in enumerate([0.0, 100.0, 200.0, 300.0, 310.0]):  # 10 fps, then a frame 10 ms later
        rec.write(_canvas(i), t)
    rec.write(_canvas(9), 60_000.0)  # a minute later
    rec.close()
    assert len(_frames_in(tmp_path / "r.mkv")) == 7 + 1


def test_a_recording_pauses_while_the_disk_is_nearly_full(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="blinkgate.viewer")
    free = {"bytes": 10 * 2**30}
    monkeypatch.setattr(viewer_module, "free_bytes", lambda folder: free["bytes"])
    monkeypatch.setattr(viewer_module, "FREE_CHECK_S", 0.0)
    rec = Recording(tmp_path / "r.mkv", 20.0, live=True)
    for i in range(9):
        free["bytes"] = 100 * 2**20 if 3 <= i < 6 else 10 * 2**30
        rec.write(_canvas(i))
    rec.close()
    assert len(_frames_in(tmp_path / "r.mkv")) == 6
    assert "recording paused" in caplog.text and "recording resumed" in caplog.text


def test_a_recording_of_a_file_has_no_free_space_floor(tmp_path, monkeypatch):
    # Bounded by its file: on a disk with 99 MB free, `run --record` wrote nothing and exited 0.
    monkeypatch.setattr(viewer_module, "free_bytes", lambda folder: 99 * 2**20)
    monkeypatch.setattr(viewer_module, "FREE_CHECK_S", 0.0)
    rec = Recording(tmp_path / "r.mkv", 20.0, live=False)
    for i in range(4):
        rec.write(_canvas(i))
    rec.close()
    assert len(_frames_in(tmp_path / "r.mkv")) == 4


@pytest.mark.parametrize("free, said", [(0, True), (10 * 2**30, False)])
def test_a_recording_closed_on_a_full_disk_says_it_may_be_cut_short(tmp_path, monkeypatch, caplog, free, said):
    # OpenCV's writer drops what it cannot write without a word: `run --record` on a full disk
    # left an empty recording and exited 0, saying nothing.
    monkeypatch.setattr(viewer_module, "free_bytes", lambda folder: free)
    rec = Recording(tmp_path / "r.mkv", 20.0, live=False)
    rec.write(_canvas(0))
    rec.close()
    assert ("r.mkv may be cut short: its disk is full" in caplog.text) == said


def test_a_folder_that_cannot_be_written_is_refused_before_any_frame(tmp_path, monkeypatch):
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)  # root writes past mode bits: fake the mount
    with pytest.raises(BlinkgateError, match="cannot record to .*Read-only file system"):
        Recording(tmp_path / "out.mkv", 20.0, live=False)


def test_frames_of_a_new_size_are_recorded_at_the_first_size(tmp_path):
    # A camera that reconnects in another mode: OpenCV's writer silently drops such frames.
    rec = Recording(tmp_path / "r.mkv", 20.0, live=True)
    for i in range(6):
        rec.write(_canvas(i, (320, 240) if i < 3 else (640, 480)))
    rec.close()
    frames = _frames_in(tmp_path / "r.mkv")
    assert len(frames) == 6 and {f.shape for f in frames} == {(240, 320, 3)}


def test_frames_of_an_odd_size_keep_their_last_row_and_column(tmp_path):
    # The writer needs even sizes and cut 101x75 frames to 100x74: a face at the edge lost a line.
    rec = Recording(tmp_path / "r.mkv", 20.0, live=False)
    for _ in range(3):
        image = np.zeros((75, 101, 3), np.uint8)
        image[-1, :], image[:, -1] = 255, 255  # the last row and column
        rec.write(image)
    rec.close()
    frames = _frames_in(tmp_path / "r.mkv")
    assert len(frames) == 3 and {f.shape for f in frames} == {(76, 102, 3)}
    assert frames[0][74, 50].min() > 200 and frames[0][37, 100].min() > 200


def test_a_recording_path_that_cannot_work_is_refused_before_any_frame(tmp_path, caplog):
    with pytest.raises(BlinkgateError, match=r"\.mkv"):
        Recording(tmp_path / "out.gif", 20.0, live=False)
    with pytest.raises(BlinkgateError, match="no folder"):
        Recording(tmp_path / "missing" / "out.mkv", 20.0, live=False)
    Recording(tmp_path / "live.mp4", 20.0, live=True)
    assert "plays only once closed" in caplog.text
    caplog.clear()
    Recording(tmp_path / "live.mkv", 20.0, live=True)
    Recording(tmp_path / "file.mp4", 20.0, live=False)  # a file's run ends and closes it
    assert "plays only once closed" not in caplog.text


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract X11 sockets are Linux's")
def test_a_display_that_does_not_answer_means_headless_not_a_qt_abort(monkeypatch):
    # DISPLAY left over from a dropped `ssh -X`: Qt aborted `run` and `door` with SIGABRT.
    import random
    import socket

    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    number = random.randint(5000, 9000)
    monkeypatch.setenv("DISPLAY", f":{number}")
    assert viewer_module.has_display() is False
    with socket.socket(socket.AF_UNIX) as server:  # an X server listening on display `number`
        server.bind(f"\0/tmp/.X11-unix/X{number}")
        server.listen(1)
        assert viewer_module.has_display() is True
    monkeypatch.setenv("DISPLAY", "nonsense")
    assert viewer_module.has_display() is False


def test_no_display_with_a_recording_does_not_suggest_record(monkeypatch, tmp_path, caplog):
    # `run --source door.mp4 --record out.mkv` with no display warned "running headless
    # (--ui PORT ..., --record OUT.mkv writes it)", as if the recording had not been asked for.
    monkeypatch.setattr(viewer_module, "has_display", lambda: False)
    with caplog.at_level(logging.INFO, logger="blinkgate"):
        viewer = Viewer("t", display=True, record=tmp_path / "out.mkv", fps=25.0, pace=False)
    viewer.close()
    assert "--record" not in caplog.text
    assert "the recording only" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
