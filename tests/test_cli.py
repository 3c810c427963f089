"""The command line as a user runs it: exit codes, one-line errors, output formats."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from blinkgate import __version__
from blinkgate.cli import main

from conftest import clip_frame, shared


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and __version__ in capsys.readouterr().out


def test_verbose_goes_before_or_after_the_command():
    from blinkgate.cli import build_parser

    parse = build_parser().parse_args
    assert parse(["-v", "check", "a.mp4"]).verbose and parse(["check", "a.mp4", "-v"]).verbose
    assert not parse(["check", "a.mp4"]).verbose


def test_bad_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["check"])
    assert exc.value.code == 2


@pytest.mark.parametrize("option, value", [("--tolerance", "3"), ("--tolerance", "-1"), ("--tolerance", "nan"),
                                           ("--liveness", "0"), ("--liveness", "nan"), ("--fps", "inf"), ("--fps", "x")])
def test_gate_numbers_out_of_range_are_argument_errors(capsys, option, value):
    """A one-line usage error, not a traceback after the video has opened; and a tolerance that
    would name a stranger as the nearest enrolled person is refused."""
    with pytest.raises(SystemExit) as exc:
        main(["check", "clip.mp4", option, value])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and f"argument {option}" in err and "Traceback" not in err


@pytest.mark.parametrize("argv", [
    ["eval", "m.csv", "--time-limit", "-1"], ["eval", "m.csv", "--jobs", "0"], ["log", "--limit", "-1"],
    ["log", "--limit", "100000000000000000000000"],  # was "datatype mismatch" from SQLite
    ["simulate-attack", "p.jpg", "--out", "o", "--duration", "0"], ["simulate-attack", "p.jpg", "--out", "o", "--count", "0"],
    ["train-eyes", "cew", "--epochs", "-1"], ["train-eyes", "cew", "--calibration-folds", "-3"],
    # seeds numpy refuses: a traceback (train-eyes, after loading the data) or "sim-s-1-0000 failed"
    ["simulate-attack", "p.jpg", "--out", "o", "--seed", "-1"], ["train-eyes", "cew", "--seed", "-1"],
    ["train-eyes", "cew", "--seed", str(2**32)],
    ["door", "--mqtt-port", "99999"]])
def test_other_numbers_out_of_range_are_refused_before_any_work(capsys, argv):
    try:
        code = main(argv)  # door's settings are checked by config.resolve: an error line, exit 2
    except SystemExit as exc:  # the others by argparse: a usage line, exit 2
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and ("argument --" in err or "mqtt.port must be at most" in err), err


@pytest.mark.parametrize("value", ["inf", "nan", "1e999"])
def test_a_number_that_is_not_finite_is_refused_as_such(capsys, value):
    """`verify --timeout inf` said "inf must be above 0"."""
    with pytest.raises(SystemExit) as exc:
        main(["verify", "--timeout", value])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and f"argument --timeout: {value} is not a finite number" in err and "above" not in err


@pytest.mark.parametrize(("argv", "says"), [
    (["log", "--out", "face.jpg"], "give --snapshot ID too"),  # --out alone was ignored without a word
    (["log", "--snapshot", "1", "--prune"], "run one, then the other"),  # pruning could delete the snapshot
    # ignored before: `--prune --name bob` pruned everyone's snapshots, `--snapshot 3 --json` wrote a JPEG
    (["log", "--prune", "--name", "bob"], "--name chooses what the listing shows, not what --prune does"),
    (["log", "--snapshot", "3", "--json", "--since", "1h"], "--since, --json choose what the listing shows")])
def test_log_options_that_cannot_go_together_are_refused(capsys, tmp_path, argv, says):
    code, _, err = run(capsys, *argv, "--db", str(tmp_path / "f.db"))
    assert code == 2 and says in err


@pytest.mark.parametrize("argv, flag", [
    (["eval", "m.csv", "--report", "{bad}/report"], "--report"),
    (["simulate-attack", "p.jpg", "--out", "{bad}/sim"], "--out"),
    (["train-eyes", "cew", "--out", "{bad}/eyes.onnx"], "--out")])
def test_an_output_folder_that_cannot_be_written_fails_before_the_work(capsys, tmp_path, argv, flag):
    blocked = tmp_path / "file"
    blocked.write_text("a file where a folder should be")
    code, _, err = run(capsys, *[a.replace("{bad}", str(blocked)) for a in argv])
    assert code == 2 and err.startswith(f"blinkgate: error: {flag} {blocked}") and "not a folder" in err


@pytest.mark.parametrize("out", ["data/split.csv", "eyes.json", "folder"])
def test_train_eyes_out_must_be_an_onnx_file_before_any_work(capsys, tmp_path, monkeypatch, out):
    """A folder was a traceback after the whole training; any other name was written over: the
    data's split.csv, or a .json that the sidecar then replaced."""
    import blinkgate.train_eyes as te

    monkeypatch.setattr(te, "train_eyes", lambda *a, **k: pytest.fail("trained before --out was checked"))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "split.csv").write_text("path,label,group,split\n")
    (tmp_path / "folder").mkdir()
    code, _, err = run(capsys, "train-eyes", str(tmp_path / "data"), "--out", str(tmp_path / out))
    assert code == 2 and "give a .onnx file to write" in err
    assert (tmp_path / "data" / "split.csv").read_text() == "path,label,group,split\n"


def test_train_eyes_sidecar_that_is_a_folder_is_refused_before_any_work(capsys, tmp_path, monkeypatch):
    """eye.json a folder: an IsADirectoryError traceback after the whole training, whose model
    was then deleted."""
    import blinkgate.train_eyes as te

    monkeypatch.setattr(te, "train_eyes", lambda *a, **k: pytest.fail("trained before --out was checked"))
    (tmp_path / "eye.json").mkdir()
    code, _, err = run(capsys, "train-eyes", str(tmp_path), "--out", str(tmp_path / "eye.onnx"))
    assert code == 2 and f"its thresholds go in {tmp_path / 'eye.json'}, a folder" in err


@pytest.mark.parametrize("argv", [["train-eyes", "{data}", "--out", "{latin1}.onnx"],
                                  ["simulate-attack", "{data}", "--out", "{latin1}"]])
def test_an_out_whose_name_is_not_utf8_is_refused_before_opencv_crashes_on_it(capsys, tmp_path, monkeypatch, argv):
    """OpenCV segfaults on such a name: train-eyes after the whole training, simulate-attack at
    its first video."""
    import os

    import blinkgate.simulate as sim
    import blinkgate.train_eyes as te

    monkeypatch.setattr(te, "train_eyes", lambda *a, **k: pytest.fail("trained before --out was checked"))
    monkeypatch.setattr(sim, "simulate", lambda *a, **k: pytest.fail("rendered before --out was checked"))
    latin1 = os.fsdecode(str(tmp_path).encode() + b"/m\xe9")
    code, _, err = run(capsys, *[a.replace("{data}", str(tmp_path)).replace("{latin1}", latin1) for a in argv])
    assert code == 2 and "its name is not UTF-8, which OpenCV cannot take" in err


def test_eval_refuses_an_empty_manifest_and_exits_2_when_an_input_fails(capsys, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("id,source,label\n")
    code, _, err = run(capsys, "eval", str(empty), "-q")
    assert code == 2 and "no inputs" in err
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video" * 100)
    _blank_video(str(tmp_path / "room.avi"), 6)
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"id,source,label\nok,{tmp_path / 'room.avi'},live\nbroken,{broken},live\n")
    code, out, err = run(capsys, "eval", str(manifest), "-q", "--json")
    summary = json.loads(out)["summary"]
    assert code == 2 and list(summary["errors"]) == ["broken"]  # judged the rest, said which failed


def test_enroll_refuses_a_missing_folder_without_creating_a_database_and_skips_a_blank_name(capsys, tmp_path):
    db = tmp_path / "faces.db"
    code, _, err = run(capsys, "enroll", str(tmp_path / "nope"), "--db", str(db))
    assert code == 2 and "people directory not found" in err and not db.exists()
    blank = tmp_path / "people" / " "
    blank.mkdir(parents=True)
    (blank / "face.jpg").symlink_to(sorted(shared("faces", "lfw65", "Abdullah_Gul").glob("*.jpg"))[0])
    code, out, err = run(capsys, "enroll", str(blank.parent), "--db", str(db), "-q")
    assert code == 1 and "person folder name is blank" in out, err
    assert out.splitlines()[-1] == "0 added, 0 updated, 0 unchanged, 1 skipped: nothing enrolled, every photo or folder was skipped (why is above)"


def test_enroll_exits_1_when_no_photo_given_is_enrolled(capsys, tmp_path):
    """A script (`enroll people/ && systemctl start door`) went on with nobody enrolled: exit 0 on
    '0 added, ... 2 skipped'. Photos enrolled at an earlier run, with a bad one beside them, are fine."""
    people, db = tmp_path / "people", str(tmp_path / "faces.db")
    (people / "Ada").mkdir(parents=True)
    for name in ("blank.png", "black.png"):
        cv2.imwrite(str(people / "Ada" / name), np.zeros((200, 200, 3), np.uint8))
    code, out, _ = run(capsys, "enroll", str(people), "--db", db, "-q")
    assert code == 1 and "2 skipped: nothing enrolled" in out.splitlines()[-1]
    (people / "Ada" / "a.jpg").symlink_to(shared("faces", "lfw65", "Abdullah_Gul", "Abdullah_Gul_0001.jpg"))
    code, out, _ = run(capsys, "enroll", str(people), "--db", db, "-q")
    assert code == 0 and out.splitlines()[-1] == "1 added, 0 updated, 0 unchanged, 2 skipped"
    code, out, _ = run(capsys, "enroll", str(people), "--db", db, "-q")
    assert code == 0 and out.splitlines()[-1] == "0 added, 0 updated, 1 unchanged, 2 skipped"
    (people / "Bob").mkdir()  # a new person whose one photo has no face, beside Ada enrolled well
    cv2.imwrite(str(people / "Bob" / "blank.png"), np.zeros((200, 200, 3), np.uint8))
    code, out, _ = run(capsys, "enroll", str(people), "--db", db, "-q")
    assert code == 1 and "Bob is not enrolled: none of their photos was usable" in out


def test_a_blank_source_is_refused_not_read_as_the_current_folder(capsys, tmp_path):
    code, _, err = run(capsys, "check", " ", "--db", str(tmp_path / "none.db"))
    assert code == 2 and "empty source" in err


def test_eval_blinks_on_a_clip_without_labelled_blinks_prints_its_table(capsys, tmp_path):
    clip = shared("blink-videos", "liveportrait-d3.mp4")
    (tmp_path / "liveportrait-d3.csv").write_text("start_frame,end_frame,peak_frame,kind,confidence,note\n")
    code, out, err = run(capsys, "eval-blinks", str(clip), "--labels", str(tmp_path))
    assert code == 0 and "0 labelled" in out and "closed frames read closed —" in out, err


def test_eval_bad_regex_and_binary_manifest_are_one_line_errors(capsys, tmp_path):
    clip = tmp_path / "room.avi"
    _blank_video(str(clip), 3)
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"id,source,label\nok,{clip},live\n")
    code, _, err = run(capsys, "eval", str(manifest), "--only", "(", "-q")
    assert code == 2 and "is not a regular expression" in err
    for name in ("binary.csv", "binary.toml"):
        (tmp_path / name).write_bytes(bytes(range(256)) * 4)
        code, _, err = run(capsys, "eval", str(tmp_path / name), "-q")
        assert code == 2 and "is not UTF-8 text" in err and "Traceback" not in err


def test_check_missing_input_is_one_line_and_exit_2(capsys, tmp_path):
    code, out, err = run(capsys, "check", str(tmp_path / "nope.mp4"), "--db", str(tmp_path / "f.db"))
    assert code == 2 and out == ""
    assert err.strip().count("\n") == 0 and "no such file" in err


def test_check_not_a_video_exit_2(capsys, tmp_path):
    bad = tmp_path / "x.mp4"
    bad.write_bytes(b"\x00" * 1000)
    code, _, err = run(capsys, "check", str(bad), "--db", str(tmp_path / "f.db"))
    assert code == 2 and "video" in err


def _blank_video(path, frames: int) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 20, (64, 48))
    for _ in range(frames):
        writer.write(np.full((48, 64, 3), 90, np.uint8))
    writer.release()


def test_check_reports_an_unusable_input_and_goes_on(capsys, tmp_path):
    broken, room, missing = tmp_path / "broken.mp4", tmp_path / "room.avi", tmp_path / "nope.mp4"
    broken.write_bytes(b"garbage, not an mp4")
    _blank_video(room, frames=12)
    code, out, err = run(capsys, "check", str(broken), str(room), str(missing), "--json", "-q",
                         "--db", str(tmp_path / "none.db"))
    assert code == 2  # some input was unusable
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["source"] for line in lines] == [str(broken), str(room), str(missing)]
    assert "cannot open" in lines[0]["error"] and "no such file" in lines[2]["error"]
    assert lines[1]["frames"] == 12 and lines[1]["live"] is False and "error" not in lines[1]
    assert err.count("blinkgate: error:") == 2


def test_check_in_parallel_prints_the_same_lines_in_input_order(capsys, tmp_path):
    inputs = []
    for i, frames in enumerate((8, 3, 5)):
        inputs.append(str(tmp_path / f"room{i}.avi"))
        _blank_video(inputs[-1], frames)
    inputs.insert(1, str(tmp_path / "nope.mp4"))
    args = ["check", *inputs, "--json", "-q", "--db", str(tmp_path / "none.db")]
    one = run(capsys, *args)
    two = run(capsys, *args, "--jobs", "2")
    assert one[0] == two[0] == 2 and one[1] == two[1]
    assert [json.loads(line).get("frames") for line in two[1].splitlines()] == [8, None, 3, 5]
    assert two[2].count("blinkgate: error: no such file") == 1
    with pytest.raises(SystemExit) as exc:
        main([*args, "--jobs", "0"])
    assert exc.value.code == 2 and "argument --jobs: 0 must be at least 1" in capsys.readouterr().err


def test_check_refuses_a_camera_or_stream_it_would_watch_forever(capsys, tmp_path):
    code, out, err = run(capsys, "check", "0", "rtsp://127.0.0.1:9/none", "--db", str(tmp_path / "none.db"))
    assert code == 2 and out == ""
    assert err.count("is a camera or a stream: check takes recordings") == 2


def test_check_holds_one_input_open_at_a_time(capsys, tmp_path, monkeypatch):
    import blinkgate.check

    opened, most = [], []
    real_open = blinkgate.check.open_recording_path

    class Counted:
        def __init__(self, source):
            self.source = source
            opened.append(self)
            most.append(len(opened))

        def __getattr__(self, name):
            return getattr(self.source, name)

        def __iter__(self):
            return iter(self.source)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.source.close()
            opened.remove(self)

    monkeypatch.setattr(blinkgate.check, "open_recording_path", lambda spec, fps: Counted(real_open(spec, fps=fps)))
    clips = []
    for i in range(3):
        clips.append(str(tmp_path / f"clip{i}.avi"))
        _blank_video(clips[-1], frames=4)
    code, out, _ = run(capsys, "check", *clips, "-q", "--db", str(tmp_path / "none.db"))
    assert code == 0 and out.count("not live") == 3
    assert max(most) == 1 and not opened


def _fresh(*argv: str) -> subprocess.CompletedProcess:
    """blinkgate in a fresh process, as a user starts it (main() run in this one may have set
    the FFmpeg log variable, which children would inherit)."""
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_FFMPEG_LOGLEVEL"}
    return subprocess.run([sys.executable, "-m", "blinkgate", *argv], capture_output=True, text=True,
                          timeout=120, env=env)


def test_corrupt_video_is_one_line_without_ffmpeg_noise(tmp_path):
    """FFmpeg logs its own complaint about a broken MP4; only -v shows it beside ours."""
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"garbage, not an mp4")
    args = ["check", str(bad), "--db", str(tmp_path / "f.db")]
    quiet = _fresh(*args)
    assert quiet.returncode == 2 and quiet.stdout == ""
    assert quiet.stderr.strip().splitlines() == [
        f"blinkgate: error: cannot open {bad}: not a video OpenCV can read (damaged, cut short before its "
        "index was written, or in a format or codec its FFmpeg lacks)"]
    verbose = _fresh("-v", *args)
    assert verbose.returncode == 2 and "moov atom not found" in verbose.stderr
    empty = tmp_path / "upload.mp4"
    empty.touch()
    assert _fresh("check", str(empty), "--db", str(tmp_path / "f.db")).stderr.strip() == (
        f"blinkgate: error: cannot open {empty}: the file is empty (0 bytes: an upload or copy that did not finish?)")


def test_check_takes_its_inputs_from_a_file_or_stdin(capsys, tmp_path, monkeypatch):
    """100k selfie videos are past the command line's limit (`check many/*.mp4`: "Argument list
    too long"), and xargs split the batch into runs of ~2,600 with its own exit code."""
    import io

    room, spaced, odd = tmp_path / "room.avi", tmp_path / "with space.avi", tmp_path / "new\nline.avi"
    for clip, frames in ((room, 4), (spaced, 3), (odd, 5)):
        _blank_video(clip, frames)
    listed = tmp_path / "list.txt"
    listed.write_text(f"{spaced}\n\n{tmp_path / 'nope.mp4'}\n")
    db = ("--db", str(tmp_path / "none.db"))
    code, out, _ = run(capsys, "check", str(room), "--files-from", str(listed), "--json", "-q", *db)
    assert code == 2 and [json.loads(line).get("frames") for line in out.splitlines()] == [4, 3, None]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(f"{odd}\0{room}\0".encode())))
    code, out, _ = run(capsys, "check", "--files-from", "-", "--null", "--json", "-q", *db)
    assert code == 0 and [json.loads(line)["source"] for line in out.splitlines()] == [str(odd), str(room)]
    code, out, err = run(capsys, "check", "--files-from", str(tmp_path / "none.txt"), *db)
    assert code == 2 and out == "" and err.strip().splitlines() == [
        f"blinkgate: error: --files-from {tmp_path / 'none.txt'}: cannot read it (No such file or directory)"]
    with pytest.raises(SystemExit) as exc:
        main(["check", "--json"])
    assert exc.value.code == 2 and "give the INPUTs to check, or --files-from FILE" in capsys.readouterr().err
    # flags that alone would do nothing are usage errors, not silently ignored
    for argv, why in ((["check", "a.mp4", "--null"], "--null is for the list of --files-from"),
                      (["check", "a.mp4", "--skip-done", "out.jsonl"], "--skip-done reads an earlier run's --json")):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2 and why in capsys.readouterr().err


def test_check_takes_a_file_whose_name_starts_with_a_space(capsys, tmp_path, monkeypatch):
    """`check " clip.mp4"` (or the name in a --files-from list) said "no such file": the name was stripped."""
    monkeypatch.chdir(tmp_path)
    _blank_video(tmp_path / "made.avi", 4)
    (tmp_path / " clip.mp4").write_bytes((tmp_path / "made.avi").read_bytes())
    code, out, err = run(capsys, "check", " clip.mp4", "--json", "-q", "--db", str(tmp_path / "none.db"))
    line = json.loads(out)
    assert code == 0 and (line["source"], line["frames"]) == (" clip.mp4", 4) and line["stamp"] is not None, err


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_check_takes_an_input_given_twice_once(capsys, tmp_path, caplog, jobs):
    """A glob and a list that overlap: an input given twice was decoded twice and had two lines."""
    first, second = str(tmp_path / "first.avi"), str(tmp_path / "second.avi")
    _blank_video(first, 3)
    _blank_video(second, 4)
    listed = tmp_path / "list.txt"
    listed.write_text(f"{second}\n{first}\n{second}\n")
    with caplog.at_level("INFO", logger="blinkgate"):
        code, out, _ = run(capsys, "check", first, "--files-from", str(listed), "--json", "-q", "--jobs", jobs,
                           "--db", str(tmp_path / "none.db"))
    assert code == 0 and [json.loads(line)["source"] for line in out.splitlines()] == [first, second]
    assert "2 inputs given more than once: checked once" in caplog.text


def test_check_reads_a_list_written_on_windows(capsys, tmp_path):
    """A list saved with CRLF line ends: each name kept its "\r". Opened all the same (the name
    was stripped), the verdict's source was not the file's name and its stamp was null, so
    --skip-done matched none and checked every input again on every run."""
    room, spaced = tmp_path / "room.avi", tmp_path / "with space.avi"
    for clip, frames in ((room, 4), (spaced, 3)):
        _blank_video(clip, frames)
    listed = tmp_path / "list.txt"
    listed.write_bytes(f"{room}\r\n{spaced}\r\n".encode())
    code, out, _ = run(capsys, "check", "--files-from", str(listed), "--json", "-q", "--db", str(tmp_path / "none.db"))
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [(v["source"], v["frames"]) for v in lines] == [(str(room), 4), (str(spaced), 3)]
    assert all(v["stamp"] is not None for v in lines)


def test_check_skip_done_resumes_a_batch_where_it_stopped(tmp_path):
    """A batch stopped part-way (Ctrl-C, a reboot, a full disk) started again from its first input."""
    clips = []
    for i, frames in enumerate((3, 4, 5)):
        clips.append(str(tmp_path / f"clip{i}.avi"))
        _blank_video(clips[-1], frames)
    out = tmp_path / "out.jsonl"
    # The first run's verdict, then the next one cut short mid-line.
    from blinkgate.check import input_stamp

    out.write_text(json.dumps({"source": clips[0], "frames": 3, "stamp": input_stamp(clips[0])}) + '\n{"source": "' + clips[1][:5])
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_FFMPEG_LOGLEVEL"}
    with out.open("ab") as appended:  # as `>> out.jsonl`
        done = subprocess.run([sys.executable, "-m", "blinkgate", "check", *clips, "--json", "-q", "--skip-done",
                               str(out), "--db", str(tmp_path / "none.db")],
                              stdout=appended, stderr=subprocess.PIPE, text=True, timeout=120, env=env)
    assert done.returncode == 0 and "skipping 1 of 3 inputs" in done.stderr and "1 line not from check --json" in done.stderr
    lines = out.read_text().splitlines()
    assert lines[1] == '{"source": "' + clips[1][:5]  # ended, not joined to the next verdict
    assert [json.loads(line)["frames"] for line in lines[2:]] == [4, 5]


def test_check_skip_done_checks_again_an_input_changed_since(capsys, tmp_path, caplog):
    """--skip-done matched the name only: an upload a cron job checked while it was still being
    written (judged on its first frames, or an error) or that was uploaded again under its name
    kept that line, and the video there now was never checked."""
    kept, uploaded = tmp_path / "kept.avi", tmp_path / "uploaded.avi"
    _blank_video(kept, 3)
    uploaded.write_bytes(b"RIFF")  # the first bytes of the upload
    out, db = tmp_path / "out.jsonl", ("--db", str(tmp_path / "none.db"))
    code, first, _ = run(capsys, "check", str(kept), str(uploaded), "--json", "-q", *db)
    assert code == 2 and "error" in json.loads(first.splitlines()[1])
    out.write_text(first)
    _blank_video(uploaded, 5)  # the rest of it arrives
    with caplog.at_level("INFO", logger="blinkgate"):
        code, again, _ = run(capsys, "check", str(kept), str(uploaded), "--json", "-q", "--skip-done", str(out), *db)
    assert code == 0 and [(v["source"], v["frames"]) for v in map(json.loads, again.splitlines())] == [(str(uploaded), 5)]
    assert "skipping 1 of 2 inputs" in caplog.text  # the one not changed since


def test_check_skip_done_checks_again_an_input_whose_line_is_an_error(capsys, tmp_path):
    """An error line counted as done: resumed, a batch skipped every input that had failed (a
    passing read error, an NFS hiccup) and exited 0, as if all had a verdict."""
    from blinkgate.check import input_stamp

    broken, room = tmp_path / "broken.mp4", tmp_path / "room.avi"
    broken.write_bytes(b"garbage, not an mp4")  # fails again, unchanged
    _blank_video(room, 3)  # failed on a passing read error, unchanged since
    out, db = tmp_path / "out.jsonl", ("--db", str(tmp_path / "none.db"))
    out.write_text("".join(json.dumps({"source": str(clip), "error": "cannot read it (Input/output error)",
                                       "stamp": input_stamp(str(clip))}) + "\n" for clip in (broken, room)))
    code, again, _ = run(capsys, "check", str(broken), str(room), "--json", "-q", "--skip-done", str(out), *db)
    assert code == 2  # the broken input is still unusable: the batch is not all judged
    lines = [json.loads(line) for line in again.splitlines()]
    assert [(v["source"], "error" in v) for v in lines] == [(str(broken), True), (str(room), False)]
    with out.open("a") as appended:
        appended.write(again)
    code, third, _ = run(capsys, "check", str(broken), str(room), "--json", "-q", "--skip-done", str(out), *db)
    assert code == 2 and [json.loads(line)["source"] for line in third.splitlines()] == [str(broken)]


def test_check_on_a_full_disk_is_one_line_and_exit_1(tmp_path):
    """A full disk under `check --json > out.jsonl` was a traceback, exit 1 only by accident."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here to fill")
    clip = tmp_path / "clip.avi"
    _blank_video(clip, 3)
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_FFMPEG_LOGLEVEL"}
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "blinkgate", "check", str(clip), str(clip), "--json", "-q",
                               "--db", str(tmp_path / "none.db")], stdout=full, stderr=subprocess.PIPE, text=True,
                              timeout=120, env=env)
    assert done.returncode == 1, done.stderr  # not 2: that is a batch that ran to its end
    assert done.stderr.strip().splitlines()[-1] == (
        f"blinkgate: error: cannot write the verdicts (No space left on device): stopped at {clip}")
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr


@pytest.mark.parametrize("argv", [["config", "--db", "{db}"], ["--version"], ["--help"], ["check", "--help"]])
def test_any_command_on_a_full_disk_is_one_line_and_exit_1(tmp_path, argv):
    """`blinkgate config > settings.txt` (or `log --json > out.json`) on a full disk was a traceback;
    `blinkgate --version > /dev/full` and `--help` exited 0 without a word (argparse drops an error
    writing them)."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here to fill")
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_FFMPEG_LOGLEVEL"}
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "blinkgate", *(a.format(db=tmp_path / "f.db") for a in argv)],
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=120, env=env)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == ["blinkgate: error: No space left on device"]


@pytest.mark.parametrize("argv", [["people", "--db", "{path}"], ["enroll", "{path}"], ["eval", "{path}"],
                                  ["eval-blinks", "{path}"], ["people", "--config", "{path}"]])
def test_a_path_that_cannot_be_looked_at_is_one_line_and_exit_2(capsys, tmp_path, monkeypatch, argv):
    """A path in a folder without the x bit (Permission denied) or a name past NAME_MAX: Python's
    Path.is_file()/exists() raise there, and `people --db locked/x.db` was a traceback."""
    long_name = str(tmp_path / ("a" * 300))  # ENAMETOOLONG, root or not
    code, _, err = run(capsys, *(a.format(path=long_name) for a in argv))
    assert code == 2 and err.splitlines() == [f"blinkgate: error: {long_name}: File name too long"]

    locked = tmp_path / "locked" / "x"
    real_stat = os.stat

    def stat(path, *args, **kwargs):  # the folder's x bit, which root does not need
        if str(path).startswith(str(locked.parent)):
            raise PermissionError(13, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    code, _, err = run(capsys, *(a.format(path=locked) for a in argv))
    assert code == 2 and err.splitlines() == [f"blinkgate: error: {locked}: Permission denied"]


def test_missing_camera_is_one_line_without_opencv_noise(tmp_path):
    quiet = _fresh("run", "--source", "99", "--no-display", "--db", str(tmp_path / "f.db"))
    assert quiet.returncode == 2
    assert quiet.stderr.strip().splitlines() == [  # the gate is made before a camera opens: its word first
        f"blinkgate: no face database at {tmp_path / 'f.db'}: every face is unknown (enrol with `blinkgate enroll DIR`)",
        "blinkgate: error: cannot open camera 99 (no camera? pass a video file or URL with --source)"]


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path):
    """`blinkgate config | head -1`: the pipe closes before blinkgate writes."""
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_FFMPEG_LOGLEVEL"}
    proc = subprocess.Popen([sys.executable, "-m", "blinkgate", "config", "--db", str(tmp_path / "f.db")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # before the interpreter has even started: every write meets a closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert err == ""


@pytest.mark.parametrize("command", ["run", "door"])
def test_sigterm_closes_the_recording_and_exits_143(tmp_path, command):
    """A service manager stops blinkgate with SIGTERM: the MP4 must still play (a killed
    writer leaves a file without its index), as after Ctrl-C."""
    import signal
    import time

    clip = shared("blink-videos", "blink-detector.mp4")
    video, events = tmp_path / "out.mp4", tmp_path / "events.jsonl"
    argv = [sys.executable, "-m", "blinkgate", command, "--source", str(clip), "--no-display",
            "--record", str(video), "--events", str(events), "--db", str(tmp_path / "none.db")]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    # Events are written before the frame is recorded, so wait for frames in the file too: a
    # signal before the first frame leaves a header with nothing to play (seen on a loaded CI box).
    def started() -> bool:
        return events.exists() and events.stat().st_size > 0 and video.exists() and video.stat().st_size > 1024

    while not started() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()  # still working: the clip takes seconds
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    assert "Traceback" not in proc.stderr.read().decode()
    cap = cv2.VideoCapture(str(video))
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, _ = cap.read()
    cap.release()
    assert ok and 0 < frames < 334


def test_people_without_database(capsys, tmp_path):
    code, _, err = run(capsys, "people", "--db", str(tmp_path / "none.db"))
    assert code == 2 and "no face database" in err


def test_people_and_forget_leave_an_empty_file_as_it_is(capsys, tmp_path):
    """`touch e.db` (or a copy cut short): people and forget made it a 45 KB database of mode 600."""
    db = tmp_path / "e.db"
    db.touch()
    for command in (("people",), ("forget", "bob")):
        code, _, err = run(capsys, *command, "--db", str(db))
        assert code == 2 and "is an empty file, not a face database" in err
    assert db.stat().st_size == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["e.db"]


def test_people_shows_an_invisible_difference_and_lines_up_wide_and_combining_names(capsys, tmp_path, monkeypatch):
    """An older database's 'bob' + U+200B listed as a second 'bob'; 'Zoe' + U+0308 (a Mac folder)
    and '山田' were padded by character count, which shifted their image counts."""
    from blinkgate import database

    monkeypatch.setattr(database, "name_problem", lambda name: None)  # rows from before names were checked
    db = tmp_path / "faces.db"
    with database.FaceDatabase(db) as faces:
        for i, name in enumerate(("bob", "bob\u200b", "Zoe\u0308", "\u5c71\u7530", "Ada ")):
            faces.add_image(name, f"/p/{i}.jpg", str(i), np.eye(128)[i] * 0.1)
    code, out, _ = run(capsys, "people", "--db", str(db))
    assert code == 0 and out.splitlines() == [
        "'Ada '       1 image", "Zoe\u0308          1 image", "bob          1 image", "'bob\\u200b'  1 image",
        "\u5c71\u7530         1 image"]


def test_corrupt_database_is_a_clear_error(capsys, tmp_path):
    db = tmp_path / "faces.db"
    db.write_bytes(b"definitely not sqlite" * 100)
    code, _, err = run(capsys, "people", "--db", str(db))
    assert code == 2 and "not a blinkgate database" in err


def test_enroll_people_forget_roundtrip(capsys, tmp_path):
    lfw = shared("faces", "lfw65")
    people = tmp_path / "people"
    for name in ("Abdullah_Gul", "Alvaro_Uribe"):
        (people / name).mkdir(parents=True)
        for src in sorted((lfw / name).glob("*.jpg"))[:2]:
            (people / name / src.name).symlink_to(src)
    db = str(tmp_path / "faces.db")
    code, out, _ = run(capsys, "enroll", str(people), "--db", db, "--quiet")
    assert code == 0, out
    code, out, _ = run(capsys, "people", "--db", db, "--json")
    listed = {p["name"]: p["images"] for p in json.loads(out)}
    assert set(listed) == {"Abdullah_Gul", "Alvaro_Uribe"} and all(1 <= n <= 2 for n in listed.values())
    code, out, _ = run(capsys, "forget", "Alvaro_Uribe", "--db", db)
    assert code == 0 and "forgot Alvaro_Uribe" in out
    code, out, _ = run(capsys, "people", "--db", db, "--json")
    assert [p["name"] for p in json.loads(out)] == ["Abdullah_Gul"]
    code, _, err = run(capsys, "forget", "Nobody", "--db", db)
    assert code == 2 and "Nobody" in err


def test_forget_says_that_photos_left_on_disk_would_be_enrolled_again(capsys, tmp_path, caplog):
    """A person removed with `forget` whose folder stays came back, silently, at the next
    `enroll` of anyone else."""
    lfw = shared("faces", "lfw65")
    people = tmp_path / "people"
    (people / "Ada").mkdir(parents=True)
    (people / "Ada" / "a.jpg").symlink_to(lfw / "Abdullah_Gul" / "Abdullah_Gul_0001.jpg")
    db = str(tmp_path / "faces.db")
    assert run(capsys, "enroll", str(people), "--db", db, "--quiet")[0] == 0
    with caplog.at_level("WARNING", logger="blinkgate"):
        code, out, _ = run(capsys, "forget", "Ada", "--db", db)
    assert code == 0 and "forgot Ada (1 image; 0 face snapshots deleted" in out
    assert f"still in {people / 'Ada'}: the next `blinkgate enroll` enrols Ada again" in caplog.text
    (people / "Ada" / "a.jpg").unlink()
    assert run(capsys, "enroll", str(people), "--db", db, "--quiet")[0] == 1  # its one folder is empty: nothing enrolled
    code, out, err = run(capsys, "forget", "Ada", "--db", db)
    assert code == 2  # nothing left to forget: the deleted photo was not enrolled again


def test_enroll_and_forget_say_when_a_running_door_or_run_sees_the_change(capsys, tmp_path, caplog):
    """A door (tests/test_accesslog.py) and `run` (below) reload the people by themselves."""
    people = tmp_path / "people"
    (people / "Ada").mkdir(parents=True)
    (people / "Ada" / "a.jpg").symlink_to(shared("faces", "lfw65", "Abdullah_Gul", "Abdullah_Gul_0001.jpg"))
    db = str(tmp_path / "faces.db")
    for argv in (["enroll", str(people), "--db", db, "--quiet"], ["forget", "Ada", "--db", db]):
        caplog.clear()
        with caplog.at_level("INFO", logger="blinkgate"):
            assert run(capsys, *argv)[0] == 0
        assert "a running door or `blinkgate run` uses this change within a few seconds" in caplog.text, argv


def test_env_var_selects_the_database(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("BLINKGATE_DB", str(tmp_path / "env.db"))
    code, _, err = run(capsys, "people")
    assert code == 2 and "env.db" in err


def test_the_config_file_reaches_enroll_people_forget_run_and_check(capsys, tmp_path, monkeypatch):
    """``db`` and ``eye_model`` in blinkgate.toml are read by every command that runs the gate
    for a user, as by ``door``: one database for enrolment and the door. A flag still wins."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BLINKGATE_DB", raising=False)
    blind = _blind_model(tmp_path)
    (tmp_path / "blinkgate.toml").write_text(f'db = "team.db"\neye_model = "{blind}"\n')
    people = tmp_path / "people" / "Abdullah_Gul"
    people.mkdir(parents=True)
    src = sorted(shared("faces", "lfw65", "Abdullah_Gul").glob("*.jpg"))[0]
    (people / src.name).symlink_to(src)
    code, out, _ = run(capsys, "enroll", str(people.parent), "--quiet")
    assert code == 0 and (tmp_path / "team.db").exists(), out
    code, out, _ = run(capsys, "people", "--json")
    assert code == 0 and [p["name"] for p in json.loads(out)] == ["Abdullah_Gul"]
    code, _, err = run(capsys, "people", "--db", str(tmp_path / "other.db"))
    assert code == 2 and "other.db" in err
    clip = str(shared("blink-videos", "blink-detector.mp4"))
    code, out, _ = run(capsys, "check", clip, "--json", "-q")
    assert code == 0 and json.loads(out)["live"] is False  # the file's blind eye model ran
    code, out, _ = run(capsys, "forget", "Abdullah_Gul")
    assert code == 0 and "forgot Abdullah_Gul" in out
    (tmp_path / "blinkgate.toml").write_text("[lockout]\nfailures = 'five'\n")
    code, _, err = run(capsys, "people")
    assert code == 2 and "failures" in err  # a broken settings file is never skipped


def test_evaluations_do_not_read_the_config_file(capsys, tmp_path, monkeypatch):
    """Numbers from eval-blinks (and eval) must not depend on the folder they are run in."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "blinkgate.toml").write_text(f'eye_model = "{_blind_model(tmp_path)}"\n')
    code, out, _ = run(capsys, "eval-blinks", str(shared("blink-videos", "blink-detector.mp4")), "--json")
    assert code == 0 and json.loads(out)["sure"]["detected"] > 0


def test_check_json_on_a_blink_video(capsys, tmp_path):
    clip = shared("blink-videos", "blink-detector.mp4")
    code, out, _ = run(capsys, "check", str(clip), "--json", "--db", str(tmp_path / "none.db"))
    assert code == 0
    verdict = json.loads(out)
    assert verdict["source"] == str(clip) and verdict["frames"] == 334 and verdict["live"] is True
    face = verdict["faces"][0]
    assert set(face) >= {"track", "name", "blinks", "live", "first_live_s"}
    assert face["name"] is None and face["live"] and face["blinks"] >= 1 and 0 < face["first_live_s"] < 14


def test_run_headless_writes_events_and_video(capsys, tmp_path, caplog):
    clip = shared("blink-videos", "blink-detector.mp4")
    events, video = tmp_path / "ev.jsonl", tmp_path / "out.mp4"
    with caplog.at_level("INFO", logger="blinkgate"):
        code, _, err = run(capsys, "run", "--source", str(clip), "--no-display", "--events", str(events),
                           "--record", str(video), "--db", str(tmp_path / "none.db"))
    assert code == 0, err
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    kinds = [e["event"] for e in lines]
    assert kinds[0] == "appeared" and "blink" in kinds and kinds[-1] == "lost"
    # the face in view at the last frame leaves then: every track that appeared is lost once
    tracks = sorted(e["track"] for e in lines if e["event"] == "appeared")
    assert sorted(e["track"] for e in lines if e["event"] == "lost") == tracks
    assert lines[-1]["time_ms"] == max(e["time_ms"] for e in lines)
    # a file ends with one line of what was seen, granted or not
    assert f"{clip}: 334 frames, {len(tracks)} face{'s' if len(tracks) > 1 else ''} tracked, 0 named, 0 granted" \
        in caplog.messages
    assert all({"time_ms", "track", "name", "box"} <= set(e) for e in lines)
    assert "granted" not in kinds  # nobody is enrolled: live, but never granted
    cap = cv2.VideoCapture(str(video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 334
    cap.release()


def test_run_tally_keeps_no_state_for_tracks_that_left():
    """`run` on a camera goes on for months: its tally must not hold every track id ever seen
    (it did: ~100 bytes a face, for good)."""
    from blinkgate.cli import RunTally
    from blinkgate.types import Event

    tally, box = RunTally(), (0.0, 0.0, 10.0, 10.0)
    for tid in range(1, 5001):
        tally.add([Event("appeared", tid, tid, None, box)])
        if tid % 2:
            tally.add([Event("recognised", tid, tid, "ann", box), Event("granted", tid, tid, "ann", box)])
            tally.add([Event("blink", tid + 0.5, tid, "ann", box)])  # named again: counted once
        tally.add([Event("lost", tid, tid, None, box)])
    tally.add([Event("appeared", 9999, 9999, None, box)])  # one still in view
    held = sum(len(v) for v in vars(tally).values() if isinstance(v, (set, dict, list)))
    assert held <= 1
    assert tally.line().endswith("5001 faces tracked, 2500 named, 2500 granted")


def test_run_writes_the_faces_in_view_as_lost_when_it_gives_a_stream_up(capsys, tmp_path, monkeypatch):
    """A stream lost for good ended `run` with an error and no `lost` event: --events read as if the
    face were still at the door."""
    import itertools

    import blinkgate.sources as sources
    from blinkgate.errors import SourceError

    class LostStream(sources.FrameSource):
        description = "rtsp://***@cam/live"

        def __iter__(self):
            with sources.VideoFileSource(shared("blink-videos", "blink-detector.mp4")) as clip:
                yield from itertools.islice(clip, 5)
            raise SourceError(f"{self.description} lost after 10 reconnect attempts")

    monkeypatch.setattr(sources, "open_source", lambda spec, fps=20.0: LostStream())
    events = tmp_path / "ev.jsonl"
    code, _, err = run(capsys, "run", "--source", "rtsp://cam/live", "--no-display", "--events", str(events),
                       "--db", str(tmp_path / "none.db"))
    assert code == 2 and "lost after 10 reconnect attempts" in err
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    appeared = sorted(e["track"] for e in lines if e["event"] == "appeared")
    assert appeared and sorted(e["track"] for e in lines if e["event"] == "lost") == appeared


def test_run_takes_the_browser_views_token_from_the_settings_file_as_door_does(capsys, tmp_path, monkeypatch):
    """`run --ui` ignored ui.token in blinkgate.toml: each run made a new token, so a bookmarked
    view was refused. The environment and the flag still come first."""
    import blinkgate.webui as webui
    from blinkgate.errors import BlinkgateError

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BLINKGATE_UI_TOKEN", raising=False)
    (tmp_path / "blinkgate.toml").write_text('[ui]\ntoken = "tomltokentomltoken123"\n')
    (tmp_path / "blinkgate.toml").chmod(0o600)
    tokens = []

    def check_settings(listen, token):
        tokens.append(token)
        raise BlinkgateError("the token is all this test needs")

    monkeypatch.setattr(webui, "check_settings", check_settings)
    argv = ["run", "--ui", "127.0.0.1:0", "--no-display", "--db", str(tmp_path / "none.db")]
    assert run(capsys, *argv)[0] == 2
    monkeypatch.setenv("BLINKGATE_UI_TOKEN", "envtokenenvtoken12345")
    assert run(capsys, *argv)[0] == 2
    assert run(capsys, *argv, "--ui-token", "flagtokenflagtoken12")[0] == 2
    assert tokens == ["tomltokentomltoken123", "envtokenenvtoken12345", "flagtokenflagtoken12"]


def test_run_keeps_a_file_already_at_record(capsys, tmp_path, caplog):
    """`run --record precious.mkv` replaced the user's video; it goes beside it, as the door's."""
    precious = tmp_path / "precious.mkv"
    precious.write_bytes(b"the user's own video")
    with caplog.at_level("INFO", logger="blinkgate"):
        code, _, err = run(capsys, "run", "--source", _frame_folder(tmp_path / "frames", 0.15), "--no-display",
                           "--record", str(precious), "--db", str(tmp_path / "none.db"))
    assert code == 0, err
    assert precious.read_bytes() == b"the user's own video"
    (recorded,) = tmp_path.glob("precious-*.mkv")
    assert f"recording to {recorded} (the earlier recording is kept)" in caplog.text
    cap = cv2.VideoCapture(str(recorded))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    cap.release()


def test_run_refused_for_its_record_path_leaves_no_events_file(capsys, tmp_path):
    events = tmp_path / "ev.jsonl"
    code, _, err = run(capsys, "run", "--source", _frame_folder(tmp_path / "frames", 0.15), "--no-display",
                       "--record", str(tmp_path / "out.txt"), "--events", str(events), "--db", str(tmp_path / "none.db"))
    assert code == 2 and "out.txt" in err
    assert not events.exists()  # it was opened (an empty file) before the recording was refused


def test_run_refused_for_its_ui_port_leaves_no_events_file(capsys, tmp_path):
    import socket

    events = tmp_path / "ev.jsonl"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, _, err = run(capsys, "run", "--source", _frame_folder(tmp_path / "frames", 0.15), "--no-display",
                           "--ui", f"127.0.0.1:{port}", "--events", str(events), "--db", str(tmp_path / "none.db"))
    assert code == 2 and str(port) in err
    assert not events.exists()


def test_run_missing_camera(capsys, tmp_path):
    code, _, err = run(capsys, "run", "--source", "9", "--no-display", "--db", str(tmp_path / "none.db"))
    assert code == 2 and "camera 9" in err and "--source" in err


@pytest.mark.parametrize("source, said", [
    ("a" * 300 + ".mp4", "cannot read a{300}\\.mp4: File name too long"),  # Path.is_dir raised OSError
    ("99999999999999999999", "cannot open camera 99999999999999999999 "),  # VideoCapture(int) raised cv2.error
])
def test_a_source_name_too_long_or_a_camera_number_too_big_is_a_one_line_error(capsys, tmp_path, source, said):
    code, _, err = run(capsys, "run", "--source", source, "--no-display", "--db", str(tmp_path / "none.db"))
    assert code == 2 and re.fullmatch(f"blinkgate: error: {said}.*\n", err)


def _make_run(tmp_path, *variables: str) -> subprocess.CompletedProcess:
    """`make run` with a venv whose blinkgate is this checkout's."""
    from pathlib import Path

    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "blinkgate").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m blinkgate "$@"\n')
    (venv / "bin" / "blinkgate").chmod(0o755)
    (venv / ".installed").touch()  # newer than pyproject.toml: make installs nothing
    repo = Path(__file__).resolve().parents[1]
    return subprocess.run(["make", "-s", "-C", str(repo), "run", f"VENV={venv}", *variables],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(repo / "src")},
                          timeout=120)


def test_make_run_without_a_camera_says_how_to_pass_a_file_to_make(tmp_path):
    """blinkgate's own hint names --source, which `make run` does not take: SOURCE= is its way."""
    done = _make_run(tmp_path, "SOURCE=9", f"CAMERA_DEV={tmp_path / 'video'}",
                     f"ARGS=--no-display --db {tmp_path / 'none.db'}")
    assert done.returncode != 0 and "cannot open camera 9" in done.stderr
    assert "make run SOURCE=door.mp4" in done.stderr, done.stderr


def test_make_run_with_the_camera_there_gives_no_camera_hint_for_a_mistyped_option(tmp_path):
    (tmp_path / "video9").touch()  # the camera's device node
    done = _make_run(tmp_path, "SOURCE=9", f"CAMERA_DEV={tmp_path / 'video'}", "ARGS=--no-dispaly")
    assert done.returncode == 2 and "--no-dispaly" in done.stderr
    assert "make run SOURCE=" not in done.stderr, done.stderr


def _blind_model(folder) -> str:
    """The shipped model with a sidecar that never calls an eye closed: no blink can count."""
    from blinkgate.eye_model import default_model_path

    shipped = default_model_path()
    model = folder / "blind.onnx"
    model.write_bytes(shipped.read_bytes())
    meta = json.loads(shipped.with_suffix(".json").read_text())
    model.with_suffix(".json").write_text(json.dumps({**meta, "closed_below": 0.0}))
    return str(model)


def test_eye_model_option_reaches_check_and_eval_blinks(capsys, tmp_path):
    """The same clip that is live with the shipped model (test above) is not with a model that
    never reads 'closed': --eye-model is the model the gate runs."""
    clip = str(shared("blink-videos", "blink-detector.mp4"))
    blind = _blind_model(tmp_path)
    code, out, _ = run(capsys, "check", clip, "--json", "--eye-model", blind, "--db", str(tmp_path / "none.db"))
    assert code == 0 and json.loads(out)["live"] is False
    code, out, _ = run(capsys, "eval-blinks", clip, "--json", "--eye-model", blind)
    assert code == 0 and json.loads(out)["sure"]["detected"] == 0


@pytest.mark.parametrize("flag", [["--db", "typo.db"], ["--tolerance", "0.1"], ["--liveness", "1"], ["--fps", "5"]])
def test_eval_blinks_takes_no_flag_it_would_ignore(capsys, flag):
    """eval-blinks names nobody and reads video files on their own clock: --db, --tolerance,
    --liveness and --fps were taken and changed nothing (`--db typo.db` ran without a word)."""
    with pytest.raises(SystemExit) as exc:
        main(["eval-blinks", "clip.mp4", *flag])
    assert exc.value.code == 2 and f"unrecognized arguments: {' '.join(flag)}" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["check", "eval-blinks", "run", "door"])
def test_a_missing_or_broken_eye_model_fails_before_any_frame(capsys, tmp_path, command, monkeypatch):
    import blinkgate.sources as sources

    monkeypatch.setattr(sources, "open_source", lambda *a, **k: pytest.fail("read a source first"))
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx graph")
    clip = str(tmp_path / "clip.mp4")
    argv = {"check": ["check", clip], "eval-blinks": ["eval-blinks", clip], "run": ["run", "--source", clip],
            "door": ["door", "--source", clip, "--no-display"]}[command]
    if command == "eval-blinks":
        (tmp_path / "clip.mp4").write_bytes(b"")  # it refuses a missing clip before the model
    db = [] if command == "eval-blinks" else ["--db", str(tmp_path / "f.db")]  # eval-blinks names nobody
    for model, message in ((tmp_path / "none.onnx", "eye model not found"), (broken, "broken.onnx")):
        code, _, err = run(capsys, *argv, "--eye-model", str(model), *db)
        assert code == 2 and message in err and "Traceback" not in err


def test_an_eye_model_without_thresholds_is_said_once(capsys, tmp_path, caplog):
    from blinkgate.eye_model import default_model_path

    bare = tmp_path / "bare.onnx"
    bare.write_bytes(default_model_path().read_bytes())
    clip = str(shared("blink-videos", "liveportrait-d3.mp4"))
    with caplog.at_level("WARNING", logger="blinkgate"):
        code, _, _ = run(capsys, "check", clip, "-q", "--eye-model", str(bare), "--db", str(tmp_path / "none.db"))
    assert code == 0
    assert [r.getMessage() for r in caplog.records if "bare.json" in r.getMessage()] == [
        f"{bare} has no bare.json: using the default thresholds (closed below 0.50, open above 0.50)"]


def test_run_on_a_camera_recognises_in_the_background_and_grants(capsys, tmp_path, monkeypatch):
    """A camera (here the webcam clip, served as a live source) is recognised by the background
    worker: the enrolled person is still named and granted."""
    import blinkgate.gate as gate_module
    import blinkgate.sources as sources

    clip = shared("blink-videos", "blink-detector.mp4")
    (tmp_path / "people" / "Blinker").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "people" / "Blinker" / "a.jpg"), clip_frame())
    db = str(tmp_path / "f.db")
    assert run(capsys, "enroll", str(tmp_path / "people"), "--db", db)[0] == 0

    opened = sources.open_source

    def as_camera(spec, fps=20.0):
        source = opened(clip, fps)
        source.live = True
        return source

    monkeypatch.setattr(sources, "open_source", as_camera)
    modes = []
    real_init = gate_module.Gate.__init__

    def spy(self, *a, **k):
        real_init(self, *a, **k)
        modes.append((self.options.recognition, self.background is not None))

    monkeypatch.setattr(gate_module.Gate, "__init__", spy)
    events = tmp_path / "ev.jsonl"
    code, _, err = run(capsys, "run", "--source", "0", "--no-display", "--events", str(events), "--db", db)
    assert code == 0, err
    assert modes == [("background", True)]
    granted = [e for e in map(json.loads, events.read_text().splitlines()) if e["event"] == "granted"]
    assert granted and granted[0]["name"] == "Blinker"


@pytest.mark.parametrize("command", ["run", "door"])
def test_a_camera_opens_after_the_models_are_loaded(capsys, tmp_path, monkeypatch, command):
    """Loaded at the first face, the 68-point model held the GIL ~1 s while the camera's reader
    thread had to read: it then read the buffered frames back to back, stamped under a ms apart
    (a false "is timestamp_ms in milliseconds?" warning), and the first face's track was lost."""
    import blinkgate.sources as sources
    from blinkgate.errors import SourceError
    from blinkgate.recognize import SHAPE_68, FaceEncoder

    order = []
    monkeypatch.setattr(FaceEncoder, "_load", lambda self, kind, filename: order.append(filename) or object())

    def open_source(spec, fps=20.0, retries=10):
        order.append("open")
        raise SourceError("no camera here")

    monkeypatch.setattr(sources, "open_source", open_source)
    code, _, err = run(capsys, command, "--source", "0", "--no-display", "--db", str(tmp_path / "f.db"))
    assert code == 2 and "no camera here" in err
    assert order == [SHAPE_68, "open"]


def test_a_running_run_names_and_grants_someone_enrolled_while_it_runs(capsys, tmp_path, monkeypatch):
    """An attendance kiosk runs `run`, not `door`: it read the people only when it started, so
    someone enrolled since stayed unknown (and someone forgotten was still named) until a restart."""
    import time

    import blinkgate.sources as sources
    from blinkgate.sources import FrameSource

    clip = shared("blink-videos", "blink-detector.mp4")
    (tmp_path / "people" / "Blinker").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "people" / "Blinker" / "a.jpg"), clip_frame())
    db = str(tmp_path / "f.db")
    opened = sources.open_source

    class EnrolledMidway(FrameSource):
        """The clip; at its frame 10, `blinkgate enroll` in another shell, then a pause past
        run's 2 s poll (a real camera's frames would have gone on meanwhile)."""

        def __init__(self, spec, fps=None):
            self.clip = opened(str(clip), fps)
            self.description, self.fps = self.clip.description, self.clip.fps

        def __iter__(self):
            for frame in self.clip:
                if frame.index == 10:
                    assert main(["enroll", str(tmp_path / "people"), "--db", db, "-q"]) == 0
                    time.sleep(2.5)
                yield frame

        def close(self):
            self.clip.close()

    monkeypatch.setattr(sources, "open_source", EnrolledMidway)
    events = tmp_path / "ev.jsonl"
    code, _, err = run(capsys, "run", "--source", str(clip), "--no-display", "--events", str(events), "--db", db)
    assert code == 0, err
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert all(e["name"] is None for e in lines if e["time_ms"] < 400)  # nobody enrolled at first
    granted = [e for e in lines if e["event"] == "granted"]
    assert granted and granted[0]["name"] == "Blinker"


def test_enrol_is_accepted_as_the_docs_spell_it():
    from blinkgate.cli import build_parser, cmd_enroll

    assert build_parser().parse_args(["enrol", "people"]).func is cmd_enroll


def test_train_eyes_without_the_train_extra_says_how_to_install_it_before_any_work(monkeypatch, capsys, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "keras" else real(name, *a))
    assert main(["train-eyes", str(tmp_path), "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert "keras missing" in err and "pip install '.[train]'" in err and "whl/cpu" in err
    assert "calibrating" not in err


# -- verify: one visit for a login or kiosk script ---------------------------------------------


def test_verify_prints_the_name_and_exits_0_once_the_person_is_granted_and_runs_no_action(capsys, tmp_path):
    """The door's settings file is shared with verify: its unlock actions are ignored, not an error."""
    from conftest import enrol_from_clip

    db = enrol_from_clip(tmp_path, "subject")
    clip = str(shared("blink-videos", "blink-detector.mp4"))
    touched = tmp_path / "door-opened"
    settings = tmp_path / "blinkgate.toml"
    settings.write_text(f'[actions]\non_grant = "touch {touched}"\ncooldown = 5.0\n'
                        '[webhook]\nurl = "http://127.0.0.1:9/door"\n[mqtt]\nhost = "127.0.0.1"\n')
    code, out, err = run(capsys, "verify", "--name", "subject", "--source", clip, "--no-display", "--no-challenge",
                         "--db", str(db), "--config", str(settings))
    assert (code, out) == (0, "subject\n"), err
    assert not touched.exists()  # the exit code is the action: the door's relay must not fire


def test_verify_writes_the_faces_in_view_as_lost_when_its_camera_is_lost(capsys, tmp_path, monkeypatch):
    """As `run`: a camera lost for good ended verify with no `lost` event in --events."""
    import itertools

    import blinkgate.sources as sources
    from blinkgate.errors import SourceError
    from conftest import enrol_from_clip

    class LostCamera(sources.FrameSource):
        description = "camera 0"

        def __iter__(self):
            with sources.VideoFileSource(shared("blink-videos", "blink-detector.mp4")) as clip:
                yield from itertools.islice(clip, 5)
            raise SourceError("camera 0 lost after 10 reconnect attempts")

    db = enrol_from_clip(tmp_path, "subject")
    monkeypatch.setattr(sources, "open_source", lambda spec, fps=20.0, retries=None: LostCamera())
    events = tmp_path / "ev.jsonl"
    code, _, err = run(capsys, "verify", "--source", "0", "--no-display", "--events", str(events), "--db", str(db))
    assert code == 2 and "lost after 10 reconnect attempts" in err
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    appeared = sorted(e["track"] for e in lines if e["event"] == "appeared")
    assert appeared and sorted(e["track"] for e in lines if e["event"] == "lost") == appeared


@pytest.mark.parametrize("flag", [("--on-grant", "touch opened"), ("--webhook", "http://127.0.0.1:9/door"),
                                  ("--webhook-secret", "s"), ("--mqtt-host", "broker"), ("--mqtt-tls",),
                                  ("--action-cooldown", "5"), ("--on-grant-timeout", "3")])
def test_verify_refuses_the_unlock_action_flags_it_would_ignore(capsys, flag):
    """verify runs no unlock action, yet took --on-grant and the rest, listed them in its --help
    and exited 0 without running the command or a word about it."""
    with pytest.raises(SystemExit) as exc:
        main(["verify", "--source", "0", *flag])
    assert exc.value.code == 2 and f"unrecognized arguments: {flag[0]}" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    shown = capsys.readouterr().out
    flags = r"--(on-grant|webhook|mqtt|action-cooldown)"
    assert not re.search(rf"\[{flags}|^\s+{flags}", shown, re.M), shown  # in the usage or as an option
    assert "--challenge-counts" in shown and "--events" in shown  # the door's other flags stay


def test_verify_of_a_replayed_video_fails_counts_and_is_logged(capsys, tmp_path, caplog):
    """The same clip played to the default challenge, as a phone held to a laptop's webcam."""
    from blinkgate.accesslog import AccessLog
    from conftest import enrol_from_clip

    db = enrol_from_clip(tmp_path, "subject")
    clip = str(shared("blink-videos", "blink-detector.mp4"))
    with caplog.at_level("INFO", logger="blinkgate"):
        code, out, _ = run(capsys, "verify", "--name", "subject", "--source", clip, "--no-display", "--db", str(db))
    assert code == 1 and out == ""
    said = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert said == ["the source ended before anyone was granted"]  # the clip is 11 s: no lockout yet
    with AccessLog(db) as log:
        entries = log.entries()
    assert entries and all(e.decision == "denied" and e.name == "subject" for e in entries)


def test_verify_gives_up_at_its_timeout(capsys, tmp_path, caplog):
    from conftest import enrol_from_clip

    db = enrol_from_clip(tmp_path, "subject")
    clip = str(shared("blink-videos", "blink-detector.mp4"))  # its first blink ends at 0.64 s
    code, out, _ = run(capsys, "verify", "--timeout", "0.5", "--source", clip, "--no-display", "--no-challenge",
                       "--db", str(db))
    assert code == 1 and out == "" and "no one was granted within 0.5 s" in caplog.text


def test_verify_refuses_a_name_that_is_not_enrolled(capsys, tmp_path):
    from conftest import enrol_from_clip

    db = enrol_from_clip(tmp_path, "subject")
    code, out, err = run(capsys, "verify", "--name", "someone", "--source", "0", "--db", str(db))
    assert (code, out) == (2, "")
    assert err == "blinkgate: error: 'someone' is not enrolled (`blinkgate people` lists who is)\n"


def test_verify_of_a_name_not_enrolled_does_not_say_who_is(capsys, tmp_path):
    """At a kiosk, a mistyped --name printed every enrolled name on stderr."""
    from blinkgate.database import FaceDatabase

    from fakes import vec

    db = tmp_path / "f.db"
    with FaceDatabase(db) as store:
        for i, name in enumerate(["Ada Lovelace", "Abdullah_Gul"]):
            store.add_image(name, f"{i}.jpg", f"{i:064x}", vec(i))
    code, _, err = run(capsys, "verify", "--name", "ada", "--source", "0", "--db", str(db))
    assert code == 2 and "'ada' is not enrolled" in err
    assert "Lovelace" not in err and "Abdullah" not in err


def test_verify_of_a_locked_out_person_stops_at_once_and_says_how_to_lift_it(capsys, tmp_path, caplog):
    """Failures count towards the door's lockout, so a login script cannot retry a replay for ever."""
    import time

    from blinkgate.accesslog import AccessLog
    from blinkgate.door import Decision
    from conftest import enrol_from_clip

    db = enrol_from_clip(tmp_path, "subject")
    with AccessLog(db) as log:
        for k in range(5):
            log.record(Decision(0.0, 1, "subject", "denied", "challenge_failed", (0, 0, 1, 1)), at=time.time() - 10 + k)
    clip = str(shared("blink-videos", "blink-detector.mp4"))
    code, out, _ = run(capsys, "verify", "--name", "subject", "--source", clip, "--no-display", "--db", str(db))
    assert code == 1 and out == ""
    said = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(said) == 1 and re.fullmatch(r"subject is locked out until \d\d:\d\d after failed challenges "
                                           r"\(`blinkgate unlock subject` lifts it\)", said[0]), said


class _BlackCamera:
    """A capture giving ``frames`` black frames (one every ``period_s``), then failing reads."""

    def __init__(self, frames: int, period_s: float = 0.0):
        self.left, self.period_s = frames, period_s

    def read(self):
        import time

        time.sleep(self.period_s)
        self.left -= 1
        return (True, np.zeros((120, 160, 3), np.uint8)) if self.left >= 0 else (False, None)

    def get(self, prop):
        return 0.0

    def release(self):
        pass


def test_verify_on_a_camera_that_drops_gives_up_after_a_few_reconnects(capsys, tmp_path, monkeypatch):
    """The door reconnects for ever (it outlives an unplugged camera); one visit must not."""
    import blinkgate.sources as sources

    opened = []

    def open_capture(target):
        opened.append(target)
        return _BlackCamera(3 if len(opened) == 1 else 0)

    monkeypatch.setattr(sources, "_open_capture", open_capture)
    code, out, err = run(capsys, "verify", "--source", "0", "--no-display", "--db", str(tmp_path / "f.db"))
    assert code == 2 and out == "" and "lost after 3 reconnect attempts" in err
    assert len(opened) == 4


def test_verify_ending_mid_challenge_logs_a_counted_failure(capsys, tmp_path):
    """A timeout (or a closed window) while a prompt is up must not drop the prompt for free."""
    from blinkgate.accesslog import AccessLog
    from conftest import enrol_from_clip

    db = enrol_from_clip(tmp_path, "subject")
    clip = str(shared("blink-videos", "blink-detector.mp4"))
    # the prompt 0.5 s after recognition; 3 blinks and a 4-s hold cannot be over by 3 s
    code, _, _ = run(capsys, "verify", "--name", "subject", "--source", clip, "--no-display", "--db", str(db),
                     "--timeout", "3", "--challenge-delay-min", "0.5", "--challenge-delay-max", "0.5",
                     "--challenge-counts", "3")
    assert code == 1
    with AccessLog(db) as log:
        entries = log.entries()
    assert [(e.decision, e.reason) for e in entries] == [("denied", "expired")]
    assert entries[0].detail["why"] == "the visit ended before the answer" and "counted" not in entries[0].detail


def test_verify_of_a_frozen_stream_gives_up_at_its_timeout(capsys, tmp_path, monkeypatch, caplog):
    """The door skips a frozen stream's repeats, so `verify` never saw its clock move and a
    login script waited for ever (here: until the stream dropped, an error, not a timeout)."""
    import blinkgate.sources as sources

    camera = _BlackCamera(90, period_s=1 / 30)  # 3 s of the same picture, then the stream drops
    monkeypatch.setattr(sources, "_open_capture", lambda target: camera)
    code, out, err = run(capsys, "verify", "--timeout", "1", "--source", "0", "--no-display",
                         "--db", str(tmp_path / "f.db"))
    assert (code, out) == (1, ""), err
    assert "no one was granted within 1 s" in caplog.text


class _StallingCamera(_BlackCamera):
    """A stream that gives ``frames`` frames, then stops sending without closing: a read
    blocks (FFmpeg's read timeout, 10 s) until ``stall_s`` has passed."""

    def __init__(self, frames: int, stall_s: float):
        super().__init__(frames, period_s=1 / 30)
        self.stall_s = stall_s

    def read(self):
        import time

        if self.left <= 0:
            time.sleep(self.stall_s)
            return False, None
        time.sleep(self.period_s)
        self.left -= 1
        return True, np.full((120, 160, 3), self.left % 256, np.uint8)


def test_verify_of_a_stalled_stream_gives_up_at_its_timeout_in_wall_time(capsys, tmp_path, monkeypatch, caplog):
    """The timeout was checked only when a frame came: a stream that stopped sending held a
    login script for the read timeout and 3 reconnects (49 s for --timeout 15), then an error."""
    import time

    import blinkgate.sources as sources

    camera = _StallingCamera(15, stall_s=12.0)  # 0.5 s of frames, then nothing
    monkeypatch.setattr(sources, "_open_capture", lambda target: camera)
    start = time.monotonic()
    code, out, err = run(capsys, "verify", "--timeout", "1.5", "--source", "0", "--no-display",
                         "--db", str(tmp_path / "f.db"))
    assert (code, out) == (1, ""), err
    assert "no one was granted within 1.5 s" in caplog.text
    assert time.monotonic() - start < 6.0


def test_verify_does_not_count_a_grant_revoked_on_the_same_frame(capsys, monkeypatch, caplog):
    """Another face of the same name failing its challenge on the frame of a grant locks the
    name out and revokes that grant (DoorLogic._failed); verify took the grant, seen first."""
    import blinkgate.doorrun as doorrun
    from blinkgate.door import Decision, DoorResult

    box = (0, 0, 1, 1)
    decisions = [Decision(0.0, 1, "subject", "granted", "challenge_passed", box),
                 Decision(0.0, 2, "subject", "denied", "challenge_failed", box),
                 Decision(0.0, 1, "subject", "revoked", "locked_out", box)]

    def run_door(settings, until, **kwargs):
        return until(0.0, DoorResult(None, [], [], decisions)) or 0

    monkeypatch.setattr(doorrun, "run_door", run_door)
    assert doorrun.verify({}, None, 30.0) == 1
    assert capsys.readouterr().out == "" and "the source ended before anyone was granted" in caplog.text


def _frame_folder(folder, seconds: float, fps: int = 20):
    """A frame folder of ``seconds`` at ``fps``, each frame different (the door skips repeats)."""
    folder.mkdir()
    for i in range(int(seconds * fps)):
        image = np.zeros((32, 96, 3), np.uint8)
        image[0, 0] = (i % 256, i // 256, 0)
        cv2.imwrite(str(folder / f"{i:05d}.png"), image)
    return str(folder)


def _scripted_door(monkeypatch, *script: tuple) -> None:
    """`verify`'s door sees what ``script`` says (fakes.ScriptedGate) instead of running models."""
    import functools

    import blinkgate.doorrun as doorrun
    from fakes import ScriptedGate

    monkeypatch.setattr(doorrun, "build_door", functools.partial(doorrun.build_door, gate=ScriptedGate(list(script))))


def _appears(at_ms: float, track: int, name: str) -> list[tuple]:
    return [(at_ms, "appeared", track, None, {}), (at_ms, "recognised", track, name, {"distance": 0.3})]


def _blinks(onset_ms: float, track: int, name: str) -> tuple:
    """A blink starting at ``onset_ms``, reported once it is over (its closed frame named)."""
    return (onset_ms + 250, "blink", track, name, {"start_ms": onset_ms, "end_ms": onset_ms + 200, "checked": True})


# a prompt for 1 blink 0.5 s after recognition: the scripted faces below answer it on cue
ONE_BLINK_AT_HALF_A_SECOND = ("--challenge-counts", "1", "--challenge-delay-min", "0.5", "--challenge-delay-max", "0.5")


def test_verify_beside_the_door_leaves_its_port_recording_and_events_alone(capsys, tmp_path, monkeypatch):
    """verify read the door's settings file whole: with the door's `ui.listen` it failed on the
    port the running door holds (exit 2), and it wrote into the door's recording and events."""
    import socket

    door_port = socket.socket()
    door_port.bind(("127.0.0.1", 0))  # the running door's browser view
    door_port.listen()
    settings = tmp_path / "blinkgate.toml"
    settings.write_text(f'record = "{tmp_path / "door.mkv"}"\nevents = "{tmp_path / "door.jsonl"}"\n'
                        f'[ui]\nlisten = "127.0.0.1:{door_port.getsockname()[1]}"\n')
    frames = _frame_folder(tmp_path / "frames", 2)
    with door_port:
        for own in ([], ["--events", str(tmp_path / "verify.jsonl")]):
            _scripted_door(monkeypatch, *_appears(0, 1, "alice"), _blinks(200, 1, "alice"))
            code, out, err = run(capsys, "verify", "--config", str(settings), "--source", frames, "--no-display",
                                 "--no-challenge", "--db", str(tmp_path / "f.db"), *own)
            assert (code, out) == (0, "alice\n"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blinkgate.toml", "f.db", "frames", "verify.jsonl"]
    assert '"event": "door_granted"' in (tmp_path / "verify.jsonl").read_text()  # its own, from its command line


def test_verify_ending_mid_challenge_reports_it_as_every_other_decision(capsys, tmp_path, monkeypatch):
    """The visit's end went to the access log only: --events and the browser view never showed
    the prompt denied, so they disagreed with `blinkgate log`."""
    from blinkgate.accesslog import AccessLog
    from blinkgate.webui import WebUI

    published = []
    publish = WebUI.publish
    monkeypatch.setattr(WebUI, "publish", lambda ui, image, result, events=(): (published.extend(events),
                                                                               publish(ui, image, result, events)))
    # Alice blinks, gets her prompt at 0.5 s and has not answered when the visit ends at 1 s.
    _scripted_door(monkeypatch, *_appears(0, 1, "alice"), _blinks(100, 1, "alice"))
    db, events = tmp_path / "f.db", tmp_path / "events.jsonl"
    code, _, err = run(capsys, "verify", "--timeout", "1", "--source", _frame_folder(tmp_path / "frames", 3),
                       "--no-display", "--db", str(db), "--events", str(events), "--ui", "127.0.0.1:0",
                       *ONE_BLINK_AT_HALF_A_SECOND)
    assert code == 1, err
    with AccessLog(db) as log:
        assert [(e.decision, e.reason, e.name) for e in log.entries()] == [("denied", "expired", "alice")]
    for shown in ([json.loads(line) for line in events.read_text().splitlines()], [e.to_json() for e in published]):
        denied = [(e["event"], e["reason"], e["why"]) for e in shown if e["event"].startswith("door_")]
        assert denied == [("door_denied", "expired", "the visit ended before the answer")]


def test_verify_ending_on_a_grant_counts_another_faces_challenge_under_way(capsys, tmp_path, monkeypatch):
    """Without --name, Alice's grant ended the visit while Bob's prompt was up: his challenge was
    dropped, neither logged nor counted, where a timeout counts it (a free way to drop a prompt)."""
    from blinkgate.accesslog import AccessLog

    # Alice answers her prompt (0.5 s) at 1 s and holds; Bob, who blinked, answers his (2.5 s)
    # at 3 s and is still holding when Alice is granted.
    _scripted_door(monkeypatch, *_appears(0, 1, "alice"), _blinks(1000, 1, "alice"),
                   *_appears(2000, 2, "bob"), _blinks(2200, 2, "bob"), _blinks(3000, 2, "bob"))
    db = tmp_path / "f.db"
    code, out, err = run(capsys, "verify", "--source", _frame_folder(tmp_path / "frames", 10), "--no-display",
                         "--db", str(db), *ONE_BLINK_AT_HALF_A_SECOND)
    assert (code, out) == (0, "alice\n"), err
    with AccessLog(db) as log:
        entries = log.entries()
    assert sorted((e.decision, e.reason, e.name) for e in entries) == [("denied", "expired", "bob"),
                                                                        ("granted", "challenge_passed", "alice")]
    bob = next(e for e in entries if e.name == "bob")
    assert bob.detail["why"] == "the visit ended before the answer" and "counted" not in bob.detail


@pytest.mark.parametrize("second", ["SIGINT", "SIGQUIT"])
def test_verify_stopped_twice_in_a_row_still_counts_the_challenge_under_way(capsys, tmp_path, monkeypatch, second):
    """Ctrl-C pressed twice, or Ctrl-C and Ctrl-\\ together: the second signal came while the
    first one's `finally` closed the source, before the visit's end was written, and the prompt
    under way was dropped for free (exit 130 and nothing in the access log)."""
    import signal

    import blinkgate.sources as sources
    from blinkgate.accesslog import AccessLog
    from blinkgate.sources import FrameSource

    opened = sources.open_source

    class PressedTwice(FrameSource):
        """The frames until 1 s (Alice's prompt is up), then Ctrl-C; the second key arrives
        while the source closes."""

        def __init__(self, spec, fps=None, retries=None):
            self.frames = opened(spec, fps)
            self.description, self.fps = self.frames.description, self.frames.fps

        def __iter__(self):
            for frame in self.frames:
                if frame.timestamp_ms >= 1000:
                    signal.raise_signal(signal.SIGINT)
                yield frame

        def close(self):
            self.frames.close()
            signal.raise_signal(getattr(signal, second))

    monkeypatch.setattr(sources, "open_source", PressedTwice)
    _scripted_door(monkeypatch, *_appears(0, 1, "alice"), _blinks(100, 1, "alice"))
    db, events = tmp_path / "f.db", tmp_path / "events.jsonl"
    code, _, err = run(capsys, "verify", "--timeout", "5", "--source", _frame_folder(tmp_path / "frames", 3),
                       "--no-display", "--db", str(db), "--events", str(events), *ONE_BLINK_AT_HALF_A_SECOND)
    assert code == {"SIGINT": 130, "SIGQUIT": 131}[second], err  # the second signal still ends it, after
    with AccessLog(db) as log:
        assert [(e.decision, e.reason, e.name) for e in log.entries()] == [("denied", "expired", "alice")]
    *_, denied, left = events.read_text().splitlines()
    assert '"reason": "expired"' in denied and '"event": "lost"' in left  # its own outputs got it too


def _no_core_dump() -> None:
    """In a child: a SIGQUIT that is not caught leaves no core file behind, and SIGHUP and
    SIGQUIT take their default action, whatever the test run inherited: under `nohup make test`
    the child would ignore SIGHUP, as blinkgate is meant to when its user asked for that."""
    import resource
    import signal

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for signum in (signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_DFL)


@pytest.mark.parametrize("signame, code", [("SIGHUP", 129), ("SIGQUIT", 131)])
def test_verify_hung_up_or_quit_mid_challenge_counts_it_as_a_timeout_does(tmp_path, signame, code):
    """Closing the terminal (SIGHUP) or Ctrl-\\ (SIGQUIT) killed verify without unwinding, so a
    prompt that did not suit a replay was dropped for free, unlike after Ctrl-C, SIGTERM or the
    timeout."""
    import signal

    from blinkgate.accesslog import AccessLog
    from conftest import enrol_from_clip

    db = enrol_from_clip(tmp_path, "subject")
    clip = str(shared("blink-videos", "blink-detector.mp4"))
    proc = subprocess.Popen([sys.executable, "-m", "blinkgate", "verify", "--name", "subject", "--source", clip,
                             "--no-display", "--db", str(db), "--challenge-delay-min", "0.5",
                             "--challenge-delay-max", "0.5", "--challenge-counts", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_no_core_dump)
    for line in proc.stderr:
        if "Blink 3 times" in line:
            break
    proc.send_signal(getattr(signal, signame))
    assert proc.wait(timeout=60) == code
    with AccessLog(db) as log:
        assert [(e.decision, e.reason) for e in log.entries()] == [("denied", "expired")]


@pytest.mark.parametrize("argv", [[], ["-v"]])
def test_no_command_prints_the_command_list_and_exits_2(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 2 and not out
    assert err.startswith("usage: blinkgate") and "enroll" in err and "check" in err and "door" in err


@pytest.mark.parametrize("argv, command, why", [
    (["run", "--sorce", "door.mp4"], "run", "unrecognized arguments: --sorce door.mp4 (did you mean --source?)"),
    (["check", "a.mp4", "--tolerence=0.4"], "check", "unrecognized arguments: --tolerence=0.4 (did you mean --tolerance?)"),
    (["check"], "check", "give the INPUTs to check"),
    (["check", "a.mp4", "--skip-done", "out.jsonl"], "check", "--skip-done reads an earlier run's --json lines"),
    (["-v", "enrol", "people", "--qiet"], "enroll", "unrecognized arguments: --qiet")])
def test_a_usage_error_shows_the_usage_of_its_command(capsys, argv, command, why):
    """Not the top-level usage, which lists no option of the command."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith(f"usage: blinkgate {command} ") and "COMMAND" not in err
    assert f"blinkgate {command}: error: {why}" in err


def test_an_unknown_option_like_no_other_gets_no_guess(capsys):
    with pytest.raises(SystemExit):
        main(["check", "a.mp4", "--bogus"])
    err = capsys.readouterr().err
    assert "unrecognized arguments: --bogus" in err and "did you mean" not in err


def _command_parser(*argv: str):
    from blinkgate.cli import build_parser

    return build_parser().parse_known_args(list(argv))[0].command_parser


def test_a_flag_run_shares_with_door_reads_the_same_in_both_helps():
    """One definition (config.SETTINGS): run's --liveness S was door's --liveness LIVENESS."""
    def metavars(parser) -> dict:
        return {o: a.metavar for a in parser._actions for o in a.option_strings}

    run_flags, door_flags = metavars(_command_parser("run")), metavars(_command_parser("door"))
    shared = sorted(set(run_flags) & set(door_flags) - {"-h", "--help", "-v", "--verbose", "--no-display"})
    assert {"--liveness", "--eye-model", "--record", "--events", "--ui", "--source", "--tolerance"} <= set(shared)
    assert {f: run_flags[f] for f in shared} == {f: door_flags[f] for f in shared}
    assert (run_flags["--liveness"], run_flags["--eye-model"], run_flags["--ui"]) == ("SECONDS", "ONNX", "[HOST:]PORT")
    assert metavars(_command_parser("check", "a.mp4"))["--liveness"] == "SECONDS"


@pytest.mark.parametrize("argv", [["people"], ["config"], ["eval-blinks", "c.mp4"], ["eval-eyes", "d"], ["check", "a"],
                                  ["log"], ["eval", "m.csv"]])
def test_every_json_flag_says_what_it_prints(argv):
    parser = _command_parser(*argv)
    assert next(a for a in parser._actions if "--json" in a.option_strings).help


@pytest.mark.parametrize("argv", [["enroll", "people"], ["run"], ["log"], ["capture", "p", "n"], ["verify"], ["people"],
                                  ["forget", "ada"], ["unlock", "ada"], ["config"]])
def test_the_commands_help_describes_it(argv):
    assert _command_parser(*argv).description


@pytest.mark.parametrize("command", ["door", "verify"])
def test_door_events_and_view_carry_the_doors_decision_not_the_gates_blink_grant(capsys, tmp_path, monkeypatch,
                                                                                 command):
    """The door wrote the Gate's own events whole, `granted` among them ("blinked and named",
    which a replayed video does): a script watching --events for "granted" unlocked for a face
    the door then denied, and the browser view showed that `granted` in green."""
    from blinkgate.webui import WebUI

    published = []
    publish = WebUI.publish
    monkeypatch.setattr(WebUI, "publish", lambda ui, image, result, events=(): (published.extend(events),
                                                                               publish(ui, image, result, events)))
    # Alice blinks before her prompt (0.5 s), which the Gate alone grants, then never answers it.
    _scripted_door(monkeypatch, *_appears(0, 1, "alice"), _blinks(100, 1, "alice"),
                   (400, "granted", 1, "alice", {}), (2400, "expired", 1, "alice", {}))
    events = tmp_path / "events.jsonl"
    code, out, err = run(capsys, command, "--source", _frame_folder(tmp_path / "frames", 3), "--no-display",
                         "--db", str(tmp_path / "f.db"), "--events", str(events), "--ui", "127.0.0.1:0",
                         *ONE_BLINK_AT_HALF_A_SECOND)
    assert (code, out) == ((0, "") if command == "door" else (1, "")), err
    for shown in ([json.loads(line) for line in events.read_text().splitlines()], [e.to_json() for e in published]):
        kinds = [e["event"] for e in shown]
        assert "granted" not in kinds and "expired" not in kinds, kinds
        assert kinds[:3] == ["appeared", "recognised", "blink"]  # the Gate's other events still come
        assert ("door_denied", "no_blink") in [(e["event"], e.get("reason")) for e in shown]
    if command == "door":  # the clip ends with alice in view: she leaves, as in `run`
        assert [json.loads(line)["event"] for line in events.read_text().splitlines()][-1] == "lost"


def _door_watching_opens(tmp_path, monkeypatch) -> tuple[list, str]:
    """A scripted door and its frame folder; the list records every source opened."""
    import blinkgate.sources as sources

    opened = []
    open_source = sources.open_source
    monkeypatch.setattr(sources, "open_source", lambda spec, **kw: (opened.append(spec), open_source(spec, **kw))[1])
    _scripted_door(monkeypatch)
    return opened, _frame_folder(tmp_path / "frames", 0.5)


def test_door_with_a_webhook_url_no_grant_could_reach_exits_before_the_camera_opens(capsys, tmp_path, monkeypatch):
    opened, frames = _door_watching_opens(tmp_path, monkeypatch)
    code, _, err = run(capsys, "door", "--webhook", "http://ha.local:8123/api/webhook/open door", "--source", frames,
                       "--no-display", "--db", str(tmp_path / "f.db"))
    assert code == 2 and "percent-encode" in err and "open door" not in err and not opened


def test_door_with_an_on_grant_program_it_cannot_run_exits_before_the_camera_opens(capsys, tmp_path, monkeypatch):
    """`door --on-grant '/nonexistent/open-door {name}'` started fine; the error came at the first
    grant, with someone at the door. verify runs no action: the door's settings file's is ignored."""
    opened, frames = _door_watching_opens(tmp_path, monkeypatch)
    code, _, err = run(capsys, "door", "--on-grant", "/nonexistent/open-door {name}", "--source", frames,
                       "--no-display", "--db", str(tmp_path / "f.db"))
    assert code == 2 and "--on-grant program /nonexistent/open-door does not exist" in err and not opened
    settings = tmp_path / "blinkgate.toml"
    settings.write_text('[actions]\non_grant = "/nonexistent/open-door {name}"\n')
    code, _, err = run(capsys, "verify", "--config", str(settings), "--source", frames, "--no-display",
                       "--db", str(tmp_path / "f.db"))
    assert code == 1 and "on-grant" not in err and opened  # the source ended: no one granted


def test_door_with_an_on_grant_program_from_its_settings_file_names_the_file(capsys, tmp_path, monkeypatch):
    """The README's example blinkgate.toml names /usr/local/bin/open-door: the door said
    "--on-grant program ... does not exist" to a user who had typed no --on-grant."""
    opened, frames = _door_watching_opens(tmp_path, monkeypatch)
    settings = tmp_path / "blinkgate.toml"
    settings.write_text('[actions]\non_grant = "/nonexistent/open-door {name}"\n')
    code, _, err = run(capsys, "door", "--config", str(settings), "--source", frames, "--no-display",
                       "--db", str(tmp_path / "f.db"))
    assert code == 2 and not opened
    assert f"/nonexistent/open-door does not exist (actions.on_grant, file:{settings})" in err


def test_eval_db_help_says_what_eval_does_without_it(capsys, tmp_path, monkeypatch):
    """eval's --db said "default: $BLINKGATE_DB, else the user data directory": eval reads neither
    (its numbers must not depend on where it runs) and scores no grant without --db."""
    db_help = next(a.help for a in _command_parser("eval", "m.csv")._actions if "--db" in a.option_strings)
    assert "default: none" in db_help and "$BLINKGATE_DB is not read" in db_help
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"id,label,source\na,live,{tmp_path / 'none.mp4'}\n")
    monkeypatch.setenv("BLINKGATE_DB", str(tmp_path / "missing.db"))  # read, it would be refused as missing
    code, _, err = run(capsys, "eval", str(manifest))
    assert code == 2 and "missing.db" not in err and "none.mp4" in err


@pytest.mark.parametrize("flag", ["--eye-model", "--model"])
def test_eval_eyes_takes_the_eye_model_flag_every_other_command_takes(capsys, tmp_path, flag):
    """The eye model was --eye-model in run, check, door, eval and eval-blinks, but --model in
    eval-eyes alone: `eval-eyes DIR --eye-model my.onnx` was a usage error."""
    code, _, err = run(capsys, "eval-eyes", str(tmp_path), flag, str(tmp_path / "my.onnx"))
    assert code == 2 and err.strip() == f"blinkgate: error: eye model not found: {tmp_path / 'my.onnx'}"


@pytest.mark.parametrize("argv", [["check", "a"], ["eval", "m.csv"], ["simulate-attack", "p", "--out", "o"], ["train-eyes", "d"]])
def test_jobs_reads_the_same_in_every_help(argv):
    """check said --jobs N, eval, simulate-attack and train-eyes --jobs JOBS."""
    jobs = next(a for a in _command_parser(*argv)._actions if "--jobs" in a.option_strings)
    assert jobs.metavar == "N" and "N " in jobs.help


@pytest.mark.parametrize("argv, key, value", [
    (argv, key, value)
    for argv in (["check", "a.mp4"], ["run"], ["eval", "m.csv"], ["capture", "p", "n"])
    for key, value in (("tolerance", "0"), ("tolerance", "1.01"), ("liveness", "0.05"), ("liveness", "0.1"),
                       ("fps", "0.05"), ("fps", "1e10"))
    if (argv[0], key) != ("capture", "liveness")])  # capture names nobody live: it has no --liveness
def test_a_gate_flag_takes_what_the_settings_file_takes(argv, key, value):
    """check --liveness 0.05 ran where `liveness = 0.05` in blinkgate.toml (and door's --liveness)
    was refused, and --tolerance 0 was refused where the file's was taken."""
    from blinkgate.config import BY_KEY, _convert
    from blinkgate.errors import BlinkgateError

    from blinkgate.cli import build_parser

    setting = BY_KEY[key]
    assert setting.flag in _command_parser(*argv)._option_string_actions
    try:
        _convert(setting, value, "test")
        in_file = True
    except BlinkgateError:
        in_file = False
    try:
        build_parser().parse_args([*argv, setting.flag, value])
        on_command_line = True
    except SystemExit:
        on_command_line = False
    assert on_command_line == in_file


@pytest.mark.parametrize("argv, message", [
    (["eval", "{dir}"], "manifest {dir} is a folder: give a CSV or TOML file"),
    (["eval-blinks", "{dir}"], "clip {dir} is a folder: give its video files"),
    (["eval-eyes", "{file}"], "CEW data folder {file} is a file: give the folder that holds split.csv"),
    (["eval-eyes", "{dir}", "--eye-model", "{dir}"], "eye model {dir} is a folder: give its .onnx file"),
    (["check", "a.mp4", "--eye-model", "{dir}", "--db", "{file}"], "eye model {dir} is a folder: give its .onnx file"),
    (["people", "--config", "{dir}"], "config file {dir} is a folder: give the blinkgate.toml in it"),
])
def test_a_folder_given_for_a_file_or_a_file_for_a_folder_is_said_so(capsys, tmp_path, argv, message):
    """`eval results/` said "manifest not found: results" of a folder that is there, as eval-blinks,
    eval-eyes, --eye-model and --config did: the user looked for a path that exists."""
    folder, file = tmp_path / "d", tmp_path / "f.csv"
    folder.mkdir()
    file.write_text("x\n")
    code, _, err = run(capsys, *(a.format(dir=folder, file=file) for a in argv))
    assert code == 2 and err.strip() == "blinkgate: error: " + message.format(dir=folder, file=file)


@pytest.mark.parametrize("argv, message", [
    (["simulate-attack", "p.jpg", "--out", "{file}"], "--out {file}: {file} is there and is not a folder"),
    (["simulate-attack", "p.jpg", "--out", "{file}/sub"], "--out {file}/sub: {file} is there and is not a folder"),
    (["capture", "{file}", "ada"], "PEOPLE_DIR {file}/ada: {file} is there and is not a folder"),
])
def test_a_file_where_an_output_folder_goes_is_named(capsys, tmp_path, argv, message):
    """`simulate-attack --out results.csv` said "cannot write there (File exists)", mkdir's word."""
    file = tmp_path / "f.csv"
    file.write_text("x\n")
    code, _, err = run(capsys, *(a.format(file=file) for a in argv))
    assert code == 2 and err.strip() == "blinkgate: error: " + message.format(file=file)


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["config"], ["config", "--json"]])
def test_a_closed_stdout_is_no_traceback(tmp_path, argv):
    """`blinkgate config >&-` (or a service started without stdout): Python leaves sys.stdout None,
    and the first write or main's flush was an AttributeError traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLINKGATE_")}
    done = subprocess.run(["sh", "-c", '"$@" >&-', "sh", sys.executable, "-m", "blinkgate", *argv],
                          stderr=subprocess.PIPE, text=True, timeout=120, env=env, cwd=tmp_path)
    assert done.returncode == 0 and done.stderr == ""


def test_a_closed_stderr_keeps_messages_out_of_stdout(tmp_path):
    """`blinkgate people --db missing.db 2>&-`: print(file=None) wrote the error into stdout, the
    data; `check --json 2>&-` failed on its progress bar's first write (exit 1, no verdict)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLINKGATE_")}
    done = subprocess.run(["sh", "-c", '"$@" 2>&-', "sh", sys.executable, "-m", "blinkgate", "people", "--db",
                           str(tmp_path / "missing.db")], stdout=subprocess.PIPE, text=True, timeout=120, env=env)
    assert done.returncode == 2 and done.stdout == ""
    clip = tmp_path / "clip.avi"
    _blank_video(clip, 3)
    done = subprocess.run(["sh", "-c", '"$@" 2>&-', "sh", sys.executable, "-m", "blinkgate", "check", str(clip),
                           "--json", "--db", str(tmp_path / "none.db")], stdout=subprocess.PIPE, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0 and json.loads(done.stdout)["frames"] == 3
