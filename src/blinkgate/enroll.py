"""Enrol everyone in PEOPLE_DIR/<person name>/*.jpg|jpeg|png into the face database.

Incremental: an image whose path and content hash are already enrolled is not re-encoded; an
image whose content changed is re-encoded and replaces its old encoding; an image enrolled from
under PEOPLE_DIR that is no longer on disk is removed (the folder is the truth: deleting a
wrong photo must stop it opening the door). Each image is its own transaction, so an
interrupted run keeps what it finished and a rerun carries on.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from tqdm import tqdm

from .database import EnrolledImage, FaceDatabase, name_problem
from .errors import ImageError
from .recognize import DEFAULT_TOLERANCE, FaceEncoder
from .sources import not_utf8

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
# Photos in other formats (an iPhone's HEIC above all) are reported, not passed over in silence:
# the person would be enrolled from fewer photos than the folder shows, or not at all.
OTHER_PHOTO_SUFFIXES = {".heic", ".heif", ".avif", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".dng", ".jxl"}
# Phone photos are ~4000 px wide; HOG with one upsample on that takes seconds and GBs. Faces
# in enrolment photos are large, so detecting and encoding at <= 1600 px loses nothing.
MAX_SIDE = 1600
# A PNG is decoded whole (no reduced decode as for JPEG), 3 bytes a pixel: a 324 KB PNG of
# 20000x15000 grey pixels took 1.8 GB, enough to kill a Raspberry Pi's enrolment. Twice a
# 48-MP camera's pixels (144 MB decoded) is still read.
PNG_MAX_PIXELS = 100_000_000

# Photos of two people this close: one person under two names (bob/ and robert/), the same photo
# in two folders, or two who look alike. The margin rule names neither when a face is about as
# close to both: on lfw65 (20 people, 4 photos each), splitting one person's photos into two
# names cut his recognised photos from 94.7% to 10.5%. Two of his photos were under 0.5 apart
# in 98% of 53 such splits; photos of two different people in 6 of 2080 pairs (0.3%).
SAME_PERSON_DISTANCE = DEFAULT_TOLERANCE
# One person's photos this far apart (no chain of closer pairs joins them): a photo of someone
# else in the folder, who would then be named, and let in, as the person. dlib's customary
# same-person cut-off. On lfw65 (each person's first 2-8 photos, HOG as here) 1 of 65 people's
# own photos split so; with 1 or 2 photos of another lfw65 person added, 2,026 of 2,056 folders did.
OTHER_PERSON_DISTANCE = 0.6

ADDED, UNCHANGED, UPDATED, SKIPPED, REMOVED = "added", "unchanged", "updated", "skipped", "removed"


class ImageOutcome(NamedTuple):
    path: Path
    status: str  # added | unchanged | updated | skipped | removed
    reason: str = ""


@dataclass
class EnrollReport:
    """What happened to every image (and every unusable folder/file) under PEOPLE_DIR."""

    people_dir: Path
    outcomes: list[ImageOutcome] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # about the enrolled people as a whole
    not_enrolled: list[str] = field(default_factory=list)  # people with photos, none of them usable

    def _count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def added(self) -> int:
        return self._count(ADDED)

    @property
    def unchanged(self) -> int:
        return self._count(UNCHANGED)

    @property
    def updated(self) -> int:
        return self._count(UPDATED)

    @property
    def skipped(self) -> int:
        return self._count(SKIPPED)

    @property
    def removed(self) -> int:
        return self._count(REMOVED)

    @property
    def skipped_outcomes(self) -> list[ImageOutcome]:
        return [o for o in self.outcomes if o.status == SKIPPED]

    @property
    def failed(self) -> bool:
        """Exit 1: nothing enrolled, or a person with photos none of which is usable. A new
        person's folder of bad photos beside people enrolled before exited 0, and a script went
        on as if they were enrolled."""
        return self.nothing_enrolled or bool(self.not_enrolled)

    @property
    def nothing_enrolled(self) -> bool:
        """Something was skipped and nothing is enrolled from PEOPLE_DIR, new or from before, nor
        removed: a failure (exit 1). Photos all unchanged since the last run, or one bad photo
        beside good ones, are not."""
        return self.skipped > 0 and not (self.added or self.updated or self.unchanged or self.removed)

    def summary(self) -> str:
        removed = f", {self.removed} removed (deleted from disk)" if self.removed else ""
        failed = ": nothing enrolled, every photo or folder was skipped (why is above)" if self.nothing_enrolled else ""
        return (
            f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.skipped} skipped{removed}{failed}"
        )

    def format(self) -> str:
        """One line per skipped or removed path with the reason, then the counts."""
        lines = []
        for o in self.outcomes:
            if o.status not in (SKIPPED, REMOVED):
                continue
            try:
                shown = o.path.relative_to(self.people_dir)
            except ValueError:
                shown = o.path
            lines.append(f"{o.status} {shown}: {o.reason}")
        lines += [f"warning: {w}" for w in self.warnings]
        lines.append(self.summary())
        return "\n".join(lines)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_image(path: Path) -> bool:
    return path.is_file() and named_like_photo(path)


def named_like_photo(path: Path) -> bool:
    # Hidden files include macOS "._x.jpg" resource forks, which are not images.
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def check_people_dir(people_dir: Path) -> None:
    """Refuse a PEOPLE_DIR that is missing or not a folder (before a database is created for it)."""
    if not people_dir.exists():
        raise ImageError(f"people directory not found: {people_dir}")
    if not people_dir.is_dir():
        raise ImageError(f"not a directory: {people_dir} (expected PEOPLE_DIR/<name>/*.jpg)")


def _scan(people_dir: Path) -> tuple[list[tuple[str, Path]], list[ImageOutcome]]:
    """(person name, image path) pairs to process, plus outcomes for unusable entries."""
    check_people_dir(people_dir)
    if not _utf8(people_dir):
        raise ImageError(f"{people_dir!s} is not a UTF-8 path (the database keeps paths as text): rename it")
    entries = sorted(p for p in people_dir.iterdir() if not p.name.startswith("."))
    folders = [p for p in entries if p.is_dir()]
    loose = [p for p in entries if is_image(p)]
    if not folders:
        hint = f"; move its {len(loose)} images into {people_dir}/<name>/" if loose else ""
        raise ImageError(
            f"no person folders in {people_dir} (expected PEOPLE_DIR/<name>/*.jpg{hint})"
        )
    todo: list[tuple[str, Path]] = []
    notes = [ImageOutcome(p, SKIPPED, "not inside a person folder") for p in loose]
    for folder in folders:
        if not _utf8(folder):
            notes.append(ImageOutcome(folder, SKIPPED, NOT_UTF8))
            continue
        if not folder.name.strip():
            notes.append(ImageOutcome(folder, SKIPPED, "person folder name is blank: name the folder after the person"))
            continue
        if folder.name.startswith("-"):
            # The name reaches unlock commands as one argument: 'open-door {name}' would read a
            # folder named --all-doors as an option. FaceDatabase.add_image refuses it too.
            notes.append(ImageOutcome(folder, SKIPPED, "person folder name starts with '-', which an unlock "
                                      "command would read as an option: rename the folder"))
            continue
        if problem := name_problem(folder.name):
            notes.append(ImageOutcome(folder, SKIPPED, f"person folder name {problem}"))
            continue
        try:
            files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
            # Not is_image: a broken link or a FIFO named like a photo gets a line saying why.
            images = [p for p in files if named_like_photo(p)]
        except OSError as err:
            notes.append(ImageOutcome(folder, SKIPPED, f"unreadable folder ({err.strerror or err})"))
            continue
        notes += [ImageOutcome(p, SKIPPED, f"{p.suffix[1:].upper()} is not read: save it as .jpg or .png")
                  for p in files if p.suffix.lower() in OTHER_PHOTO_SUFFIXES]
        if not images:
            hint = f"; its sub-folders have images: did you mean `enroll {folder}`?" if _nested_images(folder) else ""
            notes.append(ImageOutcome(folder, SKIPPED, "person folder has no .jpg/.jpeg/.png images" + hint))
        else:  # bob/2019/*.jpg beside bob/*.jpg: enrolled from fewer photos than the folder shows, in silence
            notes += [ImageOutcome(sub, SKIPPED, f"photos in a sub-folder are not read: move them into {folder.name}/ "
                                   "to enrol them") for sub in files if sub.is_dir() and _has_images(sub)]
        notes += [ImageOutcome(p, SKIPPED, NOT_UTF8) for p in images if not _utf8(p)]
        todo += [(folder.name, p) for p in images if _utf8(p)]
    return todo, notes


# An old ZIP's Latin-1 names reach Python as lone surrogates, which SQLite text cannot hold: one
# such photo aborted the whole run, before the photos deleted from disk were removed.
NOT_UTF8 = "name is not valid UTF-8 (an old archive's encoding?): rename it"


def _utf8(path: Path) -> bool:
    return not_utf8(str(path)) is None


def _nested_images(folder: Path) -> bool:
    """True if a sub-folder of ``folder`` holds images: PEOPLE_DIR given one level too high."""
    try:
        return any(_has_images(sub) for sub in folder.iterdir() if sub.is_dir())
    except OSError:
        return False


def _has_images(folder: Path) -> bool:
    try:
        return any(is_image(p) for p in folder.iterdir())
    except OSError:
        return False


# Start-of-frame markers (baseline, progressive, ...): C4, C8 and CC share the range but are not.
_JPEG_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# libjpeg decodes a JPEG at 1/2, 1/4 or 1/8 scale from its DCT coefficients, without the full image.
_REDUCED = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame header, or None if ``data`` is no JPEG with
    one. OpenCV has no header-only reader, and pulling in Pillow for 15 lines is not worth it."""
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_SOF:
            height, width = int.from_bytes(data[i + 5:i + 7], "big"), int.from_bytes(data[i + 7:i + 9], "big")
            return (width, height) if width and height else None
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header before them
            return None
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk, or None if ``data`` is no PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR" or len(data) < 24:
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _decode_flag(data: bytes) -> int:
    """The cheapest imdecode flag that still gives >= MAX_SIDE px on the long side: a 50-MP
    phone photo decoded whole peaks at ~300 MB, too much for a Raspberry Pi enrolling."""
    size = jpeg_size(data)
    if size is not None:
        for factor, flag in _REDUCED:
            if max(size) >= factor * MAX_SIDE:
                return flag
    return cv2.IMREAD_COLOR


def _decode(data: bytes) -> np.ndarray | None:
    """BGR uint8 image (EXIF orientation applied), downscaled to MAX_SIDE; None if OpenCV cannot
    decode the bytes."""
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), _decode_flag(data))
    except cv2.error:  # e.g. a header claiming absurd dimensions
        return None
    if image is None or image.size == 0:
        return None
    return fit_within(image, MAX_SIDE)


def fit_within(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image`` scaled down (INTER_AREA) to at most ``max_side`` pixels on its long side."""
    scale = max_side / max(image.shape[:2])
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image


def _enroll_one(
    db: FaceDatabase, name: str, path: Path, known: dict[str, str], encoder: FaceEncoder
) -> ImageOutcome:
    old = known.get(str(path))
    try:
        data = _read_regular(path)
    except NotAPhotoFile as err:
        # Nothing there to enrol any more: as for a deleted photo, its old encoding must go.
        removed = old is not None and db.remove_image(path)
        return ImageOutcome(path, REMOVED if removed else SKIPPED, str(err))
    except OSError as err:
        return ImageOutcome(path, SKIPPED, f"unreadable ({err.strerror or err})")
    digest = sha256_hex(data)
    if old == digest:
        return ImageOutcome(path, UNCHANGED)

    # Encode the very bytes we hashed (cv2.imread would re-read a file that may have changed).
    encoding, reason = photo_encoding(data, encoder)
    if encoding is None:
        if old is not None and db.remove_image(path):
            # The old encoding no longer describes this file: keeping it would let a photo
            # that was replaced (or broken) keep granting access.
            reason += "; its earlier encoding was removed"
        return ImageOutcome(path, SKIPPED, reason)

    replaced = db.add_image(name, path, digest, encoding)
    return ImageOutcome(path, UPDATED if replaced else ADDED)


class NotAPhotoFile(Exception):
    """A path named like a photo leads to no regular file (a broken link, a folder, a FIFO...)."""


def _read_regular(path: Path) -> bytes:
    """The bytes of the regular file at ``path`` (links followed). The type is checked on the
    open descriptor before reading: a FIFO named like a photo would block the run until
    something wrote to it, and a link to /dev/zero would be read until memory ran out."""
    try:
        # O_NONBLOCK: opening a FIFO does not wait for a writer (regular files ignore it).
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as err:
        if path.is_symlink() and err.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            raise NotAPhotoFile(f"broken link (to {os.readlink(path)})") from err
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotAPhotoFile("not a regular file (a folder, pipe or device named like a photo)")
        with open(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


def photo_encoding(data: bytes, encoder: FaceEncoder) -> tuple[np.ndarray | None, str]:
    """The encoding of the one face in the photo file's bytes ``data``, as enrolment stores it,
    or None and why not (unreadable, no face, several faces)."""
    if (size := png_size(data)) and size[0] * size[1] > PNG_MAX_PIXELS:
        return None, (f"too large to read ({size[0]}x{size[1]} px PNG, {3 * size[0] * size[1] / 1e9:.1f} GB "
                      f"decoded): save it at most {MAX_SIDE} px a side, or as .jpg")
    image = _decode(data) if data else None
    if image is None:
        return None, "unreadable (not a decodable image)" if data else "unreadable (empty file)"
    boxes = encoder.detect(image)
    if not boxes:
        return None, "no face" + _sideways_hint(image, encoder)
    if len(boxes) > 1:
        return None, f"several faces ({len(boxes)})"
    return encoder.encode(image, boxes[0]), ""


def _sideways_hint(image: np.ndarray, encoder: FaceEncoder) -> str:
    """Why a photo with no upright face may still hold one: saved sideways with no EXIF
    rotation (some editors and messengers drop it). Only a hint: the photo on disk stays what
    gets enrolled. Looked for at <= 640 px, since enrolment faces are large and HOG is slow."""
    small = fit_within(image, 640)
    turns = ((cv2.ROTATE_90_CLOCKWISE, "90° clockwise"), (cv2.ROTATE_90_COUNTERCLOCKWISE, "90° anticlockwise"),
             (cv2.ROTATE_180, "180°"))
    # The best-scored turn, not the first with a face: HOG also finds some faces upside down,
    # and the first-found named the wrong turn for 3 of 20 LFW photos saved sideways.
    score, turn = max((encoder.face_score(cv2.rotate(small, code)), turn) for code, turn in turns)
    return f" upright, but one when turned {turn}: save the photo upright" if score > float("-inf") else ""


def enroll_directory(
    db: FaceDatabase, people_dir: Path, encoder: FaceEncoder, progress: bool = True
) -> EnrollReport:
    """Enrol PEOPLE_DIR/<person name>/*.jpg|jpeg|png (suffix case-insensitive).

    Each image needs exactly one face (HOG detector). Images are keyed by absolute path (not
    following symlinks), so reruns from another working directory still recognise them.
    Images enrolled from under PEOPLE_DIR and since deleted (or moved, or their folder renamed)
    are removed, and so are images gone from disk elsewhere whose person or content is now in
    PEOPLE_DIR (PEOPLE_DIR moved); a person left with no image is forgotten.
    """
    people_dir = Path(os.path.abspath(people_dir))
    todo, notes = _scan(people_dir)
    report = EnrollReport(people_dir, list(notes))
    known = db.image_hashes()
    before = {n for n, _ in db.people()}
    bar = tqdm(todo, desc="enrolling", unit="img", file=sys.stderr, disable=None if progress else True)
    for name, path in bar:
        bar.set_postfix_str(name, refresh=False)
        report.outcomes.append(_enroll_one(db, name, path, known, encoder))
    unreadable = {o.path for o in notes if o.reason.startswith("unreadable")}
    report.outcomes += _remove_deleted(db, people_dir, known, unreadable)
    report.outcomes += _remove_moved(db, people_dir, known, {n for n, _ in todo})
    # A person with no usable photo is not enrolled (or no longer): say it once, by name, not
    # only per photo, which reads like one bad photo among good ones.
    after = {n for n, _ in db.people()}
    report.warnings += [f"{n} is no longer enrolled: no usable photo left" for n in sorted(before - after)]
    report.not_enrolled = sorted({n for n, _ in todo} - before - after)
    report.warnings += [f"{n} is not enrolled: none of their photos was usable" for n in report.not_enrolled]
    report.warnings += mixed_people(db, people_dir) + close_people(db, people_dir)
    return report


def mixed_people(db: FaceDatabase, people_dir: Path | None = None) -> list[str]:
    """One line per enrolled person whose photos fall into groups over OTHER_PERSON_DISTANCE
    apart, naming the photos outside the largest group."""
    by_name: dict[str, list[EnrolledImage]] = {}
    for image in db.images():
        by_name.setdefault(image.name, []).append(image)
    lines = []
    for name, images in by_name.items():
        encodings = np.array([i.encoding for i in images])
        dist = _distances(encodings, encodings)
        labels = _groups(dist < OTHER_PERSON_DISTANCE)
        main = labels == np.bincount(labels).argmax()  # the most photos; a tie, the first photo's
        if main.all():
            continue
        apart = [_shown(images[k].path, people_dir) for k in np.flatnonzero(~main)]
        listing = ", ".join(apart[:3]) + (f" and {len(apart) - 3} more" if len(apart) > 3 else "")
        lines.append(f"{name}'s photos may show more than one person: {listing} {'is' if len(apart) == 1 else 'are'} "
                     f"{dist[np.ix_(main, ~main)].min():.2f} or more from their other photos. Whoever a photo "
                     f"shows is named {name}: delete any photo of someone else")
    return lines


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The distance between each row of ``a`` and each of ``b``, as a (len(a), len(b)) array,
    from dot products: the (len(a), len(b), 128) array of differences took 1 KB a pair, 2.3 GB
    for a person with 500 photos among 5,000."""
    squared = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(squared, 0.0))  # rounding can leave a tiny negative for one photo twice


def _groups(near: np.ndarray) -> np.ndarray:
    """A label for each photo, shared by photos joined by a chain of ``near`` pairs (a square
    boolean matrix, true on its diagonal): the lowest index in the chain."""
    labels = np.arange(len(near))
    while True:
        joined = np.where(near, labels[None, :], len(near)).min(axis=1)
        if (joined == labels).all():
            return labels
        labels = joined


def _shown(path: str, people_dir: Path | None) -> str:
    """``path`` relative to ``people_dir`` if it is under it, as the report shows paths."""
    p = Path(path)
    return str(p.relative_to(people_dir)) if people_dir is not None and p.is_relative_to(people_dir) else path


def close_people(db: FaceDatabase, people_dir: Path | None = None) -> list[str]:
    """One line per pair of enrolled people with photos under SAME_PERSON_DISTANCE apart."""
    images = db.images()
    if not images:
        return []
    encodings = np.array([i.encoding for i in images])
    names = np.array([i.name for i in images], dtype=object)
    lines = []
    for name in sorted(set(names)):
        mine = np.flatnonzero(names == name)
        later = np.flatnonzero(names > name)  # each pair once
        if not later.size:
            continue
        dist = _distances(encodings[mine], encodings[later])
        nearest = dist.min(axis=0)  # each later photo's distance to the nearest of this person's
        # Every later person with a photo this close, not only the closest one: a folder with a
        # photo of someone else in it is close to two people, and the second went unmentioned.
        for other in sorted(set(names[later[nearest < SAME_PERSON_DISTANCE]])):
            theirs = np.flatnonzero(names[later] == other)
            j = theirs[int(np.argmin(nearest[theirs]))]
            i = int(np.argmin(dist[:, j]))
            lines.append(_close_line(images[mine[i]], images[later[j]], float(dist[i, j]), people_dir))
    return lines


def _close_line(a: EnrolledImage, b: EnrolledImage, distance: float, people_dir: Path | None) -> str:
    where = f"({_shown(a.path, people_dir)}, {_shown(b.path, people_dir)})"
    if a.sha256 == b.sha256:
        what = f"have the same photo {where}: delete it from the wrong folder"
    else:
        what = f"have photos {distance:.2f} apart {where}: if they are one person under two names, keep one folder"
    return f"{a.name} and {b.name} {what}. A face about as close to both is named as neither"


def _remove_deleted(db: FaceDatabase, people_dir: Path, known: dict[str, str],
                    unreadable: set[Path]) -> list[ImageOutcome]:
    """Drop the encodings of images enrolled from under ``people_dir`` that are gone from disk.
    Only a file that is really not there: a folder we could not read keeps its people."""
    gone = [Path(p) for p in known if Path(p).is_relative_to(people_dir) and Path(p).parent not in unreadable
            and _gone(p)]
    return [ImageOutcome(p, REMOVED, "deleted from disk") for p in gone if db.remove_image(p)]


def _remove_moved(db: FaceDatabase, people_dir: Path, known: dict[str, str],
                  people: set[str]) -> list[ImageOutcome]:
    """Drop the encodings of images enrolled from outside ``people_dir`` that are gone from disk,
    when the same content is (or was, before this run) enrolled from under it, or their person
    is one of its folders: PEOPLE_DIR was moved or renamed. Kept, the old row went on opening
    the door for a photo later deleted from the new folder, which the report said was removed."""
    here = {sha for p, sha in known.items() if Path(p).is_relative_to(people_dir)}
    outside = [i for i in db.images() if not Path(i.path).is_relative_to(people_dir)]
    here |= {sha for p, sha in db.image_hashes().items() if Path(p).is_relative_to(people_dir)}
    gone = [Path(i.path) for i in outside if (i.sha256 in here or i.name in people) and _gone(i.path)]
    return [ImageOutcome(p, REMOVED, f"gone from disk, and its person or photo is now in {people_dir}")
            for p in gone if db.remove_image(p)]


def _gone(path: str) -> bool:
    """True if no photo is at ``path`` any more: nothing there, a link whose target was deleted,
    or something else put in its place (a folder). Links are followed because the row holds what
    the link led to, and _scan never lists a path that is no photo, so nothing else would remove
    its row: a dangling link kept another person's face opening the door."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError as err:  # no permission, an I/O error: not known to be gone
        return err.errno == errno.ELOOP  # a link loop leads to no photo
    return not stat.S_ISREG(mode)
