"""Does a face move like a flat sheet? A print (flat, or with paper eyelids on it) moves by a
homography; a head that turns does not (the nose moves against the cheeks). Would dlib's 68
landmarks tell the two apart?

Per input, on its longest track: the rigid landmarks (temples 0-3 and 13-16, the nose 27-35,
the four eye corners) of every frame against the track's first frame. ``planar``: the RMS error
of the best homography (least squares) over the inter-ocular distance, median over the frames.
``turn``: how far the nose tip moved against the eye corners, over the same distance, 90th
percentile: did the head (or the sheet) turn at all. Live inputs against every other label.

    PYTHONPATH=src .venv/bin/python scripts/planarity_study.py extract out/planar.jsonl manifests/real.toml
    PYTHONPATH=src .venv/bin/python scripts/planarity_study.py report out/planar.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flicker_study import pending, two_step_cli  # noqa: E402

from blinkgate.gate import Gate  # noqa: E402

RIGID = [*range(0, 4), *range(13, 17), *range(27, 36), 36, 39, 42, 45]
NOSE_TIP, CORNERS = RIGID.index(30), [RIGID.index(i) for i in (36, 39, 42, 45)]
MIN_FRAMES = 10  # a shorter track says nothing about how it moves


def track_motion(seq: list[np.ndarray]) -> dict:
    """``planar`` and ``turn`` of one track's landmarks (see the module docstring)."""
    ref = seq[0][RIGID]
    iod = float(np.linalg.norm(seq[0][36:42].mean(0) - seq[0][42:48].mean(0)))
    planar, turn = [], []
    for pts in seq[1:]:
        cur = pts[RIGID]
        h, _ = cv2.findHomography(ref, cur, 0)
        fit = cv2.perspectiveTransform(ref[None], h)[0]
        planar.append(float(np.sqrt(np.mean(np.sum((fit - cur) ** 2, axis=1)))) / iod)
        nose = (cur[NOSE_TIP] - cur[CORNERS].mean(0)) - (ref[NOSE_TIP] - ref[CORNERS].mean(0))
        turn.append(float(np.linalg.norm(nose)) / iod)
    return {"frames": len(seq), "iod": round(iod, 1), "planar": round(float(np.median(planar)), 4),
            "turn": round(float(np.percentile(turn, 90)), 4)}


def extract(cache: Path, manifests: list[str]) -> None:
    inputs = pending(cache, manifests)
    gate = Gate()
    seen: list[np.ndarray] = []
    landmarks68 = gate.encoder.landmarks68

    def spy(image, box):  # the landmarks the eye stage computed, not a second fit
        pts = landmarks68(image, box)
        seen.append(pts.astype(np.float64))
        return pts

    gate.encoder.landmarks68 = spy
    with cache.open("a") as out:
        for n, p in enumerate(inputs, 1):
            gate.reset()
            tracks: dict[int, list[np.ndarray]] = {}
            for frame in p.open():
                seen.clear()
                result = gate.process(frame.image, frame.timestamp_ms)
                if len(seen) == 1 and len(result.faces) == 1:  # one face, one fit: no doubt whose
                    tracks.setdefault(result.faces[0].track_id, []).append(seen[0])
            longest = max(tracks.values(), key=len, default=[])
            motion = track_motion(longest) if len(longest) >= MIN_FRAMES else None
            out.write(json.dumps({"id": p.id, "label": p.label, "motion": motion}) + "\n")
            out.flush()
            print(f"[{n}/{len(inputs)}] {p.id} {p.label}: {motion}", flush=True)


def report(caches: list[Path]) -> None:
    recs = [json.loads(line) for c in caches for line in c.open() if line.strip()]
    measured = [r for r in recs if r["motion"]]
    live = sorted(r["motion"]["planar"] for r in measured if r["label"] == "live")
    attack = sorted(r["motion"]["planar"] for r in measured if r["label"] != "live")
    print(f"{len(measured)} of {len(recs)} inputs with a track of >= {MIN_FRAMES} frames")
    q = lambda v: " ".join(f"{x:.4f}" for x in np.percentile(v, [0, 25, 50, 75, 100]))  # noqa: E731
    print(f"planar, live ({len(live)}):   [{q(live)}]")
    print(f"planar, attack ({len(attack)}): [{q(attack)}]")
    print(f"live inputs no more 3-D than the most 3-D attack ({attack[-1]:.4f}): "
          f"{sum(v <= attack[-1] for v in live)} of {len(live)}")
    print(f"attacks at least as 3-D as the least 3-D live input ({live[0]:.4f}): "
          f"{sum(v >= live[0] for v in attack)} of {len(attack)}")
    for name, keep in (("live", lambda r: r["label"] == "live"), ("attack", lambda r: r["label"] != "live")):
        turned = sorted((r["motion"]["planar"], r["motion"]["turn"], r["id"]) for r in measured
                        if keep(r) and r["motion"]["turn"] >= 0.15)
        print(f"{name} that turned (turn >= 0.15), planar: " + ", ".join(f"{p:.4f}" for p, _, _ in turned))


if __name__ == "__main__":
    sys.exit(two_step_cli(__doc__, extract, report))
