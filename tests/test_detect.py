"""FaceDetector on frames of odd shapes (the real Haar cascade; no data needed)."""

from __future__ import annotations

import numpy as np
import pytest

from blinkgate.detect import FaceDetector


@pytest.mark.parametrize("shape", [(1, 1), (1, 641), (2, 1300), (4, 4000), (2000, 1), (19, 19)])
def test_a_frame_too_thin_for_a_face_finds_none(shape) -> None:
    # A wide strip used to downscale to zero rows, and cv2.resize raised.
    assert FaceDetector().detect(np.zeros(shape, np.uint8)) == []


def test_a_frame_shrunk_under_a_huge_track_box_finds_none() -> None:
    # A 7000-px frame's face box searched for on a 24x24 frame that followed it: the ROI
    # rescaled to the old face's size came out zero pixels wide, and cv2.resize raised.
    assert FaceDetector().detect_around(np.zeros((24, 24), np.uint8), (600.0, 450.0, 5600.0, 5450.0)) is None
