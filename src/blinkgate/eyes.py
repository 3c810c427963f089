"""Eye stage: find both eyes in a tracked face and say open, closed or unknown.

Two localisation backends share one CNN (``eye_model.EyeClassifier``, P(open) per 24×24 crop):

* ``haar`` — the article's method: haarcascade_eye_tree_eyeglasses on the upper face first
  (it finds open eyes, glasses included); when it does not find exactly two eyes,
  haarcascade_righteye_2splits / lefteye_2splits on each half of the face, which also fire on
  closed eyes. Every crop found goes through the CNN.
* ``landmarks`` — dlib's 68-point shape predictor: each eye is cut out rotation-normalised
  around its landmarks with CEW-like framing; the eye aspect ratio (EAR), the sharpness of the
  crops and the paper-crease score (``fold``) are measured alongside.

A face is CLOSED only when both eyes are found and both are confidently closed, OPEN only
when both are confidently open: one eye alone (a wink, a missed detection) is UNKNOWN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from .detect import cascade
from .fold import crease_lines
from .types import Box, EyeReading, EyeState

if TYPE_CHECKING:
    from .eye_model import EyeClassifier
    from .recognize import FaceEncoder


class EyeBackend(Protocol):
    name: str

    def read(self, gray: np.ndarray, box: Box) -> EyeReading: ...


def decide(p_right: float | None, p_left: float | None, closed_below: float, open_above: float) -> EyeState:
    """Fuse two per-eye probabilities into one face state; both eyes must agree."""
    if p_right is None or p_left is None:
        return EyeState.UNKNOWN
    if p_right < closed_below and p_left < closed_below:
        return EyeState.CLOSED
    if p_right > open_above and p_left > open_above:
        return EyeState.OPEN
    return EyeState.UNKNOWN


def _clip_box(box: Box, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    h, w = shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    return max(0, x1), max(0, y1), min(w, x2), min(h, y2)


@dataclass(frozen=True)
class HaarEyeOptions:
    face_width: int = 160  # faces are rescaled to this width before the eye cascades
    upper: float = 0.62  # eyes lie in the upper part of a Haar face box
    min_eye: float = 0.14  # smallest eye side, as a share of the face width
    scale_factor: float = 1.1
    min_neighbors: int = 3


class HaarEyes:
    """The article's eye localisation, with a CNN verdict on every crop."""

    name = "haar"

    def __init__(self, classifier: EyeClassifier, options: HaarEyeOptions | None = None):
        self.classifier = classifier
        self.options = options or HaarEyeOptions()
        self._open_eyes = cascade("haarcascade_eye_tree_eyeglasses.xml")
        self._right_eye = cascade("haarcascade_righteye_2splits.xml")  # subject's right = image left
        self._left_eye = cascade("haarcascade_lefteye_2splits.xml")

    def _detect(self, clf: cv2.CascadeClassifier, roi: np.ndarray, min_side: int) -> np.ndarray:
        opts = self.options
        found = clf.detectMultiScale(roi, scaleFactor=opts.scale_factor, minNeighbors=opts.min_neighbors, minSize=(min_side, min_side))
        return np.asarray(found, dtype=np.int32).reshape(-1, 4)

    def _locate(self, face: np.ndarray) -> tuple[tuple[int, int, int, int] | None, tuple[int, int, int, int] | None]:
        """Eye boxes (x, y, w, h) in the rescaled face: (subject's right, subject's left)."""
        opts = self.options
        roi = face[: int(face.shape[0] * opts.upper)]
        half = roi.shape[1] // 2
        min_side = max(12, int(opts.min_eye * face.shape[1]))
        both = self._detect(self._open_eyes, roi, min_side)
        if len(both) == 2:
            both = both[np.argsort(both[:, 0])]
            if both[0, 0] + both[0, 2] / 2 < half <= both[1, 0] + both[1, 2] / 2:
                return tuple(both[0]), tuple(both[1])

        def biggest(found: np.ndarray, dx: int):
            if not len(found):
                return None
            x, y, w, h = found[np.argmax(found[:, 2] * found[:, 3])]
            return int(x + dx), int(y), int(w), int(h)

        right = biggest(self._detect(self._right_eye, roi[:, :half], min_side), 0)
        left = biggest(self._detect(self._left_eye, roi[:, half:], min_side), half)
        return right, left

    def read(self, gray: np.ndarray, box: Box) -> EyeReading:
        x1, y1, x2, y2 = _clip_box(box, gray.shape)
        if x2 - x1 < 16 or y2 - y1 < 16:
            return EyeReading(EyeState.UNKNOWN, method=self.name)
        scale = self.options.face_width / (x2 - x1)
        face = cv2.resize(gray[y1:y2, x1:x2], (self.options.face_width, int(round((y2 - y1) * scale))))
        located = self._locate(face)
        found = [e for e in located if e is not None]
        probs: list[float | None] = [None, None]
        if found:
            p = self.classifier.predict([face[y : y + h, x : x + w] for (x, y, w, h) in found])
            it = iter(p.tolist())
            probs = [next(it) if e is not None else None for e in located]
        boxes = tuple(
            (x1 + x / scale, y1 + y / scale, x1 + (x + w) / scale, y1 + (y + h) / scale) for (x, y, w, h) in found
        )
        state = decide(probs[0], probs[1], self.classifier.closed_below, self.classifier.open_above)
        return EyeReading(state, (probs[0], probs[1]), boxes, self.name)


RIGHT_EYE = slice(36, 42)  # iBUG 68 points, subject's right eye (image left)
LEFT_EYE = slice(42, 48)


def eye_aspect_ratio(pts: np.ndarray) -> float:
    """EAR of six eye landmarks (Soukupová & Čech 2016): lid opening over eye width."""
    width = np.linalg.norm(pts[0] - pts[3])
    if width <= 0:
        return 0.0
    return float((np.linalg.norm(pts[1] - pts[5]) + np.linalg.norm(pts[2] - pts[4])) / (2.0 * width))


def aligned_eye(gray: np.ndarray, pts: np.ndarray, size: int = 24, scale: float = 1.7) -> np.ndarray:
    """Cut one eye out level (corner to corner horizontal), framed like a CEW patch.

    The patch side is ``scale`` times the corner-to-corner width, centred on the landmarks.
    """
    a, b = pts[0], pts[3]  # the eye corners, image-left then image-right (iBUG order)
    angle = float(np.degrees(np.arctan2(b[1] - a[1], b[0] - a[0])))
    centre = pts.mean(axis=0)
    side = max(2.0, scale * float(np.linalg.norm(b - a)))
    # Rotate at native resolution, then shrink with INTER_AREA: warpAffine cannot area-average.
    native = max(size, int(round(side)))
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, native / side)
    m[:, 2] += (native / 2.0) - centre
    patch = cv2.warpAffine(gray, m, (native, native), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)


def eye_sharpness(crop: np.ndarray) -> float:
    """Detail in an eye crop: variance of its Laplacian over the variance of its grey levels.

    The variance of the Laplacian is the usual focus measure (Pech-Pacheco et al. 2000);
    dividing by the grey-level variance makes it blind to contrast and exposure, so a dim eye
    is not called blurry. Measured on the 24×24 crop the CNN reads: it says whether the CNN's
    input shows lids at all. A flat crop scores 0.
    """
    patch = crop.astype(np.float32)
    spread = float(patch.var())
    if spread < 1e-6:
        return 0.0
    return float(cv2.Laplacian(patch, cv2.CV_32F).var()) / spread


class LandmarkEyes:
    """Eyes from dlib's 68-point landmarks: aligned CNN crops plus the eye aspect ratio."""

    name = "landmarks"

    def __init__(self, classifier: EyeClassifier, encoder: FaceEncoder, crop_scale: float = 1.7):
        self.classifier = classifier
        self.encoder = encoder  # owns the lazily loaded 68-point shape predictor
        self.crop_scale = crop_scale

    def read(self, gray: np.ndarray, box: Box) -> EyeReading:
        x1, y1, x2, y2 = _clip_box(box, gray.shape)
        if x2 - x1 < 16 or y2 - y1 < 16:
            return EyeReading(EyeState.UNKNOWN, method=self.name)
        pts = self.encoder.landmarks68(gray, (x1, y1, x2, y2))
        eyes = (pts[RIGHT_EYE], pts[LEFT_EYE])
        crops = [aligned_eye(gray, e, scale=self.crop_scale) for e in eyes]
        p_right, p_left = (float(p) for p in self.classifier.predict(crops))
        boxes = tuple(
            (float(e[:, 0].min()), float(e[:, 1].min()), float(e[:, 0].max()), float(e[:, 1].max())) for e in eyes
        )
        ear = (eye_aspect_ratio(eyes[0]) + eye_aspect_ratio(eyes[1])) / 2.0
        state = decide(p_right, p_left, self.classifier.closed_below, self.classifier.open_above)
        # On every frame: the blink detector compares a closure with the open frames before it.
        lines = crease_lines(gray, pts)
        sharpness = min(eye_sharpness(c) for c in crops)
        return EyeReading(state, (p_right, p_left), boxes, self.name, ear, float(lines.max()), lines, sharpness)
