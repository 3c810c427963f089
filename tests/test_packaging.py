"""What `pip install .` (not the editable install the tests run on) puts in the package."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_every_model_file(tmp_path):
    """The eye model's calibrated thresholds live in a sidecar .json beside the ONNX file. A
    wheel without it ran the eye stage at 0.5/0.5, unnoticed by a test suite on an editable
    install. Built from a copy, so the checkout gets no build/ folder."""
    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in"):
        shutil.copy(ROOT / name, tmp_path / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(tmp_path), "--no-deps", "--no-build-isolation",
                    "--quiet", "--wheel-dir", str(tmp_path / "dist")], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("blinkgate-*.whl")
    packed = set(zipfile.ZipFile(wheel).namelist())
    models = {f"blinkgate/models/{p.name}" for p in (ROOT / "src" / "blinkgate" / "models").iterdir() if p.is_file()}
    assert {"blinkgate/models/eye_state.onnx", "blinkgate/models/eye_state.json"} <= models
    assert models <= packed, sorted(models - packed)
    assert "blinkgate/py.typed" in packed


def test_the_sdist_carries_the_license_and_a_runnable_test_suite(tmp_path):
    """An sdist with test files but not their conftest.py and fakes.py cannot run its tests."""
    shutil.copytree(ROOT, tmp_path / "src_tree", ignore=shutil.ignore_patterns(
        ".git", ".venv*", "__pycache__", "*.egg-info", "build", "dist", "out", "runs"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(tmp_path / "src_tree"), "--no-deps", "--no-build-isolation",
                    "--quiet", "--wheel-dir", str(tmp_path / "dist")], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("blinkgate-*.whl")
    meta = next(n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    runtime = [line for line in text.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert "License-Expression: MIT" in text and runtime
    from blinkgate import __version__

    assert f"\nVersion: {__version__}\n" in text
    assert not [line for line in runtime if "setuptools" in line]  # a pin there blocks the user's setuptools
    assert any(n.endswith("licenses/LICENSE") for n in zipfile.ZipFile(wheel).namelist())
    subprocess.run([sys.executable, "-c", "from setuptools import build_meta as b; b.build_sdist('out')"],
                   cwd=tmp_path / "src_tree", check=True, capture_output=True, timeout=300)
    (sdist,) = (tmp_path / "src_tree" / "out").glob("blinkgate-*.tar.gz")
    import tarfile

    names = {n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n}
    assert {"LICENSE", "tests/conftest.py", "tests/fakes.py", "tests/test_gate.py"} <= names
    assert not any("__pycache__" in n for n in names)


def test_the_lazy_api_is_listed_and_importing_it_loads_nothing_heavy():
    code = ("import sys, blinkgate; names = dir(blinkgate); "
            "print(all(n in names for n in blinkgate.__all__), any(m in sys.modules for m in ('cv2', 'dlib', 'numpy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]  # dir() used to miss Gate, GateOptions and the rest
