"""``blinkgate capture``: enrolment photos taken with the camera that will do the recognising.

A door's camera sees people in its own light, angle and lens, and a door box often has no
other camera. The photos go into
``PEOPLE_DIR/NAME/`` as ordinary JPEGs, and ``blinkgate enroll PEOPLE_DIR`` enrols them as any
other: the folder stays the one record of who is enrolled from what.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from .database import name_key, name_problem
from .errors import BlinkgateError
from .files import PRIVATE_FILE, remove_stale_temps, write_atomic
from .recognize import DEFAULT_TOLERANCE
from .sources import Frame, FrameSource
from .types import Box

log = logging.getLogger("blinkgate")

DETECT_MAX_SIDE = 640  # HOG on a larger frame costs seconds a frame (1280 px: 2 s here)
MIN_FACE_PX = 80  # a smaller face gives enrolment too little detail (and is often someone in the background)
PHOTO_PREFIX = "capture-"  # of the photos' names, then the time
WAITING = "next photo in a moment"  # a frame not looked at: the last photo was taken less than `every` ago


@dataclass(frozen=True)
class CaptureOptions:
    count: int = 5
    every_ms: float = 700.0  # between photos: time to turn the head a little, so they differ
    min_face_px: int = MIN_FACE_PX
    timeout_ms: float = 60_000.0  # from the first frame: a camera nobody stands in front of
    # Each photo's face within this of the person's photos: the gate's tolerance, so no face is
    # taken that the gate would not already name as the person (once enrolled, it would be).
    same_person: float = DEFAULT_TOLERANCE


def check_name(name: str) -> str:
    """``name`` as a folder name under PEOPLE_DIR, or a clear error."""
    clean = name.strip()
    if not clean or clean in (".", "..") or any(c in clean for c in "/\\\0"):
        raise BlinkgateError(f"{name!r} cannot be a person's folder name")
    if clean.startswith("-"):  # enrol skips such folders: an unlock command would read the name as an option
        raise BlinkgateError(f"{name!r}: a name must not start with '-'")
    if clean.startswith("."):  # enrol passes over hidden folders in silence: the photos would never be enrolled
        raise BlinkgateError(f"{name!r}: a name must not start with '.' (enroll skips hidden folders)")
    if problem := name_problem(clean):
        raise BlinkgateError(f"{name!r}: a name {problem}")
    return clean


def person_folder(people_dir: Path, name: str) -> Path:
    """``PEOPLE_DIR/NAME`` for ``name`` (see check_name), or the folder already there whose name
    differs from it only invisibly (``name_key``: 'José' typed on a Mac is in another Unicode form,
    or the folder has spaces around the name). A second folder would make enroll enrol two people
    of one name, and a face about as close to both is named as neither."""
    clean = check_name(name)
    try:
        same = sorted(p for p in people_dir.iterdir() if p.is_dir() and name_key(p.name) == name_key(clean))
    except OSError:  # no PEOPLE_DIR yet (made next), or not a folder (said next)
        return people_dir / clean
    if len(same) > 1:
        raise BlinkgateError(f"{people_dir} has {len(same)} folders named {clean!r} "
                             f"({', '.join(repr(p.name) for p in same)}: in other Unicode forms or with spaces "
                             f"around): enroll takes them for {len(same)} people; move the photos into one")
    if same and same[0].name != clean:
        log.info("%s: adding to the folder %r already there (the same name, in another Unicode form or with "
                 "spaces around it)", clean, same[0].name)
    return same[0] if same else people_dir / clean


def known_faces(folder: Path, encoder) -> np.ndarray:
    """The encodings of the faces in the photos already in ``folder`` (an earlier run's, or
    copied there), as enroll makes them: what a new photo of the person is compared with. A
    photo enroll would skip is left out here too. (N, 128); N is 0 for a new person."""
    from .enroll import is_image, photo_encoding

    try:
        photos = sorted(p for p in folder.iterdir() if is_image(p)) if folder.is_dir() else []
    except OSError as err:  # not compared with them, a stranger's photos would be let in
        raise BlinkgateError(f"cannot read the photos already in {folder}: {err.strerror or err}") from None
    faces = []
    for path in photos:
        try:
            encoding, _ = photo_encoding(path.read_bytes(), encoder)
        except OSError:
            continue  # enroll reports it
        if encoding is not None:
            faces.append(encoding)
    return np.array(faces, dtype=np.float64).reshape(len(faces), 128)


def one_face(image: np.ndarray, detect: Callable[[np.ndarray], list[Box]],
             min_face_px: int) -> tuple[np.ndarray, Box | None, str]:
    """``image`` at most DETECT_MAX_SIDE on a side, and the one face in it big enough to enrol,
    or None and why not. That smaller picture is the photo saved: enrol then detects on the very
    picture checked here, where on a full HD frame it could find a face in the background that
    this missed and skip the photo as "several faces"."""
    from .enroll import fit_within

    small = fit_within(image, DETECT_MAX_SIDE)
    boxes = detect(small)
    if not boxes:
        return small, None, "no face"
    if len(boxes) > 1:
        return small, None, f"{len(boxes)} faces: one person at a time"
    box = boxes[0]
    if box[2] - box[0] < min_face_px:
        return small, None, f"face {box[2] - box[0]:.0f} px wide: come closer (at least {min_face_px})"
    return small, box, ""


def _is_photo_name(name: str) -> bool:
    return name.startswith(PHOTO_PREFIX) and name.endswith(".jpg")


def save_photo(folder: Path, image: np.ndarray) -> Path:
    """Write ``image`` as a new JPEG in ``folder``, atomically (enrol never reads half a photo),
    under a new name (a time to the microsecond), never over an existing photo, and readable by
    its owner only: a face is biometric data, kept 0600 in the database too."""
    import cv2

    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise BlinkgateError("cannot encode the photo as JPEG")
    path = folder / f"{PHOTO_PREFIX}{datetime.now():%Y%m%d-%H%M%S-%f}.jpg"
    try:
        if path.exists():
            raise FileExistsError(17, "a photo of that name is already there", str(path))
        write_atomic(path, data.tobytes(), PRIVATE_FILE)
    except OSError as err:
        raise BlinkgateError(f"cannot write a photo in {folder}: {err.strerror or err}") from None
    return path


def _other_person(face: np.ndarray, faces: np.ndarray, folder: Path | None, tolerance: float) -> str:
    """Why ``face`` is not the person of ``faces``, the photos already in ``folder`` (or, with
    ``folder`` None, this run's first photo), or "" if it is: within ``tolerance`` of the nearest,
    as the gate names a face by its nearest photo."""
    apart = float(np.linalg.norm(faces - face, axis=1).min())
    if apart <= tolerance:
        return ""
    if folder is None:
        return f"not the person of the first photo ({apart:.2f} apart): one person at a time"
    return f"not the person already in {folder.name}/ ({apart:.2f} from the nearest photo)"


def capture(frames: Iterable[Frame], folder: Path, detect: Callable[[np.ndarray], list[Box]],
            options: CaptureOptions = CaptureOptions(),
            on_frame: Callable[[Frame, Box | None, str, int], bool] | None = None,
            encode: Callable[[np.ndarray, Box], np.ndarray] | None = None,
            known: np.ndarray | None = None) -> list[Path]:
    """Save up to ``options.count`` frames that show exactly one face big enough to enrol, at
    least ``options.every_ms`` apart, until ``options.timeout_ms`` after the first frame.
    The time is the source's: of a video file, its first ``timeout_ms``, however fast it is read;
    a live source that stalls is given up at the timeout too. ``on_frame(frame, box, why, saved)``
    is called for every frame (``why`` is "" for a photo
    taken, or why the frame was not one); it returns False to stop (the window closed).
    With ``encode`` (``FaceEncoder.encode``), a face further than ``options.same_person`` from
    the nearest of ``known`` (``known_faces``: the person's photos already in the folder) or,
    for a new person, from the first photo's, is not taken: each frame alone shows one face,
    and someone who steps in after the person stepped away, or who runs capture again under
    the person's name, would be enrolled, and let in, under that name."""
    saved: list[Path] = []
    first_ms, last_ms = None, float("-inf")
    # A capture killed while writing a photo left it hidden (".capture-....jpg.PID.tmp"), 0600:
    # enroll skips it, so nobody would know a face was still there.
    for stale in remove_stale_temps(folder, _is_photo_name):
        log.info("deleted %s, a photo a killed capture never finished saving", stale.name)
    if isinstance(frames, FrameSource) and frames.live:
        # A stream that stalls gives no frame to check the time on: it ended capture only once
        # it was given up, after its reconnects (14 s for --timeout 3, or minutes).
        frames.on_idle = lambda now_ms: now_ms - (first_ms or 0.0) > options.timeout_ms
    in_folder = known is not None and len(known) > 0
    faces = known if in_folder else None  # what a new face must be near: None until the first photo
    for frame in frames:
        first_ms = frame.timestamp_ms if first_ms is None else first_ms
        box, why = None, WAITING
        if frame.timestamp_ms - last_ms >= options.every_ms:  # detection only when a photo is due: HOG is slow
            photo, box, why = one_face(frame.image, detect, options.min_face_px)
            if box is not None and encode is not None:
                face = encode(photo, box)
                faces = face[None] if faces is None else faces
                if why := _other_person(face, faces, folder if in_folder else None, options.same_person):
                    box = None
            if box is not None:
                saved.append(save_photo(folder, photo))
                scale = frame.image.shape[1] / photo.shape[1]
                box = tuple(v * scale for v in box)  # in the frame's pixels, for the window
                last_ms = frame.timestamp_ms
                log.info("photo %d of %d: %s", len(saved), options.count, saved[-1])
        if on_frame is not None and not on_frame(frame, box, why, len(saved)):
            break
        if len(saved) >= options.count or frame.timestamp_ms - first_ms > options.timeout_ms:
            break
    return saved


def draw_capture(image: np.ndarray, box: Box | None, why: str, saved: int, count: int) -> np.ndarray:
    """The frame with the face box and what is happening, for the window."""
    import cv2

    canvas = image.copy()
    if box is not None:
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        cv2.rectangle(canvas, (x0, y0), (x1, y1), (0, 200, 0), 2)
    text = f"photo {saved} of {count}" + (f": {why}" if why else " taken")
    cv2.putText(canvas, text, (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 4, cv2.LINE_AA)
    cv2.putText(canvas, text, (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
    return canvas
