"""The Python examples in README.md and docs/door.md, run as written (on a shared clip for the camera)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from conftest import enrol_from_clip, shared

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def snippet(doc: str, heading: str) -> str:
    """The first ```python block under ``heading`` in ``doc``."""
    text = (ROOT / doc).read_text(encoding="utf-8")
    section = text.split(f"\n{heading}\n", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def at_the_door(tmp_path, monkeypatch) -> Path:
    """A folder holding faces.db (the person in the clip enrolled as "subject") and the clip as door.mp4."""
    enrol_from_clip(tmp_path, "subject")
    os.symlink(shared("blink-videos", "blink-detector.mp4"), tmp_path / "door.mp4")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BLINKGATE_DB", str(tmp_path / "faces.db"))
    return tmp_path


def test_the_readme_gate_example_opens_once_per_grant(at_the_door, capsys):
    """It acted on `face.granted`, true on every frame while a grant lasts: 319 "open for" lines
    for the one blink-granted visit of this 11-s clip."""
    exec(compile(snippet("README.md", "## Python API"), "README.md", "exec"), {})
    assert capsys.readouterr().out == "open for subject track 1\n"


def test_the_door_example_prints_each_prompt_once(at_the_door, capsys):
    """It printed `DoorFace.prompt`, set on every frame while the prompt is up: the same prompt
    20-35 times in a row."""
    code = snippet("docs/door.md", "## Python API").replace("open_source(0)", 'open_source("door.mp4")')
    exec(compile(code, "docs/door.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert any("Blink" in line for line in lines)  # the clip is long enough for a prompt
    assert all(a != b for a, b in zip(lines, lines[1:])), lines  # a new prompt follows a decision
