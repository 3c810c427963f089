"""Grouped k-fold CV of eye-state CNN configs on the CEW *train* rows (test rows never loaded).

Each (config, seed) gets k fold models trained on the other folds' groups; reported numbers are
out-of-fold accuracy at 0.5 (mean ± std over seeds) and the calibrated thresholds.

    .venv/bin/python scripts/eye_cv.py ../shared/data/cew-eyes --seeds 0 1 2 \\
        --set epochs=40 --set filters=16,32,64 --jobs 2 --json cv.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from dataclasses import asdict, fields, replace

import numpy as np

from blinkgate.cew import load_cew
from blinkgate.train_eyes import EyeNetConfig, calibrate, fit, group_kfold, predict_keras


def parse_set(items: list[str]) -> EyeNetConfig:
    """``key=value`` overrides of the default config (tuples as comma lists)."""
    config = EyeNetConfig()
    types = {f.name: type(getattr(config, f.name)) for f in fields(config)}
    for item in items:
        key, value = item.split("=", 1)
        kind = types[key]
        if kind is tuple:
            parsed = tuple(int(v) for v in value.split(","))
        elif kind is bool:
            parsed = value.lower() in ("1", "true", "yes")
        else:
            parsed = kind(value)
        config = replace(config, **{key: parsed})
    return config


def _fold_job(args: tuple) -> tuple[int, int, np.ndarray]:
    data_dir, config_dict, seed, fold, k = args
    config = EyeNetConfig(**{**config_dict, "filters": tuple(config_dict["filters"])})
    train = load_cew(data_dir, split="train")
    val = group_kfold(train.groups, k, seed)[fold]
    model = fit(train.images[~val], train.labels[~val], config, seed=seed * 100 + fold, threads=1)
    return seed, fold, predict_keras(model, train.images[val])


def run(data_dir: str, config: EyeNetConfig, seeds: list[int], k: int, jobs: int) -> dict:
    train = load_cew(data_dir, split="train")
    jobs_args = [(data_dir, asdict(config), s, f, k) for s in seeds for f in range(k)]
    oof = {s: np.full(len(train), np.nan, dtype=np.float32) for s in seeds}
    started = time.perf_counter()
    with mp.get_context("spawn").Pool(jobs) as pool:
        for seed, fold, p in pool.imap_unordered(_fold_job, jobs_args):
            oof[seed][group_kfold(train.groups, k, seed)[fold]] = p
    y = train.labels
    per_seed = {s: float(np.mean((oof[s] >= 0.5) == y)) for s in seeds}
    cal = {s: calibrate(oof[s], y) for s in seeds}
    undecided = {s: float(np.mean((oof[s] >= cal[s]["closed_below"]) & (oof[s] <= cal[s]["open_above"])))
                 for s in seeds}
    accs = np.array(list(per_seed.values()))
    return {
        "config": asdict(config), "k": k, "seeds": seeds,
        "oof_accuracy": per_seed, "mean": round(float(accs.mean()), 4),
        "std": round(float(accs.std(ddof=1)) if len(accs) > 1 else 0.0, 4),
        "min": round(float(accs.min()), 4), "max": round(float(accs.max()), 4),
        "thresholds": cal, "oof_undecided": undecided,
        "minutes": round((time.perf_counter() - started) / 60, 1),
        "oof": np.stack([oof[s] for s in seeds]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], help="config override key=value")
    ap.add_argument("--json", help="append the result as one JSON line to this file")
    ap.add_argument("--oof", help="save the out-of-fold P(open) per seed to this .npy file")
    args = ap.parse_args()
    result = run(args.data_dir, parse_set(args.set), args.seeds, args.folds, args.jobs)
    result["overrides"] = args.set
    oof = result.pop("oof")
    if args.oof:
        np.save(args.oof, oof)
    print(f"{' '.join(args.set) or 'defaults'}: OOF acc {result['mean']:.4f} ± {result['std']:.4f} "
          f"(seeds {args.seeds}, {result['minutes']} min)")
    if args.json:
        with open(args.json, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
