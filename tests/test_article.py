"""The seed article's pipeline, kept as the baseline for evaluation and speed benchmarks."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from blinkgate.article import article_gray24, is_blinking

from conftest import shared

SEED = Path(__file__).resolve().parents[2] / "shared" / "seed"
# Keras 3 on torch with numpy 2 warns about its own __array__ on every predict call.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_is_blinking_is_the_articles_string_match():
    assert is_blinking("1101")  # one closed frame between open ones
    assert is_blinking("11110001")
    assert not is_blinking("1100001")  # closed too long for isBlinking(history, 3)
    assert not is_blinking("1111") and not is_blinking("0000") and not is_blinking("10")


def test_eye_preprocessing_keeps_the_articles_channel_swap():
    crop = np.zeros((30, 40, 3), np.uint8)
    crop[..., 0] = 255  # pure blue in OpenCV's BGR order
    x = article_gray24(crop)
    assert x.shape == (1, 24, 24, 1) and x.dtype == np.float32
    # PIL read the BGR array as RGB, so the blue channel got the red weight 0.299
    assert x.max() == pytest.approx(76 / 255, abs=1 / 255)


@pytest.fixture(scope="module")
def article_model():
    os.environ.setdefault("KERAS_BACKEND", "torch")  # the [train] extra installs Keras on torch
    pytest.importorskip("keras")
    if not (SEED / "model.h5").is_file():
        pytest.skip(f"the article's weights are not at {SEED}")
    from blinkgate.article import load_article_model

    return load_article_model(SEED / "model.json", SEED / "model.h5")


def test_article_weights_load_and_classify_eyes(article_model):
    from blinkgate.cew import load_cew

    test = load_cew(shared("cew-eyes"), split="test")
    p = article_model.predict(test.images, verbose=0).ravel()
    accuracy = float(np.mean((p >= 0.5) == test.labels))
    assert 0.9 < accuracy < 0.98  # the seed README: 92-93% on held-out crops


@pytest.mark.slow
def test_article_pipeline_accepts_a_nuaa_print_attack(article_model):
    """The weakness blinkgate exists to fix: a flickering eye reading on a photo reads as a blink."""
    import cv2

    from blinkgate.article import ArticlePipeline

    folder = shared("photo-attack", "nuaa", "ImposterRaw", "0001")
    frames = sorted(folder.glob("0001_00_00_01_*.jpg"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    pipe = ArticlePipeline(article_model)
    live = [any(f.live for f in pipe.process(cv2.imread(str(p)))) for p in frames]
    assert len(frames) == 30 and any(live)
    assert live[live.index(True):] == [True] * (len(live) - live.index(True))  # and never forgets it
