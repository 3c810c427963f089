"""Measure the eye-sharpness floor (blink.BlinkOptions.min_sharpness) on real data.

Two reports, both from the gate's own per-frame readings (``EyeReading.sharpness``: variance of
the Laplacian over the variance of the grey levels on the 24×24 eye crops, the blurrier eye):

* ``tracks MANIFEST...``: for every face track of every input, the median over its open frames
  and the lowest median over any 15 consecutive open frames (what the blink detector compares
  with the floor), grouped by manifest group and label. It tells how close real faces come to
  the floor.
* ``blur CLIP... [--seconds S]``: the same clips blurred with a Gaussian of growing sigma (in
  frame pixels), and the blinks counted with the floor and without it. It tells which real
  blinks the floor costs on an out-of-focus camera.

    .venv/bin/python scripts/sharpness_study.py tracks manifests/real.toml
    .venv/bin/python scripts/sharpness_study.py blur ../shared/data/blink-videos/blink-detector.mp4 --seconds 12
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from collections.abc import Iterable, Iterator

import cv2

from blinkgate.blink import BlinkOptions
from blinkgate.evaluate import load_manifest
from blinkgate.gate import Gate, GateOptions
from blinkgate.sources import Frame, open_source
from blinkgate.types import EyeState

WINDOW = BlinkOptions().baseline_frames  # the open frames the blink detector takes the median of
SIGMAS = (0, 1, 2, 3, 4, 6, 8)


def open_sharpness(gate: Gate, frames: Iterable[Frame],
                   blur: float = 0.0) -> tuple[dict[int, list[float]], int]:
    """Per track, the sharpness of its OPEN frames; and the number of blinks counted."""
    per_track: dict[int, list[float]] = defaultdict(list)
    blinks = 0
    gate.reset()
    for frame in frames:
        image = cv2.GaussianBlur(frame.image, (0, 0), blur) if blur else frame.image
        result = gate.process(image, frame.timestamp_ms)
        blinks += sum(e.kind == "blink" for e in result.events)
        for face in result.faces:
            if face.eyes.state is EyeState.OPEN and face.eyes.sharpness is not None:
                per_track[face.track_id].append(face.eyes.sharpness)
    return per_track, blinks


def lowest_window(values: list[float]) -> float:
    """The lowest median over WINDOW consecutive values (fewer at the start of a track)."""
    return min(statistics.median(values[max(0, i - WINDOW + 1):i + 1]) for i in range(len(values)))


def tracks(manifests: list[str]) -> None:
    gate = Gate()
    rows: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for p in load_manifest(*manifests):
        per_track, _ = open_sharpness(gate, p.open())
        for values in per_track.values():
            if len(values) >= 2:
                rows[f"{p.group} ({p.label})"].append((statistics.median(values), lowest_window(values), p.id))
    floor = BlinkOptions().min_sharpness
    print(f"floor (BlinkOptions.min_sharpness) = {floor}")
    print(f"{'group':32} {'tracks':>6} {'lowest track median':>20} {'lowest 15-frame median':>24}  where")
    for group, found in sorted(rows.items()):
        low = min(found, key=lambda r: r[1])
        print(f"{group:32} {len(found):6d} {min(r[0] for r in found):20.3f} {low[1]:24.3f}  {low[2]}")


def blur(clips: list[str], seconds: float) -> None:
    floor = BlinkOptions().min_sharpness
    for clip in clips:
        for sigma in SIGMAS:
            counts = []
            for min_sharpness in (floor, 0.0):
                gate = Gate(options=GateOptions(blink=BlinkOptions(min_sharpness=min_sharpness)))
                per_track, blinks = open_sharpness(gate, _until(open_source(clip), seconds), sigma)
                counts.append(blinks)
            values = [v for vs in per_track.values() for v in vs]
            median = statistics.median(values) if values else float("nan")
            print(f"{clip}: sigma {sigma} px, median open sharpness {median:.3f}, "
                  f"blinks with the floor ({floor}) {counts[0]}, without {counts[1]}", flush=True)


def _until(frames: Iterable[Frame], seconds: float) -> Iterator[Frame]:
    for f in frames:
        if f.timestamp_ms > seconds * 1000.0:
            return
        yield f


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("tracks", help="sharpness of every face track in manifests")
    t.add_argument("manifests", nargs="+")
    b = sub.add_parser("blur", help="blinks counted on blurred clips, with and without the floor")
    b.add_argument("clips", nargs="+")
    b.add_argument("--seconds", type=float, default=12.0, help="first S seconds of each clip (default 12)")
    args = ap.parse_args()
    if args.command == "tracks":
        tracks(args.manifests)
    else:
        blur(args.clips, args.seconds)


if __name__ == "__main__":
    main()
