"""Face detection, 128-d encoding and identity matching with dlib.

We use dlib directly with the model files shipped by ``face_recognition_models`` (not the
``face_recognition`` package, which forces a source build of dlib). The pipeline mirrors
face_recognition's: HOG detector with one upsample, the fast 5-point shape predictor to align
the face, then the ResNet that maps an aligned face chip to a 128-d vector whose Euclidean
distance is small (< ~0.6) for the same person.
"""

from __future__ import annotations

import importlib.util
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal

import cv2
import numpy as np

from .errors import ModelError
from .types import Box, as_encoding

SHAPE_5 = "shape_predictor_5_face_landmarks.dat"
SHAPE_68 = "shape_predictor_68_face_landmarks.dat"
RESNET = "dlib_face_recognition_resnet_model_v1.dat"

# Chosen by scripts/recognition_study.py on lfw65 (see Recognizer): a false reject costs the
# user a second look at the camera, a false accept opens the door to a stranger.
DEFAULT_TOLERANCE = 0.5  # max distance to the nearest enrolled encoding (dlib's usual: 0.6)
DEFAULT_MARGIN = 0.1  # the next-nearest *other* person must be at least this much farther
RECHECK_KEEP = 0.05  # a re-check keeps a track's name this far past the tolerance (Recognizer.recheck)


def default_models_dir() -> Path:
    """Folder holding dlib's model files from the ``face_recognition_models`` distribution.

    ``find_spec`` locates the package without executing its ``__init__`` (which imports the
    deprecated ``pkg_resources``; ``importlib.resources.files`` would import it too).
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "face_recognition_models is not installed (pip install face_recognition_models)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    if not folder.is_dir():  # a zipped or broken install: dlib can only load files from a folder
        raise ModelError(f"face_recognition_models has no models folder at {folder}: reinstall it "
                         "(pip install --force-reinstall face_recognition_models)")
    return folder


def _to_rgb(image_bgr: np.ndarray) -> np.ndarray:
    """dlib wants a contiguous RGB (or gray) uint8 array; accept BGR, BGRA and gray frames."""
    image = np.asarray(image_bgr)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    raise ValueError(f"expected a BGR image of shape (H, W, 3), got {image.shape}")


def _box_to_rect(box: Box) -> Any:
    """xyxy (exclusive right/bottom) → dlib.rectangle (inclusive right/bottom)."""
    import dlib

    x1, y1, x2, y2 = (round(float(v)) for v in box)
    if not (x2 > x1 and y2 > y1):
        raise ValueError(f"empty face box {box}")
    return dlib.rectangle(x1, y1, x2 - 1, y2 - 1)


def _rect_to_box(rect: Any, width: int, height: int) -> Box:
    """dlib.rectangle → xyxy float box, clipped to the frame (HOG boxes can overhang it)."""
    x1 = min(max(rect.left(), 0), width)
    y1 = min(max(rect.top(), 0), height)
    x2 = min(max(rect.right() + 1, 0), width)
    y2 = min(max(rect.bottom() + 1, 0), height)
    return (float(x1), float(y1), float(x2), float(y2))


class FaceEncoder:
    """dlib HOG detector + 5-point alignment + ResNet encoder; models load on first use.

    Not thread-safe: use one instance per thread.
    """

    def __init__(self, models_dir: Path | str | None = None, upsample: int = 1, num_jitters: int = 1):
        self._models_dir = Path(models_dir) if models_dir is not None else None
        self.upsample = upsample
        self.num_jitters = num_jitters
        self._detector: Any = None
        self._shape5: Any = None
        self._shape68: Any = None
        self._resnet: Any = None

    # -- model loading -----------------------------------------------------------------

    def _model_path(self, filename: str) -> Path:
        folder = self._models_dir if self._models_dir is not None else default_models_dir()
        path = folder / filename
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        return path

    def _load(self, kind: str, filename: str) -> Any:
        import dlib

        path = self._model_path(filename)
        try:
            return getattr(dlib, kind)(str(path))
        except RuntimeError as err:  # dlib raises RuntimeError on a truncated/corrupt file
            raise ModelError(f"cannot load model {path}: {err}") from err

    @property
    def detector(self) -> Any:
        if self._detector is None:
            import dlib

            self._detector = dlib.get_frontal_face_detector()
        return self._detector

    @property
    def shape5(self) -> Any:
        if self._shape5 is None:
            self._shape5 = self._load("shape_predictor", SHAPE_5)
        return self._shape5

    @property
    def shape68(self) -> Any:
        if self._shape68 is None:
            self._shape68 = self._load("shape_predictor", SHAPE_68)
        return self._shape68

    @property
    def resnet(self) -> Any:
        if self._resnet is None:
            self._resnet = self._load("face_recognition_model_v1", RESNET)
        return self._resnet

    # -- public API ----------------------------------------------------------------------

    def detect(self, image_bgr: np.ndarray) -> list[Box]:
        """Faces found by dlib's HOG detector, as xyxy boxes clipped to the image."""
        rgb = _to_rgb(image_bgr)
        height, width = rgb.shape[:2]
        rects = self.detector(rgb, self.upsample)
        return [_rect_to_box(r, width, height) for r in rects]

    def face_score(self, image_bgr: np.ndarray) -> float:
        """The HOG detector's best score for a face in the image; -inf if it finds none."""
        _, scores, _ = self.detector.run(_to_rgb(image_bgr), self.upsample, 0.0)
        return max(scores, default=float("-inf"))

    def encode(self, image_bgr: np.ndarray, box: Box) -> np.ndarray:
        """128-d float64 encoding of the face in ``box`` (from any detector: HOG, Haar, tracker)."""
        rgb = _to_rgb(image_bgr)
        shape = self.shape5(rgb, _box_to_rect(box))
        vector = self.resnet.compute_face_descriptor(rgb, shape, self.num_jitters)
        return as_encoding(np.array(vector, dtype=np.float64))

    def landmarks68(self, image_bgr: np.ndarray, box: Box) -> np.ndarray:
        """iBUG 68-point landmarks (x, y) as a (68, 2) float64 array; 36–41 and 42–47 are the eyes.
        A gray frame (the gate's, on every frame) goes to dlib as it is: the predictor reads
        pixel intensities, the same from a gray pixel as from its grey RGB copy, which cost a
        whole-frame conversion per face and frame, and a predictor reading three channels."""
        image = np.asarray(image_bgr)
        if image.ndim == 2 and image.dtype == np.uint8:
            image = np.ascontiguousarray(image)  # dlib takes C-contiguous arrays only (a crop is not)
        else:
            image = _to_rgb(image)
        shape = self.shape68(image, _box_to_rect(box))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


@dataclass(frozen=True)
class Match:
    """Who a face is. ``name`` is None for an unknown face. ``distance`` is to the closest
    enrolled encoding of the named person, or of anyone when unknown (``inf`` when nobody is
    enrolled)."""

    name: str | None
    distance: float


Method = Literal["nearest", "vote"]


class Recognizer:
    """Identify a face encoding among enrolled encodings (open set: strangers must come out unknown).

    Rule (default ``method="nearest"``): the candidate is the person owning the nearest enrolled
    encoding; they are named only if that distance is <= ``tolerance`` *and* every other
    person's nearest encoding is at least ``margin`` farther. Otherwise the face is unknown.

    Why, from scripts/recognition_study.py on lfw65 (50 people enrolled with 3 photos, 15
    strangers, 5 splits): dlib's customary tolerance 0.6 accepted 47% of stranger photos as
    somebody — in an open set every enrolled photo is one more chance to be "close enough".
    Tolerance 0.5 cut that to 4.6%, and the 0.1 margin (strangers tend to be about equally
    close to several people; a genuine face is clearly closest to one) to 1.1%, while 89% of
    enrolled people's photos were still named (0.04% as the wrong person). We prefer a false
    reject (look at the camera a moment longer) to a false accept. The seed article's ``"vote"``
    (most encodings within tolerance wins) accepts exactly the same faces as nearest and named
    the wrong person more often (0.8% vs 0.4% at 0.55), so it is kept only for comparison.
    """

    def __init__(
        self,
        encodings: np.ndarray | Iterable[np.ndarray],
        names: Iterable[str],
        tolerance: float = DEFAULT_TOLERANCE,
        margin: float = DEFAULT_MARGIN,
        method: Method = "nearest",
    ):
        self.names = list(names)
        rows = [as_encoding(e) for e in encodings]
        self.encodings = np.array(rows, dtype=np.float64).reshape(len(rows), 128)
        if len(self.names) != len(self.encodings):
            raise ValueError(f"{len(self.encodings)} encodings but {len(self.names)} names")
        if method not in ("nearest", "vote"):
            raise ValueError(f"unknown method {method!r}")
        self._name_array = np.array(self.names, dtype=object)
        self.tolerance = float(tolerance)
        if not self.tolerance >= 0:  # NaN too: it compares false with every distance, naming strangers
            raise ValueError(f"tolerance must be a face distance of 0 or more, got {tolerance!r}")
        self.margin = float(margin)
        if math.isnan(self.margin):  # compares false with every gap: the look-alike rule would be off
            raise ValueError(f"margin must be a number, got {margin!r}")
        self.method = method

    def __len__(self) -> int:
        return len(self.names)

    def distances(self, encoding: np.ndarray) -> np.ndarray:
        """Euclidean distance from ``encoding`` to every enrolled encoding."""
        return np.linalg.norm(self.encodings - as_encoding(encoding), axis=1)

    def match(self, encoding: np.ndarray) -> Match:
        if not self.names:
            return Match(None, float("inf"))
        dist = self.distances(encoding)
        nearest = float(dist.min())
        if not math.isfinite(nearest):
            return Match(None, float("inf"))  # a NaN distance compares false with the tolerance: it would name the face
        if nearest > self.tolerance:
            return Match(None, nearest)
        name, best = self._vote(dist) if self.method == "vote" else self._nearest(dist)
        others = dist[self._name_array != name]
        if self.margin > 0 and others.size and others.min() - best < self.margin:
            return Match(None, nearest)  # ambiguous between two people: refuse to guess
        return Match(name, best)

    def recheck(self, encoding: np.ndarray, name: str, keep: float = RECHECK_KEEP) -> Match:
        """``match`` for the periodic re-check of a track already named ``name``: the name stays
        while that person is still the nearest enrolled one within ``tolerance + keep``, with no
        margin over the others. Someone else named by ``match`` is still someone else.

        Why: a re-check that names nobody makes the face unknown, which denies a door challenge
        in progress and counts a failure. On lfw65 (scripts/recheck_band_study.py: other photos of
        enrolled people, Haar boxes) the strict rule names 89.5% of re-checks; this
        rule 98.5%. A stranger's photo swapped under a named track keeps that name 0.30% of
        the time (0.055% strictly), and only a re-check is judged this way: the closed frame
        of every blink, which is what a grant needs, is still judged by ``match``."""
        found = self.match(encoding)
        if found.name is not None or not self.names:
            return found
        dist = self.distances(encoding)
        i = int(np.argmin(dist))
        if self.names[i] == name and dist[i] <= self.tolerance + keep:
            return Match(name, float(dist[i]))
        return found

    def _nearest(self, dist: np.ndarray) -> tuple[str, float]:
        i = int(np.argmin(dist))
        return self.names[i], float(dist[i])

    def _vote(self, dist: np.ndarray) -> tuple[str, float]:
        within = np.flatnonzero(dist <= self.tolerance)
        votes = Counter(self.names[i] for i in within)
        # Ties go to the person with the closer photo, not to enrolment order.
        best = {name: min(dist[i] for i in within if self.names[i] == name) for name in votes}
        name = max(votes, key=lambda n: (votes[n], -best[n]))
        return name, float(best[name])
