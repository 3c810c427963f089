"""The crease detector on drawn faces: a fold line across the eye band, and what is not one."""

import cv2
import numpy as np
import pytest

from blinkgate.blink import BlinkOptions
from blinkgate.fold import crease_lines, crease_score, eye_canvas

EYE_Y = 200.0
LOW = 0.25  # well under the rise that voids a closure (BlinkOptions.crease_change) from zero


def face(rng: np.random.Generator, roll_deg: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A textured 400×400 gray image and 68 landmarks with the eyes 80 px apart at row 200."""
    img = cv2.GaussianBlur(rng.normal(128, 25, (400, 400)).astype(np.float32), (0, 0), 2.0)
    pts = np.zeros((68, 2))
    pts[36], pts[39] = (145, EYE_Y), (175, EYE_Y)  # subject's right eye, outer then inner corner
    pts[42], pts[45] = (225, EYE_Y), (255, EYE_Y)
    # Eyes and brows as dark blobs: structure the detector must ignore.
    for cx in (160, 240):
        cv2.ellipse(img, (cx, int(EYE_Y)), (16, 7), 0, 0, 360, 40, -1)
        cv2.ellipse(img, (cx, int(EYE_Y) - 28), (22, 5), 0, 0, 360, 60, -1)
    if roll_deg:
        m = cv2.getRotationMatrix2D((200, 200), roll_deg, 1.0)
        img = cv2.warpAffine(img, m, (400, 400), borderMode=cv2.BORDER_REFLECT)
        pts = pts @ m[:, :2].T + m[:, 2]
    return img, pts


def line(img: np.ndarray, x0: float, x1: float, y: float, slope: float = 0.0, value: int = 20) -> np.ndarray:
    out = img.copy()
    cv2.line(out, (int(x0), int(round(y + slope * (x0 - 200)))), (int(x1), int(round(y + slope * (x1 - 200)))),
             value, 2, cv2.LINE_AA)
    return out


@pytest.mark.parametrize("seed", range(3))
def test_no_line_scores_low(seed):
    img, pts = face(np.random.default_rng(seed))
    assert crease_score(img.astype(np.uint8), pts) < LOW


@pytest.mark.parametrize("dy,slope,value", [(0, 0.0, 20), (8, 0.0, 230), (-10, 0.05, 20), (4, -0.1, 230),
                                            (20, 0.0, 20), (-24, 0.0, 230)])  # ±0.25-0.3 IOD: still the eye band
def test_a_fold_line_across_the_eye_band_scores_high(dy, slope, value):
    img, pts = face(np.random.default_rng(1))
    folded = line(img, 0, 399, EYE_Y + dy, slope, value)
    assert crease_score(folded.astype(np.uint8), pts) > 0.8


@pytest.mark.parametrize("x0,x1", [(0, 300), (100, 399)])
def test_a_fold_past_the_face_on_one_side_only_scores_high(x0, x1):
    """A fold need not run off both sides of the face (a photo cut close on one side, a pleat
    ending at the cheek): the bridge and the better of the two sides count."""
    img, pts = face(np.random.default_rng(1))
    assert crease_score(line(img, x0, x1, EYE_Y).astype(np.uint8), pts) > 0.8


def test_the_line_is_found_on_a_rolled_face():
    img, pts = face(np.random.default_rng(2))
    folded = line(img, 0, 399, EYE_Y)
    rolled = cv2.warpAffine(folded, cv2.getRotationMatrix2D((200, 200), 20, 1.0), (400, 400),
                            borderMode=cv2.BORDER_REFLECT)
    m = cv2.getRotationMatrix2D((200, 200), 20, 1.0)
    assert crease_score(rolled.astype(np.uint8), pts @ m[:, :2].T + m[:, 2]) > 0.8


@pytest.mark.parametrize("x0,x1,why", [
    (180, 220, "a glasses bridge: over the nose only"),
    (0, 130, "an edge beside the face that does not cross the nose"),
])
def test_lines_that_do_not_cross_the_whole_band_score_low(x0, x1, why):
    img, pts = face(np.random.default_rng(3))
    assert crease_score(line(img, x0, x1, EYE_Y).astype(np.uint8), pts) < LOW, why


def test_a_line_far_from_the_eyes_is_not_a_crease():
    img, pts = face(np.random.default_rng(4))
    assert crease_score(line(img, 0, 399, EYE_Y + 60).astype(np.uint8), pts) < LOW  # a mouth-level edge


def test_a_second_line_beside_the_first_is_new_line_by_line():
    """A fold landing just below a glasses rim: the best line scores as before, but compared
    line by line (what ``BlinkOptions.line_rise`` checks) a new line has appeared."""
    img, pts = face(np.random.default_rng(5))
    rim = line(img, 0, 399, EYE_Y - 6)
    both = line(rim, 0, 399, EYE_Y + 8)
    before, after = crease_lines(rim.astype(np.uint8), pts), crease_lines(both.astype(np.uint8), pts)
    assert crease_score(rim.astype(np.uint8), pts) == pytest.approx(float(before.max()))
    assert float(before.max()) > 0.8
    assert float(after.max()) - float(before.max()) < BlinkOptions().crease_change  # the level barely moves
    assert float((after - before).max()) > BlinkOptions().line_rise  # line by line it is new


def test_coincident_eye_landmarks_give_no_evidence_instead_of_an_error():
    """The eye stage runs this on every frame: a degenerate landmark fit must not stop the gate."""
    assert crease_score(np.zeros((50, 50), np.uint8), np.zeros((68, 2))) == 0.0
    assert not crease_lines(np.zeros((50, 50), np.uint8), np.zeros((68, 2))).any()
    with pytest.raises(ValueError):
        eye_canvas(np.zeros((50, 50), np.uint8), np.zeros((68, 2)))


@pytest.mark.parametrize("seed", range(6, 9))
def test_a_fold_shadow_over_a_dark_background_is_marked_past_the_face(seed):
    """A fold's shadow dims the paper by the same share everywhere: over a dark room beside
    the face it is as much a line as over the skin (held-out ``sim-s4-0053``). In linear grey
    levels this 30% shadow scored 0 here: the part past the face fell under the threshold."""
    img, pts = face(np.random.default_rng(seed))
    beside = (np.arange(400) < 120) | (np.arange(400) > 280)
    img[:, beside] *= 0.15  # dark background past the face outline on both sides
    folded = img.copy()
    folded[int(EYE_Y) + 8:int(EYE_Y) + 11] *= 0.7
    assert crease_score(img.astype(np.uint8), pts) < LOW
    assert crease_score(folded.astype(np.uint8), pts) > 0.8


@pytest.mark.parametrize("seed", range(10, 13))
def test_a_faint_fold_shadow_on_bright_paper_is_marked(seed):
    """A 10% shadow on a pale face under dark hair: in log intensity the dark areas set the
    threshold and the line falls under it (``sim-s4-0116``); in grey levels it is plain."""
    img, pts = face(np.random.default_rng(seed))
    img = img * 0.4 + 150  # bright paper, mean about 200
    img[:150] *= 0.2  # dark hair above the brows, dark clothes below the mouth
    img[250:] *= 0.2
    folded = img.copy()
    folded[int(EYE_Y) + 8:int(EYE_Y) + 11] *= 0.9
    assert crease_score(img.astype(np.uint8), pts) < LOW
    assert crease_score(folded.astype(np.uint8), pts) > 0.8


@pytest.mark.parametrize("seed", range(3))
def test_line_shares_are_the_share_of_marked_cells_along_each_line(seed):
    """The per-line shares, from flat indices cached per bridge span, are the plain count of
    marked cells along each candidate line (row round(ROWS + tilt * (col - CANVAS / 2)),
    clipped to the canvas) over its columns."""
    from blinkgate import fold

    rng = np.random.default_rng(seed)
    marked = rng.random((fold.CANVAS, fold.CANVAS)) < 0.3
    first = int(rng.integers(60, 75))
    cols = np.arange(first, first + int(rng.integers(3, 15)))
    for columns, cells in [(cols, fold._bridge_cells(int(cols[0]), int(cols[-1]))),
                           *zip(fold.OUTSIDE, fold._OUTSIDE_CELLS)]:
        expected = np.zeros((len(fold.TILTS), len(fold.ROWS)))
        for i, tilt in enumerate(fold.TILTS):
            for j, row in enumerate(fold.ROWS):
                rows = np.clip(np.round(row + tilt * (columns - fold.CANVAS / 2)).astype(int), 0, fold.CANVAS - 1)
                expected[i, j] = marked[rows, columns].mean()
        assert np.array_equal(fold._line_share(marked.ravel(), cells), expected)
    assert fold._bridge_cells(int(cols[0]), int(cols[-1])) is fold._bridge_cells(int(cols[0]), int(cols[-1]))
