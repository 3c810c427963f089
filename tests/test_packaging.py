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
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(tmp_path), "--no-deps", "--no-build-isolation",
                    "--quiet", "--wheel-dir", str(tmp_path / "dist")], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("blinkgate-*.whl")
    packed = set(zipfile.ZipFile(wheel).namelist())
    models = {f"blinkgate/models/{p.name}" for p in (ROOT / "src" / "blinkgate" / "models").iterdir() if p.is_file()}
    assert {"blinkgate/models/eye_state.onnx", "blinkgate/models/eye_state.json"} <= models
    assert models <= packed, sorted(models - packed)
    assert "blinkgate/py.typed" in packed
