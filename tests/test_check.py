"""Batch verdicts: what `blinkgate check` prints and returns for each source."""

import contextlib
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from blinkgate.check import FaceVerdict, Verdict, check_source, open_recording
from blinkgate.errors import BlinkgateError, SourceError
from blinkgate.gate import Gate, GateOptions
from blinkgate.recognize import Recognizer
from blinkgate.sources import FolderSource, Frame, FrameSource, VideoFileSource
from fakes import FRAME, FakeDetector, FakeEncoder, FakeEyes, noise_clip, vec
from test_sources import damaged_video


def test_a_verdict_counts_in_words():
    one = Verdict("clip.mp4", frames=1, faces=[FaceVerdict(1, None, blinks=1)])
    assert "(1 frame, 1 face, 1 blink)" in one.format()
    assert "(0 frames, 0 faces, 0 blinks)" in Verdict("clip.mp4").format()


def test_a_face_never_live_on_blurred_eyes_is_told_why():
    blurred = Verdict("clip.mp4", frames=90, faces=[FaceVerdict(1, "alice", frames=90, eyes_blurred=True)])
    assert blurred.format().endswith("0 blinks; eyes too blurred to see a blink)")
    assert blurred.to_json()["faces"][0]["eyes_blurred"] is True
    sharp = Verdict("clip.mp4", frames=90, faces=[FaceVerdict(1, "alice", frames=90)])
    assert "blurred" not in sharp.format()
    # Once live, blur earlier in the clip is no reason to give.
    live = Verdict("clip.mp4", frames=90, live=True,
                   faces=[FaceVerdict(1, "alice", blinks=1, live=True, first_live_s=1.0, frames=90, eyes_blurred=True)])
    assert "blurred" not in live.format()
    # Nor when another face is the live one: a photo pasted over a granted face's track is blurred.
    swapped = Verdict("clip.mp4", frames=90, live=True, granted=True,
                      faces=[FaceVerdict(1, "bd", blinks=2, live=True, granted=True, first_live_s=1.0, frames=60),
                             FaceVerdict(1, "Halle_Berry", frames=30, eyes_blurred=True)])
    assert swapped.format().startswith("clip.mp4: LIVE, granted: bd (") and "blurred" not in swapped.format()
    assert set(live.to_json()["faces"][0]) == {"track", "name", "blinks", "live", "granted", "first_live_s",
                                               "eyes_blurred"}


class Frames(FrameSource):
    def __init__(self, n: int):
        self.n, self.description = n, "frames"

    def __iter__(self):
        return (Frame(FRAME, i * 33.3, i) for i in range(self.n))


def test_check_source_says_eyes_blurred_when_most_frames_were():
    floor = GateOptions().blink.min_sharpness
    box = (100.0, 100.0, 200.0, 200.0)
    detector, encoder, eyes = FakeDetector(), FakeEncoder(), FakeEyes()
    detector.boxes, encoder.identity[box] = [box], vec(1)
    gate = Gate(recognizer=Recognizer([vec(1)], ["alice"]), encoder=encoder, detector=detector, eyes=eyes)
    eyes.sharpness[box] = floor * 0.5
    verdict = check_source(gate, Frames(30))
    assert [f.eyes_blurred for f in verdict.faces] == [True] and not verdict.live
    eyes.sharpness[box] = floor * 2
    assert [f.eyes_blurred for f in check_source(gate, Frames(30)).faces] == [False]



def test_an_input_the_system_cannot_read_is_a_source_error(tmp_path, monkeypatch):
    """A name too long or a folder without read permission raised OSError: a traceback that
    ended the whole batch, where the README promises an error line and the batch going on."""
    with pytest.raises(SourceError, match="too long"):
        open_recording(str(tmp_path / ("x" * 300 + ".mp4")), fps=20)

    def refuse(self):
        raise PermissionError(13, "Permission denied", str(self))

    (tmp_path / "frames").mkdir()
    monkeypatch.setattr(Path, "iterdir", refuse)  # as root, chmod 000 does not stop a listing
    with pytest.raises(SourceError, match="Permission denied"):
        open_recording(str(tmp_path / "frames"), fps=20)


def test_a_recording_named_like_a_camera_index_is_a_recording(tmp_path, monkeypatch):
    """`check 1001 2002` (inputs named by case number) said "1001 is a camera or a stream"."""
    monkeypatch.chdir(tmp_path)
    Path("1001").mkdir()
    cv2.imwrite("1001/f1.png", FRAME)
    writer = cv2.VideoWriter("clip.avi", cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    Path("clip.avi").rename("2002")
    with open_recording("1001", fps=20) as folder, open_recording("2002", fps=20) as video:
        assert isinstance(folder, FolderSource) and isinstance(video, VideoFileSource)
    Path("2002").rename(" 2002")  # a name that starts with a space is opened as given, not as camera 2002
    with open_recording(" 2002", fps=20) as video:
        assert isinstance(video, VideoFileSource)
    with pytest.raises(SourceError, match="camera or a stream"):
        open_recording("3003", fps=20)  # nothing of that name: a camera, which check refuses
    with pytest.raises(SourceError, match="camera or a stream"):
        open_recording(" 3003", fps=20)  # likewise with a stray space
    with pytest.raises(SourceError, match="empty source"):
        open_recording(" ", fps=20)


def test_a_file_cut_short_is_judged_and_says_so(tmp_path):
    """A damaged upload was judged "not live" on its first half with only a log line: the
    --json line read like a whole recording's verdict."""
    clip = tmp_path / "clip.avi"
    noise_clip(clip, 40, 25)
    whole = clip.read_bytes()
    gate = Gate(recognizer=Recognizer([], []), encoder=FakeEncoder(), detector=FakeDetector(), eyes=FakeEyes())
    with open_recording(str(clip), fps=20) as source:
        verdict = check_source(gate, source)
    assert verdict.frames == 40 and verdict.to_json()["truncated"] is False and "truncated" not in verdict.format()
    clip.write_bytes(whole[: len(whole) // 2])
    with open_recording(str(clip), fps=20) as source:
        verdict = check_source(gate, source)
    assert 0 < verdict.frames < 40 and verdict.to_json()["truncated"] is True
    assert verdict.format().endswith("; truncated: the decoder stopped early)")


def test_a_damaged_file_is_judged_on_all_it_can_decode_and_says_frames_were_skipped(tmp_path):
    damaged_video(tmp_path / "clip.mp4")
    gate = Gate(recognizer=Recognizer([], []), encoder=FakeEncoder(), detector=FakeDetector(), eyes=FakeEyes())
    with open_recording(str(tmp_path / "clip.mp4"), fps=20) as source:
        verdict = check_source(gate, source)
    skipped = 60 - verdict.frames
    assert 0 < skipped < 30 and verdict.to_json()["truncated"] is True and "skipped_frames" not in verdict.to_json()
    assert verdict.format().endswith(f"; damaged: {skipped} frames could not be decoded and were skipped)")


def test_a_file_that_kills_its_worker_is_an_error_line_and_the_batch_goes_on(tmp_path):
    """One corrupt video crashing a decoder in `check --jobs 2` ended the batch ("a worker died")."""
    from blinkgate.check import check_in_parallel
    from fakes import crash_on_name_gate

    specs = []
    for name in ("a", "crash", "b", "c"):
        folder = tmp_path / name
        folder.mkdir()
        cv2.imwrite(str(folder / "0001.png"), np.zeros((48, 64, 3), np.uint8))
        specs.append(str(folder))
    out = list(check_in_parallel(specs, crash_on_name_gate, 10.0, 2))
    assert [spec for spec, *_ in out] == specs
    assert [verdict is not None for _, verdict, _, _ in out] == [True, False, True, True]
    assert "worker process died" in out[1][2]


def test_a_batch_whose_workers_keep_dying_exits_1_as_one_stopped_not_2_as_one_done(tmp_path, capsys, monkeypatch):
    """It exited 2, the code of a batch that ended with some input unusable."""
    import blinkgate.check as check
    from blinkgate.cli import main
    from blinkgate.errors import BatchStopped

    def dying(*_args, **_kw):
        yield str(tmp_path), None, "its worker process died", []
        raise BatchStopped("a worker process died on each of 3 inputs in a row; rerun with fewer --jobs or without")

    monkeypatch.setattr(check, "check_in_parallel", dying)
    clips = [tmp_path / f"{i}.mp4" for i in range(3)]
    for clip in clips:
        clip.write_bytes(b"x")
    assert main(["check", *map(str, clips), "--jobs", "2", "--db", str(tmp_path / "none.db")]) == 1
    assert "died on each of 3 inputs in a row" in capsys.readouterr().err


def test_a_named_pipe_is_refused_not_waited_on_for_good(tmp_path):
    """Opened in native code, a FIFO with no writer blocked the batch, Ctrl-C and all."""
    import threading

    fifo = tmp_path / "clip.mp4"
    os.mkfifo(fifo)

    done = threading.Event()

    def writer():  # serves any reader a few bytes and an end: a regression fails this test, not hangs it
        while not done.is_set():
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # fails while no one reads
            except OSError:
                time.sleep(0.01)
                continue
            with contextlib.suppress(OSError):
                os.write(fd, b"not a video")
            os.close(fd)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        with pytest.raises(SourceError, match="pipe or socket"):
            open_recording(str(fifo), fps=20)
    finally:
        done.set()
        thread.join(5)


def test_a_name_with_a_line_break_keeps_its_verdict_on_one_line():
    # `--null` lets such names in; text output printed them raw, two lines for one input.
    line = Verdict("two\nlines.mp4", frames=3).format()
    assert "\n" not in line and line.startswith("two\\nlines.mp4: ")


def test_an_input_list_is_one_a_line_or_separated_by_nul():
    """`check --files-from`: a batch of 100k paths is past the command line's limit."""
    from blinkgate.check import read_input_list

    assert read_input_list(b"a.mp4\nwith space.mp4\n\nc/\n") == ["a.mp4", "with space.mp4", "c/"]
    # find -print0: a name may hold a newline, never a NUL.
    assert read_input_list(b"new\nline.mp4\0b.mp4\0", null=True) == ["new\nline.mp4", "b.mp4"]
    # Not UTF-8: decoded as the command line does, so the input gets its own error line.
    assert read_input_list(b"caf\xe9.mp4\n") == ["caf\udce9.mp4"]


def test_an_input_list_written_on_windows_ends_its_lines_with_crlf():
    """Every name of a list saved on Windows kept its "\r": each input was "not found"."""
    from blinkgate.check import read_input_list

    assert read_input_list(b"a.mp4\r\nwith space.mp4\r\n\r\nc/\r\n") == ["a.mp4", "with space.mp4", "c/"]
    assert read_input_list(b"unix.mp4\nwindows.mp4\r\n") == ["unix.mp4", "windows.mp4"]
    # A "\r" that does not end a line, or any in a NUL-separated list, is part of the name.
    assert read_input_list(b"odd\rname.mp4\n") == ["odd\rname.mp4"]
    assert read_input_list(b"odd\r\0name\r\n.mp4\0", null=True) == ["odd\r", "name\r\n.mp4"]


def test_read_done_takes_each_verdict_line_and_counts_the_lines_not_from_check(tmp_path):
    """`check --skip-done`: a batch stopped part-way went back to its first input."""
    from blinkgate.check import read_done

    out = tmp_path / "out.jsonl"
    out.write_text('{"source": "a.mp4", "frames": 3, "live": false, "stamp": [900, 7]}\n'
                   '{"source": "b.mp4", "error": "no such file", "stamp": null}\n'
                   'b.mp4: not live (3 frames)\n[1, 2]\n\n'
                   '{"source": "c.mp4", "fra')  # cut short by a full disk: c is not done
    done = read_done(out)
    assert done.sources == {"a.mp4": [900, 7]} and done.bad_lines == 3 and done.ends_cut
    assert read_done(tmp_path / "none.jsonl").sources == {}  # a cron job's first run
    with pytest.raises(BlinkgateError, match="--skip-done .*: cannot read it"):
        read_done(tmp_path)


def test_read_done_takes_an_input_whose_last_line_is_an_error_as_not_done(tmp_path):
    """An error line counted as done: a resumed batch skipped the inputs that had failed on a
    passing read error (an NFS hiccup) and exited 0 as if all were judged."""
    from blinkgate.check import read_done

    out = tmp_path / "out.jsonl"
    out.write_text('{"source": "failed.mp4", "error": "cannot open", "stamp": [1, 2, 3, 4]}\n'
                   '{"source": "then.mp4", "error": "cannot open", "stamp": [5, 6, 7, 8]}\n'
                   '{"source": "then.mp4", "frames": 3, "live": false, "stamp": [5, 6, 7, 8]}\n'
                   '{"source": "since.mp4", "frames": 3, "live": false, "stamp": [9, 9, 9, 9]}\n'
                   '{"source": "since.mp4", "error": "cannot open", "stamp": [9, 9, 9, 9]}\n')
    assert read_done(out).sources == {"then.mp4": [5, 6, 7, 8]}  # each input's last line counts


def test_an_input_put_back_with_its_size_and_time_kept_has_another_stamp(tmp_path):
    """`check --skip-done` skips by the stamp: a new upload copied in with the old one's size
    and time (`rsync -a` renames it into place) must not pass for the video checked."""
    import os

    from blinkgate.check import input_stamp

    clip, upload = tmp_path / "a.mp4", tmp_path / ".a.mp4.part"
    clip.write_bytes(b"1" * 100)
    upload.write_bytes(b"2" * 100)
    checked = input_stamp(str(clip))
    os.utime(upload, ns=(0, checked[2]))
    os.replace(upload, clip)
    assert input_stamp(str(clip)) != checked and input_stamp(str(clip))[1:3] == checked[1:3]
    assert input_stamp(str(tmp_path / "none.mp4")) is None  # a missing input is always checked again


def test_an_input_has_the_stamp_of_the_file_it_opens(tmp_path, monkeypatch):
    """The stamp was of the name as given: a name opened only once stripped ("a.mp4 ") or with
    "~" expanded (a list's "~/a.mp4") had none, so --skip-done checked it again on every run."""
    from blinkgate.check import input_stamp

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.mp4").write_bytes(b"1" * 100)
    stamp = input_stamp("a.mp4")
    assert stamp is not None
    assert input_stamp("a.mp4 ") == stamp and input_stamp("~/a.mp4") == stamp


class Scripted(FrameSource):
    """One frame per step (seed of who stands at ``BOX``, their eye state), set on the fakes
    just before the frame is handed on, as a clip showing that would."""

    BOX = (100.0, 100.0, 200.0, 200.0)

    def __init__(self, steps, encoder: FakeEncoder, eyes: FakeEyes):
        self.steps, self.encoder, self.eyes, self.description = steps, encoder, eyes, "scripted"

    def __iter__(self):
        for i, (seed, state) in enumerate(self.steps):
            self.encoder.identity[self.BOX] = vec(seed) if seed else vec(99) * 5  # 0: far from everyone
            self.eyes.state[self.BOX] = state
            yield Frame(FRAME, i * 33.3, i)


def swap_check(then: int):
    """check_source over alice blinking (granted), then, on the same track, person ``then``
    with eyes open past a re-check: a photo pasted over her face."""
    from blinkgate.types import EyeState

    O, C = EyeState.OPEN, EyeState.CLOSED
    detector, encoder, eyes = FakeDetector(), FakeEncoder(), FakeEyes()
    detector.boxes = [Scripted.BOX]
    gate = Gate(options=GateOptions(recheck_ms=500), recognizer=Recognizer([vec(1), vec(2)], ["alice", "bob"]),
                encoder=encoder, detector=detector, eyes=eyes)
    steps = [(1, O)] * 10 + [(1, C)] * 2 + [(1, O)] * 10 + [(then, O)] * 40
    return check_source(gate, Scripted(steps, encoder, eyes))


def test_a_face_swapped_for_another_on_its_track_is_not_granted_under_the_new_name():
    """A photo of Bob pasted over Alice's face after her blink keeps her track: the gate said
    identity_changed, but the verdict kept the track's grant and took Bob's name ("granted: bob")."""
    verdict = swap_check(then=2)
    assert [(f.track, f.name, f.granted, f.blinks) for f in verdict.faces] == [(1, "alice", True, 1), (1, "bob", False, 0)]
    assert "granted: alice (" in verdict.format()
    assert not verdict.faces[1].live and verdict.faces[1].first_live_s is None


def test_a_granted_face_that_turns_unknown_is_not_granted_and_its_line_prints():
    """A granted track re-checked as nobody enrolled kept its grant with name None: --json said
    "name": null, "granted": true, and the text line raised TypeError, ending the batch."""
    verdict = swap_check(then=0)
    assert [(f.name, f.granted) for f in verdict.faces] == [("alice", True), (None, False)]
    assert "granted: alice (" in verdict.format()
    assert not any(f["granted"] and f["name"] is None for f in verdict.to_json()["faces"])
    # Whatever made it, a verdict with a nameless grant prints its line and names no one.
    odd = Verdict("clip.mp4", frames=3, live=True, granted=True, faces=[FaceVerdict(1, None, live=True, granted=True)])
    assert odd.format().startswith("clip.mp4: LIVE (")


def test_a_frame_folder_whose_frames_were_written_over_in_place_has_another_stamp(tmp_path):
    """`check --skip-done` stamped a frame folder by its own stat only: frames overwritten in
    place leave the folder's times as they were, and the stale verdict was reused."""
    from blinkgate.check import input_stamp

    folder = tmp_path / "frames"
    folder.mkdir()
    for name in ("f1.png", "f2.png"):
        (folder / name).write_bytes(b"1" * 100)
    checked = input_stamp(str(folder))
    time.sleep(0.05)  # past the file system's clock tick
    frame = folder / "f2.png"
    kept = frame.stat().st_mtime_ns
    frame.write_bytes(b"2" * 100)  # the same size, and the old time put back: only the change time tells
    os.utime(frame, ns=(kept, kept))
    assert os.stat(folder).st_mtime_ns == checked[2]
    assert input_stamp(str(folder)) != checked


def test_a_frame_folder_with_undecodable_frames_is_judged_and_says_frames_were_skipped(tmp_path):
    """A damaged video's verdict said frames were skipped; a folder's said nothing, its
    --json "truncated" false, though it was judged without those frames."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in (1, 2, 4):
        cv2.imwrite(str(folder / f"f{i}.png"), np.zeros((48, 64, 3), np.uint8))
    (folder / "f3.png").write_bytes(b"\x89PNG broken")
    gate = Gate(recognizer=Recognizer([], []), encoder=FakeEncoder(), detector=FakeDetector(), eyes=FakeEyes())
    with open_recording(str(folder), fps=20) as source:
        verdict = check_source(gate, source)
    assert verdict.frames == 3 and verdict.to_json()["truncated"] is True
    assert verdict.format().endswith("; damaged: 1 frame could not be decoded and was skipped)")


class FaceScript:
    """A gate that reports the faces a script gives per frame: (track, name, live, granted, blurred)."""

    def __init__(self, frames: list[list[tuple]]):
        self.frames = frames

    def reset(self):
        pass

    def run(self, source):
        from blinkgate.types import EyeReading, EyeState, FaceResult, FrameResult

        for i, faces in enumerate(self.frames):
            results = [FaceResult(t, (0.0, 0.0, 10.0, 10.0), name, None, EyeReading(EyeState.OPEN), 0, live, granted,
                                  eyes_blurred=blurred) for t, name, live, granted, blurred in faces]
            yield Frame(FRAME, i * 50.0, i), FrameResult(i, i * 50.0, results, [])


def test_a_track_of_fewer_frames_than_the_floor_is_left_out_unless_it_went_live():
    from blinkgate.check import MIN_TRACK_FRAMES

    n = MIN_TRACK_FRAMES  # track 1 on n frames, 2 on one fewer, 3 on one frame, live there
    a, b, live = (1, "a", False, False, False), (2, "b", False, False, False), (3, None, True, False, False)
    frames = [[a] + [b] * (i < n - 1) + [live] * (i == 0) for i in range(n)]
    verdict = check_source(FaceScript(frames), Frames(0))
    assert [(f.track, f.frames) for f in verdict.faces] == [(1, n), (3, 1)]  # 2 had one frame too few
    assert verdict.live and verdict.faces[1].first_live_s == 0.0


def test_eyes_count_as_blurred_only_on_more_than_half_of_a_tracks_frames():
    half = [[(1, "a", False, False, i % 2 == 0)] for i in range(4)]
    assert [f.eyes_blurred for f in check_source(FaceScript(half), Frames(0)).faces] == [False]
    most = [[(1, "a", False, False, i < 3)] for i in range(4)]
    assert [f.eyes_blurred for f in check_source(FaceScript(most), Frames(0)).faces] == [True]


def test_a_grant_without_a_name_is_no_grant_in_the_verdict():
    """A grant is someone's: a nameless face the gate somehow called granted grants no one."""
    verdict = check_source(FaceScript([[(1, None, True, True, False)]] * 4), Frames(0))
    assert verdict.live and not verdict.granted and not verdict.faces[0].granted


def test_an_input_whose_stamp_cannot_be_read_is_never_done():
    """A missing input has no stamp (None), and a line recorded without one also has None: the
    two must not match, or an input gone missing and back would be skipped unchecked."""
    from blinkgate.check import DoneSources, is_done

    done = DoneSources(sources={"a.mp4": None, "b.mp4": [1, 2, 3, 4]})
    assert not is_done("a.mp4", done, None) and not is_done("c.mp4", done, None)
    assert is_done("b.mp4", done, [1, 2, 3, 4]) and not is_done("b.mp4", done, [1, 2, 3, 5])
