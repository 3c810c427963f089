"""Face detection with OpenCV's Haar cascade (haarcascade_frontalface_alt), as in the article.

Detection runs on a gray, histogram-equalised copy of the frame downscaled to ``work_width``
pixels: the cascade's cost grows with the pixel count and faces at a door are large.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import ModelError
from .types import Box


def cascade(name: str) -> cv2.CascadeClassifier:
    """Load one of OpenCV's bundled Haar cascades by file name."""
    path = Path(cv2.data.haarcascades) / name
    clf = cv2.CascadeClassifier(str(path))
    if clf.empty():
        raise ModelError(f"cannot load Haar cascade {path}")
    return clf


@dataclass
class FaceDetectorOptions:
    work_width: int = 320  # frames wider than this are downscaled before detection
    scale_factor: float = 1.15
    min_neighbors: int = 5
    min_face_px: int = 80  # smallest face side in full-resolution pixels (about 1.5 m from a webcam)
    roi_face_px: int = 96  # around a known face, rescale so the face is about this wide


class FaceDetector:
    """Haar face detector returning xyxy boxes in full-resolution pixels."""

    def __init__(self, options: FaceDetectorOptions | None = None):
        self.options = options or FaceDetectorOptions()
        self._cascade = cascade("haarcascade_frontalface_alt.xml")

    def detect_around(self, gray: np.ndarray, box: Box) -> Box | None:
        """Re-find a tracked face near its last box: a small, single-scale-band search.

        Costs a few percent of a full-frame pass, so the gate uses it between full scans.
        """
        opts = self.options
        x1, y1, x2, y2 = box
        side = max(x2 - x1, y2 - y1)
        h, w = gray.shape[:2]
        rx1, ry1 = int(max(0, x1 - side / 2)), int(max(0, y1 - side / 2))
        rx2, ry2 = int(min(w, x2 + side / 2)), int(min(h, y2 + side / 2))
        if rx2 - rx1 < 24 or ry2 - ry1 < 24:
            return None
        scale = min(1.0, opts.roi_face_px / side)
        lo, hi = int(side * scale * 0.7), int(side * scale * 1.4)
        if round(min(rx2 - rx1, ry2 - ry1) * scale) < max(lo, 1):
            # The frame shrank under the track (a decoder changing size): no room for a face of
            # the searched size, and a huge old box would rescale the ROI to zero pixels.
            return None
        roi = cv2.resize(gray[ry1:ry2, rx1:rx2], None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        roi = cv2.equalizeHist(roi)
        found = np.asarray(
            self._cascade.detectMultiScale(roi, scaleFactor=1.1, minNeighbors=opts.min_neighbors, minSize=(lo, lo), maxSize=(hi, hi))
        ).reshape(-1, 4)
        if not len(found):
            return None
        x, y, fw, fh = (int(v) for v in found[np.argmax(found[:, 2] * found[:, 3])])  # plain floats out, not np.float64
        return (rx1 + x / scale, ry1 + y / scale, rx1 + (x + fw) / scale, ry1 + (y + fh) / scale)

    def detect(self, gray: np.ndarray) -> list[Box]:
        """Detect faces in a full-resolution gray frame."""
        opts = self.options
        scale = min(1.0, opts.work_width / gray.shape[1])
        min_side = max(20, int(opts.min_face_px * scale))
        if min(gray.shape[:2]) * scale < min_side:
            return []  # a strip cannot hold a face (and a wide one would downscale to zero rows)
        small = gray if scale == 1.0 else cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        small = cv2.equalizeHist(small)
        found = self._cascade.detectMultiScale(
            small, scaleFactor=opts.scale_factor, minNeighbors=opts.min_neighbors, minSize=(min_side, min_side)
        )
        return [
            (x / scale, y / scale, (x + w) / scale, (y + h) / scale) for (x, y, w, h) in np.asarray(found).reshape(-1, 4).tolist()
        ]
