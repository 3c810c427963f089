"""Figures and numbers for docs/eye-model.md (the eye-state model card).

    .venv/bin/python scripts/eye_model_card.py ../shared/data/cew-eyes \\
        --clip ../shared/data/blink-videos/blink-detector.mp4 [--clip ...] [--oof oof.npy] [--model m.onnx]

Writes docs/img/eye-reliability.png (reliability diagram + P(open) histograms of the test rows,
and of out-of-fold train predictions if ``--oof`` is given), out/eye-model/eye-failures.png (every
misclassified test crop; CEW images, so never in docs/) and docs/img/eye-trace-<clip>.png (EAR and P(open) per frame over a
labelled clip, labelled events shaded, landmark backend), and prints the numbers as JSON. The test rows
are only scored here; nothing is chosen on them.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from blinkgate.cew import load_cew  # noqa: E402
from blinkgate.eye_model import EyeClassifier  # noqa: E402

IMG = Path(__file__).resolve().parents[1] / "docs" / "img"
BINS = 10


def reliability(p: np.ndarray, y: np.ndarray, bins: int = BINS) -> dict:
    """Per-bin mean P(open), observed open rate and count; expected calibration error."""
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        sel = idx == b
        if sel.any():
            rows.append((float(p[sel].mean()), float(y[sel].mean()), int(sel.sum())))
    ece = sum(n * abs(conf - acc) for conf, acc, n in rows) / len(p)
    return {"bins": rows, "ece": round(float(ece), 4)}


def plot_reliability(sets: dict[str, tuple[np.ndarray, np.ndarray]], closed_below: float,
                     open_above: float, out: Path) -> dict:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=80)
    ax1.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfect")
    result = {}
    for (name, (p, y)), marker in zip(sets.items(), "os^"):
        r = reliability(p, y)
        result[name] = r
        conf, acc, n = (np.array(v) for v in zip(*r["bins"]))
        ax1.plot(conf, acc, marker=marker, label=f"{name} (ECE {r['ece']:.3f})")
    ax1.set(xlabel="mean P(open) in bin", ylabel="fraction open", title="reliability (10 bins)",
            xlim=(0, 1), ylim=(0, 1))
    ax1.legend(fontsize=8, loc="upper left")
    p, y = next(iter(sets.values()))
    edges = np.linspace(0, 1, 41)
    ax2.hist(p[y == 0], edges, alpha=0.6, label="true closed", color="tab:red")
    ax2.hist(p[y == 1], edges, alpha=0.6, label="true open", color="tab:blue")
    ax2.axvline(closed_below, color="k", lw=1)
    ax2.axvline(open_above, color="k", lw=1, ls=":")
    ax2.text(closed_below, ax2.get_ylim()[1] * 0.9, f" closed_below\n {closed_below:.3f}", fontsize=7)
    ax2.set_yscale("log")
    ax2.set(xlabel="P(open)", ylabel="crops (log)", title=f"{next(iter(sets))}: P(open) by true label")
    ax2.legend(fontsize=8, loc="upper center")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return result


def plot_failures(images: np.ndarray, labels: np.ndarray, p: np.ndarray, paths: np.ndarray,
                  out: Path, cols: int = 8) -> list[dict]:
    wrong = np.flatnonzero((p >= 0.5) != labels)
    wrong = wrong[np.argsort(-np.abs(p[wrong] - 0.5))]  # most confident mistakes first
    rows = max(1, int(np.ceil(len(wrong) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.3), dpi=72)
    for ax in np.ravel(axes):
        ax.axis("off")
    listing = []
    for ax, i in zip(np.ravel(axes), wrong):
        ax.imshow(images[i, :, :, 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        truth = "open" if labels[i] else "closed"
        ax.set_title(f"{truth}\np={p[i]:.2f}", fontsize=7)
        listing.append({"path": str(paths[i]), "label": truth, "p_open": round(float(p[i]), 3)})
    fig.suptitle("misclassified test crops (title: true label, P(open))", fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return listing


def read_labels(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as fh:
        return [{**r, "start": int(r["start_frame"]), "end": int(r["end_frame"])}
                for r in csv.DictReader(fh)]


def trace_clip(clip: Path, model: str | None) -> tuple[list[dict], list[tuple[int, int]], float]:
    """Per frame of the biggest face: EAR, P(open) of both eyes, state; detected blinks."""
    from blinkgate.gate import Gate, GateOptions
    from blinkgate.sources import VideoFileSource

    frames, blinks = [], []
    with Gate(options=GateOptions(eyes="landmarks"), eye_model=model) as gate, \
            VideoFileSource(clip) as source:
        fps = source.fps
        for frame, result in gate.run(source):
            row = {"frame": frame.index, "ear": None, "p": (None, None), "state": None}
            if result.faces:
                face = max(result.faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
                row.update(ear=face.eyes.ear, p=face.eyes.p_open, state=face.eyes.state.value)
            frames.append(row)
            for ev in result.events:
                if ev.kind == "blink":
                    blinks.append((round(ev.detail["start_ms"] * fps / 1000) + 1,
                                   round(ev.detail["end_ms"] * fps / 1000) - 1))
    return frames, blinks, fps


def plot_trace(clip: Path, frames: list[dict], blinks: list[tuple[int, int]], labels: list[dict],
               closed_below: float, out: Path) -> None:
    f = np.array([r["frame"] for r in frames])
    ear = np.array([np.nan if r["ear"] is None else r["ear"] for r in frames])
    pr = np.array([np.nan if r["p"][0] is None else r["p"][0] for r in frames])
    pl = np.array([np.nan if r["p"][1] is None else r["p"][1] for r in frames])
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 4.2), dpi=80, sharex=True)
    colours = {"blink": "tab:orange", "long_closure": "tab:purple", "wink": "tab:green",
               "half_closure": "tab:olive", "downgaze": "tab:brown"}
    for ax in (ax1, ax2):
        for lb in labels:
            ax.axvspan(lb["start"] - 0.5, lb["end"] + 0.5, color=colours.get(lb["kind"], "0.7"),
                       alpha=0.3, lw=0)
    ax1.plot(f, ear, color="k", lw=1)
    ax1.set_ylabel("EAR (mean of eyes)")
    ax2.plot(f, pr, lw=1, label="P(open) subject right eye (image left)")
    ax2.plot(f, pl, lw=1, label="P(open) subject left eye")
    ax2.axhline(closed_below, color="k", lw=0.8, ls="--", label=f"closed_below {closed_below:.3f}")
    for s, e in blinks:
        ax2.plot([s, e], [1.06, 1.06], color="tab:red", lw=3, solid_capstyle="butt")
    ax2.set(ylabel="P(open)", xlabel="frame", ylim=(-0.05, 1.12))
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.3)
               for k, c in colours.items() if any(lb["kind"] == k for lb in labels)]
    kinds = [k for k in colours if any(lb["kind"] == k for lb in labels)]
    ax1.legend(handles, [f"labelled {k}" for k in kinds], fontsize=7, loc="lower right", ncol=3)
    ax2.legend(fontsize=7, loc="center", ncol=3)
    ax1.set_title(f"{clip.name}: landmark backend; red bars above = blinks the gate reported", fontsize=9)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir", help="CEW folder with split.csv")
    ap.add_argument("--clip", action="append", default=[],
                    help="labelled clip for a trace plot (labels/<name>.csv beside it); repeatable")
    ap.add_argument("--model", help="ONNX eye model (default: the shipped one)")
    ap.add_argument("--oof", help="out-of-fold P(open) of the train rows (.npy from eye_cv.py, first seed used)")
    ap.add_argument("--out", default=str(IMG), help="folder for the plots (default docs/img)")
    ap.add_argument("--failures-out", default="out/eye-model",
                    help="folder for the montage of misclassified crops (shared data: kept out of the repo)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clf = EyeClassifier(args.model).load()
    test = load_cew(args.data_dir, split="test")
    p = np.concatenate([clf.predict_batch(test.images[i:i + 256]) for i in range(0, len(test), 256)])
    sets = {"test": (p, test.labels)}
    if args.oof:
        oof = np.load(args.oof)
        oof = oof[0] if oof.ndim == 2 else oof
        sets["train out-of-fold"] = (oof, load_cew(args.data_dir, split="train").labels)
    report: dict = {"model": str(clf.model_path), "closed_below": clf.closed_below,
                    "open_above": clf.open_above}
    report["reliability"] = plot_reliability(sets, clf.closed_below, clf.open_above,
                                             out / "eye-reliability.png")
    for name, (pp, yy) in sets.items():
        closed, opened = pp < clf.closed_below, pp > clf.open_above
        report[f"{name} undecided_rate"] = round(float(1 - np.mean(closed | opened)), 4)
        report[f"{name} closed precision"] = round(float(np.mean(yy[closed] == 0)), 4)
        report[f"{name} closed recall"] = round(float(np.mean(closed[yy == 0])), 4)
    # The montage shows CEW crops, which are shared data: it goes to --failures-out, never docs/.
    failures = Path(args.failures_out)
    failures.mkdir(parents=True, exist_ok=True)
    report["misclassified"] = plot_failures(test.images, test.labels, p, test.paths,
                                            failures / "eye-failures.png")
    report["traces"] = []
    for spec in args.clip:
        clip = Path(spec)
        labels = read_labels(clip.parent / "labels" / f"{clip.stem}.csv")
        frames, blinks, _ = trace_clip(clip, args.model)
        plot_trace(clip, frames, blinks, labels, clf.closed_below, out / f"eye-trace-{clip.stem}.png")
        report["traces"].append({"clip": clip.name, "frames": len(frames),
                                 "frames_with_face": sum(r["ear"] is not None for r in frames),
                                 "detected_blinks": blinks,
                                 "per_frame": [[r["frame"], r["ear"] and round(r["ear"], 3),
                                                *(x and round(x, 3) for x in r["p"]), r["state"]]
                                               for r in frames],
                                 "labelled": [(lb["start"], lb["end"], lb["kind"]) for lb in labels]})
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
