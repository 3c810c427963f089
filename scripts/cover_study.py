"""Does the skin around the eyes change during a closure? A real blink moves the lids only; a
finger, a strip or paper eyelids over a print's eyes also cover the skin beside and between them.

For every frame of every face, in the eye-aligned canvas of ``fold.eye_canvas`` (eye corners
level, 40 px apart), the log intensity is blurred and compared, patch by patch, with the
per-pixel median of the track's last 15 OPEN frames. Patches (canvas pixels) that a blink does
not touch: the nose bridge between the eyes, the cheek just below each eye, the skin just
beyond each outer eye corner. Per patch: ``ncc`` (zero-mean normalised cross-correlation, the
best over shifts of up to 3 px, for landmark jitter: is the texture still there) and ``mad`` (mean absolute log difference after removing the patch's
mean shift: did the skin change, beyond a change of light).

For each closure the detector completes (open-closed-open, counted or refused), the lowest
``ncc`` and highest ``mad`` of any patch on its non-open frames; and the same on open frames,
for scale. Also the lids' kinematics per closure (``fall``, ``rise``: the largest one-frame EAR
step into and out of it, over its depth). Real blinks: the ``live`` inputs; attacks: every other
label.

    PYTHONPATH=src .venv/bin/python scripts/cover_study.py extract out/cover.jsonl manifests/real.toml \\
        /tmp/occ_s0/manifest.csv   # made by scripts/occluder_study.py
    PYTHONPATH=src .venv/bin/python scripts/cover_study.py report out/cover.jsonl
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict, deque
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flicker_study import BASELINE, pending, recording, two_step_cli  # noqa: E402

from blinkgate import fold  # noqa: E402
from blinkgate.eyes import _clip_box  # noqa: E402
from blinkgate.gate import Gate  # noqa: E402
from blinkgate.types import EyeState  # noqa: E402

# (rows, cols) slices of the 160 x 160 canvas; eye centres near (60, 60) and (60, 100)
PATCHES = {
    "bridge": (slice(50, 71), slice(74, 87)),
    "below_r": (slice(69, 79), slice(46, 75)),
    "below_l": (slice(69, 79), slice(86, 115)),
    "outer_r": (slice(52, 69), slice(36, 46)),
    "outer_l": (slice(52, 69), slice(115, 125)),
}
SHIFT = 3  # canvas pixels searched each way: landmark jitter and a head's small motion


def patches(gray: np.ndarray, pts: np.ndarray) -> dict[str, np.ndarray]:
    """Each patch with SHIFT pixels of margin (the baseline is searched over that margin)."""
    canvas, _ = fold.eye_canvas(gray, pts)
    log = cv2.GaussianBlur(np.log(canvas.astype(np.float32) + fold.LOG_OFFSET), (0, 0), 1.5)
    return {k: log[r.start - SHIFT:r.stop + SHIFT, c.start - SHIFT:c.stop + SHIFT] for k, (r, c) in PATCHES.items()}


def scores(now: dict[str, np.ndarray], base: dict[str, np.ndarray]) -> dict[str, float]:
    out = {}
    for k in PATCHES:
        cur = np.ascontiguousarray(now[k][SHIFT:-SHIFT, SHIFT:-SHIFT])
        sd = float(cur.std())
        match = cv2.matchTemplate(np.ascontiguousarray(base[k]), cur, cv2.TM_CCOEFF_NORMED) if sd > 1e-6 else np.zeros(1)
        out[f"ncc_{k}"] = float(np.nan_to_num(match).max())
        b = base[k][SHIFT:-SHIFT, SHIFT:-SHIFT]
        out[f"mad_{k}"] = float(np.abs((cur - cur.mean()) - (b - b.mean())).mean())
    return out


def extract(cache: Path, manifests: list[str]) -> None:
    inputs = pending(cache, manifests)
    gate = Gate()
    eyes = gate.eyes
    original = type(eyes).read
    state: dict = {}

    def read(self, gray, box):  # the gate's reading, plus the patch scores of this frame
        reading = original(self, gray, box)
        if reading.ear is None:
            state["last"] = None
            return reading
        pts = self.encoder.landmarks68(gray, _clip_box(box, gray.shape))
        now = patches(gray, pts)
        opened = state["open"]
        if opened:
            base = {k: np.median(np.stack([o[k] for o in opened]), axis=0) for k in PATCHES}
            state["last"] = scores(now, base)
        else:
            state["last"] = None
        if reading.state is EyeState.OPEN:
            opened.append(now)
        return reading

    eyes.read = read.__get__(eyes)
    with cache.open("a") as out:
        for n, p, closures in recording(gate, inputs):
            t0 = time.perf_counter()
            state.clear()
            state["open"] = deque(maxlen=BASELINE)
            frames, blinks, tracks = [], [], set()
            for frame in p.open():
                result = gate.process(frame.image, frame.timestamp_ms)
                for face in result.faces:
                    tracks.add(face.track_id)
                    if len(tracks) == 1 and state.get("last") is not None:
                        frames.append({"t": round(frame.timestamp_ms, 3), "state": face.eyes.state.value,
                                       "ear": None if face.eyes.ear is None else round(face.eyes.ear, 4),
                                       **{k: round(v, 4) for k, v in state["last"].items()}})
                blinks += [{"track": ev.track_id, **ev.detail} for ev in result.events if ev.kind == "blink"]
            out.write(json.dumps({"id": p.id, "label": p.label, "group": p.group, "frames": frames,
                                  "closures": closures, "blinks": blinks, "faces": len(tracks)}) + "\n")
            out.flush()
            print(f"[{n}/{len(inputs)}] {p.id}: {len(frames)} frames, {len(closures)} closures, {len(blinks)} blinks"
                  f"{' (more than one face: only the first kept)' if len(tracks) > 1 else ''}, "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)


def closure_signals(rec: dict) -> list[dict]:
    """Per completed closure: the worst patch scores on its non-open frames."""
    out = []
    for c in rec["closures"]:
        inside = [f for f in rec["frames"] if c["start_ms"] < f["t"] < c["end_ms"] and f["state"] != "open"]
        if not inside:
            continue
        row = {"id": rec["id"], "label": rec["label"], "verdict": c["verdict"], "start_ms": c["start_ms"]}
        for k in PATCHES:
            row[f"ncc_{k}"] = min(f[f"ncc_{k}"] for f in inside)
            row[f"mad_{k}"] = max(f[f"mad_{k}"] for f in inside)
        row["ncc_min"] = min(row[f"ncc_{k}"] for k in PATCHES)
        row["mad_max"] = max(row[f"mad_{k}"] for k in PATCHES)
        row["fall"], row["rise"] = _steps(rec["frames"], c)
        out.append(row)
    return out


def _steps(frames: list[dict], c: dict) -> tuple[float, float]:
    """Lid kinematics: the largest one-frame fall of the EAR before the closure's lowest frame,
    and rise after it, as shares of the closure's depth (open median EAR - lowest). A flap
    flipped down and up is one step each way (~1); lids are expected to take several frames."""
    ears = [f for f in frames if f.get("ear") is not None]
    before = [f["ear"] for f in ears if f["t"] <= c["start_ms"] and f["state"] == "open"][-BASELINE:]
    inside = [f for f in ears if c["start_ms"] < f["t"] < c["end_ms"]]
    if len(before) < 3 or not inside:
        return float("nan"), float("nan")
    low = min(inside, key=lambda f: f["ear"])
    depth = max(float(np.median(before)) - low["ear"], 1e-6)
    win = [f for f in ears if c["start_ms"] - 300 <= f["t"] <= c["end_ms"] + 400]
    k = win.index(low)
    fall = max(((a["ear"] - b["ear"]) / depth for a, b in zip(win[:k], win[1:k + 1])), default=0.0)
    rise = max(((b["ear"] - a["ear"]) / depth for a, b in zip(win[k:], win[k + 1:])), default=0.0)
    return fall, rise


def report(caches: list[Path]) -> None:
    recs = [json.loads(line) for c in caches for line in c.open() if line.strip()]
    rows = [r for rec in recs for r in closure_signals(rec)]
    real = [r for r in rows if r["label"] == "live" and r["verdict"] == "blink"]
    attack = [r for r in rows if r["label"] != "live"]
    counted = [r for r in attack if r["verdict"] == "blink"]
    print(f"real blinks counted: {len(real)}; attack closures: {len(attack)} ({len(counted)} counted as blinks)")
    keys = ["ncc_min", "mad_max"] + [f"{m}_{k}" for m in ("ncc", "mad") for k in PATCHES] + ["fall", "rise"]
    for key in keys:
        rv = np.array([r[key] for r in real])
        av = np.array([r[key] for r in attack])
        cv_ = np.array([r[key] for r in counted])
        q = lambda v: " ".join(f"{x:6.3f}" for x in np.nanpercentile(v, [0, 5, 50, 95, 100])) if len(v) else "-"  # noqa: E731
        print(f"{key:16} real [{q(rv)}]  attack [{q(av)}]  counted attacks [{q(cv_)}]")
    open_frames = defaultdict(list)
    for rec in recs:
        for f in rec["frames"]:
            if f["state"] == "open":
                open_frames[rec["label"] == "live"].append(f)
    for live, fs in open_frames.items():
        print(f"open frames ({'live' if live else 'attack'}, {len(fs)}): ncc_min 1st pct "
              f"{np.percentile([min(f[f'ncc_{k}'] for k in PATCHES) for f in fs], 1):.3f}, mad_max 99th pct "
              f"{np.percentile([max(f[f'mad_{k}'] for k in PATCHES) for f in fs], 99):.3f}")
    print("\nreal blinks, lowest ncc_min first:")
    for r in sorted(real, key=lambda r: r["ncc_min"])[:8]:
        print(f"  {r['id']} at {r['start_ms']:.0f} ms: ncc_min {r['ncc_min']:.3f} mad_max {r['mad_max']:.3f} "
              + " ".join(f"{k}={r['ncc_' + k]:.2f}" for k in PATCHES))
    print("counted attack blinks:")
    for r in sorted(counted, key=lambda r: r["ncc_min"], reverse=True):
        print(f"  {r['id']} {r['label']} at {r['start_ms']:.0f} ms: ncc_min {r['ncc_min']:.3f} mad_max {r['mad_max']:.3f} "
              + " ".join(f"{k}={r['ncc_' + k]:.2f}" for k in PATCHES))


if __name__ == "__main__":
    sys.exit(two_step_cli(__doc__, extract, report))
