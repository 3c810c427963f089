"""Load the CEW eye-patch data set (Closed Eyes In The Wild) as listed in its ``split.csv``.

``split.csv`` has the columns ``path,label,group,split``: ``path`` is relative to the data
folder, ``label`` is ``open`` or ``closed``, ``group`` is the person or source photo (groups
never straddle splits) and ``split`` is ``train`` or ``test``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from blinkgate.errors import BlinkgateError, ImageError
from blinkgate.files import reading_text

SIZE = 24  # CEW patches are 24x24; the eye CNN takes this size
_LABELS = {"open": 1, "closed": 0}
_COLUMNS = ("path", "label", "group", "split")
_SPLITS = ("train", "test")


class DatasetError(BlinkgateError):
    """The data folder or its ``split.csv`` is missing or malformed."""


@dataclass(frozen=True)
class CewData:
    """Eye patches as float32 (N, 24, 24, 1) gray in [0, 1]; ``labels`` are 1=open, 0=closed."""

    images: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    split: np.ndarray
    paths: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, mask: np.ndarray) -> CewData:
        """Rows where ``mask`` (bool array or index array) selects."""
        return CewData(self.images[mask], self.labels[mask], self.groups[mask],
                       self.split[mask], self.paths[mask])

    def only(self, split: str) -> CewData:
        return self.subset(self.split == split)


def to_gray01(image: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Any uint8 gray/BGR/BGRA crop -> float32 (size, size) gray in [0, 1]."""
    img = np.asarray(image)
    if img.size == 0 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 3, 4)):
        raise ImageError(f"eye crop must be a non-empty gray or BGR image, got shape {img.shape}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    elif img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    if img.shape != (size, size):
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    return img.astype(np.float32)  # already float: assume [0, 1]


def read_split(data_dir: str | Path) -> list[dict[str, str]]:
    """Rows of ``split.csv`` as dicts, validated."""
    root = Path(data_dir)
    if not root.is_dir():  # a file is there, not missing
        raise DatasetError(f"CEW data folder {root} is a file: give the folder that holds split.csv" if root.exists()
                           else f"CEW data folder not found: {root}")
    csv_path = root / "split.csv"
    if not csv_path.is_file():
        raise DatasetError(f"split.csv not found in {root}")
    # -sig: a split.csv saved by Excel starts with a BOM, and its "path" column was not found
    with reading_text(csv_path, DatasetError), csv_path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not set(_COLUMNS) <= set(reader.fieldnames):
            raise DatasetError(f"{csv_path} must have the columns {','.join(_COLUMNS)}")
        rows = list(reader)
    for i, row in enumerate(rows, start=2):
        if row["label"] not in _LABELS:
            raise DatasetError(f"{csv_path}:{i}: label must be open or closed, got {row['label']!r}")
        if row["split"] not in _SPLITS:  # "Test" or " train" was in neither split: left out without a word
            raise DatasetError(f"{csv_path}:{i}: split must be train or test, got {row['split']!r}")
    if not rows:
        raise DatasetError(f"{csv_path} lists no images")
    return rows


def _read_image(path: Path) -> np.ndarray:
    if not path.is_file():
        raise ImageError(f"eye image listed in split.csv is missing: {path}")
    # imdecode from bytes: cv2.imread silently returns None and mishandles non-ASCII paths.
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:  # permission denied, a disk error: was a traceback
        raise ImageError(f"cannot read eye image {path}: {err.strerror or err}") from None
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None  # an empty file: imdecode asserts
    if img is None:
        raise ImageError(f"cannot decode eye image: {path}")
    return to_gray01(img)


def load_cew(data_dir: str | Path, split: str | None = None) -> CewData:
    """Load CEW (optionally only the rows of one ``split``) as gray float32 arrays."""
    root = Path(data_dir)
    rows = read_split(root)
    if split is not None:
        rows = [r for r in rows if r["split"] == split]
        if not rows:
            raise DatasetError(f"split.csv in {root} has no rows with split={split!r}")
    images = np.stack([_read_image(root / r["path"]) for r in rows])[..., None]
    return CewData(
        images=images,
        labels=np.array([_LABELS[r["label"]] for r in rows], dtype=np.int64),
        groups=np.array([r["group"] for r in rows]),
        split=np.array([r["split"] for r in rows]),
        paths=np.array([r["path"] for r in rows]),
    )
