"""Does a real blink's closed frame name its person? (The Gate confirms each blink on it.)

Each labelled blink video's person is enrolled from the largest face of its first frame; the
inline Gate then runs over every clip and prints its blinks, identity changes and grants. A
closed frame that named someone else would show as an ``identity_changed`` at a blink's time
(the periodic re-checks come every 3 s). With ``--background`` the Gate names faces in its
worker process, as for a camera: each blink is reported at once and its ``blink_checked``
follows when its closed frame has been named.

    .venv/bin/python scripts/closed_frame_study.py [--background] [../shared/data/blink-videos]
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import cv2

from blinkgate.gate import Gate, GateOptions
from blinkgate.recognize import Recognizer
from blinkgate.sources import open_source


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--background"]
    options = GateOptions(recognition="background" if "--background" in sys.argv[1:] else "inline")
    folder = Path(args[0] if args else "../shared/data/blink-videos")
    clips = sorted(folder.glob("*.mp4"))
    probe = Gate()
    names, encodings = [], []
    for clip in clips:
        cap = cv2.VideoCapture(str(clip))
        ok, image = cap.read()
        cap.release()
        if not ok:
            raise SystemExit(f"cannot read {clip}")
        boxes = probe.detector.detect(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        box = max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
        names.append(clip.stem)
        encodings.append(probe.encoder.encode(image, box))
    for clip in clips:
        gate = Gate(options=options, recognizer=Recognizer(encodings, names))
        kinds: Counter = Counter()
        for _, result in gate.run(open_source(str(clip))):
            for ev in result.events:
                kinds[ev.kind] += 1
                if ev.kind == "identity_changed":
                    print(f"  {ev.timestamp_ms:9.1f} ms identity_changed to {ev.name} (was {ev.detail.get('previous')})")
        gate.close()
        counted = ("blink", "blink_checked", "identity_changed", "granted")
        print(clip.stem, {k: kinds[k] for k in counted}, flush=True)


if __name__ == "__main__":
    main()
