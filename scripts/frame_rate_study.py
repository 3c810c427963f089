"""Blinks the gate counts on real clips played at lower frame rates.

Each clip is resampled by dropping frames: for each tick of the target rate, the source frame
nearest to it, stamped with the tick's time. So a 30 fps clip at 25 fps shows the same blinks
with fewer frames in each. For every rate and every ``--min-blink-ms`` value the gate counts
the blinks (``BlinkOptions.min_blink_ms``: the shortest closure, last open frame to next open
frame, that counts). It tells what a camera at a lower frame rate costs, and what a longer
minimum would cost: at 25 fps one non-open frame between two open ones is 80 ms.

    .venv/bin/python scripts/frame_rate_study.py ../shared/data/blink-videos/liveportrait-*.mp4 \
        --fps 25 24 20 --min-blink-ms 80 90
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

from blinkgate.blink import BlinkOptions
from blinkgate.gate import Gate, GateOptions
from blinkgate.sources import open_source


def native_fps(frames: Sequence[tuple[float, np.ndarray]]) -> float:
    return 1000.0 * (len(frames) - 1) / (frames[-1][0] - frames[0][0])


def resample(frames: Sequence[tuple[float, np.ndarray]], fps: float) -> list[tuple[float, np.ndarray]]:
    """The source frame nearest each tick of ``fps``, stamped with the tick's time (ms).

    Only for rates below the source's: frames are dropped, never repeated."""
    period, half = 1000.0 / fps, (frames[1][0] - frames[0][0]) / 2.0
    out: list[tuple[float, np.ndarray]] = []
    for t, image in frames:
        if t + 1e-6 >= len(out) * period - half:
            out.append((len(out) * period, image))
    return out


def closures(frames: Sequence[tuple[float, np.ndarray]], min_blink_ms: float) -> list[int]:
    """Closure lengths (ms) of the blinks a default gate counts with this minimum."""
    options = GateOptions(blink=BlinkOptions(min_blink_ms=min_blink_ms))
    with Gate(None, options=options) as gate:
        return [round(ev.detail["closed_ms"]) for t, image in frames
                for ev in gate.process(image, t).events if ev.kind == "blink"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clips", nargs="+", help="video files or frame folders")
    ap.add_argument("--fps", type=float, nargs="+", default=[25.0, 24.0, 20.0], help="target frame rates")
    ap.add_argument("--min-blink-ms", type=float, nargs="+", default=[80.0, 90.0])
    args = ap.parse_args()
    print("clip | fps | frames | " + " | ".join(f"blinks at {m:g} ms (closure ms)" for m in args.min_blink_ms))
    for clip in args.clips:
        with open_source(clip) as src:
            native = [(f.timestamp_ms, f.image) for f in src]
        if len(native) < 2:
            raise SystemExit(f"{clip}: fewer than 2 frames")
        # Dropping frames cannot make a higher rate: rates at or above the clip's are skipped.
        lower = [fps for fps in args.fps if fps < 0.99 * native_fps(native)]
        runs = [("native", native)] + [(f"{fps:g}", resample(native, fps)) for fps in lower]
        for label, frames in runs:
            counts = [closures(frames, m) for m in args.min_blink_ms]
            print(f"{clip.rsplit('/', 1)[-1]} | {label} | {len(frames)} | "
                  + " | ".join(f"{len(c)} {c}" for c in counts), flush=True)


if __name__ == "__main__":
    main()
