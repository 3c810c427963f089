"""Enrolment photos from the camera: which frames become photos, and that enrol takes them."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from blinkgate.capture import CaptureOptions, capture, check_name
from blinkgate.cli import main
from blinkgate.errors import BlinkgateError, SourceError
from blinkgate.sources import Frame, FrameSource

from conftest import mode_of, shared

FACE = (100.0, 100.0, 250.0, 250.0)
SMALL = (100.0, 100.0, 150.0, 150.0)


def frames(n: int, step_ms: float = 100.0) -> list[Frame]:
    return [Frame(np.full((480, 640, 3), i % 256, np.uint8), i * step_ms, i) for i in range(n)]


def scripted(boxes_by_frame: dict[int, list]):
    """A detector that finds, in frame i (its pixels hold i), the boxes the test lists for i."""
    return lambda image: list(boxes_by_frame.get(int(image[0, 0, 0]), []))


def test_only_frames_with_one_face_big_enough_become_photos_spaced_in_time(tmp_path):
    seen = []
    detect = scripted({0: [], 1: [FACE, FACE], 2: [SMALL], **{i: [FACE] for i in range(3, 40)}})
    saved = capture(frames(40), tmp_path, detect, CaptureOptions(count=3, every_ms=700),
                    on_frame=lambda f, box, why, n: seen.append((f.index, box is not None, why, n)) or True)
    assert len(saved) == 3 and all(cv2.imread(str(p)) is not None for p in saved)
    taken = [i for i, ok, _, _ in seen if ok]
    assert taken == [3, 10, 17]  # the first good frame, then one every 700 ms
    whys = {i: why for i, _, why, _ in seen}
    assert whys[0] == "no face" and "2 faces" in whys[1] and "come closer" in whys[2]
    assert seen[-1][0] == 17  # stops once it has them
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in saved)  # no temporary file left


def test_a_camera_nobody_stands_in_front_of_gives_up_at_the_timeout(tmp_path):
    looked = []
    saved = capture(frames(1000), tmp_path, scripted({}), CaptureOptions(timeout_ms=2000),
                    on_frame=lambda f, *_: looked.append(f.index) or True)
    assert saved == [] and looked[-1] == 21  # the first frame past 2 s after the first


class StalledStream(FrameSource):
    """A live source that gives two frames, then none: it asks ``on_idle`` with its clock (ms) as
    a stalled LiveSource does, every 500 ms, and is given up after 60 s as its reconnects would."""

    live = True

    def __iter__(self):
        yield from frames(2)
        for now_ms in range(600, 60_000, 500):
            if self.on_idle is not None and self.on_idle(float(now_ms)):
                self.ended_at = now_ms
                return
        raise SourceError("stream lost after 3 reconnect attempts")


def test_a_stream_that_stalls_gives_up_at_the_timeout_not_after_its_reconnects(tmp_path):
    stream = StalledStream()
    saved = capture(stream, tmp_path, scripted({}), CaptureOptions(timeout_ms=2000))
    assert saved == [] and stream.ended_at == 2100  # the first look past 2 s after the first frame


def test_closing_the_window_stops(tmp_path):
    saved = capture(frames(100), tmp_path, scripted({i: [FACE] for i in range(100)}), CaptureOptions(count=5),
                    on_frame=lambda f, *_: f.index < 8)
    assert len(saved) == 2  # frames 0 and 7; the window closed at 8


@pytest.mark.parametrize("name", ["", "  ", ".", "..", "a/b", "a\\b", "-rf", ".ann", " .ann", "Eve\nAda", "Eve\x1b[2J",
                                  "bob\u200b", "\u202eboB", "a\u2066b\u2069"])
def test_a_name_that_cannot_be_a_folder_under_people_dir_is_refused(name):
    with pytest.raises(BlinkgateError):
        check_name(name)


def test_check_name_keeps_spaces_inside_and_unicode():
    assert check_name(" Zoë Ada ") == "Zoë Ada"


def test_captured_photos_are_enrolled_and_name_the_person(capsys, tmp_path):
    clip = str(shared("blink-videos", "blink-detector.mp4"))
    people, db = tmp_path / "people", str(tmp_path / "faces.db")
    code = main(["capture", str(people), "kid", "--source", clip, "--no-display", "--count", "3"])
    out = capsys.readouterr().out
    assert code == 0 and f"3 photos of kid in {people / 'kid'}" in out and "blinkgate enroll" in out
    assert len(list((people / "kid").glob("*.jpg"))) == 3
    assert main(["enroll", str(people), "--db", db, "-q"]) == 0
    assert "3 added" in capsys.readouterr().out
    assert main(["check", clip, "--db", db, "-q", "--json"]) == 0
    assert '"granted": true' in capsys.readouterr().out


def test_capture_without_any_face_exits_1_and_leaves_no_photo(capsys, tmp_path, caplog):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(10):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.zeros((120, 160, 3), np.uint8))
    code = main(["capture", str(tmp_path / "people"), "ann", "--source", str(folder), "--no-display"])
    assert code == 1 and "no photo of ann taken" in caplog.text
    assert not (tmp_path / "people" / "ann").exists()  # no empty folder for enroll to report


def test_capture_with_no_display_suggests_no_option_it_does_not_have(capsys, tmp_path, caplog, monkeypatch):
    # It said "running headless (--ui PORT shows it in a browser, --record OUT.mkv writes it)":
    # capture has neither option.
    from blinkgate import viewer

    monkeypatch.setattr(viewer, "has_display", lambda: False)
    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "000.png"), np.zeros((120, 160, 3), np.uint8))
    assert main(["capture", str(tmp_path / "people"), "ann", "--source", str(folder)]) == 1
    assert "no display found: running headless" in caplog.text
    assert "--ui" not in caplog.text and "--record" not in caplog.text


def test_capture_from_a_missing_camera_leaves_no_empty_folder(capsys, tmp_path):
    assert main(["capture", str(tmp_path / "people"), "ann", "--source", str(tmp_path / "none.mp4"),
                 "--no-display"]) == 2
    assert not (tmp_path / "people" / "ann").exists()


def test_capture_refuses_a_bad_name_before_opening_the_camera(capsys, tmp_path, monkeypatch):
    import blinkgate.sources as sources

    monkeypatch.setattr(sources, "open_source", lambda *a, **k: pytest.fail("opened the camera"))
    assert main(["capture", str(tmp_path), "../escape"]) == 2
    assert "cannot be a person's folder name" in capsys.readouterr().err


def test_a_second_person_stepping_in_is_not_saved_under_the_first_ones_name(tmp_path):
    """Each frame alone showed one face: the first person stepped away and the next one's photos
    went into the same folder, so enrol let the second person in under the first one's name."""
    detect = scripted({i: [FACE] for i in range(40)})
    ann, bob = np.zeros(128), np.full(128, 0.1)  # 1.13 apart: two people

    def encode(image, box):
        return ann if image[0, 0, 0] < 20 else bob  # ann until frame 20, then bob

    seen = []
    saved = capture(frames(40), tmp_path, detect, CaptureOptions(count=5, every_ms=700), encode=encode,
                    on_frame=lambda f, box, why, n: seen.append((f.index, why)) or True)
    assert len(saved) == 3  # frames 0, 7, 14: ann's; none of bob's
    assert "not the person of the first photo" in dict(seen)[21]


def test_ctrl_c_while_a_photo_is_written_leaves_no_temporary_file(tmp_path, monkeypatch):
    from blinkgate import capture as capture_module
    from blinkgate import files

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "replace", interrupted)  # the rename of the written photo
    with pytest.raises(KeyboardInterrupt):
        capture_module.save_photo(tmp_path, np.zeros((50, 50, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_a_photo_a_killed_capture_left_hidden_is_deleted_by_the_next_one(tmp_path, caplog):
    """kill -9 (or a power cut) between writing a photo and renaming it left a hidden
    ".capture-....jpg.PID.tmp", a face enroll skips and nobody sees, for ever. Only write_atomic's
    temporary photos are deleted: of a process gone, or an hour old (the PID reused)."""
    import os
    import subprocess
    import sys
    import time

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead, alive = child.pid, os.getpid()
    killed = tmp_path / f".capture-20260101-120000-000001.jpg.{dead}.tmp"
    old = tmp_path / f".capture-20260101-120000-000002.jpg.{alive}.tmp"
    writing = tmp_path / f".capture-20260101-120000-000003.jpg.{alive}.tmp"  # another capture, now
    others = [tmp_path / f".notes.txt.{dead}.tmp", tmp_path / ".capture-x.jpg.tmp", tmp_path / "capture-1.jpg"]
    for path in (killed, old, writing, *others):
        path.write_bytes(b"jpeg")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    (tmp_path / f".capture-4.jpg.{dead}.tmp").symlink_to(tmp_path / "capture-1.jpg")
    with caplog.at_level("INFO", logger="blinkgate"):
        assert capture([], tmp_path, scripted({})) == []
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([writing.name, f".capture-4.jpg.{dead}.tmp", *(p.name for p in others)])
    assert f"deleted {killed.name}, a photo a killed capture never finished saving" in caplog.text


def test_an_hd_frame_is_saved_as_the_smaller_picture_that_was_checked(tmp_path):
    """Enrol detects on the saved photo: at full HD it could find a background face that the
    check at 640 px missed, and skip the photo as "several faces"."""
    hd = [Frame(np.zeros((720, 1280, 3), np.uint8), 0.0, 0)]
    looked = []

    def detect(image):
        looked.append(image.shape)
        return [FACE]

    shown = []
    saved = capture(hd, tmp_path, detect, CaptureOptions(count=1),
                    on_frame=lambda f, box, why, n: shown.append(box) or True)
    assert looked == [(360, 640, 3)] and cv2.imread(str(saved[0])).shape == (360, 640, 3)
    assert shown == [tuple(2 * v for v in FACE)]  # the window draws on the full frame


def test_a_face_far_from_the_photos_already_in_the_folder_is_not_saved(tmp_path):
    """A second run under the same name compared its faces with its own first photo only: anyone
    in front of the camera was added to the person's folder, and enrol let them in by that name."""
    detect = scripted({i: [FACE] for i in range(40)})
    ann, bob = np.zeros(128), np.full(128, 0.1)  # 1.13 apart: two people
    ann_turned = ann + np.eye(128)[0] * 0.45  # 0.45 from ann, 0.99 from bob's face

    def encode(image, box):
        return bob if image[0, 0, 0] < 20 else ann_turned  # bob until frame 20, then ann

    seen = []
    saved = capture(frames(40), tmp_path, detect, CaptureOptions(count=5, every_ms=700), encode=encode,
                    known=np.array([bob + 1.0, ann]),  # ann's photo, and one of someone else nowhere near
                    on_frame=lambda f, box, why, n: seen.append((f.index, why)) or True)
    assert len(saved) == 3  # frames 20, 27, 34: ann's; none of bob's, though his was the first face
    assert f"not the person already in {tmp_path.name}/ (1.13 from the nearest photo)" in dict(seen)[0]


def lfw_frames(folder, person: str, numbers) -> str:
    """A frame folder of lfw65 photos of ``person`` (symlinks): a camera showing them in turn."""
    folder.mkdir()
    for i, n in enumerate(numbers):
        (folder / f"{i:03d}.jpg").symlink_to(shared("faces", "lfw65", person, f"{person}_{n:04d}.jpg"))
    return str(folder)


def test_photos_and_the_folders_capture_makes_are_their_owners_only(capsys, tmp_path, common_umask):
    # Faces are biometric data, 0600 in the database: the photos were 0644, the folders 0755.
    people = tmp_path / "new" / "people"
    source = lfw_frames(tmp_path / "frames", "Hugh_Grant", [1])
    code = main(["capture", str(people), "Hugh", "--source", source, "--no-display", "--fps", "1", "--count", "1"])
    assert code == 0, capsys.readouterr().err
    (photo,) = (people / "Hugh").iterdir()
    assert [mode_of(p) for p in (tmp_path / "new", people, people / "Hugh", photo)] == [0o700, 0o700, 0o700, 0o600]


def test_capture_again_under_a_name_takes_only_the_person_already_in_its_folder(capsys, tmp_path, caplog):
    people = tmp_path / "people"

    def capture_from(person, numbers):
        source = lfw_frames(tmp_path / f"{person}{numbers[0]}", person, numbers)
        return main(["capture", str(people), "Hugh", "--source", source, "--no-display", "--fps", "1",
                     "--count", str(len(numbers))])

    assert capture_from("Hugh_Grant", [1, 2]) == 0
    assert capture_from("Jackie_Chan", [1, 2]) == 1  # someone else at the kiosk, typing Hugh's name
    assert "no photo of Hugh taken" in caplog.text and "not the person already in Hugh/ (0.8" in caplog.text
    assert len(list((people / "Hugh").iterdir())) == 2
    assert capture_from("Hugh_Grant", [3, 4]) == 0  # Hugh himself, another day: 0.41 and 0.37 from his photos
    assert len(list((people / "Hugh").iterdir())) == 4


def test_capture_takes_no_face_the_gate_would_not_name_as_the_person(capsys, tmp_path, caplog, monkeypatch):
    """A door set to a stricter tolerance (0.4) names a face as a person only within 0.4 of their
    photos, but capture took any face within 0.5: a look-alike at 0.45, photographed at the kiosk
    under the person's name and enrolled, was then named (and let in) as them."""
    monkeypatch.chdir(tmp_path)  # ./blinkgate.toml: the door's settings
    (tmp_path / "blinkgate.toml").write_text("tolerance = 0.4\n")
    people = tmp_path / "people"
    people.mkdir()
    lfw_frames(people / "Hugh", "Hugh_Grant", [1, 2])  # his enrolled photos
    source = lfw_frames(tmp_path / "camera", "Hugh_Grant", [3, 4])
    argv = ["capture", str(people), "Hugh", "--source", source, "--no-display", "--fps", "1", "--count", "2"]
    assert main(argv) == 1  # 0.41 from his photos: not him, to a door at 0.4; 0.37: him
    assert len(list((people / "Hugh").iterdir())) == 3 and "(0.41 from the nearest photo)" in caplog.text


def test_known_faces_are_those_of_the_photos_enrol_would_take(tmp_path):
    from blinkgate.capture import known_faces
    from blinkgate.recognize import FaceEncoder

    encoder = FaceEncoder()
    assert known_faces(tmp_path / "nobody", encoder).shape == (0, 128)  # a new person
    (tmp_path / "a.jpg").symlink_to(shared("faces", "lfw65", "Hugh_Grant", "Hugh_Grant_0001.jpg"))
    cv2.imwrite(str(tmp_path / "wall.png"), np.zeros((120, 160, 3), np.uint8))  # enrol skips it: no face
    (tmp_path / "notes.txt").write_text("not a photo")
    assert known_faces(tmp_path, encoder).shape == (1, 128)


@pytest.mark.parametrize("typed, existing", [
    ("Jose\u0301", "Jos\u00e9"),  # typed on a Mac (NFD), the folder made on Linux (NFC)
    ("Jos\u00e9", "Jose\u0301"),  # the other way round: a folder copied from a Mac
    ("Bob", " Bob "),  # spaces around the folder's name
])
def test_a_name_in_another_unicode_form_or_with_spaces_goes_into_the_existing_folder(tmp_path, typed, existing):
    """A second folder made enrol enrol two people named alike, and the margin rule names a face
    about as close to both as neither: the person was no longer let in at all."""
    from blinkgate.capture import person_folder

    (tmp_path / existing).mkdir()
    assert person_folder(tmp_path, typed) == tmp_path / existing
    assert person_folder(tmp_path, "Ann") == tmp_path / "Ann"  # a new person gets a folder of the name typed


def test_two_folders_of_one_name_already_are_refused(tmp_path):
    from blinkgate.capture import person_folder

    (tmp_path / "Jos\u00e9").mkdir()
    (tmp_path / "Jose\u0301").mkdir()
    with pytest.raises(BlinkgateError, match="2 folders named 'Jos.*move the photos into one"):
        person_folder(tmp_path, "Jos\u00e9")


def test_capture_under_a_name_typed_in_another_unicode_form_adds_to_its_folder(capsys, tmp_path):
    people, nfc = tmp_path / "people", "Jos\u00e9"
    (people / nfc).mkdir(parents=True)
    source = lfw_frames(tmp_path / "frames", "Hugh_Grant", [1])
    assert main(["capture", str(people), "Jose\u0301", "--source", source, "--no-display", "--count", "1"]) == 0
    assert [p.name for p in people.iterdir()] == [nfc] and len(list((people / nfc).iterdir())) == 1
    assert f"1 photo of {nfc} in {people / nfc}" in capsys.readouterr().out


def test_capture_reads_only_its_tolerance_from_the_settings_file(tmp_path, monkeypatch):
    """README and --config say capture takes its tolerance from blinkgate.toml; it took the door's
    fps too, and a frame folder read at `fps = 5` gave 7 photos in --timeout 1 where --fps's
    default 20 gave 11."""
    import blinkgate.sources as sources

    monkeypatch.chdir(tmp_path)
    (tmp_path / "blinkgate.toml").write_text("fps = 5\n")
    opened = []

    def open_source(spec, fps=None, **kwargs):
        opened.append(fps)
        raise SourceError("stop here")

    monkeypatch.setattr(sources, "open_source", open_source)
    assert main(["capture", str(tmp_path / "people"), "Ada", "--source", "frames", "--no-display"]) == 2
    assert main(["capture", str(tmp_path / "people"), "Ada", "--source", "frames", "--no-display", "--fps", "2"]) == 2
    assert opened == [20.0, 2.0]


def test_a_face_exactly_at_the_tolerance_is_the_same_person_and_one_exactly_the_minimum_wide_is_taken():
    """Both bounds are inclusive, as the gate names a face at distance <= tolerance and the
    message asks for "at least" min_face_px."""
    from blinkgate.capture import _other_person, one_face

    faces = np.array([[0.0, 0.0], [3.0, 0.0]])
    assert _other_person(np.array([0.0, 0.5]), faces, None, tolerance=0.5) == ""
    assert _other_person(np.array([0.0, 0.51]), faces, None, tolerance=0.5).startswith("not the person")
    image = np.zeros((100, 100, 3), np.uint8)
    assert one_face(image, lambda img: [(10.0, 10.0, 50.0, 50.0)], min_face_px=40)[1] == (10.0, 10.0, 50.0, 50.0)
    assert one_face(image, lambda img: [(10.0, 10.0, 49.0, 49.0)], min_face_px=40)[1] is None
