"""Paper-fold evidence: a straight crease crossing the face at eye level.

A printed photo folded or pleated across the eyes can make the printed lids meet, which reads
like a blink. The fold leaves what no living face has: one straight line running across the
eye band, over the bridge of the nose *and* past the face outline on at least one side.

``crease_score`` measures that in a canvas aligned to the eye landmarks (eye corners level,
inter-ocular distance ``IOD`` pixels): thin horizontal ridges (dark or bright) are marked, and
for every straight line near the eye row (small tilts allowed) we take the share of marked
columns over the nose bridge and over the better of the two areas outside the face. The score
is the best line's smaller share, 0..1. Eyelids, brows and glasses lenses lie outside the
columns looked at; a glasses bridge alone cannot score on both.

Measured on the bona fide blink videos (every frame) the score stays at or below 0.34; on the
closures of simulated folded prints that passed the blink rule it was at least 0.40 unless
the eye aspect ratio already refused the closure (docs/evaluation.md).
"""

from __future__ import annotations

import cv2
import numpy as np

IOD = 40.0  # canvas pixels between the eye centres
CANVAS = 160  # square canvas side: about 2 IOD either side of the eyes, past the face outline
EYE_ROW = 60  # canvas row of the eye line
BRIDGE = np.arange(70, 90)  # columns over the nose bridge, between the inner eye corners
OUTSIDE = (np.arange(0, 32), np.arange(128, 160))  # columns beyond the face on each side
ROWS = np.arange(EYE_ROW - 16, EYE_ROW + 17)  # candidate line rows: the eye band, ±0.4 IOD
TILTS = np.linspace(-0.15, 0.15, 13)  # line slopes (rows per column) relative to the eye line


def eye_canvas(gray: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Warp the face so the eye-corner midpoints are level, ``IOD`` apart, centred at row EYE_ROW."""
    right = (pts[36] + pts[39]) / 2.0  # subject's right eye (image left), iBUG 68 order
    left = (pts[42] + pts[45]) / 2.0
    dist = float(np.linalg.norm(left - right))
    if dist < 1.0:
        raise ValueError("eye landmarks coincide")
    angle = float(np.degrees(np.arctan2(left[1] - right[1], left[0] - right[0])))
    mid = (right + left) / 2.0
    m = cv2.getRotationMatrix2D((float(mid[0]), float(mid[1])), angle, IOD / dist)
    m[:, 2] += np.array([CANVAS / 2.0, EYE_ROW]) - mid
    return cv2.warpAffine(gray, m, (CANVAS, CANVAS), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _ridges(canvas: np.ndarray) -> np.ndarray:
    """Boolean map of thin horizontal lines (either polarity), ±1 row tolerant."""
    smooth = cv2.GaussianBlur(canvas.astype(np.float32), (0, 0), 1.2)
    ridge = np.abs(cv2.Sobel(smooth, cv2.CV_32F, 0, 2, ksize=3))
    ridge = cv2.dilate(ridge, np.ones((3, 1), np.uint8))
    # Relative to the face's own texture, so contrast and exposure do not matter.
    return ridge > 4.0 * float(np.median(ridge[30:100])) + 2.0


def _line_cells() -> tuple[np.ndarray, np.ndarray]:
    """Canvas (rows, cols) of every candidate line: (tilts, rows, bridge + outside columns)."""
    cols = np.concatenate([BRIDGE, *OUTSIDE])
    rows = np.round(ROWS[None, :, None] + TILTS[:, None, None] * (cols[None, None, :] - CANVAS / 2)).astype(int)
    return rows.clip(0, CANVAS - 1), np.broadcast_to(cols, rows.shape)


_ROWS, _COLS = _line_cells()  # small index arrays, computed once


def crease_score(gray: np.ndarray, pts: np.ndarray) -> float:
    """0..1: how completely one straight line crosses the nose bridge and the area past the face."""
    hit = _ridges(eye_canvas(gray, pts))[_ROWS, _COLS]  # (tilts, rows, columns)
    n, m = len(BRIDGE), len(OUTSIDE[0])
    bridge = hit[..., :n].mean(axis=-1)
    side = np.maximum(hit[..., n:n + m].mean(axis=-1), hit[..., n + m:].mean(axis=-1))
    return float(np.minimum(bridge, side).max())
