import dataclasses
import itertools
import math
import os
import socket
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from blinkgate import sources
from blinkgate.blink import BlinkOptions
from blinkgate.errors import SourceError
from blinkgate.gate import Gate
from blinkgate.recognize import Recognizer
from blinkgate.sources import FileClock, FolderSource, LiveSource, VideoFileSource, natural_key, open_source
from blinkgate.types import EyeState

from conftest import shared
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


def test_a_folder_of_videos_is_told_to_pass_the_videos(tmp_path):
    """`check selfies/` said only "no images in folder selfies", with no word on what to do."""
    (tmp_path / "a.mp4").write_bytes(b"")
    with pytest.raises(SourceError, match=r"no images .*give videos as files, e\.g\. .*\*\.mp4"):
        open_source(tmp_path)


def test_not_a_video(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video")
    with pytest.raises(SourceError, match="video"):
        open_source(bad)


def test_a_still_image_is_not_a_one_frame_video(tmp_path):
    """`check photo.jpg` said "not live (1 frame)" and exited 0, as if a clip had been judged."""
    photo = tmp_path / "face.JPG"
    cv2.imwrite(str(photo.with_suffix(".png")), np.zeros((32, 32, 3), np.uint8))
    photo.write_bytes(photo.with_suffix(".png").read_bytes())
    with pytest.raises(SourceError, match="still image"):
        open_source(photo)


def _video(path, frames: int) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 20, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), i * 10, np.uint8))
    writer.release()


def test_a_name_that_starts_or_ends_with_a_space_is_opened_as_given(tmp_path, monkeypatch):
    """" clip.mp4" was stripped to "clip.mp4": not found, or another file of that name opened
    and judged under the first one's name."""
    monkeypatch.chdir(tmp_path)
    _video("made.mp4", 5)
    for name in (" clip.mp4", "end.mp4 ", " both.mp4 "):
        Path(name).write_bytes(Path("made.mp4").read_bytes())
    _video("clip.mp4", 3)  # the name stripped: another recording
    for name in (" clip.mp4", "end.mp4 ", " both.mp4 ", str(tmp_path / "end.mp4 ")):
        with open_source(name) as source:
            assert isinstance(source, VideoFileSource) and source.frame_count == 5, name
    # A name that is not there as given is still stripped: a path pasted with a stray space or newline.
    with sources.open_recording_path("clip.mp4 \n") as source:
        assert source.frame_count == 3
    with pytest.raises(SourceError, match="no such file"):
        open_source(" none.mp4")


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


def test_folder_ignores_hidden_files_beside_the_frames(tmp_path):
    """macOS's ._f1.png beside each frame sorted first: 100 of them were 100 warnings and put
    the first real frame at 5 s."""
    folder = tmp_path / "frames"
    _write_frames(folder, ["f1.png", "f2.png"])
    for name in ("._f1.png", "._f2.png"):
        (folder / name).write_bytes(b"\x00\x05\x16\x07 Mac OS X")
    src = FolderSource(folder, fps=20)
    assert [f.timestamp_ms for f in src] == [0.0, 50.0] and src.skipped == [] and src.frame_count == 2


def test_a_name_that_is_not_utf8_is_refused_not_a_segfault(tmp_path):
    """OpenCV crashed the process on a Latin-1 name (caf\\xe9.mp4 unzipped on Linux): `check`
    died with a segfault and, with --jobs, took the batch with it."""
    def latin(name: bytes) -> Path:
        return Path(os.fsdecode(os.fsencode(tmp_path) + b"/" + name))

    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    clip.rename(latin(b"caf\xe9.avi"))
    with pytest.raises(SourceError, match=r"caf\\xe9.avi.*not UTF-8"):
        open_source(latin(b"caf\xe9.avi"))
    _write_frames(tmp_path / "frames", ["f1.png", "f2.png"])
    (tmp_path / "frames" / "f2.png").rename(latin(b"frames/f2\xe9.png"))
    src = FolderSource(tmp_path / "frames")
    assert len(list(src)) == 1 and len(src.skipped) == 1  # one bad frame name skips that frame
    (tmp_path / "frames").rename(latin(b"fr\xe9mes"))
    with pytest.raises(SourceError, match="not UTF-8"):
        open_source(latin(b"fr\xe9mes"))


@pytest.mark.parametrize("fps", [0, float("nan"), float("inf")])
def test_folder_bad_fps(tmp_path, fps):
    # A NaN rate timed every frame NaN, an infinite one every frame 0: the Gate's error, frames later.
    cv2.imwrite(str(tmp_path / "f1.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(SourceError, match="fps must be positive"):
        FolderSource(tmp_path, fps=fps)


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


def test_a_loop_after_a_break_goes_on_where_the_last_one_stopped(tmp_path, caplog):
    """A second loop over a video read nothing, and warned that the file was cut short."""
    path = tmp_path / "clip.avi"
    _video(path, 10)
    with VideoFileSource(path) as src:
        for frame in src:
            if frame.index == 3:
                break
        rest = list(src)
        assert [f.index for f in rest] == list(range(4, 10))
        assert rest[0].timestamp_ms == pytest.approx(200.0)  # on the same clock
        assert list(src) == [] and not src.truncated and src.frames_read == 10
    assert list(src) == [] and "cut short" not in caplog.text and "stopped after" not in caplog.text


def test_a_phone_video_recorded_sideways_is_read_upright(tmp_path):
    """Phones record portrait video as landscape frames plus a rotation in the MP4 header; read
    without it, every face lies on its side and none is found. A guard: OpenCV applies it."""
    import struct

    path = tmp_path / "phone.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for _ in range(3):
        frame = np.zeros((48, 64, 3), np.uint8)
        frame[:, :16] = 255  # a white band on the left of the stored frame
        writer.write(frame)
    writer.release()
    data = bytearray(path.read_bytes())
    identity = struct.pack(">9i", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    at = data.find(identity, data.find(b"tkhd"))
    data[at:at + 36] = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)  # 90 degrees
    path.write_bytes(bytes(data))
    frames = list(VideoFileSource(path))
    assert len(frames) == 3 and frames[0].image.shape == (64, 48, 3)
    assert frames[0].image[:16].mean() > 200 and frames[0].image[-16:].mean() < 50  # the band is on top


def test_file_clock_follows_the_container_from_zero():
    clock = FileClock(fps=30)
    # A variable-rate phone clip that starts at 1 s: 33 ms frames, then 67 ms ones in dim light.
    assert [clock.stamp(t) for t in (1000.0, 1033.3, 1066.7, 1133.3, 1200.0)] == [0.0, 33.3, 66.7, 133.3, 200.0]


def test_file_clock_rounds_away_float_noise():
    # 25 fps from a container whose times are not exact in binary: one closed frame between two
    # open ones must stay exactly 80 ms, on whichever side of the limit 80 ms falls.
    clock = FileClock(fps=25)
    times = [clock.stamp(t) for t in (0.0, 40.00000000000001, 79.99999999999999, 120.0)]
    assert times == [0.0, 40.0, 80.0, 120.0]


def test_file_clock_without_container_times_counts_frames():
    clock = FileClock(fps=20)
    assert [clock.stamp(0.0) for _ in range(4)] == [0.0, 50.0, 100.0, 150.0]
    nan = FileClock(fps=20)
    assert [nan.stamp(float("nan")) for _ in range(3)] == [0.0, 50.0, 100.0]


def test_file_clock_ignores_infinite_container_times():
    # A corrupt file: one frame's time is inf, the next NaN. Both come one interval after the
    # last, and the clip's own times resume after them.
    clock = FileClock(fps=10)
    times = [clock.stamp(t) for t in (0.0, 100.0, float("inf"), float("nan"), 400.0)]
    assert times == [0.0, 100.0, 200.0, 300.0, 400.0]
    first = FileClock(fps=10)
    assert [first.stamp(t) for t in (float("inf"), 0.0, 100.0)] == [0.0, 100.0, 200.0]


def test_file_clock_that_resets_is_anchored_after_the_last_frame():
    # Two recordings joined into one file: the second restarts at 0.
    clock = FileClock(fps=10)
    times = [clock.stamp(t) for t in (0.0, 100.0, 200.0, 0.0, 100.0, 250.0)]
    assert times == [0.0, 100.0, 200.0, 300.0, 400.0, 550.0]


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


class FakeTime:
    """A clock that only a fake sleep moves: no test waits for real. Stops a runaway loop."""

    def __init__(self, limit=10_000):
        self.now, self.sleeps, self.limit = 0.0, [], limit

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds
        if len(self.sleeps) > self.limit:
            raise RuntimeError("still reconnecting")


def test_a_camera_that_opens_but_gives_no_frame_is_a_failure_too():
    # A half-there USB camera: every reopen succeeds, no read does. Before, each open reset the
    # count: 2 reconnects a second for ever and a warning each. Now the back-off grows, and a
    # bounded source gives up.
    time = FakeTime(limit=50)
    opened = []

    def opener(target):
        opened.append(target)
        return FakeCapture(frames=1 if len(opened) == 1 else 0)

    src = LiveSource(0, max_retries=4, opener=opener, sleep=time.sleep, clock=time.clock)
    with pytest.raises(SourceError, match="lost after 4 reconnect"):
        list(src)
    assert time.sleeps == [0.5, 1.0, 2.0, 4.0]


def test_a_source_that_reconnects_for_ever_caps_its_back_off_and_warns_once_a_minute(caplog):
    # A USB camera unplugged for about an hour: the device fails to open, or opens and gives
    # nothing, in turn; then it is back.
    time = FakeTime()
    attempts = []

    def opener(target):
        attempts.append(target)
        if len(attempts) == 1:
            return FakeCapture(frames=2)
        if len(attempts) > 130:
            return FakeCapture(frames=3)
        if len(attempts) % 2:
            raise SourceError("cannot open 0")
        return FakeCapture(frames=0)

    src = LiveSource(0, max_retries=None, max_backoff_s=30.0, opener=opener, sleep=time.sleep, clock=time.clock)
    with caplog.at_level("WARNING", logger="blinkgate.sources"):
        frames = [f.index for f in itertools.islice(src, 5)]
    assert frames == [0, 1, 2, 3, 4]  # no SourceError, however long it took
    assert time.sleeps[:8] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0] and max(time.sleeps) == 30.0
    assert len(time.sleeps) == 130 and 3500 < time.now < 4000
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "camera 0 dropped; reconnect 1 in 0.5s"
    assert lines[-1].startswith("camera 0 is back after 130 reconnect attempts")
    assert 30 <= len(lines) <= 2 + time.now / 60  # about one a minute, not one per attempt


def test_a_flapping_camera_is_not_a_log_line_per_drop(caplog):
    # Drops after every frame and comes back at once: the back-off restarts with every frame,
    # the warnings do not.
    time = FakeTime()
    src = LiveSource(0, max_retries=2, opener=lambda _: FakeCapture(frames=1), sleep=time.sleep, clock=time.clock)
    with caplog.at_level("WARNING", logger="blinkgate.sources"):
        assert len(list(itertools.islice(src, 200))) == 200
    assert set(time.sleeps) == {0.5} and len(time.sleeps) == 199
    assert len(caplog.records) <= 2 * (1 + time.now / 60)  # "dropped" and "back", once a minute


def test_a_network_stream_is_opened_with_open_and_read_timeouts(monkeypatch):
    opened = []

    class Recorder:
        def __init__(self, *args):
            opened.append(args)

        def isOpened(self):
            return True

    monkeypatch.setattr(sources.cv2, "VideoCapture", Recorder)
    monkeypatch.setattr(sources.cv2.videoio_registry, "hasBackend", lambda api: api == cv2.CAP_FFMPEG)
    sources._open_capture("rtsp://cam.local/stream")
    sources._open_capture(0)
    sources._open_capture("clip.mp4")
    url, camera, clip = opened
    assert url[:2] == ("rtsp://cam.local/stream", cv2.CAP_FFMPEG)
    params = dict(zip(url[2][::2], url[2][1::2]))
    assert params == {cv2.CAP_PROP_OPEN_TIMEOUT_MSEC: 10_000, cv2.CAP_PROP_READ_TIMEOUT_MSEC: 10_000}
    assert camera == (0,) and clip == ("clip.mp4",)  # a V4L2 camera or a file: the backend's defaults


@pytest.mark.parametrize("command, retries", [("door", None), ("run", 10)])
def test_the_door_reconnects_for_ever_and_run_gives_up(monkeypatch, tmp_path, command, retries):
    from blinkgate.cli import main

    asked = []

    def open_source(spec, fps=20.0, retries=10):
        asked.append(retries)
        raise SourceError("no camera here")

    monkeypatch.setattr(sources, "open_source", open_source)
    assert main([command, "--source", "0", "--no-display", "--db", str(tmp_path / "f.db")]) == 2
    assert asked == [retries]


def test_missing_camera_says_so():
    def opener(target):
        raise SourceError("nope")

    with pytest.raises(SourceError, match="cannot open camera 7.*--source"):
        LiveSource(7, opener=opener)


@pytest.mark.parametrize("index", [-1, -2])
def test_a_negative_camera_index_is_refused_before_opencv_sees_it(monkeypatch, index):
    """open_source(-1) crashed the process (SIGSEGV): -1 is OpenCV's "any camera", and with none
    there its backends segfault."""
    def never(target):
        raise AssertionError(f"OpenCV was asked to open {target!r}")

    monkeypatch.setattr(sources, "_new_capture", never)
    with pytest.raises(SourceError, match=f"cannot open camera {index}"):
        open_source(index)


def _refuse(target):
    raise SourceError("nope")


def test_a_stream_that_will_not_open_says_which_part_of_the_url_is_wrong():
    """OpenCV only says it failed; an IP camera user needs to know what to fix."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        closed_port = free.getsockname()[1]
    with pytest.raises(SourceError, match=rf"cannot open stream rtsp://\*\*\*@127.0.0.1:{closed_port}/cam: "
                                          rf"nothing listens on 127.0.0.1:{closed_port} \(connection refused"):
        LiveSource(f"rtsp://admin:secret@127.0.0.1:{closed_port}/cam", opener=_refuse)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert sources.stream_diagnosis(f"http://127.0.0.1:{port}/video").startswith(
            f": 127.0.0.1:{port} answers, so the path, the user and password")


def test_a_stream_that_takes_the_connection_but_never_answers_is_not_said_to_refuse_the_url(monkeypatch):
    # A hung server (or another service's port) held the open for its whole timeout; it was said
    # to have "answered and refused the path, the user and password or the format".
    monkeypatch.setattr(sources, "STREAM_TIMEOUT_MS", 200)

    def hangs(target):
        time.sleep(0.2)
        raise SourceError("nope")

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with pytest.raises(SourceError, match=rf"cannot open stream http://127.0.0.1:{port}/video: 127.0.0.1:{port} "
                                              r"takes the connection but sent no stream within 0.2 s"):
            LiveSource(f"http://127.0.0.1:{port}/video", opener=hangs)
        with pytest.raises(SourceError, match="answers, so the path"):  # refused at once: the URL is wrong
            LiveSource(f"http://127.0.0.1:{port}/video", opener=_refuse)


def test_stream_diagnosis_names_a_host_that_does_not_resolve(monkeypatch):
    def create_connection(address, timeout):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(sources.socket, "create_connection", create_connection)
    assert sources.stream_diagnosis("rtsp://camera.lan/live") == (
        ": the host name 'camera.lan' does not resolve (a typo, or no DNS)")


def test_stream_diagnosis_never_shows_a_password_taken_for_a_port():
    said = sources.stream_diagnosis("rtsp://admin:s3cret/cam")  # "@host" forgotten
    assert "malformed" in said and "s3cret" not in said
    assert sources.stream_diagnosis("udp://@:1234") == ""  # nothing to connect to


@pytest.mark.parametrize("url", ["rtsp://user:pa/ss@camera.lan:554/stream", "rtsp://u:p@ss/word@camera.lan/x",
                                 "rtsp://u:p?ss@camera.lan/x", "rtsp://u:p#ss@camera.lan/x"])
def test_stream_diagnosis_names_the_real_host_when_the_password_has_url_punctuation(monkeypatch, url):
    # Parsed whole, the host ended at the password's "/": "ss" (part of it) was the host named.
    # FFmpeg ends it there too, so the camera was never asked: its answering proves nothing.
    monkeypatch.setattr(sources.socket, "create_connection", lambda *a, **k: pytest.fail("asked the camera"))
    said = sources.stream_diagnosis(url)
    port = 554 if "554" in url else sources.DEFAULT_PORTS["rtsp"]
    assert said == (f": FFmpeg cannot read a '/', '?' or '#' in the user or password, so camera.lan:{port} was not "
                    "asked: write them as %2F, %3F and %23")


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


def test_a_capture_clock_a_little_slow_never_jumps_the_time_like_a_stall():
    # An MJPEG stream over HTTP: FFmpeg times its frames at an assumed 25 fps (40 ms), the
    # camera sends 23.86 fps (41.9 ms). Re-anchored once it fell 1 s behind the read clock, the
    # time jumped 1,040 ms between two frames every 22 s, and the door cancelled the challenge
    # under way as a stalled stream (counted after 4 stalls: a live person locked out).
    n = 1500  # 63 s
    times = live_times([40.0 * (i + 1) for i in range(n)], [41.9 * i for i in range(n)])
    assert max(b - a for a, b in zip(times, times[1:])) < 50.0
    read = [41.9 * i for i in range(n)]
    assert all(r - 1000.0 <= t <= r for t, r in zip(times, read))
    # A real gap in the reads still shows as a gap.
    read = [41.9 * i + (1500.0 if i >= 600 else 0.0) for i in range(n)]
    times = live_times([40.0 * (i + 1) for i in range(n)], read)
    assert times[600] - times[599] == pytest.approx(1541.9)


def test_live_capture_times_that_are_not_finite_take_the_read_clock():
    # inf - inf is NaN: unchecked, one such reading would stamp a frame NaN.
    times = live_times([1000.0, float("inf"), float("nan"), 1100.0], [0.0, 50.0, 100.0, 150.0])
    assert all(math.isfinite(t) for t in times)
    assert times == pytest.approx([0.0, 50.0, 100.0, 150.0])


def blinks_seen(frames, states):
    """Blinks a Gate with scripted stages counts over these frames, eye states by frame index."""
    box = (100.0, 100.0, 200.0, 200.0)
    detector, encoder, eyes = FakeDetector(), FakeEncoder(), FakeEyes()
    detector.boxes, encoder.identity[box] = [box], vec(1)
    gate = Gate(recognizer=Recognizer([vec(1)], ["alice"]), encoder=encoder, detector=detector, eyes=eyes)
    blinks = 0
    for frame in frames:
        eyes.state[box] = states[frame.index]
        blinks += sum(ev.kind == "blink" for ev in gate.process(frame.image, frame.timestamp_ms).events)
    return blinks


def blinks_seen_live(capture_ms, read_ms, states):
    """Blinks a Gate (scripted stages) counts on a LiveSource with these capture/read times."""
    return blinks_seen(scripted_live(capture_ms, read_ms), states)


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


class FileCapture(StampedCapture):
    """A video file's capture: presentation times, and a header's frame rate and count."""

    def __init__(self, pts_ms, fps, count=None):
        super().__init__(pts_ms)
        self.header = {cv2.CAP_PROP_FPS: fps, cv2.CAP_PROP_FRAME_COUNT: len(pts_ms) if count is None else count}

    def isOpened(self):
        return True

    def get(self, prop):
        return self.header.get(prop, super().get(prop))


def scripted_file(tmp_path, monkeypatch, pts_ms, fps, count=None):
    path = tmp_path / "phone.mp4"
    path.write_bytes(b"")  # what the file holds is the fake capture's business
    monkeypatch.setattr(sources, "_open_capture", lambda _: FileCapture(pts_ms, fps, count))
    return VideoFileSource(path)


def test_a_blink_in_a_variable_rate_file_keeps_its_length(tmp_path, monkeypatch):
    # The header says 30 fps, but the phone recorded at 15 fps in dim light: one closed frame
    # between two open ones spans 133 ms. Timed by index / fps it would be 67 ms, under the
    # 80 ms minimum, and a real blink would be refused.
    n = 16
    pts = [66.7 * i for i in range(n)]
    states = [EyeState.CLOSED if i == 8 else EyeState.OPEN for i in range(n)]
    source = scripted_file(tmp_path, monkeypatch, pts, fps=30)
    assert blinks_seen(source, states) == 1
    by_index = [dataclasses.replace(f, timestamp_ms=f.index * 1000.0 / 30)
                for f in scripted_file(tmp_path, monkeypatch, pts, fps=30)]
    assert blinks_seen(by_index, states) == 0


def test_a_truncated_file_says_so(tmp_path, monkeypatch, caplog):
    whole = scripted_file(tmp_path, monkeypatch, [40.0 * i for i in range(10)], fps=25, count=10)
    assert len(list(whole)) == 10 and "stopped" not in caplog.text
    cut = scripted_file(tmp_path, monkeypatch, [40.0 * i for i in range(10)], fps=25, count=100)
    assert len(list(cut)) == 10
    assert "stopped after 10 of 100 frames" in caplog.text


def damaged_video(path, frames: int = 60) -> None:
    """A 20 fps clip with 8 KB in its middle zeroed: the decoder fails the reads of the frames
    there (a dozen) and decodes the ones after."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 20, (64, 48))
    for i in range(frames):
        writer.write(np.random.default_rng(i).integers(0, 255, (48, 64, 3), np.uint8))
    writer.release()
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 8000] = bytes(8000)
    path.write_bytes(bytes(data))


def test_a_damaged_patch_in_a_video_skips_its_frames_not_the_rest_of_the_clip(tmp_path, caplog):
    """The first failed read ended the file: the clip's second half, and a blink in it, went unseen."""
    damaged_video(tmp_path / "clip.mp4")
    with VideoFileSource(tmp_path / "clip.mp4") as source:
        times = [f.timestamp_ms for f in source]
    assert source.skipped_frames > 0 and len(times) + source.skipped_frames == 60
    assert source.truncated and f"{source.skipped_frames} frames could not be decoded" in caplog.text
    assert "stopped after" not in caplog.text
    # The frames after the patch keep their times: the hole shows as a gap, not a blink squeezed shut.
    assert max(b - a for a, b in zip(times, times[1:])) == pytest.approx(50.0 * (source.skipped_frames + 1))


def test_a_variable_rate_recording_is_timed_by_its_container():
    clip = shared("blink-videos", "blink-detector.mp4")  # a webcam recording, 23.9 fps nominal
    cap = cv2.VideoCapture(str(clip))
    pts = []
    while cap.read()[0]:
        pts.append(cap.get(cv2.CAP_PROP_POS_MSEC))
    with VideoFileSource(clip) as source:
        times = [f.timestamp_ms for f in source]
        fps = source.fps
    assert times == pytest.approx([t - pts[0] for t in pts], abs=1e-3)
    # The frames are not evenly spaced (41-58 ms apart), so index / fps would misplace some.
    assert max(abs(t - i * 1000.0 / fps) for i, t in enumerate(times)) > 10.0


def test_a_stream_password_never_reaches_the_description(caplog):
    from blinkgate.sources import redact_url

    assert redact_url("rtsp://admin:hunter2@10.0.0.5:554/s1") == "rtsp://***@10.0.0.5:554/s1"
    assert redact_url("http://cam.local/video?token=abc&x=1") == "http://cam.local/video?***"
    assert redact_url("rtsp://10.0.0.5/s1") == "rtsp://10.0.0.5/s1"
    assert redact_url("/videos/door.mp4") == "/videos/door.mp4" and redact_url("C:\\v\\a.mp4") == "C:\\v\\a.mp4"
    def down(_):
        raise SourceError("down")

    opens = iter([lambda _: FakeCapture(frames=1)])
    src = LiveSource("rtsp://admin:hunter2@10.0.0.5/s1", max_retries=1, opener=lambda t: next(opens, down)(t),
                     sleep=lambda s: None)
    assert src.description == "rtsp://***@10.0.0.5/s1"  # goes to logs, the UI title, the access log, unlocks
    with pytest.raises(SourceError) as err:
        list(src)
    assert "hunter2" not in caplog.text + str(err.value) and "***@10.0.0.5" in caplog.text

    with pytest.raises(SourceError) as err:
        LiveSource("rtsp://admin:hunter2@10.0.0.5/s1", opener=down)
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize("url, shown", [
    ("rtsp://admin:pa/ss3cret@cam/live", "rtsp://***@cam/live"),  # "/" in the password: it was the path
    ("rtsp://admin:pa#ss3cret@cam/live", "rtsp://***@cam/live"),  # "#": the rest was a fragment
    ("rtsp://admin:pa?ss3cret@cam/live?x=1", "rtsp://***@cam/live?***"),
    ("rtsp://admin:ss3cret@[fe80::1/live", "rtsp://***@[fe80::1/live"),  # unparsable: it came back whole
    ("rtsp://[fe80::1/live?token=ss3cret", "rtsp://[fe80::1/live?***"),
])
def test_a_stream_password_with_url_punctuation_or_a_malformed_url_is_never_shown(url, shown):
    assert sources.redact_url(url) == shown


class RealtimeCapture:
    """A camera giving a frame every ``period_s`` of real time, queued until read; each frame's
    pixels hold its number (mod 256). Records whether it was released while a read was under way."""

    def __init__(self, period_s=0.01, frames=None):
        self.period_s, self.left = period_s, frames
        self.started, self.last = time.monotonic(), 0
        self.reading = self.released_mid_read = False
        self.released = threading.Event()

    def produced(self) -> int:
        return int((time.monotonic() - self.started) / self.period_s)

    def read(self):
        self.reading = True
        try:
            if self.left is not None:
                if self.left <= 0:
                    return False, None
                self.left -= 1
            n = self.last = self.last + 1  # frames queue up (a stream's buffers) until read
            time.sleep(max(0.0, self.started + n * self.period_s - time.monotonic()))
            return True, np.full((4, 4, 3), n % 256, np.uint8)
        finally:
            self.reading = False

    def get(self, prop):
        return 0.0

    def release(self):
        self.released_mid_read |= self.reading
        self.released.set()


def test_a_slow_gate_on_a_camera_skips_stale_frames_instead_of_falling_behind(monkeypatch):
    # A 100 fps camera and a gate that spends 40 ms a frame. Read in turn, the frames it gets fall
    # further behind with every one (next test; on a real stream the backlog reached 1.8 s,
    # longer than a challenge gives a person to react). open_source keeps it within
    # MAX_BEHIND_MS of the newest (50 ms here), taking frames evenly.
    camera = RealtimeCapture(period_s=0.01)
    monkeypatch.setattr(sources, "_open_capture", lambda target: camera)
    monkeypatch.setattr(sources, "MAX_BEHIND_MS", 50.0)
    source = open_source(0)
    behind, numbers = [], []
    try:
        for frame in itertools.islice(source, 8):
            behind.append(camera.produced() - int(frame.image[0, 0, 0]))  # < 256 frames in this test
            numbers.append(frame.index)
            time.sleep(0.04)
    finally:
        source.close()
    assert max(behind[1:]) <= 5 + 3  # the window, and a little for a loaded machine
    assert all(b - a >= 2 for a, b in zip(numbers[1:], numbers[2:]))  # stale ones were skipped
    assert camera.released.wait(5) and not camera.released_mid_read


def test_a_short_stall_in_the_gate_skips_no_frame(monkeypatch):
    # A blink in the frames that arrive while the gate is busy for 150 ms must still be seen.
    camera = RealtimeCapture(period_s=0.01)
    monkeypatch.setattr(sources, "_open_capture", lambda target: camera)
    source = open_source(0)
    numbers = []
    try:
        for frame in itertools.islice(source, 40):
            numbers.append(frame.index)
            if len(numbers) == 10:
                time.sleep(0.15)
    finally:
        source.close()
    assert numbers == list(range(numbers[0], numbers[0] + 40))


def test_frames_that_queue_while_the_caller_gets_ready_are_dropped_not_squeezed_together(monkeypatch, caplog):
    # `run` opens the stream, then builds its Gate (~3 s; 0.3 s here). The frames queued meanwhile
    # were read back to back at the first take, stamped 1-6 ms apart: half a second of video as
    # 40 ms, a blink in it as a flicker, and the gate warned its clock could not be in milliseconds.
    camera = RealtimeCapture(period_s=0.01)
    monkeypatch.setattr(sources, "_open_capture", lambda target: camera)
    monkeypatch.setattr(sources, "DROP_REPORT_S", 0.2)
    source = open_source(0)
    time.sleep(0.3)
    try:
        with caplog.at_level("DEBUG", logger="blinkgate.sources"):
            frames = list(itertools.islice(source, 40))
    finally:
        source.close()
    assert frames[0].index >= 10  # the ones from the start were stale
    assert frames[9].timestamp_ms - frames[0].timestamp_ms >= 60.0  # 10 frames of a 100 fps camera: 90 ms
    assert "slower than the camera" not in caplog.text  # those dropped were not the gate falling behind


def test_a_live_source_read_in_turn_falls_behind(monkeypatch):
    # The same camera and gate without the reading thread: what open_source gave before.
    camera = RealtimeCapture(period_s=0.01)
    source = LiveSource(0, opener=lambda target: camera)
    behind = []
    for frame in itertools.islice(source, 8):
        behind.append(camera.produced() - (frame.index + 1))
        time.sleep(0.04)
    source.close()
    assert behind[-1] >= 20  # 3 frames behind for each one taken


def test_a_camera_that_is_lost_ends_the_newest_frame_reader_with_its_error():
    opened = []

    def opener(target):
        opened.append(target)
        if len(opened) == 1:
            return RealtimeCapture(period_s=0.001, frames=3)
        raise SourceError("down")

    source = LiveSource(0, max_retries=2, opener=opener, sleep=lambda s: None, fresh_only=True)
    with pytest.raises(SourceError, match="lost after 2 reconnect"):
        for _ in source:
            pass
    source.close()
    assert len(opened) == 3


def test_closing_a_camera_mid_read_leaves_the_release_to_the_reading_thread():
    # OpenCV must not release a capture another thread is reading from; the reader releases it
    # when its read returns, and close() does not wait for a stream's 10 s read timeout.
    gate_open = threading.Event()

    class StuckCapture(RealtimeCapture):
        def read(self):
            if self.left == 0:  # the first frame came; now the stream stalls
                self.reading = True
                gate_open.wait(10)
                self.reading = False
                return False, None
            return super().read()

    camera = StuckCapture(period_s=0.001, frames=1)
    source = LiveSource(0, opener=lambda target: camera, fresh_only=True)
    next(iter(source))
    time.sleep(0.05)  # the thread is now inside the stuck read
    source.close()
    assert camera.reading  # close() returned with the read still stuck: it did not wait for it
    assert not camera.released.is_set()
    gate_open.set()
    assert camera.released.wait(5) and not camera.released_mid_read


def test_a_read_that_fails_because_the_camera_was_closed_is_not_reported_as_a_drop(caplog):
    # A stalled stream's read returns its failure after close(): that is the shutdown, not an
    # outage. It logged "camera 0 dropped; reconnect 1/10" after verify had already exited.
    gate_open = threading.Event()

    class StuckCapture(RealtimeCapture):
        def read(self):
            if self.left == 0:
                gate_open.wait(10)
                return False, None
            return super().read()

    camera = StuckCapture(period_s=0.001, frames=1)
    source = LiveSource(0, opener=lambda target: camera, fresh_only=True)
    next(iter(source))
    time.sleep(0.05)
    with caplog.at_level("WARNING", logger="blinkgate.sources"):
        source.close()
        gate_open.set()
        assert camera.released.wait(5)
        source._reader._thread.join(5)
    assert not source._reader._thread.is_alive()
    assert "dropped" not in caplog.text and "reconnect" not in caplog.text


def test_a_gate_too_slow_to_see_blinks_is_warned_about_once(monkeypatch, caplog):
    # 100 fps camera, a gate at ~7 frames a second, reported every 0.3 s instead of every minute.
    camera = RealtimeCapture(period_s=0.01)
    monkeypatch.setattr(sources, "_open_capture", lambda target: camera)
    monkeypatch.setattr(sources, "DROP_REPORT_S", 0.3)
    source = open_source(0)
    with caplog.at_level("DEBUG", logger="blinkgate.sources"):
        for _ in itertools.islice(source, 8):
            time.sleep(0.15)
    source.close()
    said = [r for r in caplog.records if "slower than the camera" in r.getMessage()]
    assert said[0].levelname == "WARNING" and "blinks are missed" in said[0].getMessage()
    assert len(said) >= 2 and all(r.levelname == "DEBUG" for r in said[1:])


def test_a_capture_release_that_fails_ends_the_fresh_reader_instead_of_hanging_the_gate():
    # on_end (the capture's release) raising left the queue never marked done: take() then
    # waited for ever, a door frozen with no error (Ctrl-C aside).
    from blinkgate.sources import FreshQueue

    def release():
        raise RuntimeError("release failed")

    reader = FreshQueue(iter([1]), name="t", max_behind_s=1.0, on_end=release)
    got: list = []

    def consume():
        try:
            while (item := reader.take()) is not None:
                got.append(item)
            got.append("end")
        except RuntimeError as err:
            got.append(str(err))

    worker = threading.Thread(target=consume, daemon=True)
    worker.start()
    worker.join(5)
    assert not worker.is_alive() and got[0] == 1 and got[-1] in ("end", "release failed")


def _read_camera(monkeypatch, caplog, period_s: float, report_s: float, frames: int) -> list:
    """The log records of reading ``frames`` frames from a camera giving one every ``period_s``,
    with the frame-rate report every ``report_s`` instead of every minute."""
    camera = RealtimeCapture(period_s=period_s)
    monkeypatch.setattr(sources, "_open_capture", lambda target: camera)
    monkeypatch.setattr(sources, "DROP_REPORT_S", report_s)
    source = open_source(0)
    with caplog.at_level("DEBUG", logger="blinkgate.sources"):
        for _ in itertools.islice(source, frames):
            pass
    source.close()
    return caplog.records


def test_a_camera_too_slow_to_see_blinks_is_warned_about_once(monkeypatch, caplog):
    """A webcam in dim light drops to 5-8 fps; the gate keeps up, so only the slow-gate warning
    existed and nothing said why blinks went unseen."""
    records = _read_camera(monkeypatch, caplog, period_s=0.2, report_s=0.5, frames=12)  # 5 fps
    said = [r for r in records if "frames a second" in r.getMessage()]
    assert len(said) == 1 and said[0].levelname == "WARNING" and "blinks are missed" in said[0].getMessage()
    assert not [r for r in records if "slower than the camera" in r.getMessage()]


def test_a_camera_fast_enough_is_not_warned_about(monkeypatch, caplog):
    records = _read_camera(monkeypatch, caplog, period_s=0.02, report_s=0.3, frames=40)  # 50 fps
    assert not [r for r in records if "frames a second" in r.getMessage()]


def test_a_frame_folder_loop_after_a_break_goes_on_where_the_last_one_stopped(tmp_path):
    """A second loop over a frame folder started again at frame 0 with times from 0, which the
    Gate refuses ("timestamps must increase"); a video's goes on."""
    for i in range(6):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), np.full((8, 8, 3), i, np.uint8))
    src = FolderSource(tmp_path, fps=10)
    for frame in src:
        if frame.index == 2:
            break
    rest = list(src)
    assert [f.index for f in rest] == [3, 4, 5] and rest[0].timestamp_ms == pytest.approx(300.0)
    assert list(src) == []


def test_a_missing_recording_is_not_called_a_camera(tmp_path):
    # check takes no cameras: "no such file, folder or camera" sent its users looking for one
    from blinkgate.sources import SourceError, open_recording_path

    with pytest.raises(SourceError, match=r"^no such file or folder: "):
        open_recording_path(tmp_path / "nosuch.mp4")
    with pytest.raises(SourceError, match="no such file, folder or camera"):
        open_source(str(tmp_path / "nosuch.mp4"))


def test_the_capture_clock_never_gives_two_frames_the_same_time():
    """Two frames read at once with no capture time (a driver's queue emptied back to back):
    the gate expects strictly increasing times."""
    from blinkgate.sources import CaptureClock

    clock = CaptureClock()
    times = [clock.stamp(math.nan, 500.0), clock.stamp(math.nan, 500.0), clock.stamp(0.0, 500.0)]
    assert times[0] == 500.0 and times[0] < times[1] < times[2]
