"""FaceEncoder on real photos and Recognizer, both on synthetic vectors and on lfw65."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from blinkgate.errors import ModelError
from blinkgate.recognize import DEFAULT_TOLERANCE, FaceEncoder, Match, Recognizer
from blinkgate.types import Box

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
LFW = DATA / "faces" / "lfw65"
FR = DATA / "faces" / "fr-examples"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared test data not found at {path} (see ../shared/data/README.md)")
    return path


def unit(i: int) -> np.ndarray:
    v = np.zeros(128)
    v[i] = 1.0
    return v


# -- Recognizer on synthetic encodings -----------------------------------------------------


def test_nearest_within_tolerance() -> None:
    rec = Recognizer([unit(0), unit(1)], ["Ada", "Bob"], tolerance=0.5, margin=0.1)
    query = unit(0) * 0.8  # 0.2 from Ada, ~1.28 from Bob
    assert rec.match(query) == Match("Ada", pytest.approx(0.2))
    far = rec.match(unit(2))  # sqrt(2) from both
    assert far.name is None and far.distance == pytest.approx(np.sqrt(2))


def test_margin_refuses_ambiguous_faces() -> None:
    a, b = np.zeros(128), np.zeros(128)
    b[0] = 0.1
    query = np.zeros(128)
    query[0] = 0.04  # 0.04 from Ada, 0.06 from Bob: both well within tolerance
    assert Recognizer([a, b], ["Ada", "Bob"], margin=0.1).match(query).name is None
    assert Recognizer([a, b], ["Ada", "Bob"], margin=0.0).match(query).name == "Ada"
    # The margin is the gap to the next person, not a fraction of it: 0.08 is under 0.1, 0.12 over.
    for gap, named in ((0.08, None), (0.12, "Ada")):
        b[0] = 0.08 + gap  # query at 0.04: Ada 0.04 away, Bob 0.04 + gap
        assert Recognizer([a, b], ["Ada", "Bob"], margin=0.1).match(query).name == named
    b[0] = 0.1
    # Several photos of the same person are not "another person".
    assert Recognizer([a, b], ["Ada", "Ada"], margin=0.1).match(query) == Match("Ada", pytest.approx(0.04))


def test_a_recheck_keeps_a_name_a_little_past_the_tolerance() -> None:
    rec = Recognizer([unit(0), unit(1)], ["Ada", "Bob"], tolerance=0.5, margin=0.1)
    just_past = unit(0) * 0.47  # 0.53 from Ada
    assert rec.match(just_past).name is None  # a first look, or a blink's closed frame: unknown
    assert rec.recheck(just_past, "Ada", keep=0.05) == Match("Ada", pytest.approx(0.53))
    assert rec.recheck(unit(0) * 0.4, "Ada", keep=0.05).name is None  # 0.6: past the band too
    assert rec.recheck(just_past, "Bob", keep=0.05).name is None  # Ada is the nearest, not Bob
    assert rec.recheck(unit(1), "Ada").name == "Bob"  # someone else named is someone else
    a, b = np.zeros(128), np.zeros(128)
    b[0] = 0.1
    query = np.zeros(128)
    query[0] = 0.04  # ambiguous for match (margin), kept at a re-check of the nearest
    close = Recognizer([a, b], ["Ada", "Bob"])
    assert close.match(query).name is None and close.recheck(query, "Ada").name == "Ada"


def test_vote_can_disagree_with_nearest() -> None:
    near, q = np.zeros(128), np.zeros(128)
    bob1, bob2 = np.zeros(128), np.zeros(128)
    near[0], bob1[1], bob2[2] = 0.1, 0.4, 0.4
    encs, names = [near, bob1, bob2], ["Ada", "Bob", "Bob"]
    assert Recognizer(encs, names, 0.5, 0.0, "vote").match(q) == Match("Bob", pytest.approx(0.4))
    assert Recognizer(encs, names, 0.5, 0.0, "nearest").match(q) == Match("Ada", pytest.approx(0.1))


def test_empty_and_invalid() -> None:
    assert Recognizer([], []).match(unit(0)) == Match(None, float("inf"))
    with pytest.raises(ValueError, match="names"):
        Recognizer([unit(0)], ["Ada", "Bob"])
    with pytest.raises(ValueError, match="128"):
        Recognizer([np.zeros(3)], ["Ada"])
    with pytest.raises(ValueError, match="method"):
        Recognizer([unit(0)], ["Ada"], method="knn")  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["nearest", "vote"])
def test_an_encoding_with_nan_names_nobody(method: str) -> None:
    # A NaN distance compares false with the tolerance: it used to name the nearest person.
    rec = Recognizer([unit(0), unit(1)], ["Ada", "Bob"], method=method)  # type: ignore[arg-type]
    bad = unit(0)
    bad[5] = np.nan
    assert rec.match(bad) == Match(None, float("inf"))
    assert rec.recheck(bad, "Ada").name is None


@pytest.mark.parametrize("bad", [float("nan"), -0.5])
def test_a_nan_or_negative_tolerance_is_refused(bad: float) -> None:
    # NaN passed no "distance > tolerance" test: a stranger was named the nearest enrolled person.
    with pytest.raises(ValueError, match="tolerance"):
        Recognizer([unit(0)], ["Ada"], tolerance=bad)


def test_a_nan_margin_is_refused() -> None:
    # A NaN margin compares false with every gap between the two nearest people: no look-alike rule.
    with pytest.raises(ValueError, match="margin"):
        Recognizer([unit(0), unit(1)], ["Ada", "Bob"], margin=float("nan"))


def test_default_tolerance_is_strict() -> None:
    assert DEFAULT_TOLERANCE < 0.6  # 0.6 accepted ~47% of strangers' photos on lfw65


# -- FaceEncoder on real photos ------------------------------------------------------------


@pytest.fixture(scope="module")
def encoder() -> FaceEncoder:
    return FaceEncoder()


def read(path: Path) -> np.ndarray:
    image = cv2.imread(str(need(path)))
    assert image is not None, path
    return image


def centre_face(boxes: list[Box], image: np.ndarray) -> Box:
    """LFW crops put the labelled person in the centre; others may show at the edges."""
    h, w = image.shape[:2]
    return min(boxes, key=lambda b: (b[0] + b[2] - w) ** 2 + (b[1] + b[3] - h) ** 2)


def test_detect_returns_xyxy_boxes_inside_the_image(encoder: FaceEncoder) -> None:
    image = read(FR / "examples" / "two_people.jpg")
    boxes = encoder.detect(image)
    assert len(boxes) == 2
    h, w = image.shape[:2]
    for x1, y1, x2, y2 in boxes:
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        assert all(isinstance(v, float) for v in (x1, y1, x2, y2))
        assert 50 < x2 - x1 < 400  # face-sized
    assert encoder.detect(np.full((240, 240, 3), 128, np.uint8)) == []
    # Gray frames work too.
    assert len(encoder.detect(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))) == 2


def test_encode_same_and_different_people(encoder: FaceEncoder) -> None:
    train = FR / "examples" / "knn_examples" / "train"

    def encode(path: Path) -> np.ndarray:
        image = read(path)
        (box,) = encoder.detect(image)
        return encoder.encode(image, box)

    obama1, obama2 = encode(train / "obama" / "obama.jpg"), encode(train / "obama" / "obama2.jpg")
    biden = encode(train / "biden" / "biden.jpg")
    assert obama1.shape == (128,) and obama1.dtype == np.float64
    assert np.linalg.norm(obama1 - obama2) < 0.45
    assert np.linalg.norm(obama1 - biden) > 0.6
    again = encode(train / "obama" / "obama.jpg")
    np.testing.assert_allclose(again, obama1, atol=1e-6)  # deterministic with num_jitters=1


def test_encode_from_a_haar_box(encoder: FaceEncoder) -> None:
    """The live pipeline may hand us Haar boxes: they must give nearly the HOG-box encoding."""
    image = read(LFW / "Tony_Blair" / sorted(p.name for p in need(LFW / "Tony_Blair").iterdir())[0])
    hog = centre_face(encoder.detect(image), image)
    haar = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    found = haar.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(40, 40))
    assert len(found) >= 1
    x, y, w, h = max(found, key=lambda r: r[2] * r[3])
    haar_box = (float(x), float(y), float(x + w), float(y + h))
    assert haar_box != hog
    distance = np.linalg.norm(encoder.encode(image, haar_box) - encoder.encode(image, hog))
    assert distance < 0.15  # study: median 0.04, 95th percentile 0.09 over lfw65


def test_landmarks68_eyes_lie_in_the_upper_face(encoder: FaceEncoder) -> None:
    image = read(FR / "examples" / "obama_small.jpg")
    (box,) = encoder.detect(image)
    points = encoder.landmarks68(image, box)
    assert points.shape == (68, 2) and points.dtype == np.float64
    x1, y1, x2, y2 = box
    eyes = points[36:48]
    assert ((eyes[:, 0] > x1) & (eyes[:, 0] < x2)).all()
    assert (eyes[:, 1] < points[30, 1]).all()  # eyes above the nose tip
    # 36-41 is the subject's right eye: on the image's left.
    assert points[36:42, 0].mean() < points[42:48, 0].mean()


def test_missing_models_raise_model_error(tmp_path: Path) -> None:
    encoder = FaceEncoder(models_dir=tmp_path)
    image = np.full((100, 100, 3), 128, np.uint8)
    assert encoder.detect(image) == []  # the HOG detector is built into dlib
    with pytest.raises(ModelError, match="shape_predictor_5_face_landmarks.dat"):
        encoder.encode(image, (10.0, 10.0, 90.0, 90.0))
    (tmp_path / "shape_predictor_68_face_landmarks.dat").write_bytes(b"truncated")
    with pytest.raises(ModelError, match="cannot load model"):
        encoder.landmarks68(image, (10.0, 10.0, 90.0, 90.0))


# -- identification on lfw65 --------------------------------------------------------------


@dataclass
class Face:
    person: str
    encoding: np.ndarray


def faces_of(encoder: FaceEncoder, person: str, n_enrol: int, n_query: int) -> tuple[list[Face], list[Face]]:
    """The first ``n_enrol`` single-face photos (as enrolment accepts), then ``n_query`` more."""
    enrol: list[Face] = []
    query: list[Face] = []
    for path in sorted((LFW / person).iterdir()):
        if len(enrol) == n_enrol and len(query) == n_query:
            break
        image = read(path)
        boxes = encoder.detect(image)
        if len(enrol) < n_enrol:
            if len(boxes) == 1:
                enrol.append(Face(person, encoder.encode(image, boxes[0])))
        elif boxes:
            query.append(Face(person, encoder.encode(image, centre_face(boxes, image))))
    return enrol, query


@pytest.fixture(scope="module")
def lfw_faces(encoder: FaceEncoder) -> tuple[list[Face], list[Face], list[Face]]:
    people = sorted(p.name for p in need(LFW).iterdir() if p.is_dir())
    enrolled, strangers = people[0:40:2], people[1:10:2]  # 20 enrolled, 5 never enrolled
    enrol, query, impostor = [], [], []
    for person in enrolled:
        e, q = faces_of(encoder, person, n_enrol=3, n_query=2)
        enrol += e
        query += q
    for person in strangers:
        impostor += faces_of(encoder, person, n_enrol=0, n_query=3)[1]
    return enrol, query, impostor


def test_lfw_enrolled_people_are_recognised(lfw_faces) -> None:
    enrol, query, _ = lfw_faces
    assert len(enrol) == 60 and len(query) == 40
    rec = Recognizer([f.encoding for f in enrol], [f.person for f in enrol])
    names = [rec.match(f.encoding).name for f in query]
    correct = sum(n == f.person for n, f in zip(names, query))
    wrong = sum(n is not None and n != f.person for n, f in zip(names, query))
    assert wrong == 0
    assert correct >= 34, f"only {correct}/40 recognised"  # study at 20 people: ~94%


def test_lfw_strangers_are_unknown(lfw_faces) -> None:
    enrol, _, impostor = lfw_faces
    assert len(impostor) == 15
    rec = Recognizer([f.encoding for f in enrol], [f.person for f in enrol])
    matches = [rec.match(f.encoding) for f in impostor]
    assert [m.name for m in matches] == [None] * 15
    assert all(m.distance > DEFAULT_TOLERANCE for m in matches)
    # Why the defaults are strict: dlib's customary 0.6 without margin lets strangers in here.
    lax = Recognizer([f.encoding for f in enrol], [f.person for f in enrol], 0.6, 0.0)
    assert sum(lax.match(f.encoding).name is not None for f in impostor) >= 3


def test_landmarks68_reads_a_gray_frame_as_it_is() -> None:
    """The gate hands its gray frame over on every frame: no whole-frame RGB copy of it first
    (the points are the same: dlib reads a grey RGB pixel's intensity as its one level)."""
    seen = []

    class Point:
        x, y = 3, 4

    class Shape:
        def parts(self):
            return [Point()] * 68

    def predictor(image, rect):
        seen.append(image)
        return Shape()

    encoder = FaceEncoder()
    encoder._shape68 = predictor
    gray = np.zeros((60, 80), np.uint8)
    assert encoder.landmarks68(gray, (10.0, 10.0, 50.0, 50.0)).shape == (68, 2)
    assert seen[-1] is gray
    encoder.landmarks68(gray[5:, 5:], (10.0, 10.0, 50.0, 50.0))  # a crop: made contiguous for dlib, still gray
    assert seen[-1].shape == (55, 75) and seen[-1].flags.c_contiguous
    encoder.landmarks68(np.zeros((60, 80, 3), np.uint8), (10.0, 10.0, 50.0, 50.0))  # colour: dlib's RGB
    assert seen[-1].shape == (60, 80, 3)


def test_landmarks68_of_a_gray_frame_are_those_of_its_rgb_copy(encoder: FaceEncoder) -> None:
    gray = cv2.cvtColor(read(FR / "examples" / "obama_small.jpg"), cv2.COLOR_BGR2GRAY)
    (box,) = encoder.detect(gray)
    assert np.array_equal(encoder.landmarks68(gray, box), encoder.landmarks68(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), box))
