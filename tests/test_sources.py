import cv2
import numpy as np
import pytest

from blinkgate.blink import BlinkOptions
from blinkgate.errors import SourceError
from blinkgate.gate import Gate
from blinkgate.recognize import Recognizer
from blinkgate.sources import FolderSource, LiveSource, VideoFileSource, natural_key, open_source
from blinkgate.types import EyeState

from fakes import FakeDetector, FakeEncoder, FakeEyes, vec


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


class StampedCapture:
    """A live capture whose frames carry the backend's capture times (``CAP_PROP_POS_MSEC``)."""

    def __init__(self, capture_ms):
        self.pending, self.current = list(capture_ms), 0.0

    def read(self):
        if not self.pending:
            return False, None
        self.current = self.pending.pop(0)
        return True, np.zeros((8, 8, 3), np.uint8)

    def get(self, prop):
        return self.current if prop == cv2.CAP_PROP_POS_MSEC else 0.0

    def release(self):
        pass


def scripted_live(capture_ms, read_ms):
    """The frames of a LiveSource whose frames were captured and read at these times (ms)."""
    clock = iter([0.0] + [t / 1000.0 for t in read_ms])  # the first reading is the source's start
    src = LiveSource(0, max_retries=0, opener=lambda _: StampedCapture(capture_ms), clock=lambda: next(clock))
    with pytest.raises(SourceError):  # the scripted stream ends
        yield from src


def live_times(capture_ms, read_ms):
    return [frame.timestamp_ms for frame in scripted_live(capture_ms, read_ms)]


def test_live_frames_queued_during_a_stall_keep_their_capture_times():
    # A 30 fps camera (kernel time ~5,000 s). The gate stalls ~200 ms on frame 0 (a new face's
    # recognition), then drains the frames queued in the driver 5 ms apart. Frames 1-4 are a
    # quick blink: open, closed, closed, open.
    capture = [5_000_000.0 + 33.3 * i for i in range(8)]
    read = [0.0, 200.0, 205.0, 210.0, 215.0, 233.3, 266.6, 300.0]
    times = live_times(capture, read)
    assert times == pytest.approx([33.3 * i for i in range(8)])
    # Open to open took 100 ms. Stamped when read it would be 15 ms: a "flicker" under the
    # blink detector's 80 ms minimum, and the blink would be refused.
    assert times[4] - times[1] == pytest.approx(99.9)
    assert read[4] - read[1] < BlinkOptions().min_blink_ms


def test_live_frames_without_capture_times_take_the_read_clock():
    assert live_times([0.0] * 4, [10.0, 45.0, 80.0, 112.0]) == pytest.approx([10.0, 45.0, 80.0, 112.0])


def test_live_capture_clock_that_restarts_or_drifts_falls_back_to_the_read_clock():
    # A reconnect restarts the capture clock (frame 3): that frame takes its read time, and the
    # next ones are anchored to it.
    times = live_times([1000.0, 1033.0, 1066.0, 10.0, 43.0], [0.0, 33.0, 66.0, 500.0, 533.0])
    assert times == pytest.approx([0.0, 33.0, 66.0, 500.0, 533.0])
    # A made-up capture clock that runs at half speed is never more than max_lag_ms (1 s) behind.
    read = [100.0 * i for i in range(40)]
    times = live_times([1.0 + 50.0 * i for i in range(40)], read)
    assert all(r - 1000.0 <= t <= r for t, r in zip(times, read))
    assert all(b > a for a, b in zip(times, times[1:]))


def blinks_seen_live(capture_ms, read_ms, states):
    """Blinks a Gate (scripted stages) counts on a LiveSource with these capture/read times."""
    box = (100.0, 100.0, 200.0, 200.0)
    detector, encoder, eyes = FakeDetector(), FakeEncoder(), FakeEyes()
    detector.boxes, encoder.identity[box] = [box], vec(1)
    gate = Gate(recognizer=Recognizer([vec(1)], ["alice"]), encoder=encoder, detector=detector, eyes=eyes)
    blinks = 0
    for frame in scripted_live(capture_ms, read_ms):
        eyes.state[box] = states[frame.index]
        blinks += sum(ev.kind == "blink" for ev in gate.process(frame.image, frame.timestamp_ms).events)
    return blinks


def test_a_blink_drained_after_a_stall_is_still_a_blink():
    # 30 fps; open 0-9, closed 10-11, open from 12: 100 ms from last open to reopen. The gate
    # stalls 200 ms on frame 8, then reads the queued frames 5 ms apart until it catches up.
    n = 24
    states = [EyeState.CLOSED if i in (10, 11) else EyeState.OPEN for i in range(n)]
    capture = [33.3 * i for i in range(n)]
    read = [c + 5.0 for c in capture[:9]]
    read.append(read[-1] + 200.0)  # frame 9, after the stall on frame 8
    for c in capture[10:]:
        read.append(max(c + 5.0, read[-1] + 5.0))  # drained 5 ms apart until caught up
    assert blinks_seen_live([1000.0 + c for c in capture], read, states) == 1
    # The same frames from a backend without capture times: the burst squeezes the blink
    # into 15 ms, under the 80 ms minimum, and it is lost.
    assert blinks_seen_live([0.0] * n, read, states) == 0
