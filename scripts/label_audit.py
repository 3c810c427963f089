"""How many CEW *train* labels can a person not confirm? A ceiling for the eye-state accuracy.

The out-of-fold P(open) of grouped CV (``scripts/eye_cv.py --oof``) picks the train crops the
model gets wrong; a person looks at each, enlarged, and writes a verdict. Those that are
mislabelled or cannot be read as open or closed bound what any model can score on crops labelled
the same way. Test rows are never loaded.

    python scripts/eye_cv.py ../shared/data/cew-eyes --seeds 0 1 --jobs 1 --oof out/audit/oof.npy
    python scripts/label_audit.py sheets ../shared/data/cew-eyes out/audit/oof.npy --out out/audit
    #   look at out/audit/sheet-*.png; write docs/data/cew-label-audit.csv (path,verdict)
    python scripts/label_audit.py report ../shared/data/cew-eyes out/audit/oof.npy docs/data/cew-label-audit.csv

Verdicts: ``label`` (clearly the other state), ``unclear`` (a person cannot say open or closed:
a slit, a blur, a lid hidden) and ``model`` (the label is right; the model is wrong). The sheets
show CEW crops, shared data, so they go to ``--out`` and never into the repository.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from blinkgate.cew import load_cew  # noqa: E402

VERDICTS = ("label", "unclear", "model")
ROWS, COLS = 4, 6  # 24 crops a sheet: large enough to judge a 24x24 crop by eye
PER_SHEET = ROWS * COLS


def wrong_rows(labels: np.ndarray, oof: np.ndarray) -> np.ndarray:
    """Rows whose seed-mean out-of-fold P(open) is on the wrong side of 0.5, most confident first."""
    p = oof.mean(axis=0)
    wrong = np.flatnonzero((p >= 0.5) != labels.astype(bool))
    return wrong[np.argsort(-np.abs(p[wrong] - 0.5), kind="stable")]


def sheets(data_dir: str, oof_path: str, out: Path) -> None:
    train = load_cew(data_dir, split="train")
    oof = np.load(oof_path)
    p, rows = oof.mean(axis=0), wrong_rows(train.labels, oof)
    out.mkdir(parents=True, exist_ok=True)
    listing = out / "wrong.csv"
    with listing.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["n", "path", "label", "p_open"])
        for n, i in enumerate(rows):
            writer.writerow([n, train.paths[i], "open" if train.labels[i] else "closed", f"{p[i]:.3f}"])
    for page in range(math.ceil(len(rows) / PER_SHEET)):
        chunk = rows[page * PER_SHEET:(page + 1) * PER_SHEET]
        fig, axes = plt.subplots(ROWS, COLS, figsize=(COLS * 2.6, ROWS * 2.9), dpi=60)
        for ax in np.ravel(axes):
            ax.axis("off")
        for k, (ax, i) in enumerate(zip(np.ravel(axes), chunk)):
            ax.imshow(train.images[i, :, :, 0], cmap="gray", vmin=0, vmax=1, interpolation="bicubic")
            label = "open" if train.labels[i] else "closed"
            ax.set_title(f"#{page * PER_SHEET + k} {label} p={p[i]:.2f}", fontsize=13)
        fig.tight_layout()
        fig.savefig(out / f"sheet-{page:02d}.png")
        plt.close(fig)
    print(f"{len(rows)} of {len(train)} train crops wrong out of fold; listed in {listing}")


def report(data_dir: str, oof_path: str, verdicts_path: str) -> dict:
    train = load_cew(data_dir, split="train")
    oof = np.load(oof_path)
    wrong = {str(train.paths[i]) for i in wrong_rows(train.labels, oof)}
    with open(verdicts_path, newline="", encoding="utf-8") as fh:
        verdicts = {r["path"]: r["verdict"] for r in csv.DictReader(fh)}
    bad = sorted(set(verdicts.values()) - set(VERDICTS))
    if bad:
        raise SystemExit(f"unknown verdicts {bad}; use {VERDICTS}")
    missing = wrong - set(verdicts)
    counts = {v: sum(1 for path in wrong if verdicts.get(path) == v) for v in VERDICTS}
    n = len(train)
    accs = [float(np.mean((o >= 0.5) == train.labels)) for o in oof]
    result = {
        "train_rows": n, "wrong_out_of_fold": len(wrong), "not_judged": len(missing),
        "oof_accuracy_per_seed": [round(a, 4) for a in accs],
        "verdicts": counts,
        "label_or_unclear_share": round((counts["label"] + counts["unclear"]) / n, 4),
        # A model that agreed with every readable label and guessed the rest at chance:
        "ceiling": round(1 - (counts["label"] + counts["unclear"] / 2) / n, 4),
        "oof_accuracy_on_readable": round(float(np.mean([
            (p >= 0.5) == y for p, y, path in zip(oof.mean(axis=0), train.labels, train.paths)
            if verdicts.get(str(path), "model") == "model"])), 4),
    }
    print(json.dumps(result, indent=1))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="step", required=True)
    s = sub.add_parser("sheets", help="contact sheets of the train crops wrong out of fold")
    s.add_argument("data_dir")
    s.add_argument("oof")
    s.add_argument("--out", type=Path, default=Path("out/audit"))
    r = sub.add_parser("report", help="count the verdicts")
    r.add_argument("data_dir")
    r.add_argument("oof")
    r.add_argument("verdicts")
    args = ap.parse_args()
    if args.step == "sheets":
        sheets(args.data_dir, args.oof, args.out)
    else:
        report(args.data_dir, args.oof, args.verdicts)


if __name__ == "__main__":
    main()
