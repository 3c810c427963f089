"""Drawing results onto frames. Kept apart from inference: the gate never draws."""

from __future__ import annotations

import unicodedata

import cv2
import numpy as np

from .types import EyeState, FaceResult, FrameResult

GREEN, AMBER, RED, WHITE, BLACK = (0, 200, 0), (0, 190, 255), (0, 0, 230), (255, 255, 255), (0, 0, 0)
EYE_COLOURS = {EyeState.OPEN: GREEN, EyeState.CLOSED: RED, EyeState.UNKNOWN: (160, 160, 160)}


# Letters NFKD does not split into an ASCII base and an accent.
_PLAIN = str.maketrans({"ß": "ss", "Æ": "AE", "æ": "ae", "Œ": "OE", "œ": "oe", "Ø": "O", "ø": "o", "Ł": "L",
                        "ł": "l", "Đ": "D", "đ": "d", "Þ": "Th", "þ": "th", "ı": "i"})


def drawable(text: str) -> str:
    """``text`` as OpenCV's Hershey fonts can draw it: ASCII only. putText draws each byte of
    any other character as '?' ("Zoë" came out "Zo??"), so accents are dropped ("Zoe") and only
    what has no plain form (CJK, Cyrillic...) stays one '?' per character."""
    folded = unicodedata.normalize("NFKD", text.translate(_PLAIN))
    return "".join(c if c.isascii() else "?" for c in folded if not unicodedata.combining(c))


def _label(image: np.ndarray, text: str, org: tuple[int, int], colour: tuple[int, int, int], scale: float) -> None:
    text = drawable(text)
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    x, y = org
    cv2.rectangle(image, (x, y - h - base - 2), (x + w + 4, y + 2), colour, -1)
    cv2.putText(image, text, (x + 2, y - base + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, BLACK, 2, cv2.LINE_AA)


def draw_face(image: np.ndarray, face: FaceResult) -> None:
    scale = max(0.5, image.shape[1] / 1280)
    colour = GREEN if face.granted else AMBER if face.live else RED
    x1, y1, x2, y2 = (int(round(v)) for v in face.box)
    cv2.rectangle(image, (x1, y1), (x2, y2), colour, 3 if face.granted else 2)
    for ex1, ey1, ex2, ey2 in face.eyes.boxes:
        cv2.rectangle(image, (int(ex1), int(ey1)), (int(ex2), int(ey2)), EYE_COLOURS[face.eyes.state], 1)
    who = face.name or ("..." if face.recognising else "unknown")
    _label(image, f"#{face.track_id} {who}", (x1, max(20, y1 - 4)), colour, scale)
    _label(image, f"{status_text(face)} | eyes {face.eyes.state.value} | blinks {face.blinks}", (x1, y2 + 24), colour,
           scale * 0.8)


def status_text(face: FaceResult) -> str:
    """What the face should know about itself, in a few words (on screen and in the browser view)."""
    if not face.live:
        return "eyes too blurred: focus or come closer" if face.eyes_blurred else "blink to enter"
    if face.granted:
        return "LIVE - GRANTED"
    if face.recognising:
        return "LIVE (recognising)"
    return "LIVE (checking who blinked)" if face.name else "LIVE (not enrolled)"


def draw(image: np.ndarray, result: FrameResult, fps: float | None = None) -> np.ndarray:
    """Return a copy of ``image`` with every face of ``result`` drawn on it."""
    out = image.copy()
    for face in result.faces:
        draw_face(out, face)
    if fps:
        cv2.putText(out, f"{fps:.1f} fps", (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, WHITE, 2, cv2.LINE_AA)
    return out
