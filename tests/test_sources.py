import cv2
import numpy as np
import pytest

from blinkgate.errors import SourceError
from blinkgate.sources import FolderSource, LiveSource, VideoFileSource, natural_key, open_source


def _write_frames(folder, names):
    folder.mkdir()
    for i, name in enumerate(names):
        cv2.imwrite(str(folder / name), np.full((32, 32, 3), i * 10, np.uint8))


def test_missing_file(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        open_source(tmp_path / "nope.mp4")


def test_empty_folder(tmp_path):
    with pytest.raises(SourceError, match="no images"):
        open_source(tmp_path)


def test_not_a_video(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video")
    with pytest.raises(SourceError, match="video"):
        open_source(bad)


def test_folder_natural_order_and_ms_clock(tmp_path):
    folder = tmp_path / "frames"
    _write_frames(folder, ["f10.png", "f2.png", "f1.png"])
    frames = list(FolderSource(folder, fps=20))
    assert [int(f.image[0, 0, 0]) for f in frames] == [20, 10, 0]  # f1, f2, f10
    assert [f.timestamp_ms for f in frames] == [0.0, 50.0, 100.0]


def test_folder_skips_unreadable_frames(tmp_path):
    folder = tmp_path / "frames"
    _write_frames(folder, ["a1.png", "a3.png"])
    (folder / "a2.png").write_bytes(b"\x89PNG broken")
    src = FolderSource(folder)
    assert len(list(src)) == 2 and [p.name for p in src.skipped] == ["a2.png"]


def test_folder_bad_fps(tmp_path):
    with pytest.raises(SourceError, match="fps"):
        FolderSource(tmp_path, fps=0)


def test_video_file_clock(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    for i in range(10):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()
    frames = list(VideoFileSource(path))
    assert len(frames) == 10
    assert frames[1].timestamp_ms == pytest.approx(40.0)
    assert frames[-1].index == 9


def test_natural_key():
    assert sorted(["x_10.jpg", "x_9.jpg", "x_100.jpg"], key=natural_key) == ["x_9.jpg", "x_10.jpg", "x_100.jpg"]


class FakeCapture:
    """A capture that yields ``frames`` frames, then fails (a dropped stream)."""

    def __init__(self, frames):
        self.left = frames

    def read(self):
        if self.left <= 0:
            return False, None
        self.left -= 1
        return True, np.zeros((8, 8, 3), np.uint8)

    def get(self, prop):
        return 0.0

    def release(self):
        pass


def test_live_source_reconnects_with_backoff_then_gives_up():
    opened, sleeps = [], []

    def opener(target):
        opened.append(target)
        if len(opened) in (1, 3):  # the first open and the 2nd reconnect attempt succeed
            return FakeCapture(frames=2)
        raise SourceError("down")

    src = LiveSource("rtsp://127.0.0.1/x", max_retries=3, backoff_s=0.5, opener=opener, sleep=sleeps.append)
    got = []
    with pytest.raises(SourceError, match="lost after 3 reconnect"):
        for frame in src:
            got.append(frame.index)
    assert got == [0, 1, 2, 3]
    assert sleeps == [0.5, 1.0, 0.5, 1.0, 2.0]  # backoff doubles, restarts after a success


def test_missing_camera_says_so():
    def opener(target):
        raise SourceError("nope")

    with pytest.raises(SourceError, match="cannot open camera 7.*--source"):
        LiveSource(7, opener=opener)
