"""The eye stage's pure helpers: eye aspect ratio, level crops and crop sharpness."""

import csv

import cv2
import numpy as np
import pytest

from blinkgate.blink import BlinkOptions
from blinkgate.eyes import aligned_eye, eye_aspect_ratio, eye_sharpness

from conftest import shared


def eye_points(opening: float, roll_deg: float = 0.0) -> np.ndarray:
    """Six iBUG eye landmarks 40 px corner to corner, lids ``opening`` px apart, centred at (100, 100)."""
    pts = np.array([[-20, 0], [-7, -opening / 2], [7, -opening / 2], [20, 0], [7, opening / 2], [-7, opening / 2]],
                   float)
    a = np.radians(roll_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return pts @ rot.T + 100.0


def test_eye_aspect_ratio_is_lid_opening_over_width_whatever_the_roll():
    assert eye_aspect_ratio(eye_points(12)) == pytest.approx(12 / 40)
    assert eye_aspect_ratio(eye_points(12, roll_deg=25)) == pytest.approx(12 / 40)
    assert eye_aspect_ratio(eye_points(2)) < eye_aspect_ratio(eye_points(12))
    assert eye_aspect_ratio(np.zeros((6, 2))) == 0.0  # degenerate landmarks, no division by zero


def test_aligned_eye_is_level_and_framed_on_the_landmarks():
    img = np.full((200, 200), 200, np.uint8)
    cv2.line(img, (60, 100), (140, 100), 0, 3)  # a dark bar through the eye corners
    level = aligned_eye(img, eye_points(10))
    m = cv2.getRotationMatrix2D((100, 100), -30, 1.0)
    tilted = aligned_eye(cv2.warpAffine(img, m, (200, 200), borderValue=200),
                         np.array([m[:, :2] @ p + m[:, 2] for p in eye_points(10)]))
    assert level.shape == tilted.shape == (24, 24)
    for patch in (level, tilted):  # the bar lies on the middle rows of the crop, not across them
        rows = patch.astype(float).mean(axis=1)
        assert rows[11:13].min() < rows[:6].min() - 50


def test_sharpness_ignores_contrast_and_brightness_but_not_blur():
    rng = np.random.default_rng(0)
    crop = cv2.GaussianBlur(rng.integers(0, 256, (24, 24)).astype(np.uint8), (0, 0), 0.7)
    s = eye_sharpness(crop)
    dim = (crop.astype(np.float32) * 0.3 + 20).astype(np.float32)
    assert eye_sharpness(dim) == pytest.approx(s, rel=1e-4)
    assert eye_sharpness(cv2.GaussianBlur(crop, (0, 0), 1.5)) < s / 3
    assert eye_sharpness(np.full((24, 24), 90, np.uint8)) == 0.0  # a flat crop shows no lids


def test_real_eye_crops_pass_the_sharpness_floor_and_blurred_ones_do_not():
    """CEW test crops (LFW faces, upsampled to 24×24: blurrier than a webcam's) against the same
    crops blurred the way a defocused print blurs them."""
    root = shared("cew-eyes")
    with open(root / "split.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "test"]
    crops = [cv2.imread(str(root / r["path"]), cv2.IMREAD_GRAYSCALE) for r in rows[::4]]
    floor = BlinkOptions().min_sharpness
    sharp = np.array([eye_sharpness(c) for c in crops])
    blurred = np.array([eye_sharpness(cv2.GaussianBlur(c, (0, 0), 1.5)) for c in crops])
    assert np.median(sharp) > 2 * floor and (sharp >= floor).mean() > 0.9
    assert np.median(blurred) < floor / 2 and (blurred < floor).mean() > 0.9
