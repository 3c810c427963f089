"""The seed article's pipeline, re-implemented faithfully as a baseline for evaluation and speed.

"Real-time face liveness detection with Python, Keras and OpenCV" (``../shared/seed``) does, on
*every* frame:

1. resize the frame by 0.6, convert it to gray and RGB;
2. find faces with ``haarcascade_frontalface_alt`` (scaleFactor 1.2, minNeighbors 5, min 50 px);
3. for every face, compute a 128-d dlib encoding (``face_recognition.face_encodings``) and name it
   by a vote of the enrolled encodings within 0.6 (``compare_faces``);
4. look for two open eyes with ``haarcascade_eye_tree_eyeglasses`` in the face box; if it finds
   exactly two, the eyes are open ('1'). Otherwise look for one eye in each half of the face
   with ``haarcascade_{right,left}eye_2splits`` and classify every crop found with the LeNet-5
   through Keras ``model.predict``, one call per crop; one 'closed' verdict (p < 0.1) makes the
   frame '0';
5. append the digit to a history string kept *per name* and call the face live when the
   history contains ``'1' + '0' * k + '1'`` for k in 1..3 (``isBlinking``). The history is never
   cleared, so once live, a name stays live.

Nothing here is used by the gate; it exists so that blinkgate can be measured against the
article in the same run (``benchmarks/speed.py``, ``blinkgate eval --pipeline article``). It needs
Keras (the ``[train]`` extra) and the article's weights (``model.json`` + ``model.h5``).
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .detect import cascade
from .errors import TRAIN_EXTRA_HINT, ModelError
from .gate import StageTimer
from .types import Box

IMG_SIZE = 24
RESIZE = 0.6  # the article shrinks every frame by this factor first
MATCH_TOLERANCE = 0.6  # face_recognition.compare_faces default
CLOSED_BELOW, OPEN_ABOVE = 0.1, 0.9  # the article's predict(): 'closed', 'open', else 'idk'
MAX_CLOSED_FRAMES = 3  # isBlinking(history, 3)


def _keras():
    """Import Keras 3 on the torch backend (the only backend the [train] extra installs)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ModelError(f"the article baseline needs Keras ({err}): {TRAIN_EXTRA_HINT}") from err
    return keras


def load_article_model(model_json: str | Path, weights_h5: str | Path):
    """The article's Keras-2 LeNet-5 as a Keras 3 model.

    ``model.json`` is Keras-2 JSON, which Keras 3 cannot deserialise directly, so the Sequential
    is rebuilt layer by layer from its configs and the HDF5 weights (saved with
    ``save_weights``: one group per layer) are copied in by layer name with h5py.
    """
    import h5py

    keras = _keras()
    model_json, weights_h5 = Path(model_json), Path(weights_h5)
    for path in (model_json, weights_h5):
        if not path.is_file():
            raise ModelError(f"article model file not found: {path}")
    spec = json.loads(model_json.read_text())
    layers_cfg = spec["config"]["layers"] if isinstance(spec["config"], dict) else spec["config"]
    input_shape = tuple(layers_cfg[0]["config"]["batch_input_shape"][1:])
    build = {
        "Conv2D": lambda c: keras.layers.Conv2D(c["filters"], tuple(c["kernel_size"]), strides=tuple(c["strides"]),
                                                padding=c["padding"], activation=c["activation"], name=c["name"]),
        "AveragePooling2D": lambda c: keras.layers.AveragePooling2D(tuple(c["pool_size"]), strides=tuple(c["strides"]),
                                                                    padding=c["padding"], name=c["name"]),
        "MaxPooling2D": lambda c: keras.layers.MaxPooling2D(tuple(c["pool_size"]), strides=tuple(c["strides"]),
                                                            padding=c["padding"], name=c["name"]),
        "Flatten": lambda c: keras.layers.Flatten(name=c["name"]),
        "Dense": lambda c: keras.layers.Dense(c["units"], activation=c["activation"], name=c["name"]),
        "Dropout": lambda c: keras.layers.Dropout(c["rate"], name=c["name"]),
    }
    layers = [keras.Input(shape=input_shape)]
    for layer in layers_cfg:
        kind = layer["class_name"]
        if kind not in build:
            raise ModelError(f"article model: unsupported layer {kind}")
        layers.append(build[kind](layer["config"]))
    model = keras.Sequential(layers, name=spec["config"].get("name", "article"))
    with h5py.File(weights_h5, "r") as f:
        group = f["model_weights"] if "model_weights" in f else f
        for layer in model.layers:
            if layer.name not in group or not layer.weights:
                continue
            g = group[layer.name]
            names = [n.decode() if isinstance(n, bytes) else n for n in g.attrs["weight_names"]]
            layer.set_weights([np.asarray(g[n]) for n in names])
    return model


def article_gray24(crop_bgr: np.ndarray) -> np.ndarray:
    """The article's preprocessing of one eye crop: (1, 24, 24, 1) float32 in [0, 1].

    It called ``Image.fromarray(img, 'RGB').convert('L')`` on an OpenCV (BGR) crop, so its
    luma weights land on swapped channels; ``imresize`` is a bilinear resize. Both kept.
    """
    b, g, r = (crop_bgr[..., i].astype(np.float32) for i in range(3))
    gray = np.clip(0.299 * b + 0.587 * g + 0.114 * r + 0.5, 0, 255).astype(np.uint8)
    gray = cv2.resize(gray, (IMG_SIZE, IMG_SIZE), interpolation=cv2.INTER_LINEAR)
    return (gray.astype(np.float32) / 255.0).reshape(1, IMG_SIZE, IMG_SIZE, 1)


def is_blinking(history: str, max_frames: int = MAX_CLOSED_FRAMES) -> bool:
    """The article's isBlinking: '1' open, '0' closed; open, 1..max_frames closed, open."""
    return any(("1" + "0" * (i + 1) + "1") in history for i in range(max_frames))


@dataclass(frozen=True)
class ArticleFace:
    """One face on one frame, as the article saw it."""

    box: Box  # xyxy in the caller's full-resolution frame
    name: str  # "Unknown" when nobody matched
    eye_status: str  # '1' open, '0' closed (the article has no 'unknown')
    n_eye_crops: int  # CNN calls made for this face
    live: bool  # isBlinking(history of this name)
    granted: bool  # live and named


class ArticlePipeline:
    """The article's per-frame loop. ``process`` returns the faces of one frame.

    ``timer`` accumulates milliseconds per stage: resize, detect, encode, eyes (Haar eye
    cascades), cnn (Keras predict calls), blink.
    """

    def __init__(self, model, known_encodings=(), known_names=(), encoder=None):
        from .recognize import FaceEncoder

        self.model = model
        self.known = np.asarray(list(known_encodings), dtype=np.float64).reshape(-1, 128)
        self.names = list(known_names)
        self.encoder = encoder or FaceEncoder()
        self.face_detector = cascade("haarcascade_frontalface_alt.xml")
        self.open_eyes_detector = cascade("haarcascade_eye_tree_eyeglasses.xml")
        self.left_eye_detector = cascade("haarcascade_lefteye_2splits.xml")
        self.right_eye_detector = cascade("haarcascade_righteye_2splits.xml")
        self.timer = StageTimer()
        self.eyes_detected: dict[str, str] = defaultdict(str)

    def reset(self) -> None:
        self.eyes_detected = defaultdict(str)

    def _name(self, encoding: np.ndarray) -> str:
        if not len(self.names):
            return "Unknown"
        matches = np.linalg.norm(self.known - encoding, axis=1) <= MATCH_TOLERANCE
        counts: dict[str, int] = {}
        for i in np.flatnonzero(matches):
            counts[self.names[i]] = counts.get(self.names[i], 0) + 1
        return max(counts, key=counts.get) if counts else "Unknown"

    def predict(self, crop_bgr: np.ndarray) -> str:
        p = float(self.model.predict(article_gray24(crop_bgr), verbose=0)[0][0])
        return "closed" if p < CLOSED_BELOW else "open" if p > OPEN_ABOVE else "idk"

    def process(self, image: np.ndarray, timestamp_ms: float = 0.0) -> list[ArticleFace]:
        t = time.perf_counter()
        frame = cv2.resize(image, (0, 0), fx=RESIZE, fy=RESIZE)
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        t = self.timer.add("resize", t)
        faces = self.face_detector.detectMultiScale(gray, scaleFactor=1.2, minNeighbors=5, minSize=(50, 50),
                                                    flags=cv2.CASCADE_SCALE_IMAGE)
        t = self.timer.add("detect", t)
        out = []
        for x, y, w, h in np.asarray(faces).reshape(-1, 4):
            t = time.perf_counter()
            # face_recognition.face_encodings(rgb, [(y, x+w, y+h, x)]): the 5-point aligned ResNet.
            name = self._name(self.encoder.encode(frame, (x, y, x + w, y + h)))
            t = self.timer.add("encode", t)
            status, calls = self._eyes(frame, gray, x, y, w, h)
            t = time.perf_counter()
            history = self.eyes_detected[name] = self.eyes_detected[name] + status
            live = is_blinking(history)
            self.timer.add("blink", t)
            box = (x / RESIZE, y / RESIZE, (x + w) / RESIZE, (y + h) / RESIZE)
            out.append(ArticleFace(box, name, status, calls, live, live and name != "Unknown"))
        return out

    def _eyes(self, frame: np.ndarray, gray: np.ndarray, x: int, y: int, w: int, h: int) -> tuple[str, int]:
        t = time.perf_counter()
        gray_face = gray[y:y + h, x:x + w]
        open_eyes = self.open_eyes_detector.detectMultiScale(gray_face, scaleFactor=1.1, minNeighbors=5, minSize=(30, 30),
                                                             flags=cv2.CASCADE_SCALE_IMAGE)
        if len(open_eyes) == 2:
            self.timer.add("eyes", t)
            return "1", 0
        half = int(w / 2)
        left_face, left_gray = frame[y:y + h, x + half:x + w], gray[y:y + h, x + half:x + w]
        right_face, right_gray = frame[y:y + h, x:x + half], gray[y:y + h, x:x + half]
        kw = dict(scaleFactor=1.1, minNeighbors=5, minSize=(30, 30), flags=cv2.CASCADE_SCALE_IMAGE)
        left_eye = np.asarray(self.left_eye_detector.detectMultiScale(left_gray, **kw)).reshape(-1, 4)
        right_eye = np.asarray(self.right_eye_detector.detectMultiScale(right_gray, **kw)).reshape(-1, 4)
        t = self.timer.add("eyes", t)
        status, calls = "1", 0
        for face, found in ((right_face, right_eye), (left_face, left_eye)):
            for ex, ey, ew, eh in found:
                calls += 1
                if self.predict(face[ey:ey + eh, ex:ex + ew]) == "closed":
                    status = "0"
        self.timer.add("cnn", t)
        return status, calls
