"""How long the frame loop stands still: recognition inline vs in the background process.

For each clip, the person in it is enrolled from one of its frames (the LFW people of
``--extra`` make the database realistic), then the whole clip goes through the Gate twice,
with ``recognition="inline"`` and ``"background"``, in the same run. Per frame we time
``Gate.process`` (wall clock) and report the median, the 99th percentile, the longest, and how
many frames took longer than a 30 fps camera's 33 ms, i.e. how often a camera with a short
driver queue would drop frames. Also the time from the first frame to the first grant. Every
model is loaded before the clock starts (a once-per-process cost).

    python scripts/recognition_latency.py ../shared/data/blink-videos/*.mp4

Run it on a quiet machine: the background mode needs a second core.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from blinkgate.database import FaceDatabase
from blinkgate.enroll import enroll_directory
from blinkgate.gate import Gate, GateOptions
from blinkgate.recognize import FaceEncoder
from blinkgate.sources import open_source

BUDGET_MS = 1000.0 / 30


def enrol(clip: Path, extra: list[Path], folder: Path, encoder: FaceEncoder) -> Path:
    cap = cv2.VideoCapture(str(clip))
    for _ in range(30):
        ok, frame = cap.read()
    cap.release()
    person = folder / "people" / clip.stem
    person.mkdir(parents=True)
    cv2.imwrite(str(person / "a.png"), frame)
    for other in extra:
        (folder / "people" / other.name).symlink_to(other.resolve())
    db = folder / "faces.db"
    with FaceDatabase(db) as store:
        enroll_directory(store, folder / "people", encoder, progress=False)
    return db


def measure(clip: Path, db: Path, mode: str) -> dict:
    times, grant_ms, encodings = [], None, 0
    with Gate(db, GateOptions(recognition=mode)) as gate:
        # Models load once per process, before the clock starts: the steady state is measured.
        gate.encoder.shape68, gate.eyes.classifier.load()  # noqa: B018
        if gate.background is not None:
            gate.background.submit("warm-up", np.zeros((64, 64, 3), np.uint8), (8, 8, 56, 56))
            gate.background.wait(timeout=60)
        else:
            gate.encoder.shape5, gate.encoder.resnet  # noqa: B018
        for frame in open_source(clip):
            t = time.perf_counter()
            result = gate.process(frame.image, frame.timestamp_ms)
            times.append((time.perf_counter() - t) * 1000.0)
            kinds = [e.kind for e in result.events]
            encodings += kinds.count("recognised")
            if grant_ms is None and "granted" in kinds:
                grant_ms = frame.timestamp_ms
    times_arr = np.array(times)
    return {"frames": len(times), "median": statistics.median(times), "p99": float(np.percentile(times_arr, 99)),
            "max": float(times_arr.max()), "over": int((times_arr > BUDGET_MS).sum()), "grant_ms": grant_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="+", type=Path)
    parser.add_argument("--extra", nargs="*", type=Path,
                        default=sorted(Path("../shared/data/faces/lfw65").glob("*"))[:10],
                        help="more people to enrol (folders of photos; default 10 lfw65 people)")
    args = parser.parse_args()
    encoder = FaceEncoder()
    print(f"| clip | recognition | frames | median ms | p99 ms | longest ms | frames over {BUDGET_MS:.0f} ms | first grant |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for clip in args.clips:
        with tempfile.TemporaryDirectory() as tmp:
            db = enrol(clip, args.extra, Path(tmp), encoder)
            for mode in ("inline", "background"):
                r = measure(clip, db, mode)
                grant = f"{r['grant_ms'] / 1000:.2f} s" if r["grant_ms"] is not None else "none"
                print(f"| {clip.name} | {mode} | {r['frames']} | {r['median']:.1f} | {r['p99']:.1f} | {r['max']:.1f} "
                      f"| {r['over']} | {grant} |", flush=True)


if __name__ == "__main__":
    main()
