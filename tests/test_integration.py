"""End to end on real data in ../shared/data: live people go live, printed photos never do."""

from __future__ import annotations

import csv
from collections import defaultdict

import cv2
import pytest

from blinkgate.check import check_source
from blinkgate.gate import Gate
from blinkgate.sources import open_source

from conftest import shared

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gate():
    with Gate(None) as g:
        yield g


def _clips():
    return sorted(shared("blink-videos").glob("*.mp4"))


def nuaa_sequences(kind: str = "photo_attack") -> dict[str, list]:
    """NUAA frames grouped per subject+session, in picture-number order."""
    root = shared("photo-attack", "nuaa")
    seqs: dict[str, list] = defaultdict(list)
    with open(root / "index.tsv", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["class"] == kind:
                seqs[f"{row['subject']}_{row['glasses_pos_session']}"].append((int(row["picNo"]), root / row["path"]))
    return {k: [p for _, p in sorted(v)] for k, v in sorted(seqs.items())}


def test_every_blink_video_is_live(gate):
    clips = _clips()
    assert len(clips) >= 5
    for clip in clips:
        with open_source(clip) as src:
            verdict = check_source(gate, src)
        assert verdict.frames > 300, clip.name
        assert verdict.live, f"{clip.name}: no blink found ({verdict.format()})"


@pytest.mark.parametrize("fps", [20.0, 6.0])
def test_no_nuaa_print_attack_is_ever_live(gate, fps):
    seqs = nuaa_sequences()
    assert len(seqs) == 28
    live = []
    for name, paths in seqs.items():
        gate.reset()
        for i, path in enumerate(paths):
            result = gate.process(cv2.imread(str(path)), i * 1000.0 / fps)
            if any(f.live for f in result.faces):
                live.append(name)
                break
    assert live == [], f"print attacks judged live at {fps} fps: {live}"
