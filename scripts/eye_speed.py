"""Run-time cost of eye-net configs through cv2.dnn, against the shipped model in the same run.

Each config is built with random weights (speed does not depend on them), exported the way
train_eyes exports, and timed at the runtime's batch of 2 crops with one cv2 thread; the
number is ms per crop (best of 20 repeats of 300 forwards). The shipped model is timed first
and last, and with flip test-time averaging (crops and mirrors as one batch of 4).

    .venv/bin/python scripts/eye_speed.py --config filters=16,32,32 stage_convs=1,1,2 \\
        --config dense=128
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from blinkgate.eye_model import default_model_path


def ms_per_crop(path: Path, batch: int = 2, crops: int | None = None) -> float:
    """Best-of-20 wall time of one forward of ``batch`` crops, divided by ``crops`` (default batch)."""
    net = cv2.dnn.readNetFromONNX(str(path))
    x = np.random.default_rng(0).random((batch, 24, 24, 1), dtype=np.float32)
    for _ in range(300):
        net.setInput(x)
        net.forward()
    best = float("inf")
    for _ in range(20):
        t = time.perf_counter()
        for _ in range(300):
            net.setInput(x)
            net.forward()
        best = min(best, (time.perf_counter() - t) / 300 * 1e3)
    return best / (crops or batch)


def main() -> None:
    from blinkgate.train_eyes import build_model, config_with, count_params, export_onnx

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", nargs="+", action="append", default=[],
                    help="key=value overrides of the default config (one --config per net)")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    shipped = default_model_path()
    base = ms_per_crop(shipped)
    print(f"shipped {shipped.name}: {base:.4f} ms/crop (batch 2); with flip averaging "
          f"(batch of 4 for 2 crops): {ms_per_crop(shipped, 4, 2):.4f} ms/crop")
    with tempfile.TemporaryDirectory() as tmp:
        for overrides in args.config:
            model = build_model(config_with(overrides))
            model.predict(np.zeros((1, 24, 24, 1), np.float32), verbose=0)
            path = Path(tmp) / "net.onnx"
            export_onnx(model, path)
            t = ms_per_crop(path)
            print(f"{' '.join(overrides)}: {count_params(model)} params, {t:.4f} ms/crop "
                  f"({t / base:.2f}x shipped)")
    print(f"shipped again: {ms_per_crop(shipped):.4f} ms/crop")


if __name__ == "__main__":
    main()
