"""Shared fixtures. Real data lives in ../shared/data beside the repo; tests skip without it."""

from __future__ import annotations

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
