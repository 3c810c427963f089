from pathlib import Path

import pytest

from blinkgate.evaluate_blinks import Label, evaluate_blinks, score_clip, summarise
from blinkgate.gate import Gate
from blinkgate.types import EyeState

from conftest import shared

LABELS = [
    Label(10, 13, "blink", True),
    Label(40, 43, "blink", False),  # likely
    Label(60, 70, "wink", True),
    Label(90, 150, "long_closure", True),
]


def test_scoring_rules():
    detections = [(11, 12), (41, 42), (62, 65), (100, 110), (200, 202)]
    sure = score_clip(Path("c.mp4"), LABELS, detections, {}, sure_only=True)
    # sure-only: the likely blink and the long closure are don't-care; the wink and 200 are false.
    assert (sure.labelled, sure.true_pos, sure.false_pos, sure.detected) == (1, 1, 2, 3)
    assert sure.false_at == [62, 200]
    both = score_clip(Path("c.mp4"), LABELS, detections, {}, sure_only=False)
    assert (both.labelled, both.true_pos, both.false_pos) == (2, 2, 2)
    r = summarise([both])
    assert r["precision"] == 0.5 and r["recall"] == 1.0


def test_slack_and_misses():
    s = score_clip(Path("c.mp4"), LABELS, [(15, 16)], {}, slack=2)
    assert s.true_pos == 1
    s = score_clip(Path("c.mp4"), LABELS, [(17, 18)], {}, slack=2)
    assert s.true_pos == 0 and s.missed == [10, 40] and s.false_at == [17]


def test_per_frame_accuracy():
    states = {i: EyeState.OPEN for i in range(30)} | {11: EyeState.CLOSED, 12: EyeState.CLOSED}
    s = score_clip(Path("c.mp4"), LABELS[:1], [], states, slack=0)
    assert (s.closed_frames, s.closed_read) == (4, 2)
    assert s.open_frames == 26 and s.open_read == 26


@pytest.mark.slow
def test_blink_detection_on_labelled_clips_meets_the_goal():
    clips = sorted(shared("blink-videos").glob("*.mp4"))
    with Gate(None) as gate:
        result = evaluate_blinks(gate, clips)
    sure = result["sure"]
    assert sure["labelled"] >= 25
    assert sure["precision"] >= 0.95 and sure["recall"] >= 0.95, sure
    assert result["sure+likely"]["precision"] >= 0.95
