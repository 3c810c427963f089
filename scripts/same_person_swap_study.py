"""Two pictures of the same person, eyes open and eyes shut, switched on cue: is it granted?

The attack blinkgate does not stop (README, "Security model"): a frame of the enrolled person
with open eyes, switched for a moment to one with shut eyes (two prints swapped by hand, or a
phone tapped between two pictures), then back. The closed frame names the right person, so
the closed-frame check cannot see it. This measures how often the Gate grants it.

For the first 3 `sure` blinks of each labelled clip: the open picture is the frame 6 before
the blink starts, the shut one its peak frame. Each sequence is 2 s of the open picture, the
shut one for 3, 5 or 8 frames (100-267 ms at 30 fps), then 2 s open again. Every frame gets
camera noise (sigma 2 grey levels) and a hand's shake (sigma 0.7 px). "aligned" shows the shut
picture exactly where the open one was (a phone); "hand" moves it 6 px right, 4 px down, 3%
larger and 2 degrees turned (a second print). The person is enrolled from the clip's first
frame; recognition is inline. Digital pictures, no print or screen rendering: the attacker's
best case.

    .venv/bin/python scripts/same_person_swap_study.py [../shared/data/blink-videos]
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import cv2
import numpy as np

from blinkgate.gate import Gate, GateOptions
from blinkgate.recognize import Recognizer
from blinkgate.sources import open_source

FPS = 30.0
PLACEMENTS = {"aligned": (0.0, 0.0, 1.0, 0.0), "hand": (6.0, 4.0, 1.03, 2.0)}  # dx, dy, scale, degrees
SHUT_FRAMES = (3, 5, 8)


def place(image: np.ndarray, dx: float, dy: float, scale: float, degrees: float) -> np.ndarray:
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, scale)
    m[:, 2] += (dx, dy)
    return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REPLICATE)


def as_camera_frame(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    shaken = place(image, rng.normal(0, 0.7), rng.normal(0, 0.7), 1.0, 0.0)
    noisy = shaken.astype(np.int16) + rng.normal(0, 2, image.shape).astype(np.int16)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def enrol_first_face(probe: Gate, image: np.ndarray) -> np.ndarray:
    boxes = probe.detector.detect(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    box = max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
    return probe.encoder.encode(image, box)


def granted(sequence: list[np.ndarray], encoding: np.ndarray, rng: np.random.Generator) -> tuple[bool, int]:
    """Whether the Gate granted anyone over ``sequence``, and how many blinks it counted."""
    gate = Gate(options=GateOptions(recognition="inline"), recognizer=Recognizer([encoding], ["person"]))
    any_grant, blinks = False, 0
    try:
        for i, image in enumerate(sequence):
            result = gate.process(as_camera_frame(image, rng), i * 1000.0 / FPS)
            blinks += sum(ev.kind == "blink" for ev in result.events)
            any_grant |= any(face.granted for face in result)
    finally:
        gate.close()
    return any_grant, blinks


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/blink-videos")
    rng = np.random.default_rng(0)
    probe = Gate()
    total = accepted = 0
    for clip in sorted(folder.glob("*.mp4")):
        frames = [frame.image for frame in open_source(str(clip))]
        encoding = enrol_first_face(probe, frames[0])
        with open(folder / "labels" / f"{clip.stem}.csv", newline="") as f:
            sure = [row for row in csv.DictReader(f) if row["confidence"] == "sure"]
        for row in sure[:3]:
            start, peak = int(row["start_frame"]), int(row["peak_frame"])
            open_image, shut_image = frames[max(0, start - 6)], frames[peak]
            for placement, (dx, dy, scale, degrees) in PLACEMENTS.items():
                shut_placed = place(shut_image, dx, dy, scale, degrees)
                for n in SHUT_FRAMES:
                    ok, blinks = granted([open_image] * 60 + [shut_placed] * n + [open_image] * 60, encoding, rng)
                    total, accepted = total + 1, accepted + ok
                    print(f"{clip.stem} blink@{peak} {placement:7s} shut {n} frames: "
                          f"{blinks} blink(s), {'GRANTED' if ok else 'not granted'}", flush=True)
    print(f"granted {accepted} of {total}")


if __name__ == "__main__":
    main()
