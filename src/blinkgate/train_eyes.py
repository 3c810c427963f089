"""Train the eye-state CNN (open vs closed) on CEW and export it as ONNX for cv2.dnn.

Training needs the ``train`` extra (Keras 3 on the torch backend, onnx). Nothing here imports
keras or torch at module import: the runtime package never needs them.

The ONNX graph is written directly from the trained weights (batch norm folded into the
convolutions) rather than traced: the result is small, has a dynamic batch dimension and uses
only ops cv2.dnn runs fast. Input: float32 NHWC (N, 24, 24, 1) gray in [0, 1]; output (N, 1) =
P(eye open). Every export is checked against Keras through cv2.dnn for batch sizes 1 and 2.
A config with ``input_norm="crop"`` trains on per-crop standardised inputs
(``eye_model.normalize_input``); the sidecar records it and ``EyeClassifier`` applies it.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from blinkgate.cew import SIZE, CewData, load_cew
from blinkgate.errors import TRAIN_EXTRA_HINT, BlinkgateError, ModelError
from blinkgate.eye_model import file_sha256, normalize_input
from blinkgate.files import remove_stale_temps, write_atomic
from blinkgate.parallel import imap_processes

EXPORT_TOLERANCE = 1e-4  # max |cv2.dnn - keras| accepted for an exported model
TARGET_PRECISION = 0.99  # a confident 'open' / 'closed' must be at least this precise
PARTIAL_NAME = re.compile(r"\.(.+)\.([0-9]+)\.partial\.onnx")  # a model being written: .STEM.PID.partial.onnx
# Shipped policy: only 'closed' is made strict. A false CLOSED is what could let a photo blink;
# a false OPEN cannot make a blink on its own, and a strict open cut-off hides real blinks
# behind UNKNOWN frames. The calibrated open cut-off is still recorded in the sidecar.
OPEN_ABOVE = 0.5


@dataclass(frozen=True)
class EyeNetConfig:
    """Architecture and training hyper-parameters (defaults: chosen by grouped CV on train)."""

    filters: tuple[int, ...] = (16, 32, 64)  # one stage (convs-BN-ReLU, maxpool) each
    stage_convs: tuple[int, ...] = (1, 1, 1)  # 3x3 convs in each stage
    dense: int = 64
    dropout: float = 0.3
    epochs: int = 30
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.05
    augment: bool = True
    mixup: float = 0.0  # Beta(a, a) mixup strength, 0 = off
    ema: bool = False  # exponential moving average of the weights
    distill: float = 0.0  # weight of a bigger teacher's P(open) in the targets, 0 = no teacher
    input_norm: str = "none"  # "crop": standardise each crop (eye_model.normalize_input)
    photometric: float = 1.0  # scale of the contrast/brightness/gamma jitter (most errors: dark crops)
    # A label audit (scripts/label_audit.py: path,label,verdict): training flips the labels of
    # rows judged "label" and leaves out rows judged "unclear". Scores still use CEW's labels.
    label_audit: str = ""

    def describe(self) -> str:
        convs = "-".join(f"{n}x[conv3x3({f})+BN+ReLU]+maxpool"
                         for f, n in zip(self.filters, self.stage_convs))
        return f"input 24x24x1 - {convs} - flatten - dropout({self.dropout}) - dense({self.dense})+ReLU - dense(1)+sigmoid"


def _setting(kind: type, value: str) -> Any:
    """One ``--set`` value as the field's type; ValueError if it cannot be one."""
    if kind is str:
        return value
    if kind is bool:
        if value.lower() not in ("1", "true", "yes", "0", "false", "no"):
            raise ValueError(value)
        return value.lower() in ("1", "true", "yes")
    parsed = tuple(int(v) for v in value.split(",")) if kind is tuple else kind(value)
    numbers = parsed if kind is tuple else (parsed,)
    lowest = 0 if kind is float else 1  # sizes and counts are positive; rates and weights >= 0
    if not all(math.isfinite(n) and n >= lowest for n in numbers):
        raise ValueError(value)
    return parsed


def config_with(items: Sequence[str], base: EyeNetConfig | None = None) -> EyeNetConfig:
    """``key=value`` overrides of ``base`` (default: the baseline; tuples as comma lists)."""
    config = base = base or EyeNetConfig()
    kinds = {f.name: type(getattr(config, f.name)) for f in fields(config)}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in kinds:
            raise BlinkgateError(f"--set {item!r}: expected KEY=VALUE with KEY one of {', '.join(kinds)}")
        try:
            config = replace(config, **{key: _setting(kinds[key], value.strip())})
        except ValueError:
            raise BlinkgateError(f"--set {item!r}: {value!r} is not a valid {key} "
                                 f"(now {getattr(base, key)!r})") from None
    return config


# ----------------------------------------------------------------------------- keras side


def _keras() -> Any:
    """Import keras on the torch backend (only here: importing blinkgate must stay cheap)."""
    os.environ["KERAS_BACKEND"] = "torch"
    try:
        import keras
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise BlinkgateError(f"training needs the [train] extra: {TRAIN_EXTRA_HINT}") from err
    if keras.backend.backend() != "torch":
        raise BlinkgateError(
            f"keras was already imported with the {keras.backend.backend()} backend; "
            "train in a fresh process")
    return keras


def build_model(config: EyeNetConfig) -> Any:
    keras = _keras()
    layers = keras.layers
    stack: list[Any] = [keras.Input((SIZE, SIZE, 1), name="eye")]
    if len(config.stage_convs) != len(config.filters):
        raise ValueError("stage_convs needs one count per entry of filters")
    for f, n in zip(config.filters, config.stage_convs):
        for _ in range(n):
            # No conv bias: the batch norm after it supplies the shift and is folded at export.
            stack += [layers.Conv2D(f, 3, padding="same", use_bias=False),
                      layers.BatchNormalization(momentum=0.9), layers.ReLU()]
        stack.append(layers.MaxPooling2D(2))
    stack += [layers.Flatten(), layers.Dropout(config.dropout),
              layers.Dense(config.dense, activation="relu"), layers.Dense(1, activation="sigmoid")]
    return keras.Sequential(stack, name="eye_state")


def augment(images: np.ndarray, rng: np.random.Generator, photometric: float = 1.0) -> np.ndarray:
    """Random shift/rotation/scale, flip, brightness/contrast/gamma and blur of (N,24,24,1).
    ``photometric`` scales the contrast, brightness and gamma ranges (same random draws)."""
    out = np.empty_like(images)
    n = len(images)
    angle = rng.uniform(-12, 12, n)
    scale = rng.uniform(0.9, 1.1, n)
    shift = rng.uniform(-2, 2, (n, 2))
    flip = rng.random(n) < 0.5
    blur = rng.random(n) < 0.2
    centre = ((SIZE - 1) / 2, (SIZE - 1) / 2)
    for i in range(n):
        img = images[i, :, :, 0]
        if flip[i]:
            img = img[:, ::-1]
        m = cv2.getRotationMatrix2D(centre, angle[i], scale[i])
        m[:, 2] += shift[i]
        img = cv2.warpAffine(np.ascontiguousarray(img), m, (SIZE, SIZE),
                             flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        if blur[i]:
            img = cv2.GaussianBlur(img, (3, 3), rng.uniform(0.3, 1.0))
        out[i, :, :, 0] = img
    # Photometric jitter, per image: contrast around the mean, brightness, gamma.
    mean = out.mean(axis=(1, 2, 3), keepdims=True)
    contrast = rng.uniform(0.7, 1.3, (n, 1, 1, 1)).astype(np.float32)
    bright = rng.uniform(-0.1, 0.1, (n, 1, 1, 1)).astype(np.float32)
    gamma = rng.uniform(0.75, 1.33, (n, 1, 1, 1)).astype(np.float32)
    if photometric != 1.0:
        contrast, bright = 1 + (contrast - 1) * photometric, bright * photometric
        gamma = gamma ** np.float32(photometric)
    out = np.clip((out - mean) * contrast + mean + bright, 0.0, 1.0)
    return (out ** gamma).astype(np.float32)


# Too slow to ship (~4x the run time) but ~0.7 points better in grouped CV: a teacher for distilling.
TEACHER = EyeNetConfig(filters=(32, 64, 128), stage_convs=(2, 2, 2), dense=128)


def _batches(keras: Any, x: np.ndarray, y: np.ndarray, config: EyeNetConfig, seed: int,
             teacher: Any = None) -> Any:
    """A keras PyDataset of shuffled, augmented (and optionally mixed-up) batches.

    Every batch draws from its own generator seeded by (seed, epoch, batch), so the data a
    model sees depends only on the seed, not on how keras iterates.
    """

    class Batches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.epoch = 0
            self.order = np.random.default_rng([seed, 0]).permutation(len(x))

        def __len__(self) -> int:
            return math.ceil(len(x) / config.batch_size)

        def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
            rng = np.random.default_rng([seed, self.epoch, i])
            idx = self.order[i * config.batch_size:(i + 1) * config.batch_size]
            xb, yb = x[idx], y[idx]
            if config.augment:
                xb = augment(xb, rng, config.photometric)
            if config.mixup > 0:
                # Mix each sample with a partner from the same batch; the label mixes alike.
                lam = rng.beta(config.mixup, config.mixup, (len(xb), 1)).astype(np.float32)
                lam = np.maximum(lam, 1 - lam)  # keep the original sample dominant
                j = rng.permutation(len(xb))
                xb = lam[:, :, None, None] * xb + (1 - lam[:, :, None, None]) * xb[j]
                yb = lam * yb + (1 - lam) * yb[j]
            if teacher is not None:
                # The teacher scores the very images the student sees (after augmentation).
                soft = np.asarray(teacher.predict_on_batch(xb), np.float32).reshape(yb.shape)
                yb = config.distill * soft + (1 - config.distill) * yb
            return normalize_input(xb, config.input_norm), yb

        def on_epoch_end(self) -> None:
            self.epoch += 1
            self.order = np.random.default_rng([seed, self.epoch]).permutation(len(x))

    return Batches()


def fit(x: np.ndarray, y: np.ndarray, config: EyeNetConfig, seed: int = 0,
        verbose: int = 0, threads: int | None = 1) -> Any:
    """Train a fresh model on (x, y); deterministic for a given seed on CPU."""
    keras = _keras()
    if threads:
        import torch

        torch.set_num_threads(threads)  # 1 is steadier when the 2 cores are shared
    teacher = None
    if config.distill > 0:
        teacher = fit(x, y, TEACHER, seed=seed + 7919, verbose=verbose, threads=threads)
    keras.utils.set_random_seed(seed)  # python, numpy and torch generators (weight init)
    model = build_model(config)
    steps = config.epochs * math.ceil(len(x) / config.batch_size)
    warmup = max(1, steps // 20)
    schedule = keras.optimizers.schedules.CosineDecay(
        config.lr / 10, decay_steps=max(1, steps - warmup), warmup_target=config.lr, warmup_steps=warmup)
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay,
                                       use_ema=config.ema, ema_momentum=0.99)
    model.compile(optimizer=optimizer,
                  loss=keras.losses.BinaryCrossentropy(label_smoothing=config.label_smoothing),
                  metrics=["accuracy"])
    data = _batches(keras, x, y.astype(np.float32).reshape(-1, 1), config, seed, teacher)
    model.fit(data, epochs=config.epochs, verbose=verbose)
    if config.ema:
        # The averaged weights need matching batch-norm statistics.
        _refresh_bn_stats(model, normalize_input(x, config.input_norm))
    return model


def _refresh_bn_stats(model: Any, x: np.ndarray, batch: int = 256) -> None:
    """Recompute batch-norm moving statistics for the current weights (one pass, no updates)."""
    bns = [lyr for lyr in model.layers if type(lyr).__name__ == "BatchNormalization"]
    saved = [lyr.momentum for lyr in bns]
    for n, i in enumerate(range(0, len(x), batch)):
        for lyr in bns:
            lyr.momentum = n / (n + 1)  # running mean over the passes
        model(x[i:i + batch], training=True)
    for lyr, m in zip(bns, saved):
        lyr.momentum = m


def predict_keras(model: Any, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=512, verbose=0), dtype=np.float32).reshape(-1)


def count_params(model: Any) -> int:
    return int(model.count_params())


# ----------------------------------------------------------------------------- ONNX export


def _folded_conv(conv: Any, bn: Any) -> tuple[np.ndarray, np.ndarray]:
    """Keras Conv2D (+ following BatchNorm) -> ONNX OIHW weights and bias."""
    w = np.asarray(conv.get_weights()[0], dtype=np.float64)  # (kh, kw, cin, cout)
    b = np.asarray(conv.get_weights()[1], np.float64) if conv.use_bias else np.zeros(w.shape[-1])
    if bn is not None:
        gamma, beta, mean, var = (np.asarray(v, np.float64) for v in bn.get_weights())
        scale = gamma / np.sqrt(var + bn.epsilon)
        w = w * scale
        b = (b - mean) * scale + beta
    return w.transpose(3, 2, 0, 1).astype(np.float32), b.astype(np.float32)


def to_onnx(model: Any) -> Any:
    """Write the Sequential eye model as an ONNX graph (opset 13) that cv2.dnn runs."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[Any] = []
    inits: list[Any] = []
    name = "eye"

    def add(op: str, inputs: list[str], **attrs: Any) -> None:
        nonlocal name
        out = f"t{len(nodes)}"
        nodes.append(helper.make_node(op, [name, *inputs], [out], **attrs))
        name = out

    def const(arr: np.ndarray) -> str:
        cname = f"w{len(inits)}"
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, np.float32), cname))
        return cname

    add("Transpose", [], perm=[0, 3, 1, 2])  # NHWC -> NCHW
    layers = [lyr for lyr in model.layers if type(lyr).__name__ not in ("Dropout", "InputLayer")]
    shape = (SIZE, SIZE, 1)  # current h, w, c (Keras order) for the Flatten permutation
    flat_from: tuple[int, int, int] | None = None
    i = 0
    while i < len(layers):
        lyr, kind = layers[i], type(layers[i]).__name__
        if kind == "Conv2D":
            bn = layers[i + 1] if i + 1 < len(layers) and type(layers[i + 1]).__name__ == "BatchNormalization" else None
            w, b = _folded_conv(lyr, bn)
            k = lyr.kernel_size
            add("Conv", [const(w), const(b)], kernel_shape=list(k),
                pads=[k[0] // 2, k[1] // 2, k[0] // 2, k[1] // 2] if lyr.padding == "same" else [0, 0, 0, 0])
            shape = (shape[0], shape[1], w.shape[0]) if lyr.padding == "same" else (
                shape[0] - k[0] + 1, shape[1] - k[1] + 1, w.shape[0])
            i += 2 if bn is not None else 1
            if lyr.activation.__name__ == "relu":
                add("Relu", [])
            continue
        if kind == "ReLU":
            add("Relu", [])
        elif kind == "MaxPooling2D":
            p = lyr.pool_size
            add("MaxPool", [], kernel_shape=list(p), strides=list(lyr.strides))
            shape = (shape[0] // p[0], shape[1] // p[1], shape[2])
        elif kind == "Flatten":
            add("Flatten", [], axis=1)
            flat_from = shape
        elif kind == "Dense":
            w, b = (np.asarray(v, np.float32) for v in lyr.get_weights())
            if flat_from is not None:  # Keras flattened (h, w, c); ONNX flattens (c, h, w)
                h, wd, c = flat_from
                w = w.reshape(h, wd, c, -1).transpose(2, 0, 1, 3).reshape(h * wd * c, -1)
                flat_from = None
            add("Gemm", [const(w), const(b)])
            act = lyr.activation.__name__
            if act in ("relu", "sigmoid"):
                add({"relu": "Relu", "sigmoid": "Sigmoid"}[act], [])
            elif act != "linear":
                raise ModelError(f"cannot export activation {act!r}")
        else:
            raise ModelError(f"cannot export layer {kind}")
        i += 1
    nodes[-1].output[0] = "p_open"
    graph = helper.make_graph(
        nodes, "eye_state",
        [helper.make_tensor_value_info("eye", TensorProto.FLOAT, ["N", SIZE, SIZE, 1])],
        [helper.make_tensor_value_info("p_open", TensorProto.FLOAT, ["N", 1])],
        inits)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                                   producer_name="blinkgate.train_eyes")
    onnx_model.ir_version = 8  # readable by older onnx/cv2 readers
    onnx.checker.check_model(onnx_model)
    return onnx_model


def export_onnx(model: Any, out_path: str | Path, probe: np.ndarray | None = None) -> float:
    """Save ``model`` as ONNX and verify cv2.dnn matches Keras; returns the max abs difference."""
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(to_onnx(model).SerializeToString())
    if probe is None:
        probe = np.random.default_rng(0).random((2, SIZE, SIZE, 1), dtype=np.float32)
    net = cv2.dnn.readNetFromONNX(str(out))
    worst = 0.0
    for batch in (probe[:1], probe[:2]):
        net.setInput(np.ascontiguousarray(batch, np.float32))
        got = net.forward().reshape(-1)
        worst = max(worst, float(np.abs(got - predict_keras(model, batch)).max()))
    if worst >= EXPORT_TOLERANCE:
        raise ModelError(f"exported ONNX disagrees with Keras by {worst:.2e} (> {EXPORT_TOLERANCE})")
    return worst


# ----------------------------------------------------------------------------- CV and calibration


def group_kfold(groups: np.ndarray, k: int = 5, seed: int = 0) -> list[np.ndarray]:
    """Fold index (0..k-1) per row; whole groups go to one fold, folds balanced by row count."""
    uniq, counts = np.unique(groups, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(uniq))
    # Largest groups first (stable after the shuffle), each to the currently smallest fold.
    order = order[np.argsort(-counts[order], kind="stable")]
    sizes = np.zeros(k, dtype=np.int64)
    fold_of = {}
    for g in order:
        f = int(np.argmin(sizes))
        fold_of[uniq[g]] = f
        sizes[f] += counts[g]
    return [np.array([fold_of[g] for g in groups]) == f for f in range(k)]


def _fold_job(args: tuple) -> tuple[int, int, np.ndarray, np.ndarray]:
    """One fold of one seed, in a worker process: fit on the other folds, score this one
    (as is and mirrored left-right)."""
    data_dir, config, seed, fold, k, rows = args
    train = _train_rows(data_dir, rows)
    val = group_kfold(train.groups, k, seed)[fold]
    keep, labels = audited(train, config.label_audit)
    fit_rows = ~val & keep
    model = fit(train.images[fit_rows], labels[fit_rows], config, seed=seed * 100 + fold)
    x = train.images[val]
    return seed, fold, *(predict_keras(model, normalize_input(v, config.input_norm))
                         for v in (x, x[:, :, ::-1].copy()))


VERDICTS = ("label", "unclear", "model")  # a label audit's: wrong label, unreadable, label right


def read_verdicts(path: str | Path) -> dict[str, str]:
    """CEW path -> verdict, from a label audit's CSV (path,label,verdict)."""
    with open(path, newline="", encoding="utf-8") as fh:
        verdicts = {r["path"]: r["verdict"] for r in csv.DictReader(fh)}
    unknown = sorted(set(verdicts.values()) - set(VERDICTS))
    if unknown:
        raise BlinkgateError(f"{path}: unknown verdicts {unknown} ({', '.join(VERDICTS)})")
    return verdicts


def audited(train: CewData, audit: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows to train on, their labels) after a label audit; all rows as they are without one."""
    keep, labels = np.ones(len(train), bool), train.labels.copy()
    if not audit:
        return keep, labels
    verdicts = read_verdicts(audit)
    for i, path in enumerate(train.paths):
        verdict = verdicts.get(str(path))
        if verdict == "label":
            labels[i] = 1 - labels[i]
        elif verdict == "unclear":
            keep[i] = False
    return keep, labels


def _train_rows(data_dir: str | Path, rows: np.ndarray | None = None) -> CewData:
    train = load_cew(data_dir, split="train")
    return train if rows is None else train.subset(rows)


def out_of_fold(data_dir: str | Path, config: EyeNetConfig, seeds: Sequence[int] = (0,),
                k: int = 5, jobs: int = 2, rows: np.ndarray | None = None,
                log: Any = None, flipped: bool = False) -> Any:
    """(seeds, n) P(open) for every train row from a model that never saw that row's group.

    Folds run in ``jobs`` worker processes (one torch thread each); ``rows`` restricts the
    train rows (indices into the train split). ``flipped=True`` returns a pair: the above and
    the same models' P(open) for the left-right mirrored crops (to measure flip averaging).
    """
    train = _train_rows(data_dir, rows)
    oof = np.full((2, len(seeds), len(train)), np.nan, dtype=np.float32)
    tasks = [(str(data_dir), config, s, f, k, rows) for s in seeds for f in range(k)]
    for seed, fold, p, p_flip in imap_processes(_fold_job, tasks, max(1, jobs)):
        val = group_kfold(train.groups, k, seed)[fold]
        oof[0, list(seeds).index(seed), val] = p
        oof[1, list(seeds).index(seed), val] = p_flip
        if log:
            log(f"seed {seed} fold {fold}: acc {np.mean((p >= 0.5) == train.labels[val]):.4f}")
    return (oof[0], oof[1]) if flipped else oof[0]


def calibrate(p_open: np.ndarray, labels: np.ndarray,
              precision: float = TARGET_PRECISION) -> dict[str, float]:
    """Widest thresholds with P(closed | p < closed_below) and P(open | p > open_above) >= precision.

    Candidates are midpoints between sorted scores, so a threshold never sits on a sample;
    ``closed_below <= 0.5 <= open_above`` always holds.
    """
    p = np.unique(np.concatenate([p_open, [0.0, 1.0]]))
    cands = np.unique(np.concatenate([[0.0, 0.5, 1.0], (p[1:] + p[:-1]) / 2]))
    closed_below, open_above = 0.0, 1.0
    for t in cands[cands <= 0.5]:
        sel = p_open < t
        if sel.any() and np.mean(labels[sel] == 0) >= precision:
            closed_below = float(t)
    for t in cands[cands >= 0.5][::-1]:
        sel = p_open > t
        if sel.any() and np.mean(labels[sel] == 1) >= precision:
            open_above = float(t)
    # Rounded towards the undecided band: to the nearest, a midpoint could round onto a sample of
    # the other state and miss the precision target by that one sample.
    return {"closed_below": math.floor(round(closed_below * 1e4, 6)) / 1e4,
            "open_above": math.ceil(round(open_above * 1e4, 6)) / 1e4}


# ----------------------------------------------------------------------------- entry point


def train_eyes(data_dir: str | Path, out_path: str | Path, seed: int = 0,
               epochs: int | None = None, calibration_folds: int = 5, jobs: int = 2,
               max_train_rows: int | None = None, config: EyeNetConfig | None = None,
               log: Any = print) -> dict:
    """Train on the ``train`` rows of CEW, export ONNX + sidecar JSON, return the metadata.

    ``calibration_folds`` > 1 first trains that many grouped-CV models (``jobs`` at a time)
    and picks the confidence thresholds on their out-of-fold predictions (0 = skip: thresholds
    0.5/0.5). ``max_train_rows`` trains on a random subset (quick smoke tests). The test rows
    are only scored at the end, never used for any choice.
    """
    config = config or EyeNetConfig()
    if epochs is not None:
        config = replace(config, epochs=epochs)
    log = log or (lambda *_: None)
    train = load_cew(data_dir, split="train")
    rows = None
    if max_train_rows is not None and max_train_rows < len(train):
        rows = np.sort(np.random.default_rng(seed).choice(len(train), max_train_rows, replace=False))
        train = train.subset(rows)
    groups = len(np.unique(train.groups))
    if calibration_folds > groups:  # a fold without rows was a traceback from keras, after the others had trained
        raise BlinkgateError(f"--calibration-folds {calibration_folds} is more than the {groups} groups (people) of the "
                             f"train rows: each fold needs one; give at most {groups}, or 0 to skip")
    _remove_stale_partials(Path(out_path), log)
    thresholds = {"closed_below": 0.5, "open_above": OPEN_ABOVE}
    calibrated_open = None
    oof_acc = None
    if calibration_folds > 1:
        log(f"calibrating: {calibration_folds}-fold grouped CV over {len(train)} train rows")
        oof = out_of_fold(data_dir, config, [seed], calibration_folds, jobs, rows, log)[0]
        thresholds = calibrate(oof, train.labels)
        calibrated_open = thresholds["open_above"]
        thresholds = {"closed_below": thresholds["closed_below"], "open_above": OPEN_ABOVE}
        oof_acc = round(float(np.mean((oof >= 0.5) == train.labels)), 4)
    keep, labels = audited(train, config.label_audit)
    log(f"training on {keep.sum()} rows, {config.epochs} epochs, seed {seed}")
    started = time.perf_counter()
    model = fit(train.images[keep], labels[keep], config, seed=seed)
    train_s = time.perf_counter() - started
    out = Path(out_path)
    # Written under a hidden name, renamed once its sidecar is written: a model replaced without
    # its sidecar (Ctrl-C or an error while scoring it) ran at the old model's thresholds.
    partial = out.with_name(f".{out.stem}.{os.getpid()}.partial.onnx")
    try:
        diff = export_onnx(model, partial, probe=normalize_input(train.images[:2], config.input_norm))
        meta = {
            "architecture": config.describe(),
            "params": count_params(model),
            "input": "float32 NHWC (N,24,24,1) gray in [0,1] (BGR2GRAY, INTER_AREA resize)"
                     + ("" if config.input_norm == "none" else
                        f", then input_norm {config.input_norm!r} (eye_model.normalize_input)"),
            "input_norm": config.input_norm,
            "output": "(N,1) probability that the eye is open",
            "seed": seed,
            "fold_seeds": "fold f of seed s trains with seed s*100+f" if calibration_folds > 1 else None,
            "teacher_seed": seed + 7919 if config.distill > 0 else None,
            "config": asdict(config),
            "teacher": asdict(TEACHER) if config.distill > 0 else None,
            "train_rows": int(keep.sum()),
            "train_seconds": round(train_s, 1),
            "cv_oof_accuracy": oof_acc,
            **_score_test(partial, data_dir, config.input_norm),
            "calibration": f"{calibration_folds}-fold grouped CV, out-of-fold, train rows only: "
                           f"closed_below = widest cut-off whose 'closed' calls are >= "
                           f"{TARGET_PRECISION:.0%} precise; open_above = {OPEN_ABOVE} by policy "
                           f"(a false OPEN cannot make a photo blink; a strict one hides real blinks)",
            "open_above_calibrated": calibrated_open,
            **thresholds,
            "onnx_max_abs_diff_vs_keras": diff,
            # The model these thresholds are for: if the rename below never happens (a kill),
            # the loader refuses them beside the old model instead of running it at them.
            "onnx_sha256": file_sha256(partial),
        }
        sidecar = out.with_suffix(".json")
        write_atomic(sidecar, (json.dumps(meta, indent=2) + "\n").encode())
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    log(f"wrote {out_path} and {sidecar.name}: test accuracy {meta['test_accuracy']:.4f}")
    return meta


def _remove_stale_partials(out: Path, log: Any) -> None:
    """Delete what a run into ``out`` killed (kill -9) while exporting or scoring its model, or
    writing its sidecar, left hidden beside it: a model (a quarter MB) per kill, for ever. Only
    those names', of a process gone (``remove_stale_temps``)."""
    sidecar = out.with_suffix(".json").name
    stale = remove_stale_temps(out.parent, lambda stem: stem == out.stem, PARTIAL_NAME)
    for path in stale + remove_stale_temps(out.parent, lambda name: name == sidecar):
        log(f"deleted {path.name}, left by a killed train-eyes")


def _score_test(onnx_path: str | Path, data_dir: str | Path, input_norm: str = "none") -> dict:
    """Accuracy at 0.5 of the exported model (through cv2.dnn) on the test rows: report only."""
    test = load_cew(data_dir, split="test")
    net = cv2.dnn.readNetFromONNX(str(onnx_path))
    net.setInput(normalize_input(test.images, input_norm))
    p = net.forward().reshape(-1)
    return {"test_rows": len(test),
            "test_accuracy": round(float(np.mean((p >= 0.5) == test.labels)), 4)}
