"""A printed photo whose eyes are covered for a moment: does the Gate take it for a blink?

The simplest blink an attacker can fake: hold up a photo and pass something over its eyes. This
renders that with the attack simulator (`blinkgate.simulate`): a flat print, held by a hand
that drifts and shakes, in moving light, through the simulated camera (defocus, noise, MJPEG).
Three times per sequence something covers the print's eyes for 80-250 ms:

* ``finger``: a finger laid across both eyes, slid down from above the brows and back up:
  a shaded skin-coloured cylinder 0.38 x the eye distance thick, running off the sheet;
* ``strip``: a paper strip in the colour of the face's own skin (sampled from the frame just
  below the eyes), 2.2 x the eye distance wide, slid down over both eyes and back;
* ``flaps``: paper eyelids: over each eye a patch in the skin colour of its lid, with a dark
  lash line along its lower edge (a printed shut eye), flipped down and up in one frame.

The cover is drawn into the scene before the camera, so it gets the same blur, light, noise and
JPEG as the print. Its timing is perfect (the attacker's best case); its shapes are simple.
Writes ``<out>/<id>.avi`` and ``<out>/manifest.csv`` for ``blinkgate eval`` (attack types
``occluded-finger``, ``occluded-strip``, ``occluded-flaps``; every row ``simulated=true``).

    .venv/bin/python scripts/occluder_study.py --out /tmp/occ_s0 --count 180 --seed 0   # and --seed 1
    .venv/bin/blinkgate eval /tmp/occ_s0/manifest.csv --db /tmp/occ_people.db --json

``--db``: the photos' people enrolled, so that "granted" is measured too (each lfw65 person from
their first 4 photos, each NUAA subject from their first 3 ClientRaw frames):

    D=$(realpath ../shared/data); mkdir -p /tmp/occ_people && cd /tmp/occ_people   # D absolute: the links live elsewhere
    for d in $D/faces/lfw65/*/; do n=$(basename $d); mkdir -p $n
        for f in $(ls $d | head -4); do ln -s $d$f $n/$f; done; done
    for d in $D/photo-attack/nuaa/ClientRaw/*/; do n=nuaa-$(basename $d); mkdir -p $n
        for f in $(ls $d | head -3); do ln -s $d$f $n/$f; done; done
    cd - && .venv/bin/blinkgate enroll /tmp/occ_people --db /tmp/occ_people.db

Result (2026-12-07, commit of this script, seeds 0 and 1, 360 sequences; docs/evaluation.md,
"Eyes covered for a moment"): paper eyelids 46 of 120 accepted, 38 granted; finger 1 of 120;
strip 2 of 120.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import cv2
import numpy as np

from blinkgate import simulate as sim

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
KINDS = ("finger", "strip", "flaps")
COVERS = 3  # per sequence
STUDY_VERSION = 1


class OccludedRenderer(sim.AttackRenderer):
    """The simulator's flat print, with the eyes covered at ``covers`` = [(start s, end s)]."""

    def __init__(self, photo: sim.Photo, params: dict, seed_words: list[int], kind: str,
                 covers: list[tuple[float, float]]):
        super().__init__(photo, params, seed_words)
        self.kind, self.covers = kind, covers
        self._pose: tuple[np.ndarray, np.ndarray] | None = None
        s, eye = self.print.cm_per_px, self.print.eye
        local = np.c_[(self.print.landmarks - eye) * s, np.zeros(len(self.print.landmarks))]
        self._local_landmarks = local  # sheet coordinates (cm) of the 68 points; a flat sheet's z ~ 0

    def pose(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        self._pose = super().pose(t)
        return self._pose

    def _camera(self, canvas: np.ndarray, gain: float) -> np.ndarray:
        t = (self.index - 1) / self.params["fps"]
        cover = self._coverage(t)
        if cover > 0 and self._pose is not None:
            rot, trans = self._pose
            pts = self.project(self._local_landmarks @ rot.T + trans)
            draw_cover(canvas, pts, self.kind, cover, self._skin())
        return super()._camera(canvas, gain)

    def _coverage(self, t: float) -> float:
        """0 (away) .. 1 (over the eyes). Slides take one frame each way; flaps flip at once."""
        step = 1.0 / self.params["fps"]
        for start, end in self.covers:
            if start <= t < end:
                return 1.0
            if self.kind != "flaps" and (start - step <= t < start or end <= t < end + step):
                return 0.5
        return 0.0


def _median_colour(canvas: np.ndarray, x0: int, x1: int, y0: int, y1: int) -> np.ndarray:
    """Median colour (BGR float) of ``canvas[y0:y1, x0:x1]``, clipped; a skin tone if empty."""
    patch = canvas[max(y0, 0):max(y1, y0 + 1), max(x0, 0):max(x1, x0 + 1)].reshape(-1, 3)
    return np.median(patch, axis=0) if len(patch) else np.array([120.0, 140.0, 180.0])


def _lid_colour(canvas: np.ndarray, eye: np.ndarray, brow: np.ndarray) -> np.ndarray:
    """The skin between an eye's top and its brow in the scene."""
    y1 = int(eye[:, 1].min())
    y0 = int(round((brow[:, 1].mean() + y1) / 2))
    return _median_colour(canvas, int(eye[:, 0].min()), int(eye[:, 0].max()) + 1, y0, y1)


def _cheek_colour(canvas: np.ndarray, eye: np.ndarray, iod: float) -> np.ndarray:
    """The cheek just below an eye."""
    y0 = int(eye[:, 1].max() + 0.15 * iod)
    return _median_colour(canvas, int(eye[:, 0].min()), int(eye[:, 0].max()) + 1, y0, int(y0 + 0.2 * iod))


def draw_cover(canvas: np.ndarray, pts: np.ndarray, kind: str, cover: float, skin: np.ndarray) -> None:
    """Draw the cover over the print's eyes (68 landmarks ``pts`` in image pixels) into ``canvas``."""
    r_eye, l_eye = pts[sim.RIGHT_EYE], pts[sim.LEFT_EYE]
    rc, lc = r_eye.mean(axis=0), l_eye.mean(axis=0)
    iod = float(np.linalg.norm(lc - rc))
    ex = (lc - rc) / max(iod, 1e-6)  # along the eye line
    ey = np.array([-ex[1], ex[0]])  # down the face
    centre = (rc + lc) / 2
    lift = (1 - cover) * 0.9 * iod  # half-way: still over the brows
    layer = np.zeros_like(canvas)
    alpha = np.zeros(canvas.shape[:2], np.float32)
    if kind == "finger":
        thick = 0.38 * iod
        mid = centre - ey * lift
        a, b = mid - ex * 0.9 * iod, mid + ex * 6.0 * iod  # the tip past one eye, the hand off the sheet
        for k in np.linspace(-1, 1, 9):  # a cylinder: lit along its middle, darker at its sides
            shade = 0.75 + 0.3 * math.cos(k * math.pi / 2)
            off = ey * k * thick / 2
            cv2.line(layer, tuple(np.int32(a + off)), tuple(np.int32(b + off)), (skin * shade).tolist(),
                     max(2, int(thick / 8)), cv2.LINE_AA)
        cv2.line(alpha, tuple(np.int32(a)), tuple(np.int32(b)), 1.0, int(thick), cv2.LINE_AA)
        cv2.circle(alpha, tuple(np.int32(a)), int(thick / 2), 1.0, -1, cv2.LINE_AA)
        cv2.circle(layer, tuple(np.int32(a)), int(thick / 2), (skin * 0.95).tolist(), -1, cv2.LINE_AA)
    elif kind == "strip":
        colour = (_cheek_colour(canvas, r_eye, iod) + _cheek_colour(canvas, l_eye, iod)) / 2
        mid = centre - ey * lift
        hw, hh = 1.1 * iod, 0.24 * iod
        quad = np.array([mid - ex * hw - ey * hh, mid + ex * hw - ey * hh, mid + ex * hw + ey * hh,
                         mid - ex * hw + ey * hh], np.int32)
        cv2.fillConvexPoly(layer, quad, colour.tolist(), cv2.LINE_AA)
        cv2.fillConvexPoly(alpha, quad, 1.0, cv2.LINE_AA)
    else:  # flaps: a printed shut eye over each eye
        for eye, brow in ((r_eye, pts[17:22]), (l_eye, pts[22:27])):
            colour = _lid_colour(canvas, eye, brow)
            c = eye.mean(axis=0)
            w = 0.8 * float(np.linalg.norm(eye[3] - eye[0])) + 2
            h = max(0.55 * w, 2.2 * float(np.ptp(eye[:, 1])) / 2 + 2)
            axes = (int(w), int(h / 2))
            ang = math.degrees(math.atan2(ex[1], ex[0]))
            cv2.ellipse(layer, tuple(np.int32(c)), axes, ang, 0, 360, colour.tolist(), -1, cv2.LINE_AA)
            cv2.ellipse(alpha, tuple(np.int32(c)), axes, ang, 0, 360, 1.0, -1, cv2.LINE_AA)
            lash = np.array([c + ex * w * k + ey * (0.15 * h - 0.25 * h * (1 - k * k)) for k in np.linspace(-0.9, 0.9, 12)])
            cv2.polylines(layer, [lash.astype(np.int32)], False, (colour * 0.3).tolist(), max(1, int(w / 12)), cv2.LINE_AA)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 0.8)[..., None]
    canvas *= 1 - alpha
    canvas += layer * alpha


def cover_times(rng: np.random.Generator, duration: float) -> list[tuple[float, float]]:
    """Three covers of 80-250 ms, the first after 1.2 s, about 1.6 s apart."""
    out = []
    for k in range(COVERS):
        start = 1.2 + k * 1.6 + float(rng.uniform(0, 0.4))
        out.append((start, min(start + float(rng.uniform(0.08, 0.25)), duration - 0.3)))
    return out


def make(loader: sim.PhotoLoader, pools: list[list[Path]], index: int, seed: int, out: Path) -> dict:
    kind = KINDS[index % len(KINDS)]
    words = [STUDY_VERSION, seed, index]
    rng = np.random.default_rng(np.random.SeedSequence(words))
    photo = sim.pick_photo(loader, pools[index // len(KINDS) % len(pools)], rng)
    params = sim.draw_params(rng, "print", duration=6.0)
    covers = cover_times(rng, params["duration_s"])
    renderer = OccludedRenderer(photo, params, words, kind, covers)
    frames = (renderer.frame() for _ in range(int(round(params["duration_s"] * params["fps"]))))
    seq_id = f"occ-s{seed}-{index:04d}"
    n = sim.write_video(out / f"{seq_id}.avi", frames, params["fps"], params["camera"]["jpeg"])
    print(f"{seq_id} {kind} {photo.identity} fps {params['fps']:.0f} covers "
          + " ".join(f"{a:.2f}-{b:.2f}" for a, b in covers) + f" ({n} frames)", file=sys.stderr)
    return {"id": seq_id, "label": f"occluded-{kind}", "source": f"{seq_id}.avi", "fps": params["fps"],
            "group": "simulated", "simulated": "true", "identity": photo.identity,
            "note": f"SIMULATED {kind} over the eyes of {photo.path.name}"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--count", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--photos", nargs="+", default=[DATA / "faces", DATA / "photo-attack" / "nuaa" / "ClientRaw"])
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    pools, loader = sim.find_photos(list(args.photos)), sim.PhotoLoader()
    rows = [make(loader, pools, i, args.seed, args.out) for i in range(args.count)]
    with open(args.out / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} sequences and manifest.csv to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
