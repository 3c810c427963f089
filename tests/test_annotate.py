import numpy as np

from blinkgate.annotate import draw, drawable
from blinkgate.types import EyeReading, EyeState, FaceResult, FrameResult


def test_accented_names_are_drawn_without_their_accents_not_as_question_marks():
    assert drawable("Zoë Łukasz Søren Müller-Straße") == "Zoe Lukasz Soren Muller-Strasse"
    assert drawable("José") == "Jose"


def test_letters_with_no_plain_form_are_one_question_mark_each():
    # putText draws each UTF-8 byte as '?': three per CJK character
    assert drawable("王芳 A") == "?? A"
    assert drawable("#3 unknown") == "#3 unknown"


def _drawn(name: str) -> np.ndarray:
    face = FaceResult(track_id=3, box=(40.0, 60.0, 160.0, 180.0), name=name, distance=0.3,
                      eyes=EyeReading(EyeState.OPEN), blinks=1, live=True, granted=True)
    return draw(np.zeros((240, 320, 3), np.uint8), FrameResult(0, 0.0, [face], []))


def test_a_face_named_with_an_accent_is_drawn_as_its_plain_letters():
    assert np.array_equal(_drawn("Zoë"), _drawn("Zoe"))
    assert not np.array_equal(_drawn("Zoë"), _drawn("Zo??"))
