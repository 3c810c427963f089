"""CEW loader: shapes, labels, splits and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from blinkgate.cew import DatasetError, load_cew, read_split, to_gray01
from blinkgate.errors import BlinkgateError, ImageError

CEW = Path(__file__).resolve().parents[2] / "shared" / "data" / "cew-eyes"


@pytest.fixture(scope="module")
def cew():
    if not (CEW / "split.csv").is_file():
        pytest.skip(f"CEW data not found at {CEW} (tests read ../shared/data beside the repo)")
    return load_cew(CEW)


def test_loads_all_rows_as_gray_unit_floats(cew):
    assert cew.images.shape == (len(cew), 24, 24, 1)
    assert cew.images.dtype == np.float32
    assert 0.0 <= cew.images.min() and cew.images.max() <= 1.0
    assert len(cew) == 4846


def test_labels_follow_the_folders(cew):
    folder = np.array([p.split("/")[0] for p in cew.paths])
    assert np.array_equal(cew.labels, (folder == "open").astype(np.int64))


def test_splits_are_group_disjoint(cew):
    train, test = cew.only("train"), cew.only("test")
    assert set(train.split) == {"train"} and set(test.split) == {"test"} and len(test) == 926
    assert len(train) + len(test) == len(cew)
    for part in (train, test):  # every array cut alike: image i is still the eye of label i
        assert len(part.images) == len(part.labels) == len(part.groups) == len(part.paths) == len(part)
    first = int(np.flatnonzero(cew.split == "test")[0])
    assert np.array_equal(test.images[0], cew.images[first]) and test.paths[0] == cew.paths[first]
    assert not set(train.groups) & set(test.groups)


def test_single_split_loads_only_those_rows():
    if not (CEW / "split.csv").is_file():
        pytest.skip(f"CEW data not found at {CEW}")
    test = load_cew(CEW, split="test")
    assert set(test.split) == {"test"} and len(test) == 926


def test_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_cew(tmp_path / "nope")


def test_missing_split_csv(tmp_path):
    with pytest.raises(DatasetError, match="split.csv"):
        load_cew(tmp_path)
    assert issubclass(DatasetError, BlinkgateError)


def test_bad_columns_and_labels(tmp_path):
    (tmp_path / "split.csv").write_text("file,label\nx.jpg,open\n")
    with pytest.raises(DatasetError, match="columns"):
        read_split(tmp_path)
    (tmp_path / "split.csv").write_text("path,label,group,split\nx.jpg,blink,g,train\n")
    with pytest.raises(DatasetError, match="open or closed"):
        read_split(tmp_path)
    # in neither split: eval-eyes and train-eyes left the row out without a word
    (tmp_path / "split.csv").write_text("path,label,group,split\nx.jpg,open,g,train\ny.jpg,open,g,Test\n")
    with pytest.raises(DatasetError, match=":3: split must be train or test, got 'Test'"):
        read_split(tmp_path)


def test_a_split_csv_with_a_bom_loads_and_one_not_utf8_is_a_dataset_error(tmp_path):
    """Saved by Excel (a BOM), its 'path' column was not found; in Latin-1, a traceback."""
    (tmp_path / "split.csv").write_bytes(b"\xef\xbb\xbfpath,label,group,split\nx.jpg,open,g,train\n")
    assert read_split(tmp_path) == [{"path": "x.jpg", "label": "open", "group": "g", "split": "train"}]
    (tmp_path / "split.csv").write_bytes(b"path,label,group,split\ncaf\xe9.jpg,open,g,train\n")
    with pytest.raises(DatasetError, match="not UTF-8"):
        read_split(tmp_path)


def test_a_split_csv_that_csv_cannot_read_is_a_dataset_error(tmp_path):
    """A quote never closed ran into a field past the csv module's limit: a _csv.Error traceback."""
    (tmp_path / "split.csv").write_text('path,label,group,split\nx.jpg,open,"' + "g" * 200_000 + "\n")
    with pytest.raises(DatasetError, match="not a readable CSV"):
        read_split(tmp_path)


def test_a_split_csv_or_image_that_cannot_be_read_is_a_one_line_error(tmp_path, monkeypatch):
    """Permission denied (or a disk error) was a traceback."""
    (tmp_path / "split.csv").write_text("path,label,group,split\na.jpg,open,g,train\n")
    (tmp_path / "a.jpg").write_bytes(b"an eye")

    def denied(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(np, "fromfile", denied)
    with pytest.raises(ImageError, match="cannot read eye image .*a.jpg: Permission denied"):
        load_cew(tmp_path)
    monkeypatch.setattr(Path, "open", denied)
    with pytest.raises(DatasetError, match="cannot read .*split.csv: Permission denied"):
        read_split(tmp_path)


def test_missing_and_unreadable_images(tmp_path):
    (tmp_path / "split.csv").write_text("path,label,group,split\nopen/a.jpg,open,g,train\n")
    with pytest.raises(ImageError, match="missing"):
        load_cew(tmp_path)
    (tmp_path / "open").mkdir()
    (tmp_path / "open" / "a.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ImageError, match="cannot decode"):
        load_cew(tmp_path)
    (tmp_path / "open" / "a.jpg").write_bytes(b"")  # a copy that did not finish: a cv2.error traceback
    with pytest.raises(ImageError, match="cannot decode"):
        load_cew(tmp_path)


def test_to_gray01_accepts_gray_bgr_bgra_any_size():
    for img in (np.full((24, 24), 255, np.uint8), np.full((31, 47, 3), 255, np.uint8),
                np.full((10, 12, 4), 255, np.uint8), np.full((24, 24, 1), 255, np.uint8)):
        out = to_gray01(img)
        assert out.shape == (24, 24) and out.dtype == np.float32
        assert np.allclose(out, 1.0)
    with pytest.raises(ImageError):
        to_gray01(np.zeros((0, 5, 3), np.uint8))
