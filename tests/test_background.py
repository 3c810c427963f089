"""Face encodings in a second process: the same numbers as inline, and failures said plainly."""

from __future__ import annotations

import os
import signal
import time

import cv2
import numpy as np
import pytest

from blinkgate.background import BackgroundEncoder, face_crop
from blinkgate.errors import BlinkgateError
from blinkgate.recognize import FaceEncoder

from conftest import clip_frame, shared
from fakes import die_in_worker, echo_worker, silent_worker


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
    crop, box = face_crop(image, (10.2, 10.2, 20.5, 20.5), margin=0.0)  # a tracked box is fractional
    assert box[2] <= crop.shape[1] and box[3] <= crop.shape[0] and box[0] >= 0 and box[1] >= 0


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


def test_ctrl_c_in_the_terminal_leaves_the_worker_to_its_parent(photo):
    """Ctrl-C reaches the whole process group: the worker died with a KeyboardInterrupt traceback
    under `run`'s clean exit 130. It ignores SIGINT; its parent stops it."""
    image, box, inline = photo
    with BackgroundEncoder() as worker:
        worker.submit("a", image, box)
        done = []
        while not done:
            done += worker.wait()  # answered: the worker is past its start-up
        os.kill(worker._proc.pid, signal.SIGINT)
        time.sleep(0.5)
        assert worker._proc.is_alive()
        worker.submit("b", image, box)
        done = []
        while not done:
            done += worker.wait()
    assert np.array_equal(done[0].encoding, inline)


def test_a_killed_worker_is_replaced_and_the_next_request_is_answered(photo, caplog):
    image, box, inline = photo
    with BackgroundEncoder() as worker:
        worker.submit("a", image, box)
        assert worker.wait(60)[0].key == "a"  # it works, then the OOM killer takes it
        old = worker._proc
        old.kill()
        old.join()
        worker.submit("b", image, box)
        lost = worker.poll()  # no exception: replaced, and what it held is handed back lost
        assert [(d.key, d.lost, d.encoding) for d in lost] == [("b", True, None)]
        assert worker.pending == 0 and worker.restarts == 1 and worker._proc is not old
        assert "recognition process died" in caplog.text and "restart 1" in caplog.text
        worker.submit("c", image, box)
        done = worker.wait(60)
    assert [d.key for d in done] == ["c"] and np.array_equal(done[0].encoding, inline)


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_hung_worker_is_replaced_after_the_timeout():
    image = np.full((100, 100, 3), 9, np.uint8)
    clock = Clock()
    with BackgroundEncoder(target=echo_worker, timeout_s=15.0, clock=clock) as worker:
        worker.submit("a", image, (20.0, 20.0, 60.0, 60.0))
        assert worker.wait(60)[0].key == "a"
        stopped = worker._proc
        os.kill(stopped.pid, signal.SIGSTOP)  # as a stuck native call or a swapped-out process
        try:
            worker.submit("b", image, (20.0, 20.0, 60.0, 60.0))
            clock.now += 14.0
            assert worker.poll() == [] and worker.restarts == 0  # slow is not hung
            clock.now += 2.0
            lost = worker.poll()
            assert [(d.key, d.lost) for d in lost] == [("b", True)] and worker.restarts == 1
            stopped.join(5)
            assert stopped.exitcode == -signal.SIGKILL  # the hung one is gone, not left stopped
        finally:
            if stopped.is_alive():
                os.kill(stopped.pid, signal.SIGKILL)
        worker.submit("c", image, (20.0, 20.0, 60.0, 60.0))
        done = worker.wait(60)
    assert [d.key for d in done] == ["c"] and done[0].encoding[0] == 9.0


def test_a_worker_whose_encoder_is_dropped_without_close_ends():
    import gc

    worker = BackgroundEncoder(target=echo_worker)
    worker.submit("a", np.zeros((40, 40, 3), np.uint8), (10.0, 10.0, 30.0, 30.0))
    assert worker.wait()[0].key == "a"  # serving
    proc = worker._proc
    del worker
    gc.collect()
    proc.join(10)
    assert not proc.is_alive()  # it used to live on, with dlib's models, until the program ended


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for a reaper that may never come)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads /proc")
def test_the_worker_ends_when_its_parent_is_killed(tmp_path):
    """A door killed with SIGKILL (or by the OOM killer) left its worker waiting for a request
    for ever, with dlib's models in memory: one more orphan at each restart."""
    import subprocess
    import sys

    script = ("import os, signal, time\n"
              "from blinkgate.background import BackgroundEncoder\n"
              "if __name__ == '__main__':\n"
              "    worker = BackgroundEncoder()\n"
              "    print(worker._proc.pid, flush=True)\n"
              "    time.sleep(1)\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n")
    (tmp_path / "door.py").write_text(script)
    with open(tmp_path / "out", "w") as out:  # not a pipe: a worker left over would hold it open
        child = subprocess.run([sys.executable, str(tmp_path / "door.py")], stdout=out, stderr=subprocess.DEVNULL,
                               cwd=tmp_path, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, timeout=60)
    assert child.returncode == -signal.SIGKILL
    pid = int((tmp_path / "out").read_text().split()[0])
    try:
        deadline = time.monotonic() + 20
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(pid)
    finally:
        if _running(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_worker_that_dies_at_once_again_and_again_is_a_clear_error():
    worker = BackgroundEncoder(target=die_in_worker, max_restarts=2)
    try:
        with pytest.raises(BlinkgateError, match="died .*exit code 3.*failed 3 times in a row"):
            for _ in range(600):  # each spawn takes a fraction of a second to die
                worker.poll()
                time.sleep(0.05)
        assert worker.restarts == 2
    finally:
        worker.close()


def test_a_worker_that_hangs_on_its_first_request_again_and_again_is_a_clear_error():
    """A hang is seen 75 s after the request (15 s, and 60 s to load the models), past the 60 s in
    which a failure counts as "at once": a worker that hung on every face was replaced for ever."""
    clock = Clock()
    worker = BackgroundEncoder(target=silent_worker, max_restarts=2, clock=clock)
    try:
        for _ in range(2):  # the first worker and its first replacement
            worker.submit("a", np.zeros((40, 40, 3), np.uint8), (10.0, 10.0, 30.0, 30.0))
            clock.now += 76.0
            assert [d.lost for d in worker.poll()] == [True]
        worker.submit("a", np.zeros((40, 40, 3), np.uint8), (10.0, 10.0, 30.0, 30.0))
        clock.now += 76.0
        with pytest.raises(BlinkgateError, match="failed 3 times in a row before answering anything"):  # the second replacement
            worker.poll()
        assert worker.restarts == 2
    finally:
        worker.close()


def test_a_worker_idle_for_long_that_then_hangs_is_replaced_without_giving_up():
    """Its failure did not come at once: the first face came long after it started."""
    clock = Clock()
    with BackgroundEncoder(target=silent_worker, max_restarts=0, clock=clock) as worker:
        clock.now += 3600.0
        worker.submit("a", np.zeros((40, 40, 3), np.uint8), (10.0, 10.0, 30.0, 30.0))
        clock.now += 76.0
        assert [d.lost for d in worker.poll()] == [True] and worker.restarts == 1


def test_a_worker_that_answered_is_replaced_whenever_it_dies():
    """Only failures before a worker answered anything count towards giving up: a worker that
    served faces and was then killed (memory, once a week) is replaced every time."""
    image = np.full((40, 40, 3), 5, np.uint8)
    with BackgroundEncoder(target=echo_worker, max_restarts=1) as worker:
        for i in range(3):
            worker.submit(i, image, (10.0, 10.0, 30.0, 30.0))
            assert worker.wait(60)[0].key == i
            worker._proc.kill()
            worker._proc.join()
            assert worker.poll() == [] and worker.restarts == i + 1


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


def test_a_new_worker_has_time_to_load_its_models_before_it_counts_as_hung():
    """On a cold Pi, loading dlib's models can take longer than the 15 s an encoding may take."""
    image = np.full((100, 100, 3), 9, np.uint8)
    clock = Clock()
    with BackgroundEncoder(target=echo_worker, timeout_s=15.0, startup_s=60.0, clock=clock) as worker:
        stopped = worker._proc
        os.kill(stopped.pid, signal.SIGSTOP)  # still loading: it has not answered anything yet
        try:
            worker.submit("a", image, (20.0, 20.0, 60.0, 60.0))
            clock.now += 16.0
            assert worker.poll() == [] and worker.restarts == 0
            clock.now += 60.0
            assert [d.lost for d in worker.poll()] == [True] and worker.restarts == 1
        finally:
            if stopped.is_alive():
                os.kill(stopped.pid, signal.SIGKILL)
