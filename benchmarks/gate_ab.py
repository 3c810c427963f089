"""Two code trees, one clip: are the Gate's per-frame outputs identical, and what does each cost?

    .venv/bin/python benchmarks/gate_ab.py OLD_TREE NEW_TREE blink-detector:334 liveportrait-d9:400

A tree is a checkout of this repository (``git worktree add``, or ``git archive HEAD src | tar
-x -C DIR``); each clip is ``NAME[:FRAMES]`` of ``../shared/data/blink-videos``. Both trees run
in one process, pinned to ``--cpu``: the old tree is copied to a temporary folder as the package
``blinkgate_old`` (its imports of ``blinkgate`` rewritten), the new one is imported as it is.
The frames are decoded into memory, the clip's person is enrolled from its 30th frame (and
three lfw65 people, so recognition, blinks and grants all run, inline), every model is loaded,
and each frame goes through the old Gate and the new one in turn (which one first alternating),
each call timed in thread CPU time, as is each Gate's stage timer. So both see the same machine
at the same moments: on a shared machine only this kind of ratio means anything.

Every frame's outputs are recorded: track ids, boxes, names, distances, eye states and
probabilities, EAR, crease lines, sharpness, blink counts, liveness, grants, and every event
with its detail, floats exactly. The two trees' outputs must be equal (exit status 1 if not).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _exact(x):
    """A value as something ``==`` compares bit for bit (floats as hex, arrays as bytes)."""
    import numpy as np

    if isinstance(x, np.ndarray):
        return (x.dtype.str, x.shape, x.tobytes())
    if isinstance(x, float):
        return x.hex()
    if isinstance(x, (list, tuple)):
        return tuple(_exact(v) for v in x)
    if isinstance(x, dict):
        return tuple((k, _exact(v)) for k, v in x.items())
    return getattr(x, "value", x)


def load_trees(old: Path, new: Path, tmp: Path) -> tuple[types.ModuleType, types.ModuleType]:
    """The old tree's package as ``blinkgate_old`` and the new one's as ``blinkgate``."""
    copy = tmp / "old" / "blinkgate_old"
    shutil.copytree(old / "src" / "blinkgate", copy, ignore=shutil.ignore_patterns("__pycache__"))
    for file in copy.glob("*.py"):
        text = file.read_text()
        text = re.sub(r"^(\s*)(from|import) blinkgate\b", r"\1\2 blinkgate_old", text, flags=re.M)
        file.write_text(text.replace('resources.files("blinkgate")', 'resources.files("blinkgate_old")'))
    sys.path[:0] = [str(new / "src"), str(tmp / "old")]
    import blinkgate
    import blinkgate_old

    if Path(blinkgate.__file__).resolve().parent != (new / "src" / "blinkgate").resolve():
        raise SystemExit(f"blinkgate was imported from {blinkgate.__file__}, not from {new}")
    return blinkgate_old, blinkgate


def make_gate(package: str, frames: list, name: str):
    import importlib

    import cv2

    gate_module = importlib.import_module(f"{package}.gate")
    recognize = importlib.import_module(f"{package}.recognize")
    gate_module.time = types.SimpleNamespace(perf_counter=time.thread_time, monotonic=time.monotonic)
    encoder = recognize.FaceEncoder()
    face = encoder.detect(frames[30])[0]
    encodings, names = [encoder.encode(frames[30], face)], [name]
    for person in sorted((DATA / "faces" / "lfw65").iterdir())[:3]:
        image = cv2.imread(str(sorted(person.iterdir())[0]))
        if boxes := encoder.detect(image):
            encodings.append(encoder.encode(image, boxes[0]))
            names.append(person.name)
    gate = gate_module.Gate(recognizer=recognize.Recognizer(encodings, names), encoder=encoder)
    gate.load_models()
    gate.eyes.classifier.load()
    return gate, gate_module.StageTimer


def outputs(result) -> tuple:
    faces = [_exact((f.track_id, f.box, f.name, f.distance, f.eyes.state, f.eyes.p_open, f.eyes.boxes,
                     f.eyes.ear, f.eyes.crease, f.eyes.crease_lines, f.eyes.sharpness, f.blinks, f.live,
                     f.granted, f.live_until_ms, f.eyes_blurred, f.recognising)) for f in result.faces]
    events = [_exact((e.kind, e.timestamp_ms, e.track_id, e.name, e.box, e.detail)) for e in result.events]
    return result.index, _exact(result.timestamp_ms), faces, events


def compare(clip: Path, frames_max: int, passes: int) -> bool:
    import cv2

    cap = cv2.VideoCapture(str(clip))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    frames = []
    while len(frames) < frames_max:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    cap.release()
    gates = {tag: make_gate(package, frames, clip.stem) for tag, package in (("old", "blinkgate_old"), ("new", "blinkgate"))}
    rows: dict[str, list] = {"old": [], "new": []}
    cpu: dict[str, list[float]] = {"old": [], "new": []}
    stages: dict[str, list[dict]] = {"old": [], "new": []}
    for p in range(passes + 1):  # the first pass warms up, and its outputs are compared
        spent = {"old": 0, "new": 0}
        for tag, (gate, timer) in gates.items():
            gate.reset()
            gate.timer = timer()
        for i, image in enumerate(frames):
            for tag in (("old", "new") if (i + p) % 2 else ("new", "old")):
                started = time.thread_time_ns()
                result = gates[tag][0].process(image, i * 1000.0 / fps)
                spent[tag] += time.thread_time_ns() - started
                if p == 0:
                    rows[tag].append(outputs(result))
        if p:
            for tag, (gate, _) in gates.items():
                cpu[tag].append(spent[tag] / 1e6 / len(frames))
                stages[tag].append({k: v / len(frames) for k, v in gate.timer.total_ms.items()})
    for gate, _ in gates.values():
        gate.close()
    same = rows["old"] == rows["new"]
    first = next((i for i, (a, b) in enumerate(zip(rows["old"], rows["new"])) if a != b), None)
    events: dict[str, int] = {}
    for row in rows["old"]:
        for event in row[3]:
            events[event[0]] = events.get(event[0], 0) + 1
    print(f"{clip.stem}: {len(frames)} frames, events {events}; outputs identical: {same}"
          + ("" if same else f" (first difference on frame {first})"))
    o, n = statistics.median(cpu["old"]), statistics.median(cpu["new"])
    print(f"  Gate.process, ms per frame (median of {passes} passes): old {o:.3f}, new {n:.3f}, new/old {n / o:.3f}")
    for stage in sorted(stages["old"][0]):
        so, sn = (statistics.median(s.get(stage, 0.0) for s in stages[tag]) for tag in ("old", "new"))
        print(f"  {stage:10s} ms/frame: old {so:.3f}, new {sn:.3f}, new/old {sn / so if so else float('nan'):.3f}")
    return same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path, help="the tree before (a checkout with src/blinkgate)")
    parser.add_argument("new", type=Path, help="the tree after")
    parser.add_argument("clips", nargs="+", help="NAME[:FRAMES] of ../shared/data/blink-videos (default all frames)")
    parser.add_argument("--passes", type=int, default=3, help="timed passes over each clip (default 3)")
    parser.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)), help="CPU to pin to (default the last)")
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.cpu})
    os.environ["OMP_NUM_THREADS"] = "1"
    import cv2

    cv2.setNumThreads(1)
    identical = True
    with tempfile.TemporaryDirectory(prefix="blinkgate-ab-") as tmp:
        load_trees(args.old.resolve(), args.new.resolve(), Path(tmp))
        for spec in args.clips:
            name, _, count = spec.partition(":")
            identical &= compare(DATA / "blink-videos" / f"{name}.mp4", int(count or 10**9), args.passes)
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
