"""Training helpers (no keras needed) and a tiny end-to-end training run (needs the train extra)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from blinkgate.eye_model import EyeClassifier
from blinkgate.cew import CewData
from blinkgate.errors import BlinkgateError
from blinkgate.train_eyes import EyeNetConfig, audited, augment, calibrate, config_with, group_kfold

CEW = Path(__file__).resolve().parents[2] / "shared" / "data" / "cew-eyes"


def test_group_kfold_keeps_groups_whole_and_balanced():
    groups = np.repeat(np.arange(50), np.arange(1, 51) % 4 + 1).astype(str)
    folds = group_kfold(groups, k=5, seed=0)
    assert np.array_equal(np.sum(folds, axis=0), np.ones(len(groups)))
    for fold in folds:
        assert not set(groups[fold]) & set(groups[~fold])
    sizes = [f.sum() for f in folds]
    assert max(sizes) - min(sizes) <= 4
    assert all(np.array_equal(a, b) for a, b in zip(folds, group_kfold(groups, 5, 0)))


def test_calibrate_reaches_the_precision_target():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    p = np.clip(y * 0.6 + 0.2 + rng.normal(0, 0.15, 2000), 0, 1)
    t = calibrate(p, y, precision=0.99)
    assert t["closed_below"] <= 0.5 <= t["open_above"]
    assert np.mean(y[p < t["closed_below"]] == 0) >= 0.99
    assert np.mean(y[p > t["open_above"]] == 1) >= 0.99
    # Perfectly separated scores need no undecided band.
    assert calibrate(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == {
        "closed_below": 0.5, "open_above": 0.5}
    # The midpoint 0.223875 rounded to the nearest 0.2239 took in the open eye at 0.22389.
    closed, opened = np.linspace(0.1, 0.22386, 50), np.array([0.22389, 0.9])
    p, y = np.concatenate([closed, opened]), np.array([0] * 50 + [1, 1])
    t = calibrate(p, y, precision=0.99)
    assert t["closed_below"] == 0.2238 and np.mean(y[p < t["closed_below"]] == 0) == 1.0


def test_config_overrides_parse_each_kind_and_refuse_what_they_cannot_read():
    config = config_with(["filters=16,32,32", "stage_convs=1,1,2", "distill=0.7", "epochs=60",
                          "augment=false", "input_norm=crop"])
    assert config.filters == (16, 32, 32) and config.stage_convs == (1, 1, 2)
    assert config.distill == 0.7 and config.epochs == 60 and config.augment is False
    assert config.input_norm == "crop" and config.dense == EyeNetConfig().dense  # the rest kept
    assert config_with(["mixup=0", "label_audit="]).mixup == 0.0  # zero strengths and empty paths are fine
    for bad, says in [("epochs", "KEY=VALUE"), ("epoch=3", "epochs"), ("epochs=many", "not a valid epochs"),
                      ("augment=maybe", "not a valid augment"), ("filters=16,x", "not a valid filters"),
                      ("epochs=0", "not a valid epochs"), ("filters=16,0,32", "not a valid filters"),
                      ("lr=-0.1", "not a valid lr"), ("distill=nan", "not a valid distill")]:
        with pytest.raises(BlinkgateError, match=says):
            config_with([bad])


def test_train_eyes_refuses_a_bad_override_before_any_work(capsys, tmp_path):
    from blinkgate.cli import main

    if importlib.util.find_spec("keras") is None:
        pytest.skip("the [train] extra is not installed: train-eyes stops at that check first")
    assert main(["train-eyes", str(tmp_path), "--set", "filterz=8", "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert "filterz=8" in err and "calibrating" not in err


def _tiny_cew(folder: Path) -> None:
    """A CEW-style folder of 3 train crops, each its own group."""
    rows = ["path,label,group,split"]
    for i, label in enumerate(["open", "closed", "open"]):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((24, 24), 40 + 80 * i, np.uint8))
        rows.append(f"{i}.png,{label},person{i},train")
    (folder / "split.csv").write_text("\n".join(rows) + "\n")


def test_more_calibration_folds_than_groups_is_refused_before_any_training(tmp_path):
    """A fold left without rows was an UnboundLocalError traceback from keras's predict, after
    the other folds had trained."""
    from blinkgate.train_eyes import train_eyes

    _tiny_cew(tmp_path)
    with pytest.raises(BlinkgateError, match="--calibration-folds 5 is more than the 3 groups"):
        train_eyes(tmp_path, tmp_path / "m.onnx", calibration_folds=5, log=None)
    assert not (tmp_path / "m.onnx").exists()


def test_augment_keeps_shape_range_and_is_seeded():
    x = np.random.default_rng(0).random((8, 24, 24, 1), dtype=np.float32)
    a = augment(x, np.random.default_rng(1))
    assert a.shape == x.shape and a.dtype == np.float32
    assert 0.0 <= a.min() and a.max() <= 1.0
    assert np.array_equal(a, augment(x, np.random.default_rng(1)))
    assert np.array_equal(a, augment(x, np.random.default_rng(1), photometric=1.0))


def test_stronger_photometric_jitter_spreads_brightness_and_contrast_further():
    x = np.full((400, 24, 24, 1), 0.5, np.float32)
    x[:, 8:16] = 0.3  # a dark band: contrast has something to stretch

    def spread(k):
        a = augment(x, np.random.default_rng(2), photometric=k)
        return a.mean(axis=(1, 2, 3)).std(), a.std(axis=(1, 2, 3)).std()

    (mean1, contrast1), (mean2, contrast2) = spread(1.0), spread(2.0)
    assert mean2 > 1.5 * mean1 and contrast2 > 1.5 * contrast1


def test_a_label_audit_flips_wrong_labels_and_leaves_out_unclear_crops(tmp_path):
    paths = np.array(["open/a.jpg", "open/b.jpg", "closed/c.jpg", "closed/d.jpg"])
    train = CewData(np.zeros((4, 24, 24, 1), np.float32), np.array([1, 1, 0, 0]),
                    np.array(["a", "b", "c", "d"]), np.array(["train"] * 4), paths)
    keep, labels = audited(train, "")
    assert keep.all() and np.array_equal(labels, train.labels)
    audit = tmp_path / "audit.csv"
    audit.write_text("path,label,verdict\nopen/b.jpg,open,label\nclosed/c.jpg,closed,unclear\n"
                     "closed/d.jpg,closed,model\n", encoding="utf-8")
    keep, labels = audited(train, str(audit))
    assert keep.tolist() == [True, True, False, True]
    assert labels.tolist() == [1, 0, 0, 0]
    assert train.labels.tolist() == [1, 1, 0, 0]  # CEW's own labels, which every score uses, stay
    audit.write_text("path,label,verdict\nopen/b.jpg,open,wrong\n", encoding="utf-8")
    with pytest.raises(BlinkgateError, match="unknown verdicts"):
        audited(train, str(audit))


def _needs_training_data() -> None:
    if importlib.util.find_spec("keras") is None or importlib.util.find_spec("torch") is None:
        pytest.skip("keras/torch not installed: pip install -e '.[train]'")
    if not (CEW / "split.csv").is_file():
        pytest.skip(f"CEW data not found at {CEW} (tests read ../shared/data beside the repo)")


def test_a_run_stopped_after_training_leaves_the_model_and_its_sidecar_as_they_were(tmp_path, monkeypatch):
    """The model was written over before the test rows were scored and its sidecar written: a
    Ctrl-C or an error between left the new model with the old model's thresholds."""
    if importlib.util.find_spec("keras") is None or importlib.util.find_spec("torch") is None:
        pytest.skip("keras/torch not installed: pip install -e '.[train]'")
    import blinkgate.train_eyes as te

    _tiny_cew(tmp_path)
    out = tmp_path / "models" / "eye.onnx"
    out.parent.mkdir()
    out.write_bytes(b"the old model")
    out.with_suffix(".json").write_text('{"closed_below": 0.3}')

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(te, "_score_test", interrupted)
    with pytest.raises(KeyboardInterrupt):
        te.train_eyes(tmp_path, out, epochs=1, calibration_folds=0, log=None)
    assert out.read_bytes() == b"the old model" and out.with_suffix(".json").read_text() == '{"closed_below": 0.3}'
    assert sorted(p.name for p in out.parent.iterdir()) == ["eye.json", "eye.onnx"]


def test_what_a_killed_run_left_hidden_beside_its_model_is_deleted_by_the_next_run(tmp_path, monkeypatch):
    """kill -9 while exporting or scoring the model left ".eye.PID.partial.onnx" (a quarter MB)
    beside it, one more per kill, for ever (Ctrl-C and errors delete it). The next run into that
    model deletes its own: of a process gone, not another model's nor a run still going."""
    import os
    import subprocess
    import sys

    import blinkgate.train_eyes as te

    _tiny_cew(tmp_path)
    models = tmp_path / "models"
    models.mkdir()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead, alive = child.pid, os.getppid()
    killed = [models / f".eye.{dead}.partial.onnx", models / f".eye.json.{dead}.tmp"]  # the sidecar's write_atomic
    kept = [models / f".other.{dead}.partial.onnx", models / f".eye.{alive}.partial.onnx", models / "eye.onnx"]
    for path in (*killed, *kept):
        path.write_bytes(b"onnx")
    said = []

    def stopped(*args, **kwargs):  # no training needed: the folder is cleaned before it
        raise KeyboardInterrupt

    monkeypatch.setattr(te, "fit", stopped)
    with pytest.raises(KeyboardInterrupt):
        te.train_eyes(tmp_path, models / "eye.onnx", epochs=1, calibration_folds=0, log=said.append)
    assert sorted(p.name for p in models.iterdir()) == sorted(p.name for p in kept)
    assert f"deleted {killed[0].name}, left by a killed train-eyes" in said


def test_a_run_killed_before_its_model_is_renamed_leaves_thresholds_the_old_model_refuses(tmp_path, monkeypatch):
    """The sidecar is written, then the model renamed into place: a kill between the two left
    the new thresholds beside the old model, which ran at them (here 0.5 where it was calibrated
    at 0.2239: a looser "closed") with nothing said."""
    if importlib.util.find_spec("keras") is None or importlib.util.find_spec("torch") is None:
        pytest.skip("keras/torch not installed: pip install -e '.[train]'")
    import os
    import shutil

    import blinkgate.train_eyes as te
    from blinkgate.errors import ModelError
    from blinkgate.eye_model import default_model_path

    _tiny_cew(tmp_path)
    out = tmp_path / "models" / "eye.onnx"
    out.parent.mkdir()
    shutil.copy(default_model_path(), out)
    shutil.copy(default_model_path().with_suffix(".json"), out.with_suffix(".json"))
    assert EyeClassifier(out).closed_below == 0.2239
    monkeypatch.setattr(te, "_score_test", lambda *a, **k: {"test_rows": 0, "test_accuracy": 0.5})
    real_replace = os.replace

    def killed_at_the_model_rename(src, dst):
        if str(src).endswith(".partial.onnx"):
            raise KeyboardInterrupt  # as a kill -9 there would leave it: the sidecar new, the model old
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", killed_at_the_model_rename)
    with pytest.raises(KeyboardInterrupt):
        te.train_eyes(tmp_path, out, epochs=1, calibration_folds=0, log=None)
    monkeypatch.setattr(os, "replace", real_replace)
    assert json.loads(out.with_suffix(".json").read_text())["closed_below"] == 0.5  # the new thresholds
    with pytest.raises(ModelError, match="its thresholds were written for another model .*: retrain, or restore"):
        EyeClassifier(out).load()

    from blinkgate.eye_model import file_sha256

    meta = te.train_eyes(tmp_path, out, epochs=1, calibration_folds=0, log=None)  # not killed: they match
    assert meta["onnx_sha256"] == file_sha256(out)
    assert EyeClassifier(out).load().closed_below == 0.5


@pytest.mark.slow
def test_tiny_training_run_exports_onnx_that_cv2_loads(tmp_path):
    _needs_training_data()
    from blinkgate.train_eyes import train_eyes

    out = tmp_path / "eye.onnx"
    meta = train_eyes(CEW, out, seed=0, epochs=1, max_train_rows=300, calibration_folds=0, log=None)
    assert meta["train_rows"] == 300 and meta["params"] < 100_000
    assert meta["onnx_max_abs_diff_vs_keras"] < 1e-4
    net = cv2.dnn.readNetFromONNX(str(out))
    for n in (1, 2):
        net.setInput(np.zeros((n, 24, 24, 1), np.float32))
        assert net.forward().shape == (n, 1)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["seed"] == 0 and "test_accuracy" in sidecar
    p = EyeClassifier(out).predict([np.zeros((30, 30, 3), np.uint8)])
    assert p.shape == (1,)


@pytest.mark.slow
def test_calibrated_run_keeps_open_policy_and_out_of_fold_covers_every_row(tmp_path):
    _needs_training_data()
    from blinkgate.train_eyes import OPEN_ABOVE, EyeNetConfig, out_of_fold, train_eyes

    rows = np.arange(0, 3000, 25)  # 120 train rows
    oof, flipped = out_of_fold(CEW, EyeNetConfig(epochs=1), seeds=[0], k=2, jobs=1, rows=rows,
                               flipped=True)
    assert oof.shape == flipped.shape == (1, len(rows))
    assert np.isfinite(oof).all() and np.isfinite(flipped).all()
    assert not np.array_equal(oof, flipped)  # the mirrored crops are really scored apart

    import inspect

    import blinkgate.train_eyes as te

    runs = []

    def spied(*args, **kwargs):  # the run's own out-of-fold scores, and the rows they are of
        rows = inspect.signature(out_of_fold).bind(*args, **kwargs).arguments["rows"]
        runs.append((out_of_fold(*args, **kwargs), rows))
        return runs[-1][0]

    out = tmp_path / "eye.onnx"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(te, "out_of_fold", spied)
        meta = train_eyes(CEW, out, seed=0, epochs=1, max_train_rows=120, calibration_folds=2,
                          jobs=1, log=None)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["open_above"] == OPEN_ABOVE == 0.5  # policy, whatever calibration found
    assert sidecar["open_above_calibrated"] >= 0.5 >= sidecar["closed_below"]
    [(oof, rows)] = runs
    labels = te._train_rows(CEW, rows).labels
    assert oof.shape == (1, 120) and np.isfinite(oof).all() and meta["train_rows"] == 120
    # What the sidecar reports is this run's out-of-fold accuracy at 0.5 and its thresholds are
    # calibrated on those same scores: not a number from elsewhere, nor the labels inverted.
    assert sidecar["cv_oof_accuracy"] == round(float(np.mean((oof[0] >= 0.5) == labels)), 4)
    assert 0.0 <= sidecar["cv_oof_accuracy"] <= 1.0
    assert calibrate(oof[0], labels) == {"closed_below": sidecar["closed_below"],
                                         "open_above": sidecar["open_above_calibrated"]}


@pytest.mark.slow
def test_input_norm_is_recorded_and_applied_at_run_time(tmp_path):
    _needs_training_data()
    from blinkgate.eye_model import normalize_input
    from blinkgate.train_eyes import EyeNetConfig, train_eyes

    out = tmp_path / "eye.onnx"
    meta = train_eyes(CEW, out, seed=0, max_train_rows=200, calibration_folds=0, log=None,
                      config=EyeNetConfig(epochs=1, input_norm="crop"))
    assert meta["input_norm"] == "crop" and meta["config"]["input_norm"] == "crop"
    clf = EyeClassifier(out)
    assert clf.input_norm == "crop"
    x = np.random.default_rng(0).random((3, 24, 24, 1), dtype=np.float32)
    net = cv2.dnn.readNetFromONNX(str(out))
    net.setInput(normalize_input(x, "crop"))
    assert np.allclose(clf.predict_batch(x), net.forward().reshape(-1), atol=1e-6)
