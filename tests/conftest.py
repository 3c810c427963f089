"""Shared fixtures. Real data lives in ../shared/data beside the repo; tests skip without it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test saying what is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found: {path} (tests read ../shared/data beside the repo)")
    return path


@pytest.fixture
def shared_data() -> Path:
    return shared()


@pytest.fixture
def common_umask():
    """The usual umask (022), under which a file made without a mode is readable by every user."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def clip_frame(clip: str = "blink-detector.mp4", index: int = 29):
    """Frame ``index`` (0-based, BGR) of a shared blink video: a photo of the person in it."""
    import cv2

    cap = cv2.VideoCapture(str(shared("blink-videos", clip)))
    for _ in range(index + 1):
        ok, frame = cap.read()
    cap.release()
    assert ok, f"{clip} has no frame {index}"
    return frame


def enrol_from_clip(folder: Path, name: str, clip: str = "blink-detector.mp4") -> Path:
    """A face database in ``folder`` with ``name`` enrolled from one frame of a blink video."""
    import cv2

    from blinkgate.database import FaceDatabase
    from blinkgate.enroll import enroll_directory
    from blinkgate.recognize import FaceEncoder

    (folder / "people" / name).mkdir(parents=True)
    cv2.imwrite(str(folder / "people" / name / "a.png"), clip_frame(clip))
    db = folder / "faces.db"
    with FaceDatabase(db) as store:
        enroll_directory(store, folder / "people", FaceEncoder(), progress=False)
    return db
