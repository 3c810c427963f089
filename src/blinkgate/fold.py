"""Paper-fold evidence: a straight crease crossing the face at eye level.

A printed photo folded or pleated across the eyes can make the printed lids meet, which reads
like a blink. The fold leaves what a blinking face does not: one straight line running across
the eye band, over the bridge of the nose *and* past the face outline on at least one side.

``crease_score`` measures that in a canvas aligned to the eye landmarks (eye corners level,
inter-ocular distance ``IOD`` pixels): thin horizontal ridges (dark or bright, in grey levels
or in log intensity) are marked, and for every straight line near the eye row (small tilts
allowed) we take the share of marked columns over the middle of the nose bridge and over the
better of the two areas outside the face. The score is the best line's smaller share, 0..1.

Glasses (bridge and arms), a fringe or a shelf behind the head can score high on every frame
of a real face, so the blink detector uses the *change* during a closure against the open
frames before it, never the level: of the best line, up or down
(``blink.BlinkOptions.crease_change``), and the rise of every candidate line against itself
(``crease_lines``, ``blink.BlinkOptions.line_rise``), which sees a fold that lands next to a
glasses rim. The measurements are in docs/evaluation-history.md.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

IOD = 40.0  # canvas pixels between the eye centres
CANVAS = 160  # square canvas side: about 2 IOD either side of the eyes, past the face outline
EYE_ROW = 60  # canvas row of the eye line
BRIDGE_SHARE = 0.5  # the middle half of the gap between the inner eye corners: skin, never lids
OUTSIDE = (np.arange(0, 32), np.arange(128, 160))  # columns beyond the face on each side
ROWS = np.arange(EYE_ROW - 16, EYE_ROW + 17)  # candidate line rows: the eye band, ±0.4 IOD
TILTS = np.linspace(-0.15, 0.15, 13)  # line slopes (rows per column) relative to the eye line
GREY_FLOOR = 2.0  # least ridge strength in grey levels on a featureless face
LOG_OFFSET = 10.0  # grey levels added before the log: a step of one level near black is no 50% dip
LOG_FLOOR = 0.02  # the same floor in log units: about a 2% dip or rise


def eye_canvas(gray: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Warp the face so the eye-corner midpoints are level, ``IOD`` apart, centred at row EYE_ROW.

    Returns the canvas and the 2×3 affine map from image to canvas pixels.
    """
    right = (pts[36] + pts[39]) / 2.0  # subject's right eye (image left), iBUG 68 order
    left = (pts[42] + pts[45]) / 2.0
    dist = float(np.linalg.norm(left - right))
    if dist < 1.0:
        raise ValueError("eye landmarks coincide")
    angle = float(np.degrees(np.arctan2(left[1] - right[1], left[0] - right[0])))
    mid = (right + left) / 2.0
    m = cv2.getRotationMatrix2D((float(mid[0]), float(mid[1])), angle, IOD / dist)
    m[:, 2] += np.array([CANVAS / 2.0, EYE_ROW]) - mid
    canvas = cv2.warpAffine(gray, m, (CANVAS, CANVAS), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return canvas, m


def bridge_columns(pts: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Canvas columns over the nose bridge: the middle of the gap between the inner eye corners.

    Taken from the landmarks, not fixed: on wide-set eyes a fixed band would reach the inner
    corners, where a closed lid's own line runs level with the eye row.
    """
    inner = np.array([pts[39], pts[42]]) @ m[:, :2].T + m[:, 2]
    lo, hi = sorted(inner[:, 0])
    margin = (hi - lo) * (1.0 - BRIDGE_SHARE) / 2.0
    cols = np.arange(int(np.ceil(lo + margin)), int(np.floor(hi - margin)) + 1)
    return cols[(cols >= 0) & (cols < CANVAS)]


def _marked(image: np.ndarray, floor: float) -> np.ndarray:
    """Boolean map of thin horizontal lines (either polarity) in ``image``, ±1 row tolerant."""
    smooth = cv2.GaussianBlur(image, (0, 0), 1.2)
    ridge = np.abs(cv2.Sobel(smooth, cv2.CV_32F, 0, 2, ksize=3))
    ridge = cv2.dilate(ridge, np.ones((3, 1), np.uint8))
    # Relative to the face's own texture, so contrast and exposure do not matter.
    return ridge > 4.0 * float(np.median(ridge[30:100])) + floor


def _ridges(canvas: np.ndarray) -> np.ndarray:
    """Thin horizontal lines in grey levels or in log intensity.

    A fold's shadow or highlight scales the light the paper reflects, so over a dark room
    beside the face it is as strong a line in log intensity as over the skin, but a fifth as
    strong in grey levels: there the part past the face went unmarked (held-out
    ``sim-s4-0053``). In log intensity alone the dark hair and brows set a high threshold and a
    faint shadow on pale paper fell under it (``sim-s4-0116``), so a line marked on either scale
    counts.
    """
    grey = canvas.astype(np.float32)
    return _marked(grey, GREY_FLOOR) | _marked(np.log(grey + LOG_OFFSET), LOG_FLOOR)


def _line_cells(cols: np.ndarray) -> np.ndarray:
    """Flat canvas indices (row * CANVAS + col) of every candidate line over ``cols``: (tilts, rows, cols)."""
    rows = np.round(ROWS[None, :, None] + TILTS[:, None, None] * (cols[None, None, :] - CANVAS / 2)).astype(int)
    return rows.clip(0, CANVAS - 1) * CANVAS + cols


_OUTSIDE_CELLS = [_line_cells(cols) for cols in OUTSIDE]  # fixed columns: index once


@functools.lru_cache(maxsize=64)  # a few faces' spans (~30 KB each)
def _bridge_cells(first: int, last: int) -> np.ndarray:
    """``_line_cells`` of the bridge columns ``first..last``: the canvas puts the eyes IOD apart,
    so a face's bridge spans the same few columns frame after frame (indexed once, not per frame)."""
    cells = _line_cells(np.arange(first, last + 1))
    cells.flags.writeable = False  # shared by every later call
    return cells


def _line_share(marked: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """(tilts, rows): share of marked cells along every candidate line (``marked`` flattened)."""
    return np.count_nonzero(marked[cells], axis=-1) / cells.shape[-1]


def crease_lines(gray: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """(tilts, rows) float32, 0..1 per candidate line: the smaller of its marked share over the
    nose bridge and over the better side past the face. All zero for degenerate landmarks
    (no geometry to judge, and no usable eye crops either)."""
    lines = np.zeros((len(TILTS), len(ROWS)), np.float32)
    if np.linalg.norm((pts[42] + pts[45] - pts[36] - pts[39]) / 2.0) < 1.0:
        return lines
    canvas, m = eye_canvas(gray, pts)
    bridge = bridge_columns(pts, m)
    if len(bridge) < 3:
        return lines  # eyes so close together on the canvas that there is no bridge to look at
    marked = _ridges(canvas).ravel()
    side = np.maximum(*(_line_share(marked, cells) for cells in _OUTSIDE_CELLS))
    return np.minimum(_line_share(marked, _bridge_cells(int(bridge[0]), int(bridge[-1]))), side).astype(np.float32)


def crease_score(gray: np.ndarray, pts: np.ndarray) -> float:
    """0..1: how completely one straight line crosses the nose bridge and the area past the face."""
    return float(crease_lines(gray, pts).max())
