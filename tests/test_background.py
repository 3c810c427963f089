"""Face encodings in a second process: the same numbers as inline, and failures said plainly."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from blinkgate.background import BackgroundEncoder, face_crop
from blinkgate.errors import BlinkgateError
from blinkgate.recognize import FaceEncoder

from conftest import clip_frame, shared


@pytest.fixture(scope="module")
def photo():
    image = cv2.imread(str(shared("faces", "lfw65", "Halle_Berry", "Halle_Berry_0001.jpg")))
    encoder = FaceEncoder()
    box = encoder.detect(image)[0]
    return image, box, encoder.encode(image, box)


def test_face_crop_keeps_the_box_inside_and_clips_to_the_frame():
    image = np.zeros((100, 200, 3), np.uint8)
    crop, box = face_crop(image, (150.0, 10.0, 190.0, 50.0))
    assert crop.shape == (70, 70, 3) and box == (20.0, 10.0, 60.0, 50.0)  # 20 px margins, cut at the edges


def test_the_worker_encodes_like_the_frame_loop_and_survives_a_bad_face(photo):
    image, box, inline = photo
    with BackgroundEncoder() as worker:
        worker.submit("a", image, box)
        worker.submit("empty", image, (5.0, 5.0, 5.0, 5.0))
        worker.submit("b", image, box)
        done = []
        while len(done) < 3:
            done += worker.wait()
        assert worker.pending == 0 and worker.poll() == []
    by_key = {d.key: d for d in done}
    assert np.array_equal(by_key["a"].encoding, inline) and np.array_equal(by_key["b"].encoding, inline)
    assert by_key["empty"].encoding is None and by_key["empty"].error


def test_a_worker_that_dies_is_an_error_not_a_silence(photo):
    image, box, _ = photo
    worker = BackgroundEncoder()
    try:
        worker._proc.kill()
        worker._proc.join()
        worker.submit("a", image, box)
        with pytest.raises(BlinkgateError, match="recognition process died"):
            worker.poll()
    finally:
        worker.close()


def test_missing_models_are_reported_by_the_worker(tmp_path, photo):
    image, box, _ = photo
    with BackgroundEncoder(models_dir=tmp_path) as worker:
        worker.submit("a", image, box)
        with pytest.raises(BlinkgateError, match="cannot load the recognition models"):
            worker.wait()


@pytest.mark.slow
def test_a_gate_with_background_recognition_grants_the_enrolled_blinker(tmp_path):
    """Real clip, real worker: the person enrolled from one frame of the clip is granted."""
    from blinkgate.gate import Gate, GateOptions
    from blinkgate.recognize import Recognizer
    from blinkgate.sources import open_source

    clip = shared("blink-videos", "blink-detector.mp4")
    first = clip_frame(index=0)
    encoder = FaceEncoder()
    me = encoder.encode(first, encoder.detect(first)[0])
    recognizer = Recognizer([me], ["blinker"])
    events = []
    with Gate(options=GateOptions(recognition="background"), recognizer=recognizer, encoder=encoder) as gate:
        assert gate.background is not None
        for frame, result in gate.run(open_source(clip)):
            events += result.events
            if any(e.kind == "granted" for e in result.events):
                break
    kinds = [e.kind for e in events]
    assert "recognised" in kinds and "granted" in kinds
    granted = next(e for e in events if e.kind == "granted")
    assert granted.name == "blinker"
