"""Simulated print attacks: reproducible attack videos made from real still photos.

These are **simulations**. They model how an attacker presents a printed photo to the camera;
they are not recordings of real attacks, and their results are reported apart from real ones.

One sequence is drawn entirely from ``(seed, index)``, so the same seed gives the same videos,
byte for byte. Per sequence:

* **the print** — the photo is cropped around its face (found with dlib), levelled so the eyes
  are horizontal, printed (paper white and ink black, lower saturation, a colour cast, paper
  grain, an optional white border) at a physical size where the eyes are 4.5–7 cm apart;
* **the sheet** — a mesh in 3-D. ``print``: flat (a little sag). ``bent-print``: a cylindrical
  bend about the vertical or horizontal axis, or a V-fold down the nose, static or flexing
  over time. ``folded-print``: a crease across the eye line whose upper part tilts back, or a
  *pleat* over the eyes (two creases: the strip holding the irises turns edge-on and the lids
  meet), flexed either smoothly or in quick blink-like pulses of 0.12–0.5 s — the photo-bending
  trick that imitates a blink;
* **the hand** — the sheet's pose drifts (slow random motion in all six degrees of freedom),
  moves closer and farther, and shakes (8–12 Hz tremor plus jitter); hands grip its edges
  (thumbs in front, palms and forearms behind), and sometimes the attacker's body is behind;
* **light and camera** — diffuse and glossy shading from a moving light (folds shade
  differently), global light changes (slow drift and switched lights), motion blur from the
  sheet's speed, defocus, sensor noise and JPEG compression (the video is MJPEG, quality
  60–92, like a USB webcam's stream), composited over a synthetic room background.

``simulate-attack`` writes ``<out>/<id>.avi``, ``manifest.csv`` (for ``blinkgate eval``, every row
``simulated=true``) and ``params.jsonl`` (every drawn parameter of every sequence).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import BlinkgateError
from .files import write_atomic
from .sources import IMAGE_SUFFIXES, natural_key, not_utf8

log = logging.getLogger(__name__)

FRAME_SIZE = (640, 480)  # width, height: the deployment camera
KINDS = ("print", "bent-print", "folded-print")
SIM_VERSION = 1  # bump when the renderer changes: the same seed then gives other videos
NEAR_CM = 1.0  # nothing nearer the lens than this is drawn: a sheet curled through the camera plane
RIGHT_EYE, LEFT_EYE = slice(36, 42), slice(42, 48)


# -- photos ----------------------------------------------------------------------------------------


@dataclass
class Photo:
    path: Path
    image: np.ndarray  # BGR uint8
    landmarks: np.ndarray  # (68, 2) iBUG points of the largest face
    identity: str


def identity_of(path: Path) -> str:
    """Best-effort person label: NUAA ``0001_…`` → ``nuaa-0001``; LFW ``Name_0001`` → ``Name``."""
    stem = path.stem
    m = re.match(r"^(\d{4})_\d\d_\d\d_\d\d_\d+$", stem)
    if m:
        return f"nuaa-{m.group(1)}"
    m = re.match(r"^(.+)_\d{4}$", stem)
    return m.group(1) if m else stem


def find_photos(specs: list[str | Path]) -> list[list[Path]]:
    """One pool of image files per argument (a file, or a folder searched recursively)."""
    pools = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            files = [p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
            files.sort(key=lambda p: natural_key(str(p.relative_to(path))))
        elif path.is_file():
            files = [path]
        else:
            raise BlinkgateError(f"no such photo or folder: {spec}")
        if not files:
            raise BlinkgateError(f"no images under {spec}")
        pools.append(files)
    return pools


class PhotoLoader:
    """Loads photos and finds their face landmarks once (dlib HOG + 68 points)."""

    def __init__(self):
        from .recognize import FaceEncoder

        self.encoder = FaceEncoder()
        self._cache: dict[Path, Photo | None] = {}

    def load(self, path: Path) -> Photo | None:
        if path not in self._cache:
            self._cache[path] = self._load(path)
        return self._cache[path]

    def _load(self, path: Path) -> Photo | None:
        if (shown := not_utf8(str(path))) is not None:  # OpenCV segfaults on the name
            log.warning("skipping photo %s: its name is not UTF-8, which OpenCV cannot take (rename it)", shown)
            return None
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None or min(image.shape[:2]) < 64:
            return None
        boxes = self.encoder.detect(image)
        if not boxes:
            return None
        box = max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
        if box[2] - box[0] < 60:  # a face too small to print legibly (crowd shots)
            return None
        return Photo(path, image, self.encoder.landmarks68(image, box), identity_of(path))


# -- parameters ------------------------------------------------------------------------------------


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _drift(rng: np.random.Generator, amp: float, fmax: float = 0.5) -> list[list[float]]:
    """Smooth random motion: three sinusoids [amplitude, frequency Hz, phase]."""
    return [[amp * _u(rng, 0.2, 1.0) / (k + 1), _u(rng, 0.05, fmax), _u(rng, 0, 2 * math.pi)] for k in range(3)]


def _flex(rng: np.random.Generator, base: float, amp: float, mode: str, duration: float) -> dict:
    """A value over time: static, a sine, or blink-like raised-cosine pulses."""
    flex = {"base": base, "amp": amp, "mode": mode}
    if mode == "sine":
        flex |= {"freq": _u(rng, 0.3, 1.5), "phase": _u(rng, 0, 2 * math.pi)}
    elif mode == "pulses":
        pulses, t = [], _u(rng, 0.6, 2.0)
        while t < duration - 0.3:
            dur = _u(rng, 0.12, 0.5)
            pulses.append([round(t, 4), round(dur, 4)])
            t += dur + _u(rng, 0.8, 2.5)
        flex["pulses"] = pulses
    return flex


def flex_value(flex: dict, t: float) -> float:
    mode, base, amp = flex["mode"], flex["base"], flex["amp"]
    if mode == "sine":
        return base + amp * math.sin(2 * math.pi * flex["freq"] * t + flex["phase"])
    if mode == "pulses":
        for start, dur in flex["pulses"]:
            if start <= t <= start + dur:
                return base + amp * 0.5 * (1 - math.cos(2 * math.pi * (t - start) / dur))
        return base
    return base


def draw_params(rng: np.random.Generator, kind: str, duration: float | None = None) -> dict:
    """Every random choice of one sequence, JSON-serialisable (it is written to params.jsonl)."""
    if kind not in KINDS:
        raise BlinkgateError(f"unknown attack kind {kind!r}; choose from {', '.join(KINDS)}")
    duration = float(duration) if duration else round(_u(rng, 6.0, 10.0), 3)
    fps = float(rng.choice([15.0, 20.0, 25.0, 30.0], p=[0.15, 0.25, 0.25, 0.35]))
    p: dict = {"kind": kind, "duration_s": duration, "fps": fps}
    p["print"] = {
        "crop": _u(rng, 1.9, 3.0),  # crop side / face width
        "aspect": float(rng.choice([0.75, 0.8, 1.0])),  # width / height
        "iod_cm": _u(rng, 4.5, 7.0),  # distance between the eyes on paper
        "tex_iod_px": _u(rng, 70, 110),  # print resolution
        "white": _u(rng, 225, 250), "black": _u(rng, 12, 40), "gamma": _u(rng, 0.85, 1.15),
        "saturation": _u(rng, 0.65, 1.0), "cast": [_u(rng, 0.94, 1.06) for _ in range(3)],
        "grain": _u(rng, 1.0, 4.0), "border": float(rng.choice([0.0, _u(rng, 0.02, 0.08)])),
        "sharpness": _u(rng, 0.0, 1.0),  # blur sigma of the printer, texture pixels
    }
    # Deformation, all angles in radians: a cylindrical bend about the vertical (kx) or
    # horizontal (ky) axis given as the paper's angle at its farthest edge, a V-fold down the
    # nose (each side's angle), a fold across the eye line, or a pleat over the eyes.
    static = lambda v: {"base": v, "amp": 0.0, "mode": "static"}  # noqa: E731
    shape = {"kx": static(_u(rng, -0.12, 0.12)), "ky": static(_u(rng, -0.08, 0.08)), "vfold": static(0.0),
             "fold": static(0.0), "pleat": static(0.0), "fold_at": 0.0, "pleat_at": 0.0, "pleat_h": 1.0,
             "crease_w": 0.15, "variant": "flat"}
    if kind == "bent-print":
        variant = str(rng.choice(["cylinder-v", "cylinder-h", "vfold"], p=[0.4, 0.3, 0.3]))
        mode = str(rng.choice(["static", "sine"], p=[0.35, 0.65]))
        shape["variant"] = f"{variant}/{mode}"
        if variant == "vfold":
            base = _u(rng, 0.15, 0.6) * float(rng.choice([-1, 1]))
            shape["vfold"] = _flex(rng, base, _u(rng, 0.1, 0.5) * (mode == "sine"), mode, duration)
        else:
            base = _u(rng, 0.25, 0.9) * float(rng.choice([-1, 1]))
            shape["kx" if variant == "cylinder-v" else "ky"] = _flex(rng, base, min(abs(base), 1.2 - abs(base)) * _u(rng, 0.4, 1.0) * (mode == "sine"), mode, duration)
    elif kind == "folded-print":
        variant = str(rng.choice(["pleat", "fold"], p=[0.6, 0.4]))
        mode = str(rng.choice(["pulses", "sine"], p=[0.6, 0.4]))
        shape["variant"] = f"{variant}/{mode}"
        shape["crease_w"] = _u(rng, 0.05, 0.25)
        top = math.radians(_u(rng, 45, 88) if variant == "pleat" else _u(rng, 35, 75))
        # pulses rise from flat; a sine flexes between nearly flat and folded
        shape[variant] = _flex(rng, 0.0 if mode == "pulses" else top / 2, top if mode == "pulses" else top / 2, mode, duration)
        shape["fold_at"] = _u(rng, -0.5, 0.5)  # in eye heights from the eye line
        shape["pleat_at"] = _u(rng, -0.3, 0.3)
        shape["pleat_h"] = _u(rng, 0.8, 2.0)  # strip height in eye heights
        if rng.random() < 0.4:  # and the paper is also curved
            shape["kx"] = static(_u(rng, -0.5, 0.5))
    p["shape"] = shape
    big_turns = rng.random() < 0.3  # the photo rotated in hand, like NUAA's "rotate" sessions
    p["pose"] = {
        "iod_px": _u(rng, 36, 85),  # apparent eye distance: faces about 90-210 px wide
        "at": [_u(rng, -0.15, 0.15), _u(rng, -0.15, 0.05)],  # eye centre offset / frame size
        "hfov_deg": _u(rng, 55, 70),
        "yaw": _u(rng, -12, 12), "pitch": _u(rng, -10, 10), "roll": _u(rng, -8, 8),
        "drift_xy_cm": _u(rng, 0.5, 4.0), "drift_z": _u(rng, 0.03, 0.15),
        "approach": [_u(rng, 0.0, 0.3), _u(rng, 0.08, 0.35), _u(rng, 0, 2 * math.pi)],  # closer/farther: amp, Hz, phase
        "drift_deg": _u(rng, 8, 25) if big_turns else _u(rng, 1, 8),
        "tremor_hz": _u(rng, 8, 12), "tremor_cm": _u(rng, 0.02, 0.15), "tremor_deg": _u(rng, 0.1, 0.8),
        "jitter_cm": _u(rng, 0.0, 0.05),
    }
    p["pose"]["drift"] = {k: _drift(rng, 1.0, 0.6 if big_turns else 0.4) for k in ("x", "y", "z", "yaw", "pitch", "roll")}
    p["pose"]["tremor_phase"] = [_u(rng, 0, 2 * math.pi) for _ in range(6)]
    p["hand"] = {
        "grip": str(rng.choice(["sides", "bottom", "corner", "none"], p=[0.45, 0.25, 0.15, 0.15])),
        "at": _u(rng, 0.35, 0.75), "skin": int(rng.integers(0, 6)), "body": bool(rng.random() < 0.6),
        "shirt": [int(0.6 * g + 0.4 * v) for g in [int(rng.integers(25, 200))] for v in rng.integers(20, 220, 3)],
    }
    p["light"] = {
        "ambient": _u(rng, 0.35, 0.7), "dir": [_u(rng, -0.6, 0.6), _u(rng, -0.8, 0.2)], "dir_drift": _u(rng, 0.0, 0.5),
        "dir_hz": _u(rng, 0.05, 0.3), "gloss": _u(rng, 0.0, 0.5) if rng.random() < 0.6 else 0.0, "shine": _u(rng, 15, 80),
        "gain": _u(rng, 0.75, 1.2), "flicker": [_u(rng, 0.0, 0.12), _u(rng, 0.05, 0.5), _u(rng, 0, 2 * math.pi)],
        "switch": [_u(rng, min(1.0, duration / 2), duration), _u(rng, 0.7, 1.3)] if rng.random() < 0.3 else None,
        "temperature": [_u(rng, 0.9, 1.1), 1.0, _u(rng, 0.9, 1.1)],
    }
    p["camera"] = {
        "defocus": _u(rng, 0.2, 1.3), "noise": _u(rng, 1.0, 5.0), "chroma_noise": _u(rng, 0.0, 2.0),
        "exposure": _u(rng, 0.15, 0.6),  # shutter open / frame interval: motion blur length
        "jpeg": int(rng.integers(60, 93)),
    }
    p["background"] = {"seed": int(rng.integers(0, 2**31 - 1))}
    return p


# -- the print --------------------------------------------------------------------------------------


@dataclass
class Print:
    levels: list[np.ndarray]  # texture pyramid, float32 BGR 0..255
    landmarks: np.ndarray  # (68, 2) in texture pixels
    cm_per_px: float
    eye: np.ndarray  # eye-line centre in texture pixels
    eye_height_px: float  # lid-to-lid opening of the eyes in texture pixels


def make_print(photo: Photo, pp: dict, rng: np.random.Generator) -> Print:
    """Crop, level, resize and 'print' the photo; add grain and an optional white border."""
    pts = photo.landmarks
    r_eye, l_eye = pts[RIGHT_EYE].mean(axis=0), pts[LEFT_EYE].mean(axis=0)
    angle = math.degrees(math.atan2(l_eye[1] - r_eye[1], l_eye[0] - r_eye[0]))
    iod = float(np.linalg.norm(l_eye - r_eye))
    face_w = float(pts[:, 0].max() - pts[:, 0].min())
    centre = (r_eye + l_eye) / 2 + np.array([0.0, 0.45 * face_w])  # a portrait: eyes above centre
    # The crop stays inside the photo (an attacker prints what the photo holds).
    ih, iw = photo.image.shape[:2]
    crop_w = min(pp["crop"] * face_w, iw, ih * pp["aspect"])
    crop_h = crop_w / pp["aspect"]
    centre = np.clip(centre, [crop_w / 2, crop_h / 2], [iw - crop_w / 2, ih - crop_h / 2])
    scale = pp["tex_iod_px"] / max(iod, 1.0)
    w, h = int(round(crop_w * scale)), int(round(crop_h * scale))
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, scale)
    m[:, 2] += np.array([w / 2, h / 2]) - centre
    tex = cv2.warpAffine(photo.image, m, (w, h), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC,
                         borderMode=cv2.BORDER_REPLICATE)
    lm = np.c_[pts, np.ones(len(pts))] @ m.T
    img = tex.astype(np.float32) / 255.0
    if pp["sharpness"] > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), pp["sharpness"])
    gray = img.mean(axis=2, keepdims=True)
    img = gray + pp["saturation"] * (img - gray)
    img = np.clip(img, 0, 1) ** pp["gamma"]
    img = pp["black"] + (pp["white"] - pp["black"]) * img
    img *= np.array(pp["cast"], dtype=np.float32)
    img += rng.normal(0, pp["grain"], img.shape[:2])[..., None].astype(np.float32)
    border = int(round(pp["border"] * max(w, h)))
    if border:
        img = cv2.copyMakeBorder(img, border, border, border, border, cv2.BORDER_CONSTANT, value=[pp["white"]] * 3)
        lm += border
    img = np.clip(img, 0, 255).astype(np.float32)
    levels = [img]
    while min(levels[-1].shape[:2]) > 48:
        levels.append(cv2.pyrDown(levels[-1]))
    eye = (lm[RIGHT_EYE].mean(axis=0) + lm[LEFT_EYE].mean(axis=0)) / 2
    openings = [np.mean([lm[a, 1] - lm[b, 1] for a, b in ((41, 37), (40, 38))]),
                np.mean([lm[a, 1] - lm[b, 1] for a, b in ((47, 43), (46, 44))])]
    return Print(levels, lm, pp["iod_cm"] / pp["tex_iod_px"], eye, float(max(4.0, np.mean(openings))))


# -- background ---------------------------------------------------------------------------------------


def make_background(seed: int, size: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    """A synthetic, out-of-focus room: wall, ceiling, door, window, shelves, cupboards, a desk."""
    rng = np.random.default_rng(seed)
    w, h = size
    walls = [(235, 238, 240), (200, 215, 225), (180, 190, 195), (205, 225, 230), (170, 200, 215), (215, 225, 210)]
    wall = np.array(walls[int(rng.integers(len(walls)))], np.float64) * rng.uniform(0.75, 1.05)

    def muted() -> list[float]:
        grey = rng.uniform(40, 200)
        return (0.65 * grey + 0.35 * rng.uniform(20, 230, 3)).tolist()

    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img = np.ones((h, w, 3), np.float32) * wall.astype(np.float32) * (1.05 - 0.25 * yy)
    if rng.random() < 0.6:  # ceiling
        y0 = int(rng.uniform(0.05, 0.25) * h)
        img[:y0] = rng.uniform(200, 245)
        if rng.random() < 0.7:  # a light panel
            x0 = int(rng.uniform(0, 0.7) * w)
            img[max(0, y0 // 3): max(1, y0 * 2 // 3), x0: x0 + int(0.25 * w)] = 252
    for _ in range(int(rng.integers(2, 7))):
        x0, y0 = int(rng.uniform(-0.1, 0.9) * w), int(rng.uniform(0.1, 0.8) * h)
        x1, y1 = x0 + int(rng.uniform(0.08, 0.4) * w), y0 + int(rng.uniform(0.1, 0.7) * h)
        kind = rng.random()
        colour = [rng.uniform(225, 252)] * 3 if kind < 0.2 else muted()  # a window, or furniture
        cv2.rectangle(img, (x0, y0), (x1, y1), colour, -1)
        if kind > 0.6:  # shelves or a frame
            for k in range(int(rng.integers(1, 4))):
                yk = y0 + (k + 1) * (y1 - y0) // 4
                cv2.line(img, (x0, yk), (x1, yk), [c * 0.6 for c in colour], int(rng.integers(2, 6)))
    if rng.random() < 0.5:  # a desk edge
        y0 = int(rng.uniform(0.75, 0.95) * h)
        img[y0:] = muted()
    img += rng.normal(0, 3, (h, w, 1)).astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(2.0, 6.0))
    return np.clip(img, 0, 255).astype(np.float32)


SKIN = [(190, 200, 235), (150, 170, 215), (120, 150, 200), (90, 120, 175), (60, 85, 130), (45, 60, 95)]  # BGR


# -- the sheet ------------------------------------------------------------------------------------------


def _axis_samples(lo: float, hi: float, step: float, dense: list[tuple[float, float]]) -> np.ndarray:
    """Sample [lo, hi] every ``step``, plus finer samples around each (centre, half-width)."""
    xs = [np.linspace(lo, hi, max(2, int(math.ceil((hi - lo) / step)) + 1))]
    for c, half in dense:
        a, b = max(lo, c - half), min(hi, c + half)
        if b > a:
            xs.append(np.linspace(a, b, max(3, int(math.ceil((b - a) / (step / 6))) + 1)))
    return np.unique(np.round(np.concatenate(xs), 6))


def _profile(coords: np.ndarray, angle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bend a line isometrically: positions along it and depth, anchored at 0."""
    d = np.diff(coords)
    mid = (angle[1:] + angle[:-1]) / 2
    along = np.concatenate([[0.0], np.cumsum(d * np.cos(mid))])
    depth = np.concatenate([[0.0], np.cumsum(d * np.sin(mid))])
    along -= np.interp(0.0, coords, along)
    depth -= np.interp(0.0, coords, depth)
    return along, depth


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(x))


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    y, p, r = (math.radians(v) for v in (yaw, pitch, roll))
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _wave(terms: list[list[float]], t: float) -> float:
    return sum(a * math.sin(2 * math.pi * f * t + ph) for a, f, ph in terms)


class AttackRenderer:
    """Renders the frames of one simulated attack sequence, in order."""

    def __init__(self, photo: Photo, params: dict, seed_words: list[int]):
        self.params = params
        self.rng = np.random.default_rng(np.random.SeedSequence(seed_words + [1]))
        self.print = make_print(photo, params["print"], self.rng)
        self.bg = make_background(params["background"]["seed"])
        w, h = FRAME_SIZE
        pose = params["pose"]
        self.f = (w / 2) / math.tan(math.radians(pose["hfov_deg"]) / 2)
        self.c = np.array([w / 2, h / 2])
        self.z0 = self.f * params["print"]["iod_cm"] / pose["iod_px"]
        self.anchor = np.array([self.c[0] + pose["at"][0] * w, self.c[1] + pose["at"][1] * h])
        tex = self.print.levels[0]
        s = self.print.cm_per_px
        eye = self.print.eye
        eh = self.print.eye_height_px * s  # eye opening in cm
        self.eye_h_cm = eh
        sh = params["shape"]
        x_lo, x_hi = -eye[0] * s, (tex.shape[1] - 1 - eye[0]) * s
        y_lo, y_hi = -eye[1] * s, (tex.shape[0] - 1 - eye[1]) * s
        w_c = max(sh["crease_w"], 0.02)
        dense_y = [(sh["fold_at"] * eh, 4 * w_c), (sh["pleat_at"] * eh - sh["pleat_h"] * eh / 2, 4 * w_c),
                   (sh["pleat_at"] * eh + sh["pleat_h"] * eh / 2, 4 * w_c)] if params["kind"] == "folded-print" else []
        dense_x = [(0.0, 4 * w_c)] if sh["variant"].startswith("vfold") else []
        step = max(0.35, (x_hi - x_lo) / 28)
        self.reach = (max(-x_lo, x_hi), max(-y_lo, y_hi))  # farthest edge from the eye-line centre, cm
        self.xs = _axis_samples(x_lo, x_hi, step, dense_x)
        self.ys = _axis_samples(y_lo, y_hi, step, dense_y)
        nu, nv = len(self.xs), len(self.ys)
        # texture coordinates of the vertices and the triangles of the grid
        self.tu = np.broadcast_to(self.xs / s + eye[0], (nv, nu)).ravel()
        self.tv = np.broadcast_to((self.ys / s + eye[1])[:, None], (nv, nu)).ravel()
        idx = np.arange(nv * nu).reshape(nv, nu)
        a, b, c_, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
        self.tris = np.concatenate([np.stack([a, b, c_], 1), np.stack([c_, b, d], 1)])
        self.grips = self._grip_points(tex.shape, s, eye)
        self.prev_anchor: np.ndarray | None = None
        self._temperature = np.array(params["light"]["temperature"], np.float32)
        self.index = 0

    # geometry ---------------------------------------------------------------------------------------

    def _grip_points(self, shape: tuple[int, ...], s: float, eye: np.ndarray) -> list[tuple[float, float, float, float]]:
        """(x_cm, y_cm, outward dx, outward dy) in sheet coordinates for each gripping hand."""
        hand = self.params["hand"]
        h, w = shape[:2]
        x0, x1 = -eye[0] * s, (w - 1 - eye[0]) * s
        y0, y1 = -eye[1] * s, (h - 1 - eye[1]) * s
        inset = 0.6
        ya = y0 + hand["at"] * (y1 - y0)
        if hand["grip"] == "sides":
            return [(x0 + inset, ya, -1.0, 0.3), (x1 - inset, ya, 1.0, 0.3)]
        if hand["grip"] == "bottom":
            xa = x0 + hand["at"] * (x1 - x0)
            return [(xa, y1 - inset, 0.0, 1.0)]
        if hand["grip"] == "corner":
            return [(x1 - inset, y1 - inset, 0.7, 0.7)]
        return []

    def surface(self, t: float) -> np.ndarray:
        """Sheet vertices in sheet coordinates (cm), eye-line centre at the origin, z away."""
        sh = self.params["shape"]
        eh = self.eye_h_cm
        w_c = max(sh["crease_w"], 0.02)
        ax = flex_value(sh["kx"], t) * self.xs / self.reach[0] + flex_value(sh["vfold"], t) * np.tanh(self.xs / w_c)
        ay = flex_value(sh["ky"], t) * self.ys / self.reach[1]
        fold = flex_value(sh["fold"], t)
        if fold:
            ay = ay + fold * _sigmoid((sh["fold_at"] * eh - self.ys) / w_c)
        pleat = flex_value(sh["pleat"], t)
        if pleat:
            c1 = sh["pleat_at"] * eh - sh["pleat_h"] * eh / 2
            c2 = c1 + sh["pleat_h"] * eh
            ay = ay + pleat * (_sigmoid((self.ys - c1) / w_c) - _sigmoid((self.ys - c2) / w_c))
        X, zx = _profile(self.xs, ax)
        Y, zy = _profile(self.ys, ay)
        nu, nv = len(self.xs), len(self.ys)
        pts = np.empty((nv, nu, 3))
        pts[..., 0] = X[None, :]
        pts[..., 1] = Y[:, None]
        pts[..., 2] = zx[None, :] + zy[:, None]
        return pts

    def pose(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Rotation and translation (cm) of the sheet at time t: drift, approach, tremor, jitter."""
        p = self.params["pose"]
        d = p["drift"]
        tp = p["tremor_phase"]
        trem = lambda k: math.sin(2 * math.pi * p["tremor_hz"] * t + tp[k])  # noqa: E731
        jit = self.rng.normal(0, 1, 6)
        yaw = p["yaw"] + p["drift_deg"] * _wave(d["yaw"], t) + p["tremor_deg"] * trem(3) + 0.3 * p["tremor_deg"] * jit[3]
        pitch = p["pitch"] + p["drift_deg"] * _wave(d["pitch"], t) + p["tremor_deg"] * trem(4) + 0.3 * p["tremor_deg"] * jit[4]
        roll = p["roll"] + 0.6 * p["drift_deg"] * _wave(d["roll"], t) + p["tremor_deg"] * trem(5) + 0.3 * p["tremor_deg"] * jit[5]
        amp, hz, ph = p["approach"]
        z = self.z0 * (1 + p["drift_z"] * _wave(d["z"], t) + amp * math.sin(2 * math.pi * hz * t + ph))
        z = max(z, 12.0)
        x = (self.anchor[0] - self.c[0]) * z / self.f + p["drift_xy_cm"] * _wave(d["x"], t)
        y = (self.anchor[1] - self.c[1]) * z / self.f + p["drift_xy_cm"] * _wave(d["y"], t)
        x += p["tremor_cm"] * trem(0) + p["jitter_cm"] * jit[0]
        y += p["tremor_cm"] * trem(1) + p["jitter_cm"] * jit[1]
        z += p["tremor_cm"] * trem(2) + p["jitter_cm"] * jit[2]
        return _rotation(yaw, pitch, roll), np.array([x, y, z])

    def project(self, pts: np.ndarray) -> np.ndarray:
        return pts[..., :2] / pts[..., 2:3] * self.f + self.c

    # rendering ---------------------------------------------------------------------------------------

    def _light(self, t: float) -> tuple[np.ndarray, float]:
        li = self.params["light"]
        a = 2 * math.pi * li["dir_hz"] * t
        lx = li["dir"][0] + li["dir_drift"] * math.sin(a)
        ly = li["dir"][1] + li["dir_drift"] * math.cos(a)
        ldir = np.array([lx, ly, -1.0])
        gain = li["gain"] * (1 + li["flicker"][0] * math.sin(2 * math.pi * li["flicker"][1] * t + li["flicker"][2]))
        if li["switch"] is not None:
            at, factor = li["switch"]
            gain *= 1 + (factor - 1) * float(np.clip((t - at) / 0.3, 0, 1))  # auto-exposure catches up in 0.3 s
        return ldir / np.linalg.norm(ldir), gain

    def frame(self) -> np.ndarray:
        """The next frame (BGR uint8, before the camera's JPEG compression)."""
        params = self.params
        t = self.index / params["fps"]
        self.index += 1
        rot, trans = self.pose(t)
        local = self.surface(t)
        world = local @ rot.T + trans  # camera coordinates, cm
        img_pts = self.project(world).reshape(-1, 2)
        # normals by finite differences across the grid
        gx = np.gradient(world, axis=1)
        gy = np.gradient(world, axis=0)
        n = np.cross(gx, gy)
        n /= np.linalg.norm(n, axis=2, keepdims=True) + 1e-9
        ldir, gain = self._light(t)
        li = params["light"]
        view = -world / np.linalg.norm(world, axis=2, keepdims=True)
        ndl = np.abs(np.einsum("ijk,k->ij", n, ldir))
        flat = abs(ldir[2])
        shade = (li["ambient"] + (1 - li["ambient"]) * ndl) / (li["ambient"] + (1 - li["ambient"]) * flat)
        half = view + ldir
        half /= np.linalg.norm(half, axis=2, keepdims=True)
        spec = li["gloss"] * np.abs(np.einsum("ijk,ijk->ij", n, half)) ** li["shine"]
        attrs = np.stack([self.tu, self.tv, shade.ravel(), spec.ravel()], axis=1)

        layer, mask, (x0, y0) = self._rasterise(img_pts, world[..., 2].ravel(), attrs)
        canvas = self.bg.copy()
        self._draw_body(canvas, img_pts)
        grips = self._grip_pixels(local, rot, trans)
        for g in grips:
            self._draw_palm(canvas, g)
        # motion blur of the sheet along the image motion of its eye-line centre
        anchor = self.project((np.zeros(3) @ rot.T + trans)[None])[0]
        if self.prev_anchor is not None:
            layer, mask = self._motion_blur(layer, mask, (anchor - self.prev_anchor) * params["camera"]["exposure"])
        self.prev_anchor = anchor
        hh, ww = mask.shape
        roi = canvas[y0:y0 + hh, x0:x0 + ww]
        roi *= 1 - mask[..., None]
        roi += layer
        for g in grips:
            self._draw_thumb(canvas, g)
        return self._camera(canvas, gain)

    def _rasterise(self, img_pts: np.ndarray, depth: np.ndarray, attrs: np.ndarray, margin: int = 16):
        """Draw the sheet. Triangle ids are drawn far to near (painter's order) at half
        resolution; each covered pixel gets (u, v, shade, gloss, front) by affine interpolation
        inside its triangle (extrapolated one pixel past the silhouette); the maps are then
        upsampled, which also antialiases the edge, and the texture is sampled at full
        resolution. Returns the colour layer and coverage of the sheet's bounding box (plus
        ``margin``) and the box's corner."""
        w, h = FRAME_SIZE
        tris = self.tris
        p = img_pts[tris]  # (T, 3, 2)
        area = (p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1]) - (p[:, 2, 0] - p[:, 0, 0]) * (p[:, 1, 1] - p[:, 0, 1])
        lo, hi = p.min(axis=1), p.max(axis=1)
        keep = (np.abs(area) > 1e-3) & (hi[:, 0] >= 0) & (lo[:, 0] < w) & (hi[:, 1] >= 0) & (lo[:, 1] < h)
        keep &= (np.abs(p) < 1e5).all(axis=(1, 2)) & (depth[tris] > NEAR_CM).all(axis=1)
        order = np.flatnonzero(keep)
        if not len(order):
            return np.zeros((2, 2, 3), np.float32), np.zeros((2, 2), np.float32), (0, 0)
        x0 = int(max(0, math.floor(lo[order, 0].min()) - margin)) & ~1
        y0 = int(max(0, math.floor(lo[order, 1].min()) - margin)) & ~1
        x1 = int(min(w, math.ceil(hi[order, 0].max()) + margin + 2))
        y1 = int(min(h, math.ceil(hi[order, 1].max()) + margin + 2))
        bw, bh = (x1 - x0 + 1) // 2, (y1 - y0 + 1) // 2  # half-resolution box
        order = order[np.argsort(-depth[tris[order]].mean(axis=1), kind="stable")]  # far first
        ids = np.full((bh, bw), -1, np.float32)  # float32: exact for ids < 2**24, and dilate() takes it
        half = ((p - np.array([x0, y0])) + 0.5) / 2 - 0.5
        fixed = np.round(half * 16).astype(np.int32)
        fill = cv2.fillConvexPoly
        for poly, i in zip(list(fixed[order]), order.tolist()):
            fill(ids, poly, i, cv2.LINE_8, 4)
        cover = (ids >= 0).astype(np.float32)
        grown = cv2.dilate(ids, np.ones((3, 3), np.uint8))
        grown = np.where(ids >= 0, ids, grown)
        ys, xs = np.nonzero(grown >= 0)
        maps = np.zeros((bh, bw, 5), np.float32)
        if len(ys):
            tid = grown[ys, xs].astype(np.int64)
            m = np.concatenate([p[order], np.ones((len(order), 3, 1))], axis=2)
            coef = np.zeros((len(p), 3, attrs.shape[1]), np.float32)
            coef[order] = np.linalg.solve(m, attrs[tris[order]])
            c = coef[tid]
            fx = (2 * xs + 0.5 + x0).astype(np.float32)[:, None]
            fy = (2 * ys + 0.5 + y0).astype(np.float32)[:, None]
            maps[ys, xs, :4] = fx * c[:, 0] + fy * c[:, 1] + c[:, 2]
            maps[ys, xs, 4] = area[tid] > 0
        full = cv2.resize(maps, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        mask = cv2.resize(cover, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        # Texture level: about one texel per pixel (bilinear sampling aliases when minifying),
        # blended between the two nearest pyramid levels so that no frame jumps in sharpness.
        span = float(np.ptp(img_pts[:, 0])) + 1e-6
        lod = min(max(math.log2(max(self.print.levels[0].shape[1] / span, 1.0)), 0.0), len(self.print.levels) - 1.0)
        colour = None
        base = int(math.floor(lod))
        for level, weight in ((base, 1.0 - (lod - base)), (base + 1, lod - base)):
            if weight <= 1e-3 or level >= len(self.print.levels):
                continue
            k = np.float32(0.5 ** level)
            sample = cv2.remap(self.print.levels[level], (full[..., 0] + 0.5) * k - 0.5, (full[..., 1] + 0.5) * k - 0.5,
                               cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            colour = sample * np.float32(weight) if colour is None else colour + sample * np.float32(weight)
        front = np.clip(full[..., 4:5], 0, 1)
        colour = colour * front + np.float32([232.0, 236.0, 238.0]) * (1 - front)  # the back of the paper
        colour *= np.clip(full[..., 2:3], 0.05, 2.0)
        colour += 255.0 * np.clip(full[..., 3:4], 0, 1)
        colour *= self._temperature
        colour *= mask[..., None]  # premultiplied by coverage
        return colour, mask, (x0, y0)

    def _motion_blur(self, layer: np.ndarray, mask: np.ndarray, motion: np.ndarray):
        length = float(np.hypot(*motion))
        if length < 1.0:
            return layer, mask
        n = int(min(31, math.ceil(length))) | 1
        kernel = np.zeros((n, n), np.float32)
        ux, uy = motion / length
        for s in np.linspace(-0.5, 0.5, 4 * n):
            kernel[int(round(n // 2 + s * (n - 1) * uy)), int(round(n // 2 + s * (n - 1) * ux))] += 1
        kernel /= kernel.sum()
        return cv2.filter2D(layer, -1, kernel), cv2.filter2D(mask, -1, kernel)

    def _grip_pixels(self, local: np.ndarray, rot: np.ndarray, trans: np.ndarray):
        """Image position, outward direction and scale (px/cm) of each gripping hand."""
        out = []
        for gx, gy, dx, dy in self.grips:
            i = int(np.argmin(np.abs(self.ys - gy)))
            j = int(np.argmin(np.abs(self.xs - gx)))
            p3 = local[i, j] @ rot.T + trans
            if p3[2] <= NEAR_CM:
                continue  # that corner is curled past the lens (a V-fold held close): no hand in view
            q3 = (local[i, j] + np.array([dx, dy, 0.0])) @ rot.T + trans
            p, q = self.project(p3[None])[0], self.project(q3[None])[0]
            direction = (q - p) / (np.linalg.norm(q - p) + 1e-9)
            out.append((p, direction, self.f / p3[2]))
        return out

    def _skin(self) -> np.ndarray:
        return np.array(SKIN[self.params["hand"]["skin"]], np.float64)

    def _draw_palm(self, canvas: np.ndarray, grip) -> None:
        p, d, k = grip
        skin = self._skin() * 0.85
        centre = p + d * 3.5 * k
        ang = math.degrees(math.atan2(d[1], d[0]))
        cv2.ellipse(canvas, (int(centre[0]), int(centre[1])), (int(4.5 * k), int(4.0 * k)), ang, 0, 360, skin.tolist(), -1, cv2.LINE_AA)
        # forearm: from the palm outwards and down, off the frame
        arm_dir = d + np.array([0.0, 1.2])
        arm_dir /= np.linalg.norm(arm_dir)
        far = centre + arm_dir * 60 * k
        normal = np.array([-arm_dir[1], arm_dir[0]]) * 2.8 * k
        poly = np.array([centre + normal, far + normal, far - normal, centre - normal]).astype(np.int32)
        sleeve = np.array(self.params["hand"]["shirt"], np.float64) * 0.8
        cv2.fillConvexPoly(canvas, poly, sleeve.tolist(), cv2.LINE_AA)

    def _draw_thumb(self, canvas: np.ndarray, grip) -> None:
        p, d, k = grip
        skin = self._skin()
        tip = p - d * 1.6 * k  # the thumb lies over the paper's edge, pointing inwards
        ang = math.degrees(math.atan2(d[1], d[0]))
        cv2.ellipse(canvas, (int(tip[0]), int(tip[1])), (int(3.0 * k), int(1.3 * k)), ang, 0, 360, skin.tolist(), -1, cv2.LINE_AA)
        cv2.ellipse(canvas, (int(tip[0] - d[0] * 1.4 * k), int(tip[1] - d[1] * 1.4 * k)), (int(0.7 * k), int(0.55 * k)), ang,
                    0, 360, (skin * 1.08).clip(0, 255).tolist(), -1, cv2.LINE_AA)  # the nail

    def _draw_body(self, canvas: np.ndarray, img_pts: np.ndarray) -> None:
        if not self.params["hand"]["body"]:
            return
        h = FRAME_SIZE[1]
        xs, ys = img_pts[:, 0], img_pts[:, 1]
        cx = float(np.clip(np.median(xs), 0, FRAME_SIZE[0]))
        width = float(np.ptp(xs)) * 1.6 + 40
        top = float(np.clip(ys.max() - 0.1 * np.ptp(ys), 0, h))
        shirt = np.array(self.params["hand"]["shirt"], np.float64)
        cv2.ellipse(canvas, (int(cx), int(top + width * 0.55)), (int(width * 0.75), int(width * 0.6)), 0, 180, 360,
                    shirt.tolist(), -1, cv2.LINE_AA)
        cv2.rectangle(canvas, (int(cx - width * 0.75), int(top + width * 0.55)), (int(cx + width * 0.75), h), shirt.tolist(), -1)

    def _camera(self, canvas: np.ndarray, gain: float) -> np.ndarray:
        cam = self.params["camera"]
        img = cv2.GaussianBlur(canvas, (0, 0), cam["defocus"])
        img *= gain
        h, w = img.shape[:2]
        luma = self.rng.standard_normal((h, w), dtype=np.float32) * np.float32(cam["noise"])
        chroma = self.rng.standard_normal((h // 2, w // 2, 3), dtype=np.float32) * np.float32(cam["chroma_noise"])
        img += luma[..., None]
        img += cv2.resize(chroma, (w, h), interpolation=cv2.INTER_NEAREST)
        img += 0.5
        return np.clip(img, 0, 255).astype(np.uint8)


# -- sequences -----------------------------------------------------------------------------------------


def sequence_plan(pools: list[list[Path]], count: int, seed: int, kinds: list[str]) -> list[tuple[int, str, list[Path]]]:
    """(index, kind, photo pool) per sequence: pools and kinds take turns, so both stay balanced.

    Where their counts share a factor, the pools are moved on by one after each full round: taking
    turns alone paired 2 kinds with 2 pools for good (every folded print from one folder). Where
    they share none (3 kinds, 2 pools: the defaults) every pair comes up anyway, and the plan is
    as it always was."""
    k, n = len(kinds), len(pools)
    round_ = math.lcm(k, n) if math.gcd(k, n) > 1 else math.inf
    return [(i, kinds[i % k], pools[(i + int(i // round_)) % n]) for i in range(count)]


def pick_photo(loader: PhotoLoader, pool: list[Path], rng: np.random.Generator, tries: int = 50) -> Photo:
    """A random photo of the pool with a usable face (drawn from the sequence's own generator)."""
    tried = set()
    for _ in range(tries):
        path = pool[int(rng.integers(len(pool)))]
        if (photo := loader.load(path)) is not None:
            return photo
        tried.add(path)
    # The photos tried, not the draws: one photo given was "50 photos drawn from ." (its folder)
    where = str(pool[0]) if len(pool) == 1 else f"{len(tried)} of the {len(pool)} photos under {os.path.commonpath(pool)}"
    raise BlinkgateError(f"no usable face in {where}")


def render_sequence(photo: Photo, params: dict, seed_words: list[int]):
    """Yield every frame of one sequence (uint8 BGR, before JPEG)."""
    renderer = AttackRenderer(photo, params, seed_words)
    for _ in range(int(round(params["duration_s"] * params["fps"]))):
        yield renderer.frame()


def write_video(path: Path, frames, fps: float, quality: int) -> int:
    """MJPEG AVI at the given JPEG quality: the camera's compression. Returns frames written."""
    writer = None
    n = 0
    try:
        for frame in frames:
            if writer is None:
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (frame.shape[1], frame.shape[0]))
                if not writer.isOpened():
                    raise BlinkgateError(f"cannot write video {path}")
                writer.set(cv2.VIDEOWRITER_PROP_QUALITY, quality)
            writer.write(frame)
            n += 1
    finally:
        if writer is not None:
            writer.release()
    return n


def sequence_id(seed: int, index: int) -> str:
    return f"sim-s{seed}-{index:04d}"


def _partial_video(out: Path, seq_id: str) -> Path:
    return out / f".{seq_id}.partial.avi"


def make_sequence(loader: PhotoLoader, pool: list[Path], index: int, kind: str, seed: int, out: Path,
                  duration: float | None = None) -> dict:
    """Draw, render and write one sequence; returns its manifest row and parameters."""
    words = [SIM_VERSION, seed, index]
    rng = np.random.default_rng(np.random.SeedSequence(words))
    photo = pick_photo(loader, pool, rng)
    params = draw_params(rng, kind, duration)
    seq_id = sequence_id(seed, index)
    path = out / f"{seq_id}.avi"
    # Rendered under a hidden name, renamed when whole: a sequence stopped half way (Ctrl-C, an
    # error) was left as a shorter but valid video among the finished ones.
    partial = _partial_video(out, seq_id)
    try:
        n = write_video(partial, render_sequence(photo, params, words), params["fps"], params["camera"]["jpeg"])
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return {"id": seq_id, "label": kind, "source": path.name, "fps": params["fps"], "group": "simulated",
            "simulated": "true", "identity": photo.identity, "photo": str(photo.path), "frames": n,
            "variant": params["shape"]["variant"], "params": params}


_LOADER: dict = {}


def _job(args: tuple) -> dict:
    if "loader" not in _LOADER:
        cv2.setNumThreads(1)
        _LOADER["loader"] = PhotoLoader()
    pool, index, kind, seed, out, duration = args
    return make_sequence(_LOADER["loader"], pool, index, kind, seed, out, duration)


MANIFEST_FIELDS = ["id", "label", "source", "fps", "group", "simulated", "identity", "note"]


def simulate(photos: list[str | Path], out: str | Path, seed: int = 0, count: int | None = None,
             kinds: list[str] | None = None, duration: float | None = None, jobs: int = 1, progress: bool = False) -> list[dict]:
    """Make ``count`` attack sequences into ``out``; writes manifest.csv and params.jsonl there."""
    from tqdm import tqdm

    kinds = kinds or list(KINDS)
    for k in kinds:
        if k not in KINDS:
            raise BlinkgateError(f"unknown attack kind {k!r}; choose from {', '.join(KINDS)}")
    pools = find_photos(list(photos))
    count = count if count is not None else sum(len(p) for p in pools)
    if count <= 0:
        raise BlinkgateError("--count must be positive")
    out = Path(out)
    if (out / "manifest.csv").exists():  # its manifest and params would be replaced, its videos left among ours
        raise BlinkgateError(f"--out {out} already holds a simulate-attack run ({out / 'manifest.csv'}): "
                             "give a new folder, or delete that one first")
    for name in ("params.jsonl", "README.txt"):  # written after the work: a traceback then
        if (out / name).is_dir():
            raise BlinkgateError(f"--out {out}: the run's {name} goes in {out / name}, a folder")
    out.mkdir(parents=True, exist_ok=True)
    work = [(pool, i, kind, seed, out, duration) for i, kind, pool in sequence_plan(pools, count, seed, kinds)]
    rows: list[dict] = []
    try:
        with tqdm(total=count, unit="seq", disable=None if progress else True, file=sys.stderr, leave=False) as bar:
            if jobs <= 1:
                for w in work:
                    rows.append(_job(w))
                    bar.update()
            else:
                from .parallel import imap_processes

                for row in imap_processes(_job, work, jobs):
                    rows.append(row)
                    bar.update()
    except BaseException as err:  # an hour's work is not lost to one bad sequence or a Ctrl-C
        for _, index, *_ in work[len(rows):]:  # those of worker processes stopped before they could
            _partial_video(out, sequence_id(seed, index)).unlink(missing_ok=True)
        if rows:
            _write_outputs(out, rows, seed, kinds, planned=count)
        if isinstance(err, Exception) and not isinstance(err, BlinkgateError):
            log.debug("rendering failed", exc_info=True)
            failed = sequence_id(seed, work[len(rows)][1])
            raise BlinkgateError(f"{failed} failed ({type(err).__name__}: {err}); the {len(rows)} sequences "
                                 f"before it are in {out / 'manifest.csv'}") from err
        raise
    _write_outputs(out, rows, seed, kinds, planned=count)
    return rows


def _write_outputs(out: Path, rows: list[dict], seed: int, kinds: list[str], planned: int) -> None:
    """manifest.csv, params.jsonl and README.txt for the sequences made, each written whole or
    not at all (a second Ctrl-C while they are written after the first)."""
    manifest = io.StringIO(newline="")
    writer = csv.DictWriter(manifest, fieldnames=MANIFEST_FIELDS)
    writer.writeheader()
    for r in rows:
        writer.writerow({**{k: r[k] for k in MANIFEST_FIELDS if k in r},
                         "note": f"SIMULATED {r['variant']} from {Path(r['photo']).name}"})
    params = "".join(json.dumps({k: r[k] for k in ("id", "label", "photo", "identity", "frames", "params")}) + "\n"
                     for r in rows)
    readme = ("SIMULATED print attacks made by `blinkgate simulate-attack` (not recordings of real attacks).\n"
              f"seed {seed}, {len(rows)} sequences{'' if len(rows) == planned else f' of {planned} planned (stopped early)'}, "
              f"kinds {', '.join(kinds)}, renderer version {SIM_VERSION}.\n"
              "Evaluate with: blinkgate eval manifest.csv\n")
    # The manifest last: it is what marks the folder as a run's.
    write_atomic(out / "params.jsonl", params.encode())
    write_atomic(out / "README.txt", readme.encode())
    write_atomic(out / "manifest.csv", manifest.getvalue().encode())


def run_cli(args) -> int:
    """``blinkgate simulate-attack PHOTO... --out DIR --seed N`` (wired in cli.py)."""
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    rows = simulate(args.photos, args.out, seed=args.seed, count=args.count, kinds=kinds, duration=args.duration,
                    jobs=args.jobs, progress=not args.quiet)
    by_kind: dict[str, int] = {}
    for r in rows:
        by_kind[r["label"]] = by_kind.get(r["label"], 0) + 1
    frames = sum(r["frames"] for r in rows)
    print(f"{len(rows)} SIMULATED attack sequences ({', '.join(f'{k}: {n}' for k, n in sorted(by_kind.items()))}; "
          f"{frames} frames) in {args.out}; evaluate with: blinkgate eval {Path(args.out) / 'manifest.csv'}")
    return 0
