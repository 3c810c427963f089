"""A person's look at the CEW *train* crops the eye model gets wrong: mislabelled, unreadable, or the model's fault?

The out-of-fold P(open) of grouped CV (``scripts/eye_cv.py --oof``) picks the train crops the
model gets wrong; a person looks at each, enlarged, and writes a verdict. A seeded random sample
of the crops it gets right is judged the same way, so the verdicts can be compared: how many
crops a person cannot read does the model read right? Test rows are never loaded.

    python scripts/eye_cv.py ../shared/data/cew-eyes --seeds 0 1 --jobs 1 --oof out/audit/oof.npy
    python scripts/label_audit.py sheets ../shared/data/cew-eyes out/audit/oof.npy --out out/audit --sample 120
    #   look at out/audit/wrong-*.png and right-*.png; write docs/data/cew-label-audit.csv and
    #   docs/data/cew-label-audit-right.csv (path,label,verdict)
    python scripts/label_audit.py report ../shared/data/cew-eyes out/audit/oof.npy \
        docs/data/cew-label-audit.csv --right docs/data/cew-label-audit-right.csv

Verdicts: ``label`` (the crop clearly shows the other state), ``unclear`` (the person cannot say
open or closed: too dark, blurred, washed out, a slit, hair or glasses over the lid) and
``model`` (the label is right). The sheets show CEW crops, shared data, so they go to ``--out``
and never into the repository.
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

from blinkgate.cew import CewData, load_cew  # noqa: E402
from blinkgate.train_eyes import VERDICTS, read_verdicts  # noqa: E402

ROWS, COLS = 4, 6  # 24 crops a sheet: large enough to judge a 24x24 crop by eye
PER_SHEET = ROWS * COLS


def wrong_rows(labels: np.ndarray, oof: np.ndarray) -> np.ndarray:
    """Rows whose seed-mean out-of-fold P(open) is on the wrong side of 0.5, most confident first."""
    p = oof.mean(axis=0)
    wrong = np.flatnonzero((p >= 0.5) != labels.astype(bool))
    return wrong[np.argsort(-np.abs(p[wrong] - 0.5), kind="stable")]


def right_sample(labels: np.ndarray, oof: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """A seeded random sample of the rows the model gets right: how many unreadable crops it
    guessed right tells whether the unreadable share is larger than the wrong ones show."""
    right = np.setdiff1d(np.arange(len(labels)), wrong_rows(labels, oof))
    return np.sort(np.random.default_rng(seed).choice(right, min(count, len(right)), replace=False))


def sheets(data_dir: str, oof_path: str, out: Path, sample: int = 0) -> None:
    train = load_cew(data_dir, split="train")
    oof = np.load(oof_path)
    p = oof.mean(axis=0)
    out.mkdir(parents=True, exist_ok=True)
    wrong = wrong_rows(train.labels, oof)
    _sheets(train, p, wrong, out, "wrong")
    print(f"{len(wrong)} of {len(train)} train crops wrong out of fold; listed in {out / 'wrong.csv'}")
    if sample:
        _sheets(train, p, right_sample(train.labels, oof, sample), out, "right")
        print(f"a random {sample} of those right: {out / 'right.csv'}")


def _sheets(train: CewData, p: np.ndarray, rows: np.ndarray, out: Path, name: str) -> None:
    with (out / f"{name}.csv").open("w", newline="", encoding="utf-8") as fh:
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
        fig.savefig(out / f"{name}-{page:02d}.png")
        plt.close(fig)


def report(data_dir: str, oof_path: str, wrong_path: str, right_path: str | None = None) -> dict:
    train = load_cew(data_dir, split="train")
    oof = np.load(oof_path)
    wrong = [str(train.paths[i]) for i in wrong_rows(train.labels, oof)]
    verdicts = read_verdicts(wrong_path)
    counts = {v: sum(1 for path in wrong if verdicts.get(path) == v) for v in VERDICTS}
    n, n_right = len(train), len(train) - len(wrong)
    result = {
        "train_rows": n, "wrong_out_of_fold": len(wrong),
        "not_judged": sum(1 for path in wrong if path not in verdicts),
        "oof_accuracy_per_seed": [round(float(np.mean((o >= 0.5) == train.labels)), 4) for o in oof],
        "wrong": counts,
    }
    if right_path:
        # The reviewer's "unclear" share among crops the model gets right, scaled to all of them,
        # against the unclear ones it gets wrong: how well the model reads what a person cannot.
        right = read_verdicts(right_path)
        sample = {v: sum(1 for verdict in right.values() if verdict == v) for v in VERDICTS}
        unclear_right = sample["unclear"] / len(right) * n_right
        result.update({
            "right_sample": sample,
            "unclear_right_estimated": round(unclear_right),
            "model_accuracy_on_unclear_estimated": round(unclear_right / (unclear_right + counts["unclear"]), 3),
            "mislabelled_share_estimated": round(
                (counts["label"] + sample["label"] / len(right) * n_right) / n, 4),
        })
    print(json.dumps(result, indent=1))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="step", required=True)
    s = sub.add_parser("sheets", help="contact sheets of the train crops wrong out of fold")
    s.add_argument("data_dir")
    s.add_argument("oof")
    s.add_argument("--out", type=Path, default=Path("out/audit"))
    s.add_argument("--sample", type=int, default=0, help="also this many random crops it gets right")
    r = sub.add_parser("report", help="count the verdicts")
    r.add_argument("data_dir")
    r.add_argument("oof")
    r.add_argument("verdicts", help="the verdicts on the crops wrong out of fold")
    r.add_argument("--right", help="the verdicts on the random sample of crops it gets right")
    args = ap.parse_args()
    if args.step == "sheets":
        sheets(args.data_dir, args.oof, args.out, args.sample)
    else:
        report(args.data_dir, args.oof, args.verdicts, args.right)


if __name__ == "__main__":
    main()
