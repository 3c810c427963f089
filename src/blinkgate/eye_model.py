"""Run-time eye-state classifier: the shipped ONNX CNN through cv2.dnn (no keras/torch needed).

The model takes float32 NHWC (N, 24, 24, 1) gray in [0, 1] and returns P(eye open). A JSON
sidecar beside the ONNX file (same name, ``.json``) records how it was trained, its test
accuracy and the calibrated thresholds ``closed_below`` / ``open_above``: a score below the
first is a confident 'closed', above the second a confident 'open', in between 'unknown'.
The sidecar's ``input_norm`` (absent = "none") names the per-crop input transform the model
was trained with; ``predict_batch`` applies it. Its ``onnx_sha256`` (absent in sidecars written
before it was added: not checked) is the model file's the thresholds were calibrated for.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from blinkgate.cew import SIZE, load_cew, to_gray01
from blinkgate.errors import ModelError
from blinkgate.eyes import decide
from blinkgate.sources import not_utf8
from blinkgate.types import EyeState

log = logging.getLogger(__name__)

DEFAULT_THRESHOLDS = {"closed_below": 0.5, "open_above": 0.5}  # for a model with no sidecar
INPUT_NORMS = ("none", "crop")
MIN_STD = 0.02  # floor of the per-crop std for input_norm "crop" (flat crops stay finite)


def normalize_input(batch: np.ndarray, mode: str = "none") -> np.ndarray:
    """The input transform of a model: "none" = gray in [0, 1] as is; "crop" = each crop minus
    its mean, divided by its standard deviation (floored at ``MIN_STD``)."""
    if mode == "none":
        return batch
    if mode != "crop":
        raise ModelError(f"unknown eye model input_norm {mode!r} (known: {', '.join(INPUT_NORMS)})")
    flat = batch.reshape(len(batch), -1)  # (fewer numpy calls than mean/std: ~12 us per crop)
    dev = flat - flat.mean(axis=1, keepdims=True)
    std = np.sqrt(np.einsum("ij,ij->i", dev, dev) / flat.shape[1])[:, None]
    return (dev / np.maximum(std, MIN_STD)).reshape(batch.shape).astype(np.float32, copy=False)


def default_model_path() -> Path:
    """The ONNX model shipped inside the package."""
    return Path(str(resources.files("blinkgate") / "models" / "eye_state.onnx"))


def _read_sidecar(model_path: Path) -> dict:
    sidecar = model_path.with_suffix(".json")
    if not sidecar.is_file():
        return {}
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelError(f"eye model metadata {sidecar} is unreadable: {err}") from err
    if not isinstance(meta, dict):
        raise ModelError(f"eye model metadata {sidecar} is not a JSON object")
    for key in DEFAULT_THRESHOLDS:
        value = meta.get(key, DEFAULT_THRESHOLDS[key])
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ModelError(f"eye model metadata {sidecar}: {key} must be a probability from 0 to 1, got {value!r}")
    closed, opened = (meta.get(k, DEFAULT_THRESHOLDS[k]) for k in ("closed_below", "open_above"))
    if closed > opened:  # a probability both "closed" and "open"
        raise ModelError(f"eye model metadata {sidecar}: closed_below must not exceed open_above")
    _check_model_hash(model_path, meta.get("onnx_sha256"), sidecar)
    return meta


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_model_hash(model_path: Path, expected: object, sidecar: Path) -> None:
    """Refuse thresholds calibrated for another model: train-eyes killed between writing the
    sidecar and renaming its model into place left new thresholds beside the old model, which
    then ran at cut-offs never measured for it."""
    if expected is None:
        return
    try:
        actual = file_sha256(model_path)
    except OSError:
        return  # a missing or unreadable model is load()'s to report
    if actual != expected:
        raise ModelError(f"eye model metadata {sidecar}: its thresholds were written for another model "
                         f"(sha256 {str(expected)[:12]}..., {model_path.name} is {actual[:12]}...): "
                         "retrain, or restore the model they belong to")


def checked_model(path: str | Path | None) -> str | None:
    """A user's ``--eye-model``, loaded once now so a missing or broken file fails before any
    video is read; None (the shipped model) passes through. A model without its sidecar runs
    at the default thresholds, which is said once here."""
    if path is None:
        return None
    classifier = EyeClassifier(path).load()
    if not classifier.metadata:
        log.warning("%s has no %s: using the default thresholds (closed below %.2f, open above %.2f)",
                    path, Path(path).with_suffix(".json").name, DEFAULT_THRESHOLDS["closed_below"],
                    DEFAULT_THRESHOLDS["open_above"])
    return str(path)


class EyeClassifier:
    """P(open) for eye crops. Loads the model on first use; safe to share between threads."""

    def __init__(self, model_path: str | Path | None = None) -> None:
        self.model_path = Path(model_path) if model_path is not None else default_model_path()
        self._net: cv2.dnn.Net | None = None
        self._meta: dict | None = None
        self._lock = threading.Lock()  # a cv2.dnn.Net is not re-entrant

    @property
    def metadata(self) -> dict:
        if self._meta is None:
            meta = _read_sidecar(self.model_path)
            if not meta and self.model_path == default_model_path():
                # The shipped model without its calibrated thresholds would run at 0.5/0.5,
                # a looser "closed" than the one every number in the docs was measured with.
                raise ModelError(f"{self.model_path.with_suffix('.json')} is missing or empty: this blinkgate "
                                 "install is incomplete; reinstall it")
            self._meta = meta
        return self._meta

    @property
    def closed_below(self) -> float:
        return float(self.metadata.get("closed_below", DEFAULT_THRESHOLDS["closed_below"]))

    @property
    def open_above(self) -> float:
        return float(self.metadata.get("open_above", DEFAULT_THRESHOLDS["open_above"]))

    @property
    def input_norm(self) -> str:
        return str(self.metadata.get("input_norm", "none"))

    def load(self) -> EyeClassifier:
        """Read the ONNX file now (otherwise done on the first ``predict``)."""
        if self._net is None:
            if not self.model_path.is_file():  # a folder is there, not missing
                raise ModelError(f"eye model {self.model_path} is a folder: give its .onnx file"
                                 if self.model_path.is_dir() else f"eye model not found: {self.model_path}")
            if (shown := not_utf8(str(self.model_path))) is not None:  # OpenCV segfaults on the name
                raise ModelError(f"eye model {shown}: its name is not UTF-8, which OpenCV cannot take (rename it)")
            try:
                net = cv2.dnn.readNetFromONNX(str(self.model_path))
            except cv2.error as err:
                why = (err.err or str(err).strip().splitlines()[-1]).strip()  # OpenCV's own message, not its C++ frame
                raise ModelError(f"eye model {self.model_path} is corrupt or not ONNX ({why[:200]})") from err
            if net.empty():
                raise ModelError(f"eye model {self.model_path} is empty")
            if self.input_norm not in INPUT_NORMS:  # surface a bad sidecar at load time too
                raise ModelError(f"eye model {self.model_path}: unknown input_norm "
                                 f"{self.input_norm!r}")
            self._probe(net)
            self._net = net
        return self

    def _probe(self, net: cv2.dnn.Net) -> None:
        """Run the net once on two blank crops. Parsing alone passed a model for 32x32 or colour
        crops (an OpenCV traceback at the first face) and one with two outputs per crop (the
        Haar backend read the second output as the other eye's P(open), and said nothing)."""
        try:
            net.setInput(np.zeros((2, SIZE, SIZE, 1), np.float32))
            out = net.forward()
        except cv2.error as err:
            raise ModelError(f"eye model {self.model_path} does not take a batch of {SIZE}x{SIZE} gray crops "
                             "(N, 24, 24, 1) float32") from err
        if out.size != 2:
            raise ModelError(f"eye model {self.model_path} gives an output of shape {tuple(out.shape)} for 2 crops, "
                             "not one P(open) per crop")

    def predict_batch(self, batch: np.ndarray) -> np.ndarray:
        """P(open) for a ready float32 (N, 24, 24, 1) batch in [0, 1]."""
        if len(batch) == 0:
            return np.zeros(0, dtype=np.float32)
        self.load()
        batch = normalize_input(np.ascontiguousarray(batch, dtype=np.float32), self.input_norm)
        with self._lock:
            self._net.setInput(batch)
            out = self._net.forward()
        return out.reshape(-1).astype(np.float32)

    def predict(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """P(open) per crop; crops are gray or BGR uint8 images of any size."""
        if len(crops) == 0:
            return np.zeros(0, dtype=np.float32)
        batch = np.stack([to_gray01(c, SIZE) for c in crops])[..., None]
        return self.predict_batch(batch)

    def state(self, p_open: float) -> EyeState:
        """Confident state for one score, UNKNOWN between the calibrated thresholds."""
        if p_open < self.closed_below:
            return EyeState.CLOSED
        if p_open > self.open_above:
            return EyeState.OPEN
        return EyeState.UNKNOWN


def evaluate_eyes(data_dir: str | Path, model_path: str | Path | None = None) -> dict:
    """Score the model on the CEW ``test`` rows: accuracy at 0.5, confusion, undecided rate."""
    clf = EyeClassifier(model_path).load()
    test = load_cew(data_dir, split="test")
    p = np.concatenate([clf.predict_batch(test.images[i:i + 256])
                        for i in range(0, len(test), 256)])
    y = test.labels
    pred = (p >= 0.5).astype(np.int64)
    closed = p < clf.closed_below
    opened = p > clf.open_above
    decided = closed | opened
    confident_right = np.sum(closed & (y == 0)) + np.sum(opened & (y == 1))
    return {
        "model": str(clf.model_path),
        "n": int(len(y)),
        "accuracy": round(float(np.mean(pred == y)), 4),
        # rows = true label, columns = predicted label
        "confusion": {
            "labels": ["closed", "open"],
            "closed": [int(np.sum((y == 0) & (pred == 0))), int(np.sum((y == 0) & (pred == 1)))],
            "open": [int(np.sum((y == 1) & (pred == 0))), int(np.sum((y == 1) & (pred == 1)))],
        },
        "closed_below": clf.closed_below,
        "open_above": clf.open_above,
        "undecided_rate": round(float(1 - decided.mean()), 4),
        "decided_accuracy": round(float(confident_right / max(1, decided.sum())), 4),
        "faces": faces_as_the_gate_reads_them(test.paths, y, p, clf.closed_below, clf.open_above),
    }


def faces_as_the_gate_reads_them(paths: np.ndarray, labels: np.ndarray, p_open: np.ndarray,
                                 closed_below: float, open_above: float) -> dict:
    """Both eyes of a face (CEW names them ``<face>_L.jpg`` and ``<face>_R.jpg``) through the
    gate's rule, ``eyes.decide``: CLOSED or OPEN only when both eyes agree, else UNKNOWN. A face
    of open eyes read CLOSED is what could let a photo blink."""
    pairs: dict[str, dict[str, int]] = {}
    for i, path in enumerate(paths):
        stem, _, side = str(path).rpartition(".")[0].rpartition("_")
        if side in ("L", "R"):
            pairs.setdefault(stem, {})[side] = i
    counts = {"faces": 0, "right": 0, "unknown": 0, "open_read_closed": 0, "closed_read_open": 0}
    for eyes in pairs.values():
        if len(eyes) != 2 or labels[eyes["L"]] != labels[eyes["R"]]:
            continue  # one eye in the split, or two labels: not a face with one state
        state = decide(float(p_open[eyes["R"]]), float(p_open[eyes["L"]]), closed_below, open_above)
        is_open = bool(labels[eyes["L"]])
        counts["faces"] += 1
        if state is EyeState.UNKNOWN:
            counts["unknown"] += 1
        elif (state is EyeState.OPEN) == is_open:
            counts["right"] += 1
        else:
            counts["open_read_closed" if is_open else "closed_read_open"] += 1
    return counts
