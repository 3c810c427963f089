"""Run-time eye classifier: shipped model quality, input handling and load errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from blinkgate.errors import ModelError
from blinkgate.eye_model import EyeClassifier, default_model_path, evaluate_eyes, file_sha256, normalize_input
from blinkgate.types import EyeState

CEW = Path(__file__).resolve().parents[2] / "shared" / "data" / "cew-eyes"


@pytest.fixture(scope="module")
def clf() -> EyeClassifier:
    return EyeClassifier().load()


def test_shipped_model_and_sidecar_exist():
    path = default_model_path()
    assert path.is_file(), path
    assert path.with_suffix(".json").is_file()


def test_sidecar_metadata_and_thresholds(clf):
    meta = clf.metadata
    assert meta["params"] < 100_000
    assert 0.0 <= clf.closed_below <= 0.5 <= clf.open_above <= 1.0
    assert clf.state(0.0) is EyeState.CLOSED and clf.state(1.0) is EyeState.OPEN


@pytest.mark.slow
def test_shipped_model_accuracy_on_cew_test_rows():
    if not (CEW / "split.csv").is_file():
        pytest.skip(f"CEW data not found at {CEW} (tests read ../shared/data beside the repo)")
    result = evaluate_eyes(CEW)
    recorded = EyeClassifier().metadata["test_accuracy"]
    assert result["n"] == 926
    assert result["accuracy"] >= recorded - 0.005
    assert result["accuracy"] >= 0.97
    confusion = result["confusion"]
    assert sum(confusion["closed"]) + sum(confusion["open"]) == 926
    assert 0.0 <= result["undecided_rate"] < 0.2
    faces = result["faces"]  # 463 faces, both eyes in the split; none of open eyes read closed
    assert faces["faces"] == 463 and faces["open_read_closed"] == 0
    assert faces["right"] + faces["unknown"] + faces["closed_read_open"] == 463


def test_a_face_is_read_as_the_gate_reads_it_both_eyes_agreeing():
    from blinkgate.eye_model import faces_as_the_gate_reads_them

    paths = np.array(["open/a_L.jpg", "open/a_R.jpg", "open/b_L.jpg", "open/b_R.jpg",
                      "closed/c_L.jpg", "closed/c_R.jpg", "closed/d_L.jpg", "closed/d_R.jpg", "open/e_L.jpg"])
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0, 1])
    p_open = np.array([0.9, 0.8, 0.1, 0.05, 0.9, 0.1, 0.6, 0.7, 0.01])
    assert faces_as_the_gate_reads_them(paths, labels, p_open, closed_below=0.2, open_above=0.5) == {
        "faces": 4, "right": 1, "unknown": 1, "open_read_closed": 1, "closed_read_open": 1}


def test_predict_accepts_gray_and_bgr_of_any_size(clf):
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (24, 24), np.uint8), rng.integers(0, 256, (40, 57, 3), np.uint8),
             rng.integers(0, 256, (13, 9, 3), np.uint8)]
    p = clf.predict(crops)
    assert p.shape == (3,) and p.dtype == np.float32
    assert np.all((p >= 0) & (p <= 1))
    # Same crop alone or in a batch gives the same score.
    assert abs(clf.predict(crops[1:2])[0] - p[1]) < 1e-5
    assert clf.predict([]).shape == (0,)


def test_bgr_and_gray_versions_agree(clf):
    gray = np.random.default_rng(1).integers(0, 256, (24, 24), np.uint8)
    bgr = np.repeat(gray[:, :, None], 3, axis=2)
    assert np.allclose(clf.predict([gray]), clf.predict([bgr]), atol=1e-5)


def test_missing_model_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        EyeClassifier(tmp_path / "missing.onnx").load()


def test_a_model_whose_name_is_not_utf8_is_a_model_error_not_a_segfault(tmp_path, monkeypatch):
    """cv2.dnn.readNetFromONNX on such a name crashed eval-eyes and eval --eye-model (exit 139)."""
    import os

    import cv2

    model = tmp_path / os.fsdecode(b"ey\xe9.onnx")
    try:
        shutil.copy(default_model_path(), model)
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    monkeypatch.setattr(cv2.dnn, "readNetFromONNX", lambda *a: pytest.fail("segfault"))
    with pytest.raises(ModelError, match="not UTF-8"):
        EyeClassifier(model).load()


def test_corrupt_model_is_a_model_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 50)
    with pytest.raises(ModelError, match="corrupt") as err:
        EyeClassifier(bad).predict([np.zeros((24, 24), np.uint8)])
    assert "Failed to parse ONNX model" in str(err.value) and "OpenCV(" not in str(err.value)  # its reason, not its C++ frame
    half = tmp_path / "half.onnx"
    half.write_bytes(default_model_path().read_bytes()[:1000])
    with pytest.raises(ModelError):
        EyeClassifier(half).load()


def _dense_model(path, in_shape: list, outputs: int) -> None:
    """A minimal ONNX net: flatten, one dense layer, sigmoid."""
    onnx = pytest.importorskip("onnx", reason="needs onnx (the [train] extra) to write test models")
    from onnx import TensorProto, helper, numpy_helper

    n_in = int(np.prod(in_shape[1:]))
    weights = [numpy_helper.from_array(np.full((n_in, outputs), 0.001, np.float32), "w"),
               numpy_helper.from_array(np.zeros(outputs, np.float32), "b")]
    nodes = [helper.make_node("Flatten", ["x"], ["f"], axis=1), helper.make_node("Gemm", ["f", "w", "b"], ["g"]),
             helper.make_node("Sigmoid", ["g"], ["y"])]
    graph = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", outputs])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


@pytest.mark.parametrize("in_shape, outputs, message", [
    (["N", 32, 32, 1], 1, "does not take a batch of 24x24 gray crops"),
    (["N", 24, 24, 3], 1, "does not take a batch of 24x24 gray crops"),
    (["N", 24, 24, 1], 2, "not one P"),
])
def test_a_model_for_other_crops_or_outputs_is_refused_at_load(tmp_path, in_shape, outputs, message):
    """Parsed but never run, such a model passed the start-up check: an OpenCV traceback at the
    first face, or (two outputs) the Haar backend silently reading one eye's second output as the
    other eye's P(open)."""
    path = tmp_path / "other.onnx"
    _dense_model(path, in_shape, outputs)
    with pytest.raises(ModelError, match=message):
        EyeClassifier(path).load()
    _dense_model(path, ["N", 24, 24, 1], 1)
    assert EyeClassifier(path).load().predict([np.zeros((24, 24), np.uint8)] * 2).shape == (2,)  # the right shape loads


def test_shipped_model_without_its_thresholds_is_a_broken_install(tmp_path, monkeypatch):
    """At 0.5/0.5 the eye stage would say CLOSED more readily than anything was measured with."""
    bare = tmp_path / "eye_state.onnx"
    shutil.copy(default_model_path(), bare)
    monkeypatch.setattr("blinkgate.eye_model.default_model_path", lambda: bare)
    with pytest.raises(ModelError, match="install is incomplete"):
        EyeClassifier().load()
    # Another model without a sidecar is the user's choice, with the documented defaults.
    other = EyeClassifier(bare.with_name("mine.onnx"))
    shutil.copy(bare, other.model_path)
    assert other.load().closed_below == 0.5


def test_construction_is_lazy(tmp_path):
    clf = EyeClassifier(tmp_path / "missing.onnx")  # no error until used
    with pytest.raises(ModelError):
        clf.load()


def test_runtime_import_pulls_no_training_stack():
    code = ("import sys, blinkgate.eye_model as m; m.EyeClassifier().load(); "
            "print(any(k in sys.modules for k in ('keras', 'torch', 'onnxruntime')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_eye_cnn_is_a_small_part_of_a_frame(clf):
    # As a ratio in the same run, against the gate's costliest stage (Haar face detection on a
    # 640x480 frame): absolute times move with the machine and its load. The model card reports
    # the measured ~0.05-0.07 ms per crop; a face's two crops cost about 3% of a detection.
    import cv2

    from blinkgate.detect import FaceDetector
    from conftest import clip_frame

    batch = np.random.default_rng(2).random((2, 24, 24, 1), dtype=np.float32)
    still = clip_frame()[150:630]
    gray = cv2.cvtColor(cv2.copyMakeBorder(still, 0, 0, 80, 80, cv2.BORDER_REPLICATE), cv2.COLOR_BGR2GRAY)
    detector, threads = FaceDetector(), cv2.getNumThreads()
    cv2.setNumThreads(1)

    def best(work, n: int) -> float:
        work()
        runs = []
        for _ in range(3):
            start = time.thread_time()
            for _ in range(n):
                work()
            runs.append((time.thread_time() - start) / n)
        return min(runs)

    try:
        cnn, detect = best(lambda: clf.predict_batch(batch), 200), best(lambda: detector.detect(gray), 20)
    finally:
        cv2.setNumThreads(threads)
    assert cnn < 0.2 * detect, (cnn, detect)


def test_normalize_input_modes():
    x = np.random.default_rng(3).random((3, 24, 24, 1), dtype=np.float32)
    x[2] = 0.4  # a flat crop must stay finite
    assert normalize_input(x, "none") is x
    z = normalize_input(x, "crop")
    assert z.dtype == np.float32 and np.isfinite(z).all()
    assert np.allclose(z[:2].mean(axis=(1, 2, 3)), 0, atol=1e-5)
    assert np.allclose(z[:2].std(axis=(1, 2, 3)), 1, atol=1e-4)
    assert np.allclose(normalize_input(x * 0.5 + 0.2, "crop")[:2], z[:2], atol=1e-4)  # affine-invariant
    with pytest.raises(ModelError, match="input_norm"):
        normalize_input(x, "global")


def _model_copy(tmp_path, **sidecar) -> Path:
    out = tmp_path / "eye.onnx"
    shutil.copy(default_model_path(), out)
    meta = json.loads(default_model_path().with_suffix(".json").read_text())
    out.with_suffix(".json").write_text(json.dumps({**meta, **sidecar}))
    return out


def test_sidecar_input_norm_is_applied_and_defaults_to_none(tmp_path, clf):
    assert clf.input_norm == "none"  # the shipped sidecar has no input_norm: inputs as they are
    x = np.random.default_rng(4).random((2, 24, 24, 1), dtype=np.float32)
    normed = EyeClassifier(_model_copy(tmp_path, input_norm="crop"))
    assert normed.input_norm == "crop"
    assert np.allclose(normed.predict_batch(x), clf.predict_batch(normalize_input(x, "crop")),
                       atol=1e-6)
    with pytest.raises(ModelError, match="input_norm"):
        EyeClassifier(_model_copy(tmp_path, input_norm="global")).load()


@pytest.mark.parametrize("sidecar, message", [
    ({"closed_below": "x"}, "closed_below must be a probability"),
    ({"open_above": 1.5}, "open_above must be a probability"),
    ({"open_above": True}, "open_above must be a probability"),
    ({"closed_below": 0.8, "open_above": 0.2}, "closed_below must not exceed open_above"),
])
def test_a_sidecar_with_bad_thresholds_is_a_clear_error(tmp_path, sidecar, message):
    """A threshold that is not a probability would fail on the first frame, or read every eye
    as both open and closed."""
    with pytest.raises(ModelError, match=message):
        EyeClassifier(_model_copy(tmp_path, **sidecar)).metadata  # noqa: B018


def test_the_sidecar_names_the_model_its_thresholds_are_for(tmp_path):
    """A sidecar's onnx_sha256 must be its model's: new thresholds beside an old model (train-eyes
    killed before the rename) are refused; a sidecar from before the key is read as it was."""
    shipped = json.loads(default_model_path().with_suffix(".json").read_text())
    assert shipped["onnx_sha256"] == file_sha256(default_model_path())
    other = EyeClassifier(_model_copy(tmp_path, onnx_sha256="0" * 64))
    with pytest.raises(ModelError, match=r"eye\.json: its thresholds were written for another model \(sha256 "
                                         rf"000000000000\.\.\., eye\.onnx is {shipped['onnx_sha256'][:12]}\.\.\.\)"):
        other.load()
    old = _model_copy(tmp_path)
    meta = json.loads(old.with_suffix(".json").read_text())
    del meta["onnx_sha256"]
    old.with_suffix(".json").write_text(json.dumps(meta))
    assert EyeClassifier(old).load().closed_below == 0.2239


def test_a_score_between_the_thresholds_is_unknown_and_the_thresholds_themselves_are_not_confident(tmp_path):
    clf = EyeClassifier(_model_copy(tmp_path, closed_below=0.2, open_above=0.7))
    states = [clf.state(p) for p in (0.1, 0.2, 0.5, 0.7, 0.8)]
    assert states == [EyeState.CLOSED, EyeState.UNKNOWN, EyeState.UNKNOWN, EyeState.UNKNOWN, EyeState.OPEN]


def test_eval_eyes_scores_accuracy_at_one_half_and_the_confident_share_between_the_thresholds(tmp_path, monkeypatch):
    """The metrics of ``eval-eyes`` from known scores: accuracy and the confusion at 0.5, the
    undecided share between closed_below and open_above, and accuracy over the decided rows."""
    from blinkgate import eye_model
    from blinkgate.cew import CewData

    labels = np.array([1, 1, 1, 0, 0, 0])
    p_open = np.array([0.9, 0.55, 0.3, 0.1, 0.45, 0.8], np.float32)  # 0.55 / 0.45: undecided
    n = len(labels)
    data = CewData(np.zeros((n, 24, 24, 1), np.float32), labels, np.arange(n), np.array(["test"] * n),
                   np.array([f"x/{i}.jpg" for i in range(n)]))
    monkeypatch.setattr(eye_model, "load_cew", lambda *a, **k: data)
    monkeypatch.setattr(EyeClassifier, "predict_batch", lambda self, batch: p_open[:len(batch)])
    r = evaluate_eyes(tmp_path, _model_copy(tmp_path, closed_below=0.4, open_above=0.6))
    assert r["n"] == 6 and r["accuracy"] == round(4 / 6, 4)  # 0.55 right, 0.45 right, 0.3 and 0.8 wrong
    assert r["confusion"] == {"labels": ["closed", "open"], "closed": [2, 1], "open": [1, 2]}
    assert r["undecided_rate"] == round(2 / 6, 4) and r["decided_accuracy"] == 0.5  # 0.9 and 0.1 right of 0.9, 0.3, 0.1, 0.8


def test_a_face_whose_eyes_are_labelled_differently_is_left_out():
    from blinkgate.eye_model import faces_as_the_gate_reads_them

    paths = np.array(["eyes/w_L.jpg", "eyes/w_R.jpg", "eyes/a_L.jpg", "eyes/a_R.jpg"])
    counts = faces_as_the_gate_reads_them(paths, np.array([0, 1, 1, 1]), np.array([0.9, 0.9, 0.9, 0.9]), 0.2, 0.5)
    assert counts["faces"] == 1 and counts["right"] == 1
