"""Does the eye reading's steadiness around a blink separate a real blink from a flickering print?

Held-out ``sim-s32-0162`` (a flat, still print of heavy-lidded eyes) was accepted because its
per-frame eye reading flickers: P(open) and the EAR jump between consecutive frames of a sheet
that does not move, and one closed frame between open ones made a 100 ms "blink". This study
measures, for every closure the blink detector completes (open → closed → open), signals of how
steady the reading is around it, on real blinks and on attacks:

* ``dp_pre`` / ``dp_post``: mean frame-to-frame change of P(open), each eye on its own, then
  averaged over the two eyes, in the ``--window-ms`` up to the closure's last open frame / from
  its first reopened frame; ``dp_max_pre``: the largest change of either eye in that window;
* ``dear_pre`` / ``dear_post``: mean frame-to-frame change of the EAR in the same windows, over
  the median open EAR (scale-free);
* ``dp_open_*`` / ``dear_open_*``: the same, over pairs of consecutive frames both read OPEN
  only (the steadiness of the open reading itself; undecided frames and an earlier blink in the
  window left out);
* ``nonopen_500`` / ``nonopen_1000``: share of frames not read OPEN (undecided or closed) in the
  500 / 1000 ms before the closure's last open frame;
* ``z_ear`` / ``z_p``: the closure's depth over the spread of the open frames: (median − lowest
  value in the closure) / standard deviation, over the detector's baseline (the last 15 OPEN
  frames up to the closure), for the EAR and for P(open) (mean of the eyes); ``z_ear_all`` /
  ``z_p_all``: the same over every frame of the window before (undecided ones too).

Every completed closure is recorded, whether the gate counted it (a ``blink`` event) or a later
check refused it (its EAR never reached ``blink_ear_ratio`` of the open EAR, or the eyes were too
blurred); on attacks, also every open-closed-open of the eye CNN's own reading (at least 2 open frames, a
gap of 80-600 ms holding a CLOSED reading, 2 open frames) that the detector never completed (its
EAR did not fall, a fold/crease change voided it). Attacks are the
inputs whose label is not ``live``; real blinks are the counted blinks of ``live`` inputs (each
matched against the hand labels of the blink videos when ``--labels`` is given).

Two steps: ``extract`` runs the gate (no database) over manifests and writes each frame's eye
reading and each closure to a JSON-lines cache (resumable: inputs already there are skipped);
``report`` reads caches and prints, per signal, real blinks vs attacks, and what a threshold
at the value of ``--target`` (default the accepted blink of sim-s32-0162) would cost.

    PYTHONPATH=src .venv/bin/python scripts/flicker_study.py extract out/flicker.jsonl \\
        manifests/real.toml /tmp/sim_s32/manifest.csv
    PYTHONPATH=src .venv/bin/python scripts/flicker_study.py report out/flicker.jsonl \\
        --labels ../shared/data/blink-videos/labels
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from blinkgate.blink import BlinkDetector, BlinkOptions
from blinkgate.evaluate import load_manifest
from blinkgate.gate import Gate
from blinkgate.types import EyeState

BASELINE = BlinkOptions().baseline_frames


class RecordingDetector(BlinkDetector):
    """The gate's blink detector, also recording every closure that completes open-closed-open,
    with the verdict of the checks that follow (``blink``, ``ear`` or ``sharpness``)."""

    def __init__(self, options: BlinkOptions, sink: list[dict]):
        super().__init__(options)
        self.sink = sink

    def _reopen_phase(self, track_id, track, t, state):
        opts = self.options
        completes = state is EyeState.OPEN and track.open_frames + 1 >= opts.min_open_after
        start, end, closed, low = track.last_open_ms, track.reopen_ms, track.closed_frames, track.ear_low
        sharp = self._open_sharpness(track)
        blink = super()._reopen_phase(track_id, track, t, state)
        if completes:
            verdict = ("blink" if blink is not None else
                       "ear" if low is not None and low > opts.blink_ear_ratio else "sharpness")
            self.sink.append({"track": track_id, "start_ms": start, "end_ms": end, "closed_frames": closed,
                              "ear_low": low, "sharpness": sharp, "verdict": verdict})
        return blink


def pending(cache: Path, manifests: list[str]) -> list:
    """The manifests' inputs not yet in the JSON-lines ``cache`` (an extraction resumes)."""
    done = set()
    if cache.exists():
        done = {json.loads(line)["id"] for line in cache.open() if line.strip()}
    cache.parent.mkdir(parents=True, exist_ok=True)
    inputs = [p for p in load_manifest(*manifests) if p.id not in done]
    print(f"{len(inputs)} inputs to read ({len(done)} already in {cache})", flush=True)
    return inputs


def recording(gate: Gate, inputs: list):
    """(n, input, closures) per input, with the gate reset and its detector recording into
    ``closures`` every closure it completes."""
    for n, p in enumerate(inputs, 1):
        closures: list[dict] = []
        gate.reset()
        gate.blinks = RecordingDetector(gate.options.blink, closures)
        yield n, p, closures


def extract(cache: Path, manifests: list[str]) -> None:
    inputs = pending(cache, manifests)
    gate = Gate()
    with cache.open("a") as out:
        for n, p, closures in recording(gate, inputs):
            t0 = time.perf_counter()
            frames, blinks = [], []
            for i, frame in enumerate(p.open()):
                result = gate.process(frame.image, frame.timestamp_ms)
                for face in result.faces:
                    e = face.eyes
                    frames.append([i, round(frame.timestamp_ms, 3), face.track_id, e.state.value,
                                   *(None if v is None else round(float(v), 4) for v in e.p_open),
                                   None if e.ear is None else round(e.ear, 4),
                                   None if e.sharpness is None else round(e.sharpness, 4)])
                blinks += [{"track": ev.track_id, **ev.detail} for ev in result.events if ev.kind == "blink"]
            out.write(json.dumps({"id": p.id, "label": p.label, "group": p.group, "source": str(p.source),
                                  "frames": frames, "closures": closures, "blinks": blinks}) + "\n")
            out.flush()
            print(f"[{n}/{len(inputs)}] {p.id}: {len(frames)} face frames, {len(closures)} closures, "
                  f"{len(blinks)} blinks, {time.perf_counter() - t0:.1f} s", flush=True)


# -- signals ------------------------------------------------------------------------------------

FRAME = ("index", "t", "track", "state", "p_right", "p_left", "ear", "sharpness")

# name, True when a high value is attack-like
SIGNALS = [("dp_pre", True), ("dp_post", True), ("dp_max_pre", True), ("dp_open_pre", True),
           ("dp_open_post", True), ("dear_pre", True), ("dear_post", True), ("dear_open_pre", True),
           ("dear_open_post", True), ("nonopen_500", True), ("nonopen_1000", True), ("z_ear", False), ("z_p", False),
           ("z_ear_all", False), ("z_p_all", False)]


def _p(frame: dict) -> float | None:
    ps = [v for v in (frame["p_right"], frame["p_left"]) if v is not None]
    return sum(ps) / len(ps) if ps else None


def _mean_step(window: list[dict], key, open_only: bool = False) -> float | None:
    steps = []
    for a, b in zip(window, window[1:]):
        if open_only and not a["state"] == b["state"] == "open":
            continue
        va, vb = key(a), key(b)
        if va is not None and vb is not None:
            steps.append(abs(vb - va))
    return statistics.fmean(steps) if steps else None


def _eye_step(window: list[dict], open_only: bool = False) -> float | None:
    """Mean frame-to-frame change of P(open), each eye on its own, averaged over both eyes."""
    per_eye = [_mean_step(window, lambda f, k=k: f[k], open_only) for k in ("p_right", "p_left")]
    per_eye = [v for v in per_eye if v is not None]
    return statistics.fmean(per_eye) if per_eye else None


def _max_eye_step(window: list[dict]) -> float | None:
    steps = [abs(b[k] - a[k]) for a, b in zip(window, window[1:]) for k in ("p_right", "p_left")
             if a[k] is not None and b[k] is not None]
    return max(steps) if steps else None


def _z(base: list[float], low: float | None) -> float | None:
    if low is None or len(base) < 3:
        return None
    sd = statistics.pstdev(base)
    return (statistics.median(base) - low) / max(sd, 1e-6)


def signals(track: list[dict], start_ms: float, end_ms: float, window_ms: float) -> dict:
    """The signals of one closure from its track's frames (sorted by time)."""
    pre = [f for f in track if start_ms - window_ms <= f["t"] <= start_ms]
    post = [f for f in track if end_ms <= f["t"] <= end_ms + window_ms]
    inside = [f for f in track if start_ms < f["t"] < end_ms]
    opened = [f for f in track if f["t"] <= start_ms and f["state"] == "open"][-BASELINE:]
    base_ear = [f["ear"] for f in opened if f["ear"] is not None]
    base_p = [p for p in map(_p, opened) if p is not None]
    ear0 = statistics.median(base_ear) if base_ear else None

    def rel_ear(f: dict) -> float | None:
        return None if f["ear"] is None or not ear0 else f["ear"] / ear0

    def nonopen(ms: float) -> float | None:
        w = [f for f in track if start_ms - ms <= f["t"] < start_ms]
        return sum(f["state"] != "open" for f in w) / len(w) if w else None

    ears_in = [f["ear"] for f in inside if f["ear"] is not None]
    ps_in = [p for p in map(_p, inside) if p is not None]
    return {
        "dp_pre": _eye_step(pre), "dp_post": _eye_step(post), "dp_max_pre": _max_eye_step(pre),
        "dp_open_pre": _eye_step(pre, True), "dp_open_post": _eye_step(post, True),
        "dear_pre": _mean_step(pre, rel_ear), "dear_post": _mean_step(post, rel_ear),
        "dear_open_pre": _mean_step(pre, rel_ear, True), "dear_open_post": _mean_step(post, rel_ear, True),
        "nonopen_500": nonopen(500.0), "nonopen_1000": nonopen(1000.0),
        "z_ear": _z(base_ear, min(ears_in) if ears_in else None),
        "z_p": _z(base_p, min(ps_in) if ps_in else None),
        "z_ear_all": _z([f["ear"] for f in pre if f["ear"] is not None], min(ears_in) if ears_in else None),
        "z_p_all": _z([p for p in map(_p, pre) if p is not None], min(ps_in) if ps_in else None),
        "frames_pre": len(pre), "frames_inside": len(inside),
    }


def raw_closures(track: list[dict]) -> list[tuple[float, float]]:
    """Open-closed-open as the eye CNN read it, before the blink detector's checks: at least
    ``min_open_before`` OPEN frames, a gap of non-OPEN frames holding a CLOSED one and lasting
    ``min_blink_ms`` to ``max_closed_ms`` from the last open frame to the next, then at least
    ``min_open_after`` OPEN frames. (Its EAR, fold and sharpness not looked at.)"""
    opts = BlinkOptions()
    out, run, i = [], 0, 0
    while i < len(track):
        if track[i]["state"] == "open":
            run, i = run + 1, i + 1
            continue
        j = i
        while j < len(track) and track[j]["state"] != "open":
            j += 1
        after = track[j:j + opts.min_open_after]
        if (run >= opts.min_open_before and any(f["state"] == "closed" for f in track[i:j])
                and len(after) == opts.min_open_after and all(f["state"] == "open" for f in after)
                and opts.min_blink_ms <= track[j]["t"] - track[i - 1]["t"] <= opts.max_closed_ms):
            out.append((track[i - 1]["t"], track[j]["t"]))
        run, i = 0, j
    return out


def _labels(folder: Path | None) -> dict[str, list[tuple[int, int, str, str]]]:
    out: dict[str, list[tuple[int, int, str, str]]] = {}
    if folder is None:
        return out
    for path in folder.glob("*.csv"):
        with path.open() as f:
            out[path.stem] = [(int(r["start_frame"]), int(r["end_frame"]), r["kind"], r["confidence"])
                              for r in csv.DictReader(f)]
    return out


def _match(labels: list[tuple[int, int, str, str]], first: int, last: int) -> str:
    """The label a detection's closed frames overlap (±2 frames), 'unlabelled' if none."""
    hits = [f"{kind}/{conf}" for s, e, kind, conf in labels if first <= e + 2 and last >= s - 2]
    return ",".join(hits) if hits else "unlabelled"


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def report(caches: list[str], labels_dir: Path | None, window_ms: float, target: str) -> None:
    labels = _labels(labels_dir)
    rows = []  # (side, id, closure, signals)
    for cache in caches:
        for line in open(cache):
            rec = json.loads(line)
            tracks: dict[int, list[dict]] = defaultdict(list)
            for fr in rec["frames"]:
                tracks[fr[2]].append(dict(zip(FRAME, fr)))
            counted = {(b["track"], b["start_ms"]) for b in rec["blinks"]}
            live = rec["label"] == "live"
            for c in rec["closures"]:
                if (c["track"], c["start_ms"]) in counted:
                    c["verdict"] = "blink"
                elif c["verdict"] == "blink":
                    c["verdict"] = "dropped"  # the gate kept no closed frame for it
                track = tracks[c["track"]]
                sig = signals(track, c["start_ms"], c["end_ms"], window_ms)
                if live:
                    if c["verdict"] != "blink":
                        continue  # a real closure the gate refused anyway costs nothing here
                    clip = Path(rec["source"]).stem
                    inside = [f["index"] for f in track if c["start_ms"] < f["t"] < c["end_ms"]]
                    c["label"] = (_match(labels[clip], min(inside), max(inside))
                                  if clip in labels and inside else "-")
                    side = "real"
                else:
                    side = "attack-counted" if c["verdict"] == "blink" else "attack-refused"
                c["group"] = rec["group"]
                rows.append((side, rec["id"], c, sig))
            if not live:  # the CNN's closures the detector never completed (EAR, fold, timing)
                completed = {(c["track"], c["start_ms"]) for c in rec["closures"]}
                for tid, track in tracks.items():
                    for start, end in raw_closures(track):
                        if (tid, start) not in completed:
                            c = {"track": tid, "start_ms": start, "end_ms": end, "verdict": "raw"}
                            rows.append(("attack-raw", rec["id"], c, signals(track, start, end, window_ms)))

    real = [r for r in rows if r[0] == "real"]
    counted = [r for r in rows if r[0] == "attack-counted"]
    refused = [r for r in rows if r[0] in ("attack-refused", "attack-raw")]
    targets = [r for r in counted if r[1] == target]
    print(f"window {window_ms:g} ms; real counted blinks {len(real)} "
          f"({sum(r[2].get('label', '').startswith('blink') for r in real)} on a labelled blink); "
          f"attack closures counted {len(counted)} in {len({r[1] for r in counted})} inputs, "
          f"refused {len(refused)} in {len({r[1] for r in refused})} inputs "
          f"({sum(r[0] == 'attack-refused' for r in refused)} completed and refused by the EAR-depth or "
          f"sharpness check, the rest open-closed-open in the CNN's reading that the detector did not complete)")
    print()
    print("real blinks:")
    for side, rid, c, sig in real:
        print(f"  {rid:34} {c['start_ms']:8.0f}-{c['end_ms']:.0f} ms  {c.get('label', '-'):22} "
              + " ".join(f"{k}={_fmt(sig[k])}" for k, _ in SIGNALS))
    print("attack closures the gate counted:")
    for side, rid, c, sig in counted:
        print(f"  {rid:34} {c['start_ms']:8.0f}-{c['end_ms']:.0f} ms  "
              + " ".join(f"{k}={_fmt(sig[k])}" for k, _ in SIGNALS))
    print()
    print(f"per signal: real (worst / 5% toward attack / median) vs attacks; threshold at {target}")
    head = (f"{'signal':14} {'dir':3} {'real worst':>10} {'real 5%':>8} {'real med':>8} | {'target':>7} "
            f"{'margin':>7} {'real lost':>9} | {'counted med':>11} {'stopped':>7} | {'refused med':>11} {'beyond':>7}")
    print(head)
    lost_ids: dict[str, list[str]] = {}
    for name, high in SIGNALS:
        rv = [r[3][name] for r in real if r[3][name] is not None]
        if not rv:
            continue
        worst = max(rv) if high else min(rv)
        p5 = _pct(rv, 95) if high else _pct(rv, 5)
        tv = [r[3][name] for r in targets if r[3][name] is not None]
        cv = [r[3][name] for r in counted if r[3][name] is not None]
        fv = [r[3][name] for r in refused if r[3][name] is not None]
        if tv:
            tval = tv[0]
            beyond = (lambda v: v >= tval) if high else (lambda v: v <= tval)  # stopped at the target's value
            margin = (tval - worst) if high else (worst - tval)
            lost = sum(map(beyond, rv))
            lost_ids[name] = [f"{r[1]}@{r[2]['start_ms']:.0f}" for r in real
                              if r[3][name] is not None and beyond(r[3][name])]
            stopped = f"{sum(map(beyond, cv))}/{len(cv)}"
            fb = f"{sum(map(beyond, fv))}/{len(fv)}"
            tcol = f"{tval:7.3f} {margin:7.3f} {lost:4d}/{len(rv):<4d}"
        else:
            tcol, stopped, fb = f"{'-':>7} {'-':>7} {'-':>9}", "-", "-"
        print(f"{name:14} {'>' if high else '<':3} {worst:10.3f} {p5:8.3f} {statistics.median(rv):8.3f} | {tcol} | "
              f"{_fmt(statistics.median(cv) if cv else None):>11} {stopped:>7} | "
              f"{_fmt(statistics.median(fv) if fv else None):>11} {fb:>7}")
    groups = sorted({r[2]["group"] for r in real})
    counts = ", ".join(f"{g}: {sum(r[2]['group'] == g for r in real)}" for g in groups)
    print(f"\nreal blinks by group, worst / 5% toward attack ({counts} blinks):")
    for name, high in SIGNALS:
        parts = []
        for g in groups:
            gv = [r[3][name] for r in real if r[2]["group"] == g and r[3][name] is not None]
            if gv:
                parts.append(f"{g} {(max(gv) if high else min(gv)):.3f} / {_pct(gv, 95 if high else 5):.3f}")
        print(f"  {name:14} " + "; ".join(parts))
    for name, ids in lost_ids.items():
        if ids:
            print(f"  {name}: real blinks at or beyond the target: {', '.join(ids)}")
    print("\nmargin > 0: a threshold between the worst real blink and the target stops it with every real "
          "blink kept; real lost: real blinks at or beyond the target's value; stopped/beyond: attack closures "
          "(counted / refused) at or beyond it")


def _fmt(v: float | None) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def two_step_cli(doc: str, extract: Callable[[Path, list[str]], None],
                 report: Callable[[list[Path]], None]) -> int:
    """``extract CACHE MANIFEST...`` then ``report CACHE...``: the studies that need no options."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("extract")
    e.add_argument("cache", type=Path)
    e.add_argument("manifests", nargs="+")
    r = sub.add_parser("report")
    r.add_argument("caches", type=Path, nargs="+")
    args = ap.parse_args()
    if args.cmd == "extract":
        extract(args.cache, args.manifests)
    else:
        report(args.caches)
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    e = sub.add_parser("extract", help="run the gate over manifests, cache eye readings and closures")
    e.add_argument("cache", type=Path)
    e.add_argument("manifests", nargs="+")
    r = sub.add_parser("report", help="signals of real blinks vs attack closures, from caches")
    r.add_argument("caches", nargs="+")
    r.add_argument("--labels", type=Path, help="folder of the blink videos' label CSVs")
    r.add_argument("--window-ms", type=float, default=1000.0, help="window before/after a closure (default 1000)")
    r.add_argument("--target", default="sim-s32-0162", help="the accepted attack to stop (default sim-s32-0162)")
    args = ap.parse_args()
    if args.command == "extract":
        extract(args.cache, args.manifests)
    else:
        report(args.caches, args.labels, args.window_ms, args.target)


if __name__ == "__main__":
    main()
