"""Recognition end to end through the CLI: `blinkgate enroll`, then `blinkgate check` on held-out photos.

scripts/recognition_study.py measures the matching rule on encodings; this runs the commands a
user runs, with the gate's own Haar boxes and tracker. `setup` picks 25 lfw65 people to enrol
(their first 3 photos) and 20 others never enrolled (strangers), and makes one 3-frame folder
(3 links to the photo: check reports faces tracked for 3 frames or more) per held-out photo:
the enrolled people's photos 4-10 and the strangers' photos 1-10. `tally` counts check's
verdicts: named right, named someone else, unknown.

    .venv/bin/python scripts/recognition_check.py setup OUT [--data ../shared/data] [--seed 0]
    .venv/bin/blinkgate enroll OUT/people --db OUT/faces.db -q
    .venv/bin/blinkgate check OUT/genuine/* --db OUT/faces.db --json -q > OUT/genuine.jsonl
    .venv/bin/blinkgate check OUT/stranger/* --db OUT/faces.db --json -q > OUT/stranger.jsonl
    .venv/bin/python scripts/recognition_check.py tally OUT/genuine.jsonl OUT/stranger.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

N_ENROLLED, N_STRANGERS, N_ENROL, LAST = 25, 20, 3, 10


def setup(lfw: Path, out: Path, seed: int) -> None:
    people = sorted(p.name for p in lfw.iterdir() if p.is_dir())
    rng = random.Random(seed)
    enrolled = sorted(rng.sample(people, N_ENROLLED))
    strangers = sorted(rng.sample([p for p in people if p not in enrolled], N_STRANGERS))
    for name in enrolled + strangers:
        photos = sorted((lfw / name).glob("*.jpg"))
        if name in enrolled:
            (out / "people" / name).mkdir(parents=True)
            for photo in photos[:N_ENROL]:
                (out / "people" / name / photo.name).symlink_to(photo.resolve())
        held_out = photos[N_ENROL:LAST] if name in enrolled else photos[:LAST]
        for photo in held_out:
            folder = out / ("genuine" if name in enrolled else "stranger") / photo.stem
            folder.mkdir(parents=True)
            for k in range(3):
                (folder / f"{k}.jpg").symlink_to(photo.resolve())
    print(f"{out}: {N_ENROLLED} people to enrol, {N_STRANGERS} strangers")


def tally(path: Path) -> None:
    right = wrong = unknown = no_face = 0
    for line in path.read_text().splitlines():
        verdict = json.loads(line)
        person = re.sub(r"_\d{4}$", "", Path(verdict["source"]).name)
        names = {face["name"] for face in verdict.get("faces", [])} - {None}
        if not verdict.get("faces"):
            no_face += 1
        elif not names:
            unknown += 1
        elif names == {person}:
            right += 1
        else:
            wrong += 1
            print(f"  {verdict['source']}: named {', '.join(sorted(names))}")
    faces = right + wrong + unknown
    pct = (lambda n: f"{100 * n / faces:.1f}%") if faces else (lambda n: "-")
    print(f"{path}: {faces} photos with a face tracked ({no_face} without): named right {right} ({pct(right)}), "
          f"named someone else {wrong} ({pct(wrong)}), unknown {unknown} ({pct(unknown)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("setup")
    p.add_argument("out", type=Path)
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("tally")
    p.add_argument("jsonl", type=Path, nargs="+")
    args = parser.parse_args()
    if args.command == "setup":
        setup(args.data / "faces" / "lfw65", args.out, args.seed)
    else:
        for path in args.jsonl:
            tally(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
