"""Choose the matching rule and tolerance for blinkgate.recognize.Recognizer on lfw65.

For several random splits: hold out 15 people (impostors, never enrolled), enrol 3 single-face
photos of each other person, then query every other photo. Queries are encoded twice: from the
HOG box (as enrolment does) and from an OpenCV Haar box (as a live pipeline may do).

    .venv/bin/python scripts/recognition_study.py [--data ../shared/data] [--cache /tmp/x.npz]

Reports, per rule and tolerance: identification rates for enrolled people's photos (correct,
wrong person, unknown = false reject) and the false-accept rate for strangers' photos, plus
how many strangers were accepted on >= 25% of their photos (a lookalike, who in front of a
camera would be accepted again and again). Encoding all 1,549 photos takes ~6 min on 2 cores;
--cache keeps the encodings for reruns.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from blinkgate.recognize import DEFAULT_MARGIN, DEFAULT_TOLERANCE, FaceEncoder, Recognizer

TOLERANCES = (0.4, 0.45, 0.5, 0.55, 0.6)
N_ENROL = 3
N_HOLDOUT = 15
SEEDS = range(5)
NAN = np.full(128, np.nan)


@dataclass
class Photo:
    person: str
    path: str
    n_faces: int
    hog: np.ndarray  # encoding from the HOG box nearest the centre (NaN when no face)
    haar: np.ndarray  # encoding from the best-overlapping Haar box (NaN when none)


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def encode_all(root: Path) -> tuple[list[Photo], dict[str, float]]:
    encoder = FaceEncoder()
    haar = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    paths = sorted(p for p in root.glob("*/*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    photos, t_detect, t_encode, n_encode = [], 0.0, 0.0, 0
    encoder.encode(np.zeros((200, 200, 3), np.uint8), (50, 50, 150, 150))  # load models first
    for path in tqdm(paths, desc="encoding lfw65", file=sys.stderr):
        image = cv2.imread(str(path))
        t0 = time.perf_counter()
        boxes = encoder.detect(image)
        t_detect += time.perf_counter() - t0
        hog_enc, haar_enc = NAN, NAN
        if boxes:
            h, w = image.shape[:2]
            centre = min(boxes, key=lambda b: ((b[0] + b[2] - w) ** 2 + (b[1] + b[3] - h) ** 2))
            t0 = time.perf_counter()
            hog_enc = encoder.encode(image, centre)
            t_encode += time.perf_counter() - t0
            n_encode += 1
            gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
            found = haar.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(40, 40))
            hboxes = [(float(x), float(y), float(x + bw), float(y + bh)) for x, y, bw, bh in found]
            best = max(hboxes, key=lambda b: iou(b, centre), default=None)
            if best is not None and iou(best, centre) > 0.3:
                haar_enc = encoder.encode(image, best)
        photos.append(Photo(path.parent.name, str(path), len(boxes), hog_enc, haar_enc))
    timing = {"detect_ms": 1000 * t_detect / len(paths), "encode_ms": 1000 * t_encode / n_encode}
    return photos, timing


def load_or_encode(root: Path, cache: Path | None) -> tuple[list[Photo], dict[str, float]]:
    if cache and cache.exists():
        z = np.load(cache, allow_pickle=False)
        photos = [
            Photo(str(p), str(f), int(n), h, c)
            for p, f, n, h, c in zip(z["person"], z["path"], z["n_faces"], z["hog"], z["haar"])
        ]
        return photos, {"detect_ms": float(z["detect_ms"]), "encode_ms": float(z["encode_ms"])}
    photos, timing = encode_all(root)
    if cache:
        np.savez(
            cache,
            person=[p.person for p in photos],
            path=[p.path for p in photos],
            n_faces=[p.n_faces for p in photos],
            hog=np.array([p.hog for p in photos]),
            haar=np.array([p.haar for p in photos]),
            **timing,
        )
    return photos, timing


@dataclass
class Counts:
    correct: int = 0
    wrong: int = 0
    unknown: int = 0
    impostor_accepted: int = 0
    impostor_total: int = 0
    impostor_people: int = 0  # (split, stranger) pairs
    impostor_people_often: int = 0  # ... with >= 25% of their photos accepted

    @property
    def genuine(self) -> int:
        return self.correct + self.wrong + self.unknown


def split(photos: list[Photo], seed: int, n_enrolled: int | None = None):
    """Enrolment set and the genuine/impostor queries for one random split."""
    rng = random.Random(seed)
    people = sorted({p.person for p in photos})
    held_out = rng.sample(people, N_HOLDOUT)
    rest = [name for name in people if name not in held_out]
    enrolled = rest if n_enrolled is None else rng.sample(rest, n_enrolled)
    enrol, genuine = [], []
    for person in enrolled:
        mine = [p for p in photos if p.person == person]
        single = [p for p in mine if p.n_faces == 1]  # enrolment refuses group photos
        chosen = {id(p) for p in rng.sample(single, N_ENROL)}
        enrol += [p for p in mine if id(p) in chosen]
        genuine += [p for p in mine if id(p) not in chosen]
    impostors = {name: [p for p in photos if p.person == name] for name in held_out}
    return enrol, genuine, impostors


def has(p: Photo, source: str) -> bool:
    return not np.isnan(getattr(p, source)).any()  # NaN: no face found, not a matching question


def evaluate(photos, source: str, rules, tolerances, n_enrolled=None) -> dict[tuple, Counts]:
    results = {(rule, tol): Counts() for rule in rules for tol in tolerances}
    for seed in SEEDS:
        enrol, genuine, impostors = split(photos, seed, n_enrolled)
        for ((method, margin), tol), c in results.items():
            rec = Recognizer([p.hog for p in enrol], [p.person for p in enrol], tol, margin, method)
            for p in (p for p in genuine if has(p, source)):
                name = rec.match(getattr(p, source)).name
                if name == p.person:
                    c.correct += 1
                elif name is None:
                    c.unknown += 1
                else:
                    c.wrong += 1
            for mine in impostors.values():
                accepted = [rec.match(getattr(p, source)).name is not None for p in mine if has(p, source)]
                c.impostor_accepted += sum(accepted)
                c.impostor_total += len(accepted)
                c.impostor_people += 1
                c.impostor_people_often += sum(accepted) >= 0.25 * len(accepted)
    return results


def pct(n: int, d: int) -> str:
    return f"{100 * n / d:.2f}%" if d else "n/a"


def print_table(results: dict[tuple, Counts], title: str) -> None:
    print(f"\n{title}\n")
    print("| rule | tol | correct | wrong person | unknown (FRR) | stranger photos accepted (FAR) "
          "| strangers with >=25% photos accepted | queries genuine / stranger |")
    print("|---|---|---|---|---|---|---|---|")
    for ((method, margin), tol), c in results.items():
        rule = method + (f" + margin {margin:g}" if margin else "")
        print(f"| {rule} | {tol:.2f} | {pct(c.correct, c.genuine)} | {pct(c.wrong, c.genuine)} "
              f"| {pct(c.unknown, c.genuine)} | {pct(c.impostor_accepted, c.impostor_total)} "
              f"| {pct(c.impostor_people_often, c.impostor_people)} | {c.genuine} / {c.impostor_total} |")


def main() -> int:
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--cache", type=Path, help="npz file to keep encodings between runs")
    args = parser.parse_args()
    root = args.data / "faces" / "lfw65"
    if not root.is_dir():
        print(f"lfw65 not found at {root}", file=sys.stderr)
        return 2
    photos, timing = load_or_encode(root, args.cache)
    no_face = sum(p.n_faces == 0 for p in photos)
    no_haar = sum(p.n_faces > 0 and np.isnan(p.haar).any() for p in photos)
    print(f"{len(photos)} photos of {len({p.person for p in photos})} people; HOG found no face "
          f"in {no_face}; Haar missed {no_haar} of the HOG faces")
    print(f"per call on this CPU: HOG detect (upsample 1, 240x240) {timing['detect_ms']:.1f} ms, "
          f"encode {timing['encode_ms']:.1f} ms")
    print(f"{len(SEEDS)} splits: {N_HOLDOUT} people held out as impostors, {N_ENROL} photos "
          "enrolled per other person, all their other photos queried (counts summed over splits)")
    rules = [("vote", 0.0), ("nearest", 0.0), ("nearest", 0.05), ("nearest", 0.1)]
    print_table(evaluate(photos, "hog", rules, TOLERANCES), "queries encoded from HOG boxes")
    default = [("nearest", 0.0), ("nearest", DEFAULT_MARGIN)]
    print_table(evaluate(photos, "haar", default, TOLERANCES),
                "queries encoded from Haar boxes (enrolment from HOG boxes)")
    for n in (5, 20):
        print_table(evaluate(photos, "hog", default, (0.45, DEFAULT_TOLERANCE, 0.6), n),
                    f"only {n} people enrolled (HOG boxes)")
    both = [p for p in photos if not np.isnan(p.hog).any() and not np.isnan(p.haar).any()]
    d = np.linalg.norm(np.array([p.hog for p in both]) - np.array([p.haar for p in both]), axis=1)
    print(f"\nsame photo, HOG box vs Haar box encoding distance: median {np.median(d):.3f}, "
          f"95th pct {np.percentile(d, 95):.3f}, max {d.max():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
