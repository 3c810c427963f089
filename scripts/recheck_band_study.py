"""How far past the tolerance a re-check may keep a track's name (Recognizer.recheck).

On the splits of scripts/recognition_study.py (lfw65: 15 strangers held out, 3 photos enrolled
per other person), each other photo of an enrolled person N is a re-check of a track named N
(Haar box, as a live pipeline has): how many keep N strictly (``match``) and with a band. Each
stranger's photo under a track named N, for every enrolled N: how often N is kept.

    .venv/bin/python scripts/recognition_study.py --cache /tmp/lfw65.npz   # encodes once, ~6 min
    .venv/bin/python scripts/recheck_band_study.py --cache /tmp/lfw65.npz
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
from recognition_study import N_ENROL, N_HOLDOUT, SEEDS, load_or_encode

from blinkgate.recognize import DEFAULT_TOLERANCE, Recognizer

BANDS = (None, 0.0, 0.03, 0.05, 0.08)  # None: the strict rule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    parser.add_argument("--cache", type=Path, required=True)
    args = parser.parse_args()
    photos, _ = load_or_encode(args.data / "faces" / "lfw65", args.cache)
    by: dict[str, list] = {}
    for p in photos:
        if p.n_faces == 1 and not np.isnan(p.hog).any():
            by.setdefault(p.person, []).append(p)
    people = sorted(by)
    genuine = {b: 0 for b in BANDS}
    stranger = {b: 0 for b in BANDS}
    n_genuine = n_stranger = 0
    for seed in SEEDS:
        rng = random.Random(seed)
        held = set(rng.sample(people, N_HOLDOUT))
        enrolled = [n for n in people if len(by[n]) > N_ENROL and n not in held]
        encodings, names, queries = [], [], []
        for n in enrolled:
            mine = by[n][:]
            rng.shuffle(mine)
            encodings += [p.hog for p in mine[:N_ENROL]]
            names += [n] * N_ENROL
            queries += [(n, p) for p in mine[N_ENROL:]]
        rec = Recognizer(encodings, names)

        def kept(encoding: np.ndarray, name: str, band: float | None) -> bool:
            return (rec.match(encoding).name == name if band is None
                    else rec.recheck(encoding, name, keep=band).name == name)

        def live(p) -> np.ndarray:
            return p.haar if not np.isnan(p.haar).any() else p.hog

        for name, p in queries:
            n_genuine += 1
            for band in BANDS:
                genuine[band] += kept(live(p), name, band)
        for p in (p for h in held for p in by.get(h, [])):
            for name in enrolled:
                n_stranger += 1
                for band in BANDS:
                    stranger[band] += kept(live(p), name, band)
    print(f"tolerance {DEFAULT_TOLERANCE}; {n_genuine} re-checks of enrolled people, {n_stranger} stranger-under-a-name pairs")
    print("| band | re-checks that keep the name | stranger keeps the name |\n|---|---:|---:|")
    for band in BANDS:
        label = "strict (match)" if band is None else f"+{band:.2f}"
        print(f"| {label} | {genuine[band] / n_genuine:.1%} | {stranger[band] / n_stranger:.3%} |")


if __name__ == "__main__":
    main()
