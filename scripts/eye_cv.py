"""Grouped k-fold CV of eye-state CNN configs on the CEW *train* rows (test rows never loaded).

Each (config, seed) gets k fold models trained on the other folds' groups; reported numbers are
out-of-fold accuracy at 0.5 (mean ± std over seeds) and the calibrated thresholds.

    .venv/bin/python scripts/eye_cv.py ../shared/data/cew-eyes --seeds 0 1 2 \\
        --set epochs=40 --set filters=16,32,64 --jobs 2 --json cv.json
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict

import numpy as np

from blinkgate.cew import load_cew
from blinkgate.train_eyes import OPEN_ABOVE, EyeNetConfig, calibrate, config_with, out_of_fold


def run(data_dir: str, config: EyeNetConfig, seeds: list[int], k: int, jobs: int,
        rows: int | None = None) -> dict:
    started = time.perf_counter()
    subset = None
    y = load_cew(data_dir, split="train").labels
    if rows is not None and rows < len(y):  # smoke runs: a fixed random subset of train rows
        subset = np.sort(np.random.default_rng(0).choice(len(y), rows, replace=False))
        y = y[subset]
    oof, oof_flip = out_of_fold(data_dir, config, seeds, k, jobs, subset, flipped=True)
    accs = np.array([np.mean((o >= 0.5) == y) for o in oof])
    # Flip test-time averaging: mean P(open) of the crop and its mirror (same fold models).
    tta = np.array([np.mean(((o + f) / 2 >= 0.5) == y) for o, f in zip(oof, oof_flip)])
    cal = [calibrate(o, y) for o in oof]
    undecided = [float(np.mean((o >= c["closed_below"]) & (o <= c["open_above"])))
                 for o, c in zip(oof, cal)]
    return {
        "config": asdict(config), "k": k, "seeds": seeds,
        "oof_accuracy": [round(float(a), 4) for a in accs],
        "mean": round(float(accs.mean()), 4),
        "std": round(float(accs.std(ddof=1)) if len(accs) > 1 else 0.0, 4),
        "min": round(float(accs.min()), 4), "max": round(float(accs.max()), 4),
        "thresholds": cal, "oof_undecided": undecided,
        # Undecided with the shipped policy: calibrated closed_below, open_above = OPEN_ABOVE.
        "oof_undecided_policy": [round(float(np.mean((o >= c["closed_below"]) & (o <= OPEN_ABOVE))), 4)
                                 for o, c in zip(oof, cal)],
        "rows": len(y),
        "flip_tta_oof_accuracy": [round(float(a), 4) for a in tta],
        "flip_tta_mean": round(float(tta.mean()), 4),
        "minutes": round((time.perf_counter() - started) / 60, 1),
        "oof": oof,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], help="config override key=value")
    ap.add_argument("--rows", type=int, help="use only this many random train rows (smoke tests)")
    ap.add_argument("--json", help="append the result as one JSON line to this file")
    ap.add_argument("--oof", help="save the out-of-fold P(open) per seed to this .npy file")
    args = ap.parse_args()
    result = run(args.data_dir, config_with(args.set), args.seeds, args.folds, args.jobs, args.rows)
    result["overrides"] = args.set
    oof = result.pop("oof")
    if args.oof:
        np.save(args.oof, oof)
    print(f"{' '.join(args.set) or 'defaults'}: OOF acc {result['mean']:.4f} ± {result['std']:.4f} "
          f"(seeds {args.seeds}, {result['minutes']} min); flip-TTA {result['flip_tta_mean']:.4f}")
    if args.json:
        with open(args.json, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
