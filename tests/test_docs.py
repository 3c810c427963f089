"""The Python examples in README.md and docs/door.md, run as written (on a shared clip for the camera);
and the commands, flags, files and tests the docs name, looked up."""

from __future__ import annotations

import argparse
import os
import re
import shutil
from pathlib import Path

import pytest

from blinkgate import cli
from conftest import enrol_from_clip, shared

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def snippet(doc: str, heading: str, index: int = 0) -> str:
    """The ``index``-th ```python block under ``heading`` in ``doc`` (within its section)."""
    text = (ROOT / doc).read_text(encoding="utf-8")
    section = text.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)[index]


@pytest.fixture
def at_the_door(tmp_path, monkeypatch) -> Path:
    """A folder holding faces.db (the person in the clip enrolled as "subject") and the clip as door.mp4."""
    enrol_from_clip(tmp_path, "subject")
    os.symlink(shared("blink-videos", "blink-detector.mp4"), tmp_path / "door.mp4")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BLINKGATE_DB", str(tmp_path / "faces.db"))
    return tmp_path


@pytest.mark.slow
def test_the_readme_gate_example_opens_once_per_grant(at_the_door, capsys):
    """It acted on `face.granted`, true on every frame while a grant lasts: 319 "open for" lines
    for the one blink-granted visit of this 11-s clip."""
    exec(compile(snippet("README.md", "## Python API"), "README.md", "exec"), {})
    assert capsys.readouterr().out == "open for subject track 1\n"


@pytest.mark.slow
def test_the_door_example_prints_each_prompt_once(at_the_door, capsys):
    """It printed `DoorFace.prompt`, set on every frame while the prompt is up: the same prompt
    20-35 times in a row."""
    code = snippet("docs/door.md", "## Python API").replace("open_source(0)", 'open_source("door.mp4")')
    exec(compile(code, "docs/door.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert any("Blink" in line for line in lines)  # the clip is long enough for a prompt
    assert all(a != b for a, b in zip(lines, lines[1:])), lines  # a new prompt follows a decision


@pytest.mark.slow
def test_the_readme_enrol_example_enrols_the_people_folder(tmp_path, monkeypatch, capsys):
    """"To enrol from code": people/<name>/*.jpg into $BLINKGATE_DB, as `blinkgate enroll` does."""
    (tmp_path / "people").mkdir()
    for name in ("Hugh_Grant", "Serena_Williams"):
        folder = shared("faces", "lfw65", name)
        shutil.copytree(folder, tmp_path / "people" / name, ignore=lambda d, names: sorted(names)[2:])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BLINKGATE_DB", str(tmp_path / "faces.db"))
    exec(compile(snippet("README.md", "## Python API", 1), "README.md", "exec"), {})
    assert capsys.readouterr().out.startswith("4 added")
    assert cli.main(["people", "--json"]) == 0
    assert '"Hugh_Grant", "images": 2' in capsys.readouterr().out


def doc_code(text: str) -> list[str]:
    """The lines of a doc's code blocks (a line ending in \\ joined to the next) and its `spans`."""
    lines = [line for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
             for line in block.replace("\\\n", " ").splitlines()]
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    return lines + [span.replace("\n", " ") for span in re.findall(r"`([^`]+)`", prose)]


def test_every_blinkgate_command_and_flag_the_docs_show_exists():
    """A renamed or dropped flag leaves a doc whose command is refused as written."""
    commands = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    call = re.compile(r"(?:^|[\s/(])blinkgate(?:\s+-v)?\s+([a-z][a-z-]*)\b(.*)")
    wrong = []
    for doc in DOCS:
        for line in doc_code(doc.read_text(encoding="utf-8")):
            for part in re.split(r"\s(?:#|&&|\|\||;|\||>>?)\s", line):  # a comment, the next command
                m = call.search(part)
                if m is None or "make -C" in part:
                    continue
                if m.group(1) not in commands:
                    wrong.append(f"{doc.name}: no command {m.group(1)!r}: {part.strip()}")
                    continue
                options = commands[m.group(1)]._option_string_actions
                wrong += [f"{doc.name}: {m.group(1)} has no {flag}: {part.strip()}"
                          for flag in re.findall(r"(?:^|\s)(--?[a-zA-Z][\w-]*)", m.group(2)) if flag not in options]
    assert not wrong, "\n".join(wrong)


def test_the_cli_docstring_names_every_command():
    commands = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    names = [action.dest for action in commands._choices_actions]
    listed = re.search(r"``blinkgate (.*?)``", cli.__doc__).group(1).split(" | ")
    assert listed == names


def test_every_file_and_test_the_docs_name_exists():
    """Scripts, manifests, images and tests are cited as the way to reproduce a number."""
    missing = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for path in set(re.findall(r"\b((?:scripts|benchmarks|manifests|tests|docs|src/blinkgate)/[\w./*-]*[\w*])", text)):
            if "*" not in path and not (ROOT / path).exists():
                missing.append(f"{doc.name}: {path}")
        for link in set(re.findall(r"\]\(([^)#:\s]+)(?=[)#])", text)):  # [text](relative link), ![image](...)
            if not (doc.parent / link).exists():
                missing.append(f"{doc.name}: ({link})")
        for path, test in set(re.findall(r"(tests/test_\w+\.py)::\s*(\w+)", text)):
            if not re.search(rf"def {test}\b", (ROOT / path).read_text(encoding="utf-8")):
                missing.append(f"{doc.name}: {path}::{test}")
    assert not missing, "\n".join(missing)


def test_every_make_target_the_docs_name_is_in_the_makefile():
    targets = set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M))
    named = {m for doc in DOCS for line in doc_code(doc.read_text(encoding="utf-8"))
             for m in re.findall(r"(?:^|\s)make(?:\s+-C\s+\S+)?\s+([a-z][\w-]*)\b(?!=)", line)}
    assert named and named <= targets, named - targets


def test_every_setting_and_variable_the_docs_name_exists():
    """`challenge.clear`, `log.retention_days`, $BLINKGATE_...: a renamed key is refused by name."""
    from blinkgate.config import BY_KEY, CONFIG_ENV

    variables = {s.env for s in BY_KEY.values()} | {CONFIG_ENV}
    sections = {key.split(".")[0] for key in BY_KEY if "." in key}
    wrong = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        wrong += [f"{doc.name}: {v}" for v in set(re.findall(r"BLINKGATE_[A-Z_]*[A-Z]", text)) if v not in variables]
        for key in set(re.findall(r"`([a-z]+\.[a-z_]+)(?: = [^`]*)?`", text)):  # `challenge.counts = [2, 3]` too
            if key.split(".")[0] in sections and key not in BY_KEY:
                wrong.append(f"{doc.name}: {key}")
    assert not wrong, "\n".join(wrong)
