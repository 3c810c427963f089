"""The window/recording helper: who gets a file played at its own speed."""

from __future__ import annotations

import time

import pytest

from blinkgate.viewer import Viewer


@pytest.mark.parametrize("live, ui, paced", [(False, True, True), (False, False, False), (True, True, False)])
def test_a_file_plays_at_its_own_speed_only_when_someone_watches(monkeypatch, live, ui, paced):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    viewer = Viewer("t", display=False, record=None, fps=25.0, pace=not live, ui=ui)
    started = time.monotonic()
    for i in range(6):
        viewer.wait(i * 40.0)  # 6 frames at 25 fps: the last is due 0.2 s in
    took = time.monotonic() - started
    assert viewer.pace is paced
    assert (took >= 0.19) if paced else (took < 0.05)
    viewer.close()
