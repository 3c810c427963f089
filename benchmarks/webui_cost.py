"""What the browser view (``--ui``) costs the frame loop, measured against no view in the same run.

    .venv/bin/python benchmarks/webui_cost.py               # both CPU layouts, ../shared/data beside the checkout
    .venv/bin/python benchmarks/webui_cost.py --cpus 1      # only the one-core layout

The gate runs over real clips decoded into memory first (decode is not what is measured),
in three kinds of pass:
- ``none``: no browser view (the baseline);
- ``idle``: a view is served, nobody watches;
- ``watched``: one viewer reads the MJPEG stream (``curl`` in its own process, pinned to the
  other CPU, like a browser on another machine).
Passes are interleaved (none, idle, watched, none, ...) ``--repeats`` times; the median is kept.

Two layouts: ``--cpus 1`` pins the gate's process to one CPU, so the view's drawing and JPEG
encoding compete with the frame loop (a one-core box); ``--cpus 2`` lets the server's thread use
the second core (a Pi 4 has four). Reported per pass: frames per second of the loop by wall clock,
the process's CPU ms per frame (all its threads: the view's encoding included), and frames sent to
the viewer, with each as a ratio to ``none``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import DATA, blink_detector_640  # noqa: E402

CLIPS = ("blink-detector-640x480", "liveportrait-d6")


def load(clip: Path) -> tuple[list, float]:
    cap = cv2.VideoCapture(str(clip))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    cap.release()
    return frames, fps


def one_pass(gate, frames: list, fps: float, ui) -> dict:
    gate.reset()
    sent = ui.frames_sent if ui else 0
    wall, cpu = time.perf_counter(), time.process_time()
    for i, image in enumerate(frames):
        result = gate.process(image, i * 1000.0 / fps)
        if ui:
            ui.publish(image, result, result.events)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"fps_wall": len(frames) / wall, "cpu_ms": cpu * 1000 / len(frames),
            "sent": (ui.frames_sent - sent) if ui else 0, "seconds": wall}


def viewer(url: str, cpu: int | None) -> subprocess.Popen:
    curl = shutil.which("curl")
    cmd = [curl, "-s", "-N", "-o", os.devnull, url] if curl else [sys.executable, "-c", (
        "import sys, urllib.request\nr = urllib.request.urlopen(sys.argv[1])\nwhile r.read(65536): pass"), url]
    pin = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    return subprocess.Popen(cmd, preexec_fn=pin)


def measure(cpus: int, clips: dict, repeats: int) -> dict:
    from blinkgate.annotate import draw
    from blinkgate.gate import Gate
    from blinkgate.webui import WebUI, face_json

    available = sorted(os.sched_getaffinity(0))
    gate_cpus = set(available[-cpus:])
    os.sched_setaffinity(0, gate_cpus)
    other = next((c for c in available if c not in gate_cpus), None)
    cv2.setNumThreads(cpus)
    out = {}
    with Gate() as gate, WebUI("127.0.0.1:0", draw=draw, faces=lambda r: [face_json(f) for f in r.faces]) as ui:
        for name, (frames, fps) in clips.items():
            one_pass(gate, frames[:30], fps, None)  # warm up: models loaded, caches filled
            runs: dict[str, list[dict]] = {"none": [], "idle": [], "watched": []}
            for _ in range(repeats):
                runs["none"].append(one_pass(gate, frames, fps, None))
                runs["idle"].append(one_pass(gate, frames, fps, ui))
                client = viewer(f"http://127.0.0.1:{ui.port}/stream.mjpg?token={ui.token}", other)
                deadline = time.monotonic() + 10
                gate.reset()
                while not ui.status()["viewers"] and time.monotonic() < deadline:
                    ui.publish(frames[0], gate.process(frames[0], 0.0))
                    time.sleep(0.02)
                runs["watched"].append(one_pass(gate, frames, fps, ui))
                client.terminate()
                client.wait()
            out[name] = {kind: {key: statistics.median(r[key] for r in rs) for key in rs[0]} for kind, rs in runs.items()}
            base = out[name]["none"]
            for kind in ("idle", "watched"):
                row = out[name][kind]
                row["fps_ratio"] = row["fps_wall"] / base["fps_wall"]
                row["cpu_ratio"] = row["cpu_ms"] / base["cpu_ms"]
            print(f"{cpus} CPU, {name} ({len(frames)} frames): " + "; ".join(
                f"{kind} {r['fps_wall']:.1f} fps, {r['cpu_ms']:.2f} CPU ms/frame, {r['sent']:.0f} sent"
                for kind, r in out[name].items()), flush=True)
    os.sched_setaffinity(0, set(available))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpus", type=int, choices=(1, 2), action="append", help="CPU layouts to run (default: 1 and 2)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", metavar="OUT.json")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"no shared data at {DATA}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"blink-detector-640x480": blink_detector_640(Path(tmp)),
                 "liveportrait-d6": DATA / "blink-videos" / "liveportrait-d6.mp4"}
        clips = {name: load(paths[name]) for name in CLIPS}
    results = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load": os.getloadavg(),
               "cpu": _cpu_name()}
    for cpus in args.cpus or (1, 2):
        results[f"{cpus}cpu"] = measure(cpus, clips, args.repeats)
    results["load_after"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    sys.exit(main())
